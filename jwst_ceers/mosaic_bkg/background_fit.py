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

__all__ = ["box_statistics", "find_large_bright_sources", "fit_background"]

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


def fit_background(
    data,
    exclude,
    *,
    box_size=128,
    filter_size=3,
    sigma=3.0,
    stride=None,
    min_fraction=0.1,
    large_source_box=256,
    large_source_blend=(1.0, 3.0),
    nodata=None,
    components=(),
    large_sources=None,
):
    """
    Fit a smooth background to the pixels of ``data`` not in ``exclude``.

    Around large bright galaxies (:func:`find_large_bright_sources`) the fit with
    ``box_size`` boxes is blended into one with larger boxes (``large_source_box``):
    the faint wings of such a galaxy reach hundreds of pixels past any mask, and the
    few unmasked pixels left in the small boxes at the edge of its (large) masked hole
    carry them; the boxes follow them and the surface filling the hole extrapolates
    them inwards (over-subtraction, e.g. +0.4 sigma under a mag-16 galaxy's mask in
    F356W). Larger boxes there mix in more distant sky. Away from such galaxies the
    small boxes are kept (larger boxes everywhere cannot follow the background's
    bumps: measured rms 0.048 -> 0.081 on a 2000^2 field without bright galaxies).

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
    large_source_box : int or None
        Box size (pixels) of the fit used around large bright galaxies; None or not
        larger than ``box_size``: no blending (and no search for such galaxies).
    large_source_blend : (float, float)
        The larger-box fit is used within the first number times a galaxy's equivalent
        radius from its centre, the small-box fit beyond the second, linearly in between.
    nodata : ndarray of bool, optional
        Pixels without data (for the galaxy search; default: the non-finite pixels).
    components : sequence of `~jwst_ceers.mosaic_bkg.galaxy_models.SersicComponent`
        Models of large galaxies, subtracted from the data before everything else
        (the fit is of the background under them).
    large_sources : list of (float, float, float), optional
        ``(y, x, radius)`` of the large bright galaxies to blend the larger-box fit
        around (e.g. those a model could not be fitted to); default: searched with
        :func:`find_large_bright_sources`.

    Returns
    -------
    background : ndarray
        New float32 full-resolution background (finite everywhere).
    grid : ndarray
        Box values after filling and filtering.
    """
    small = _fit_boxes(
        data, exclude, box_size=box_size, filter_size=filter_size, sigma=sigma, stride=stride, min_fraction=min_fraction,
        components=components,
    )
    if not large_source_box or large_source_box <= box_size:
        return small
    if large_sources is None:
        sources = find_large_bright_sources(
            data, exclude, nodata=nodata, box_size=box_size, filter_size=filter_size, components=components
        )
    else:
        sources = list(large_sources)
    if not sources:
        return small
    log.info("background: %d px boxes blended in around %d large bright source(s)", large_source_box, len(sources))
    inner, outer = (float(v) for v in large_source_blend)
    if not outer > inner >= 0:
        raise ValueError("fit_background: large_source_blend must be (inner, outer) with 0 <= inner < outer")
    large, _ = _fit_boxes(
        data, exclude, box_size=int(large_source_box), filter_size=filter_size, sigma=sigma, stride=None,
        min_fraction=min_fraction, components=components,
    )
    # blend weight: 1 within inner * radius of a source, 0 beyond outer * radius
    # (computed only inside the bounding box of the discs)
    ny, nx = np.shape(data)
    reach = [(y, x, radius, outer * radius) for y, x, radius in sources]
    y0 = max(0, int(min(y - r for y, _, _, r in reach)))
    y1 = min(ny, int(np.ceil(max(y + r for y, _, _, r in reach))) + 1)
    x0 = max(0, int(min(x - r for _, x, _, r in reach)))
    x1 = min(nx, int(np.ceil(max(x + r for _, x, _, r in reach))) + 1)
    if y1 <= y0 or x1 <= x0:
        return small
    rows = np.arange(y0, y1, dtype=np.float32)[:, None]
    cols = np.arange(x0, x1, dtype=np.float32)[None, :]
    weight = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    for y, x, radius, _ in reach:
        ramp = np.hypot(rows - np.float32(y), cols - np.float32(x))
        ramp = np.clip((np.float32(outer * radius) - ramp) / np.float32((outer - inner) * radius), 0, 1)
        np.maximum(weight, ramp, out=weight)
    background = small[0]
    window = background[y0:y1, x0:x1]
    window += weight * (large[y0:y1, x0:x1] - window)
    return background, small[1]


