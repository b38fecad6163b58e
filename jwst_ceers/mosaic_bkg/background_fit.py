"""Smooth 2-D background of a mosaic from robust block statistics of its unmasked pixels.

Equivalent in spirit to photutils ``Background2D`` (sigma-clipped statistic per box,
median filter over boxes, smooth interpolation) but O(N) and memory-lean for 50-megapixel
mosaics: box statistics use every ``stride``-th pixel (drizzled noise is correlated over
~2 pixels, so little information is lost), clipping and medians run with bottleneck
along one axis, and the box grid is brought back to full resolution with a separable
cubic interpolation (:func:`~jwst_ceers.mosaic_bkg.grid_resampling.upsample_cubic`).
"""

import logging

import numpy as np

from jwst_ceers.mosaic_bkg.grid_resampling import block_samples, fill_invalid_smooth, upsample_cubic

__all__ = ["box_statistics", "fit_background"]

log = logging.getLogger(__name__)


def box_statistics(samples, *, sigma=3.0, iterations=3, min_pixels=16):
    """
    Sigma-clipped location of every box (rows of ``samples``; NaN = not usable).

    Clipping is around the median with a MAD-based sigma; the final location is the
    mean of the clipped pixels pulled towards the mode (``2.5 median - 1.5 mean`` when
    the distribution is skewed by faint sources, as in SExtractor), which limits the
    positive bias of faint unmasked sources.

    Returns
    -------
    location : ndarray
        (nby, nbx) float32, NaN where fewer than ``min_pixels`` pixels were usable.
    count : ndarray
        Number of pixels used per box.
    """
    import bottleneck

    values = samples.copy()
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            median = bottleneck.nanmedian(values, axis=-1)
            mad = bottleneck.nanmedian(np.abs(values - median[..., None]), axis=-1) * np.float32(1.4826)
            outliers = np.abs(values - median[..., None]) > (sigma * mad)[..., None]
            values[outliers] = np.nan
        median = bottleneck.nanmedian(values, axis=-1)
        mean = bottleneck.nanmean(values, axis=-1)
        std = bottleneck.nanstd(values, axis=-1)
        count = np.sum(np.isfinite(values), axis=-1)
        skewed = np.abs(mean - median) / std > 0.3
        location = np.where(skewed, median, 2.5 * median - 1.5 * mean)
    location = location.astype(np.float32)
    location[count < min_pixels] = np.nan
    return location, count


def fit_background(data, exclude, *, box_size=128, filter_size=3, sigma=3.0, stride=None, min_fraction=0.1):
    """
    Fit a smooth background to the pixels of ``data`` not in ``exclude``.

    Parameters
    ----------
    data : ndarray
        2-D mosaic.
    exclude : ndarray of bool
        True for pixels not to use (sources, no data). NaNs are excluded too.
    box_size : int
        Box size in pixels (a multiple of ``stride``).
    filter_size : int
        Size of the median filter applied to the grid of box values (odd; 1 = none).
    sigma : float
        Clipping threshold.
    stride : int, optional
        Pixel subsampling step for the statistics; default: ``box_size // 32`` (at
        least 1), i.e. up to 32 x 32 samples per box (drizzled noise is correlated
        over ~2 pixels, so samples 4 pixels apart are independent).
    min_fraction : float
        Boxes with fewer usable pixels than this fraction (of their pixels inside the
        image) are filled from their
        neighbours by a thin-plate surface (:func:`fill_invalid_smooth`).

    Returns
    -------
    background : ndarray
        New float32 full-resolution background (finite everywhere).
    grid : ndarray
        Box values after filling and filtering.
    """
    from scipy.ndimage import median_filter

    if stride is None:
        stride = max(1, box_size // 64)
        while box_size % stride:
            stride -= 1
    samples = block_samples(data, exclude, box=box_size, stride=stride)
    # the fraction counts the samples of a box that lie inside the image (edge boxes,
    # and boxes of mosaics smaller than one box, are partly outside)
    k = box_size // stride
    ny, nx = -(-data.shape[0] // stride), -(-data.shape[1] // stride)
    rows = np.minimum(k, ny - k * np.arange(samples.shape[0]))
    cols = np.minimum(k, nx - k * np.arange(samples.shape[1]))
    min_pixels = np.maximum(4, (min_fraction * np.outer(rows, cols)).astype(int))
    location, _ = box_statistics(samples, sigma=sigma, min_pixels=min_pixels)
    del samples
    valid = np.isfinite(location)
    if not valid.any():
        raise ValueError("fit_background: no box has enough unmasked pixels")
    # masked holes (large galaxies) are bridged by a thin-plate surface, not by steps
    grid = fill_invalid_smooth(location, valid)
    # linear extrapolation by a few boxes keeps gradients at the edges (no flattening by
    # the median filter or by clamping in the interpolation)
    pad = max(2, filter_size // 2 + 1)
    pad = min(pad, min(grid.shape) - 1) if min(grid.shape) > 1 else 0
    if pad:
        grid = np.pad(grid, pad, mode="reflect", reflect_type="odd")
    if filter_size > 1:
        grid = median_filter(grid, size=filter_size, mode="nearest")
    return upsample_cubic(grid, shape=data.shape, box=box_size, pad=pad), grid
