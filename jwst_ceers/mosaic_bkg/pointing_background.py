"""The whole mosaic background algorithm for the mosaics of one pointing, on arrays.

For every mosaic (filter): a ring-median pre-filter (:mod:`.ring_median`), tiered
source masks (:func:`jwst_ceers.masking.tiered_source_mask`, bit 0 = no data,
bits 1.. = tiers). The source bits of all mosaics (NIRCam and HST) are OR-ed into one
merged mask and hand edits are applied to it. Large bright galaxies are then fitted
with Sersic models (:mod:`.galaxy_models`, per mosaic); around them the tier masks are
remade on the model-subtracted mosaics (their cores stay masked), and everything after
sees the data minus the models. Optionally (off by default) the merged mask is grown
over the faint wings of other galaxies
(:func:`~jwst_ceers.mosaic_bkg.mask_growth.grow_wing_mask`: iterated
large-box fits, detection of extended light on block-averaged residuals, hysteresis
growth from the mask, all filters together; the added pixels get one more tier bit),
and a smooth background is fitted to the unmasked pixels of every mosaic
(:mod:`.background_fit`).
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from jwst_ceers.mosaic_bkg.background_fit import fit_background
from jwst_ceers.mosaic_bkg.galaxy_models import evaluate_components, large_galaxy_models
from jwst_ceers.mosaic_bkg.mask_growth import grow_masks_by_size, grow_wing_mask
from jwst_ceers.mosaic_bkg.ring_median import ring_median_background

__all__ = ["GalaxyModelling", "PointingBackground", "WingGrowth", "pointing_background", "merge_source_masks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WingGrowth:
    """
    Growth of the merged mask over faint extended light (see :func:`grow_wing_mask`).

    Attributes
    ----------
    iterations : int
        Fit / detect / grow cycles; 0 disables the growth.
    kernel_fwhm : float
        Gaussian smoothing FWHM of the block-averaged residual (pixels).
    nsigma : float
        Threshold in units of the smoothed residual's robust rms.
    box_size : int
        Background box (pixels) of the fits made while growing.
    seed_nsigma : float
        Mean significance needed around a mask region for it to grow.
    block : int
        Block size (pixels) of the working grid.
    """

    iterations: int = 5
    kernel_fwhm: float = 64.0
    nsigma: float = 1.5
    box_size: int = 128
    seed_nsigma: float = 3.0
    block: int = 8


@dataclass(frozen=True)
class GalaxyModelling:
    """
    Sersic models of large bright galaxies (see :mod:`.galaxy_models`).

    Attributes
    ----------
    enabled : bool
        Fit the models (False: only larger background boxes around such galaxies).
    core_nsigma : float
        Pixels where a model exceeds this many pixel sigma stay masked (the model is
        least exact in the core). Where the residual of a model is significant, the
        remade source masks mask it anyway.
    region_nsigma : float
        Source masks are remade on the model-subtracted mosaics wherever a model
        exceeds this (with a margin covering the ring median, smoothing and dilation).
    margin : int
        That margin, pixels.
    """

    enabled: bool = True
    core_nsigma: float = 10.0
    region_nsigma: float = 0.05
    margin: int = 256


@dataclass
class PointingBackground:
    """
    Results of :func:`pointing_background` (lists in the order of the inputs).

    Attributes
    ----------
    backgrounds : list of ndarray
        float32 background maps, 0 off the footprint.
    tiermasks : list of ndarray
        Unsigned integer bitmasks: bit 0 no data, bits 1..n tiers, bit n+1 the mask
        growth (size-dependent and wing growth, shared by all mosaics).
    merged_mask : ndarray of bool
        True where any mosaic's tiers or the growth (after hand edits) mask a source.
    galaxy_models : list of list of SersicComponent
        Per mosaic, the models of large bright galaxies subtracted before the fit.
    """

    backgrounds: list = field(default_factory=list)
    tiermasks: list = field(default_factory=list)
    merged_mask: np.ndarray = None
    galaxy_models: list = field(default_factory=list)


def merge_source_masks(tiermasks):
    """True where any bitmask has a source bit (bit >= 1) set."""
    merged = None
    for bits in tiermasks:
        source = (np.asarray(bits) >> 1) != 0
        merged = source if merged is None else (merged | source)
    return merged


def _relative_noise(noise):
    if noise is None:
        return None
    noise = np.asarray(noise, dtype=np.float32)
    if np.ndim(noise) == 0:
        return None
    return noise


def _mask_one(data, nodata, noise, tiers, ring_radius, ring_width, clip_nsigma, workers):
    from jwst_ceers.masking import tiered_source_mask

    ring = ring_median_background(data, nodata, radius=ring_radius, width=ring_width, clip_nsigma=clip_nsigma)
    bits = tiered_source_mask(
        data, coverage=nodata, tiers=tiers, noise=_relative_noise(noise), background=ring, workers=workers
    )
    bits |= nodata.astype(bits.dtype)
    return bits


def pointing_background(
    images,
    *,
    nodata,
    tiers,
    noise=None,
    edit_mask=None,
    ring_radius=80.0,
    ring_width=4.0,
    clip_nsigma=5.0,
    box_size=128,
    filter_size=3,
    clip_sigma=3.0,
    wing_growth=None,
    grow_factor=0.0,
    grow_min_radius=40.0,
    galaxy_modelling=GalaxyModelling(),
    threads=2,
    parallel_mosaics=None,
):
    """
    Tiered masks, merged mask and smooth backgrounds of the mosaics of one pointing.

    Parameters
    ----------
    images : list of ndarray
        Mosaics on one grid (float; values under ``nodata`` are ignored).
    nodata : list of ndarray of bool
        Per mosaic, True where there are no data (NaN, zero weight, off footprint).
    tiers : list of sequence of `~jwst_ceers.masking.MaskTier`
        Per mosaic, its detection tiers (e.g. NIRCam or HST sets).
    noise : list of (ndarray or None), optional
        Per mosaic, a per-pixel noise sigma map (ERR or 1/sqrt(WHT)); detections then
        follow signal-to-noise where the depth varies.
    edit_mask : callable, optional
        ``edit_mask(merged) -> new merged`` (e.g. DS9 region edits), applied to the
        merged mask before and after the growth.
    ring_radius, ring_width, clip_nsigma : float
        Ring-median pre-filter (pixels, pixels, sigma).
    box_size, filter_size, clip_sigma :
        Background fit: box (pixels), median filter over boxes, clipping sigma.
    wing_growth : WingGrowth or None
        Growth of the merged mask over faint wings (default None, or 0 iterations: skipped).
        Off by default: with the large galaxies modelled it only made marginal, costly
        decisions (a 400 x 800 px background bump grown over: -0.3 sigma there).
    grow_factor, grow_min_radius : float
        Optional geometric growth (:func:`grow_masks_by_size`; 0: off).
    galaxy_modelling : GalaxyModelling or None
        Sersic models of large bright galaxies, fitted per mosaic after the first
        masks; the source masks are then remade around them on the model-subtracted
        mosaics, and the wing growth and the background fit see the data minus the
        models (None or not enabled: no models).
    threads : int
        CPU threads to use: mosaics masked and fitted in parallel, FFTs sharing the rest.
    parallel_mosaics : int, optional
        At most this many mosaics at once (e.g. to bound memory); default ``threads``.

    Returns
    -------
    PointingBackground
    """
    n = len(images)
    if not (len(nodata) == len(tiers) == n):
        raise ValueError("pointing_background: images, nodata and tiers must have the same length")
    noise = list(noise) if noise is not None else [None] * n
    cpu_threads = max(1, int(threads))
    threads = max(1, min(cpu_threads, n, int(parallel_mosaics or cpu_threads)))
    fft_workers = max(1, cpu_threads // threads)
    edit = edit_mask if edit_mask is not None else (lambda merged: merged)

    def run(function, *columns):
        if threads == 1:
            return [function(*args) for args in zip(*columns, strict=True)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(function, *columns))

    tiermasks = run(
        lambda d, m, s, t: _mask_one(d, m, s, t, ring_radius, ring_width, clip_nsigma, fft_workers),
        images,
        nodata,
        noise,
        tiers,
    )
    merged = merge_source_masks(tiermasks)
    grown = np.zeros(merged.shape, dtype=bool)
    if grow_factor > 0:
        grown |= grow_masks_by_size(merged, factor=grow_factor, min_radius=grow_min_radius) & ~merged
    merged = edit(merged | grown)
    models = [[] for _ in range(n)]
    large_sources = [None] * n  # None: fit_background searches for them itself
    core = None
    if galaxy_modelling is not None and galaxy_modelling.enabled:
        found = run(
            lambda d, m: large_galaxy_models(d, merged | m, nodata=m, box_size=box_size),
            images,
            nodata,
        )
        models = [f.components for f in found]
        large_sources = [f.unmodelled for f in found]
        if any(models):
            core = _remask_around_models(
                images, nodata, noise, tiers, tiermasks, models, [f.pixel_noise for f in found], galaxy_modelling,
                lambda d, m, s, t: _mask_one(d, m, s, t, ring_radius, ring_width, clip_nsigma, cpu_threads),
            )
            merged = edit(merge_source_masks(tiermasks) | grown)
    if wing_growth is not None and wing_growth.iterations > 0:
        wings = grow_wing_mask(
            images,
            nodata=nodata,
            mask=merged,
            noise=[_relative_noise(s) for s in noise],
            block=wing_growth.block,
            kernel_fwhm=wing_growth.kernel_fwhm,
            nsigma=wing_growth.nsigma,
            iterations=wing_growth.iterations,
            box_size=wing_growth.box_size,
            seed_nsigma=wing_growth.seed_nsigma,
            workers=cpu_threads,
            components=models,
        )
        no_data_anywhere = np.logical_and.reduce([np.asarray(bad, dtype=bool) for bad in nodata])
        wings &= ~no_data_anywhere
        grown |= wings
        log.info("wing growth added %.1f%% of the grid to the merged mask", 100.0 * wings.mean())
        merged = edit(merged | wings)
    if core is not None:
        # the modelled galaxies' cores stay masked (added after the wing growth, which
        # must not seed on them: their surroundings are modelled, not grown over)
        grown |= core & ~merged
        merged = edit(merged | core)
    if grown.any():
        for index in range(n):
            tiermasks[index] = _set_bit(tiermasks[index], grown & ~nodata[index], len(tiers[index]) + 1)

    def fit(data, bad, components, sources):
        background, _ = fit_background(
            data, merged | bad, box_size=box_size, filter_size=filter_size, sigma=clip_sigma, components=components,
            large_sources=sources,
        )
        return background

    backgrounds = run(fit, images, nodata, models, large_sources)
    for background, bad in zip(backgrounds, nodata, strict=True):
        background[bad] = 0
    return PointingBackground(backgrounds=backgrounds, tiermasks=tiermasks, merged_mask=merged, galaxy_models=models)


def _remask_around_models(images, nodata, noise, tiers, tiermasks, models, sigmas, modelling, mask_one):
    """
    Remake the tier masks (in place in ``tiermasks``) on the model-subtracted mosaics
    where any galaxy model exceeds ``modelling.region_nsigma``; return the core mask
    (any model above ``modelling.core_nsigma``); ``sigmas``: each mosaic's pixel noise.

    The masks are remade on cut-outs (the region's bounding box plus a margin that
    covers the ring median, the smoothing kernels and the dilations) and only the
    inner part is kept, so the cost stays proportional to the modelled area.
    """
    shape = np.shape(images[0])
    block = 8
    region = np.zeros((-(-shape[0] // block), -(-shape[1] // block)), dtype=bool)
    for components, sigma in zip(models, sigmas, strict=True):
        if components:
            region |= evaluate_components(components, shape, block=block) > modelling.region_nsigma * sigma
    if not region.any():
        return None
    from scipy.ndimage import find_objects, label

    boxes = find_objects(label(region)[0])
    margin = int(modelling.margin)
    core = np.zeros(shape, dtype=bool)
    for box in boxes:
        y0, y1 = box[0].start * block, min(shape[0], box[0].stop * block)
        x0, x1 = box[1].start * block, min(shape[1], box[1].stop * block)
        cy0, cy1 = max(0, y0 - margin), min(shape[0], y1 + margin)
        cx0, cx1 = max(0, x0 - margin), min(shape[1], x1 + margin)
        cut = (slice(cy0, cy1), slice(cx0, cx1))
        inner = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
        rows = np.arange(cy0, cy1, dtype=np.float32)[:, None]
        cols = np.arange(cx0, cx1, dtype=np.float32)[None, :]
        for index, components in enumerate(models):
            model = np.zeros((cy1 - cy0, cx1 - cx0), dtype=np.float32)
            for component in components:
                model += component.evaluate(rows, cols)
            core[cut] |= model > modelling.core_nsigma * sigmas[index]
            local_noise = noise[index][cut] if noise[index] is not None and np.ndim(noise[index]) == 2 else noise[index]
            bits = mask_one(np.asarray(images[index][cut], dtype=np.float32) - model, nodata[index][cut], local_noise,
                            tiers[index])
            target = tiermasks[index][y0:y1, x0:x1]
            target[...] = bits[inner].astype(target.dtype)
        log.info(
            "source masks remade on the model-subtracted mosaics in x %d-%d, y %d-%d (%d modelled galaxies)",
            x0, x1, y0, y1, sum(len(m) for m in models),
        )
    return core & ~np.logical_and.reduce([np.asarray(bad, dtype=bool) for bad in nodata])


def _set_bit(bits, where, bit):
    from jwst_ceers.masking import tier_mask_dtype

    dtype = np.dtype(tier_mask_dtype(bit))
    if dtype.itemsize > bits.dtype.itemsize:
        bits = bits.astype(dtype)
    bits |= where.astype(bits.dtype) << bits.dtype.type(bit)
    return bits