def _fit_boxes(data, exclude, *, box_size, filter_size, sigma, stride, min_fraction, components=()):
    """The box fit of :func:`fit_background` with one box size."""
    from scipy.ndimage import median_filter

    from jwst_ceers.mosaic_bkg.galaxy_models import evaluate_components

    if stride is None:
        stride = max(1, box_size // 64)
        while box_size % stride:
            stride -= 1
    model = evaluate_components(components, np.shape(data), step=stride) if len(components) else None
    samples = block_samples(data, exclude, box=box_size, stride=stride, subtract=model)
    del model
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


def find_large_bright_sources(
    data, exclude, *, nodata=None, box_size=128, filter_size=3, block=8, bright_nsigma=1.0, min_radius=120.0,
    components=(), blocks=None,
):
    """
    Centres and sizes of large bright galaxies (whose faint wings reach far past masks).

    On ``block`` x ``block`` block means, a background is fitted (boxes of
    ``box_size``, blocks with any excluded pixel ignored) and the residual is divided
    by the pixel noise (robust scale of unmasked pixels about that background). A
    large bright galaxy is a connected region of blocks above ``bright_nsigma`` with
    an equivalent radius (sqrt(area / pi)) of at least ``min_radius`` pixels: its
    surface brightness stays above ~1 pixel sigma over a region that size (measured:
    a mag ~16-17 galaxy of the calibrated simulation, r_eff 1-1.5", gives 200-350 px
    in F150W/F356W; the largest ordinary sources and blends of 2000^2 fields 80-100 px).

    Parameters
    ----------
    data : ndarray
        2-D mosaic.
    exclude : ndarray of bool
        Pixels not to use in the background (sources, no data).
    nodata : ndarray of bool, optional
        Pixels without data (default: the non-finite pixels).
    box_size, filter_size : int
        Background fit (pixels, boxes).
    block : int
        Block size (a power of two).
    bright_nsigma : float
        Threshold on the block-mean residual, in pixel sigma.
    min_radius : float
        Smallest equivalent radius (pixels) of a region.
    components : sequence of `~jwst_ceers.mosaic_bkg.galaxy_models.SersicComponent`
        Galaxy models subtracted first (already modelled galaxies are not found again).
    blocks : (ndarray, ndarray), optional
        The ``block`` x ``block`` block means of the valid pixels of ``data`` and their
        valid fractions, when the caller has them (:func:`block_mean`).

    Returns
    -------
    list of (float, float, float)
        ``(y, x, radius)`` in pixels: residual-weighted centre and equivalent radius.
    """
    from scipy.ndimage import label

    from jwst_ceers.masking.fft_ops import block_any, block_mean
    from jwst_ceers.masking.robust import robust_location_scale

    data = np.asarray(data)
    valid = np.isfinite(data)
    if nodata is not None:
        valid &= ~np.asarray(nodata, dtype=bool)
    exclude = np.asarray(exclude, dtype=bool)
    if blocks is None:
        blocks, fraction = block_mean(data, valid, factor=block)
    else:
        blocks, fraction = np.array(blocks[0], dtype=np.float32), blocks[1]
    if len(components):
        from jwst_ceers.mosaic_bkg.galaxy_models import evaluate_components

        blocks -= evaluate_components(components, data.shape, block=block)
    usable = fraction >= 0.5
    excluded = block_any(exclude & valid, factor=block) | ~usable
    if (~excluded).sum() < 16:
        return []
    try:
        background, _ = _fit_boxes(
            np.where(usable, blocks, np.float32(np.nan)), excluded, box_size=max(2, int(round(box_size / block))),
            filter_size=filter_size, sigma=3.0, stride=1, min_fraction=0.1,
        )
    except ValueError:
        return []
    # pixel noise: robust scale of unmasked pixels about the block background
    step = max(1, block // 2)
    shape = (-(-data.shape[0] // step), -(-data.shape[1] // step))
    local = np.repeat(np.repeat(background, block // step, axis=0), block // step, axis=1)[: shape[0], : shape[1]]
    keep = (valid & ~exclude)[::step, ::step]
    _, scale = robust_location_scale((data[::step, ::step] - local)[keep].ravel())
    if not (np.isfinite(scale) and scale > 0):
        return []
    residual = np.where(usable, blocks - background, np.float32(0)) / np.float32(scale)
    labels, nlabels = label((residual > bright_nsigma) & usable, structure=np.ones((3, 3), dtype=bool))
    if nlabels == 0:
        return []
    radius = np.sqrt(np.bincount(labels.ravel(), minlength=nlabels + 1) * float(block * block) / np.pi)
    sources = []
    for index in np.flatnonzero(radius >= min_radius):
        if index == 0:
            continue
        rows, cols = np.nonzero(labels == index)
        weight = residual[rows, cols]
        y = (float(np.sum(rows * weight) / weight.sum()) + 0.5) * block - 0.5
        x = (float(np.sum(cols * weight) / weight.sum()) + 0.5) * block - 0.5
        sources.append((y, x, float(radius[index])))
    if sources:
        log.info(
            "%d large bright source(s) found (equivalent radii %s px)",
            len(sources), ", ".join(f"{r:.0f}" for _, _, r in sources),
        )
    return sources
