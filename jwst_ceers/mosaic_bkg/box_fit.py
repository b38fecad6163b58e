"""Smooth background of an image from robust statistics of its unmasked pixels in boxes.

:func:`box_statistics` gives each box's clipped location; :func:`fit_boxes` turns the
box grid into a full-resolution surface (thin-plate filling of empty boxes, median
filter, separable cubic interpolation). Used by :mod:`.background_fit` and by the
large-source search (:mod:`.large_sources`).
"""

import bottleneck as bn
import numpy as np
from scipy.ndimage import median_filter

from jwst_ceers.masking.fft_ops import block_mean
from jwst_ceers.mosaic_bkg.grid_resampling import (
    CubicUpsampler,
    block_samples,
    fill_invalid_smooth,
    smoothing_spline_grid,
)
from jwst_ceers.mosaic_bkg.sersic import evaluate_components

__all__ = ["box_statistics", "fit_boxes", "sample_stride"]


def box_statistics(samples, *, sigma=3.0, iterations=3, min_pixels=16):
    """
    Sigma-clipped location of every box (rows of ``samples``; NaN = not usable).

    Clipping is around the median with a MAD-based sigma. The final location is, as
    in SExtractor, the mode estimate ``2.5 median - 1.5 mean`` of the clipped pixels
    when their distribution is nearly symmetric (``|mean - median| <= 0.3 std``: it
    removes the positive pull of faint unmasked sources), and their median when it is
    strongly skewed (there the mode estimate is unreliable).

    Returns
    -------
    location : ndarray
        (nby, nbx) float32, NaN where fewer than ``min_pixels`` pixels were usable.
    count : ndarray
        Number of pixels used per box.
    """
    values = samples.copy()
    with np.errstate(all="ignore"):
        for _ in range(iterations):
            median = bn.nanmedian(values, axis=-1)
            mad = bn.nanmedian(np.abs(values - median[..., None]), axis=-1) * np.float32(1.4826)
            outliers = np.abs(values - median[..., None]) > (sigma * mad)[..., None]
            values[outliers] = np.nan
        median = bn.nanmedian(values, axis=-1)
        mean = bn.nanmean(values, axis=-1)
        std = bn.nanstd(values, axis=-1)
        count = np.sum(np.isfinite(values), axis=-1)
        skewed = np.abs(mean - median) / std > 0.3
        location = np.where(skewed, median, 2.5 * median - 1.5 * mean)
    location = location.astype(np.float32)
    location[count < min_pixels] = np.nan
    return location, count


def sample_stride(box_size, smoothing=None):
    """
    Default ``stride`` of :func:`fit_boxes`: up to 64 x 64 samples per box, at most
    16 x 16 with the spline (whose surface averages over several boxes): drizzled noise
    is correlated over ~2 px. A divisor of ``box_size``, at least 1.
    """
    stride = max(1, int(box_size) // (16 if smoothing is not None else 64))
    while box_size % stride:
        stride -= 1
    return stride


def fit_boxes(
    data, exclude, *, box_size, filter_size=3, sigma=3.0, stride=None, min_fraction=0.1, components=(), smoothing=None,
    blocks=None, full_resolution=True,
):
    """
    Smooth background from the clipped locations of ``box_size`` boxes (one box size).

    Box statistics use the means of ``stride`` x ``stride`` blocks of usable pixels
    (default ``box_size // 64``, at least 1: up to 64 x 64 samples per box;
    ``box_size // 16`` with ``smoothing``); boxes with fewer usable samples than
    ``min_fraction`` of their samples inside the image are filled by a thin-plate
    surface from their neighbours (:func:`fill_invalid_smooth`); the grid is extended
    linearly by a few boxes, median-filtered over ``filter_size`` boxes and brought to
    full resolution by a separable cubic interpolation. ``components`` (Sersic models)
    are subtracted from the data first.

    With ``smoothing`` (a number), the box grid is instead fitted by a weighted
    thin-plate smoothing spline (:func:`smoothing_spline_grid`): each box weighs by its
    fraction of usable samples (boxes with fewer than ``min_fraction`` weigh 0), so
    the surface follows the background closely where pixels are plentiful and
    becomes smoother where they are sparse (under large masked areas), instead of
    switching between a measured box and a filled hole; ``filter_size`` is then not
    used (the spline's robust reweighting replaces the median filter).

    ``blocks``: ``(means, fraction)`` of ``block_mean(data, usable, factor=stride)``
    (usable: not excluded and finite) when made already, e.g. by
    :func:`~jwst_ceers.masking.fft_ops.block_means` for several box sizes at once.
    ``full_resolution=False`` returns the background as a
    :class:`~jwst_ceers.mosaic_bkg.grid_resampling.CubicUpsampler` (rows made on
    demand, bit for bit the same values) instead of the full-resolution map.

    Returns
    -------
    background : ndarray
        New float32 full-resolution background.
    grid : ndarray
        Box values after filling and filtering (with the padding).
    """
    if stride is None:
        stride = sample_stride(box_size, smoothing)
    # the model on the samples' grid: at the centres of the stride x stride blocks
    sampled_at = {"block": stride} if stride > 1 else {"step": 1}
    model = evaluate_components(components, np.shape(data), **sampled_at) if len(components) else None
    if stride > 1:
        # samples are the means of the usable pixels of stride x stride blocks (at
        # least half of them usable), not every stride-th pixel: all pixels count, at
        # the cost of one pass over the image (robustness_mosaic --quick, mean rms
        # F150W: gradient_bumps 0.053 -> 0.038, saddle 0.044 -> 0.032, edge_glow
        # 0.052 -> 0.037; no slower on a 4000^2 pointing, measured paired)
        if blocks is None:
            data = np.asarray(data, dtype=np.float32)
            blocks = block_mean(data, ~np.asarray(exclude, dtype=bool) & np.isfinite(data), factor=stride)
        means, fraction = blocks
        samples = block_samples(means, fraction < 0.5, box=box_size // stride, stride=1, subtract=model)
        del means, fraction, blocks
    else:
        samples = block_samples(data, exclude, box=box_size, stride=stride, subtract=model)
    del model
    # the fraction counts the samples of a box that lie inside the image (edge boxes,
    # and boxes of mosaics smaller than one box, are partly outside)
    k = box_size // stride
    ny, nx = -(-data.shape[0] // stride), -(-data.shape[1] // stride)
    rows = np.minimum(k, ny - k * np.arange(samples.shape[0]))
    cols = np.minimum(k, nx - k * np.arange(samples.shape[1]))
    min_pixels = np.maximum(4, (min_fraction * np.outer(rows, cols)).astype(int))
    location, count = box_statistics(samples, sigma=sigma, min_pixels=min_pixels)
    del samples
    valid = np.isfinite(location)
    if not valid.any():
        raise ValueError("fit_background: no box has enough unmasked pixels")
    if smoothing is not None:
        weights = np.where(valid, count / float(k * k), 0.0)
        pad = 2 if min(location.shape) > 1 else 0
        grid = smoothing_spline_grid(location, weights, smoothing=float(smoothing), pad=pad)
    else:
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
    upsampler = CubicUpsampler(grid, shape=data.shape, box=box_size, pad=pad)
    if not full_resolution:
        return upsampler, grid
    return upsampler(), grid
