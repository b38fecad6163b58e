"""The whole mosaic background algorithm for the mosaics of one pointing, on arrays.

For every mosaic (filter): values that cannot be physical are set aside as no data
(:func:`exclude_nonphysical`), a ring-median pre-filter (:mod:`.ring_median`), tiered
source masks (:func:`jwst_ceers.masking.tiered_source_mask`, bit 0 = no data,
bits 1.. = tiers). The source bits of all mosaics (NIRCam and HST) are OR-ed into one
merged mask and hand edits are applied to it. Large bright galaxies are then fitted
with Sersic models (:mod:`.galaxy_models`, per mosaic); around them the tier masks are
remade on the model-subtracted mosaics (their cores stay masked), and a smooth
background is fitted to the unmasked pixels of every mosaic minus its models
(:mod:`.background_fit`).
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import find_objects, label

from jwst_ceers.masking import tier_mask_dtype, tiered_source_mask
from jwst_ceers.mosaic_bkg.background_fit import fit_background
from jwst_ceers.mosaic_bkg.fit_workers import FitWorkers
from jwst_ceers.mosaic_bkg.galaxy_models import large_galaxy_models, single_threaded_blas
from jwst_ceers.mosaic_bkg.ring_median import ring_median_background
from jwst_ceers.mosaic_bkg.sersic import evaluate_components

__all__ = [
    "NONPHYSICAL_LIMIT",
    "GalaxyModelling",
    "PointingBackground",
    "exclude_nonphysical",
    "merge_source_masks",
    "pointing_background",
]

log = logging.getLogger(__name__)

#: |value| above which a mosaic pixel cannot be sky or source (MJy/sr; the brightest
#: saturated-star cores of CEERS mosaics are ~1e3-1e4).
NONPHYSICAL_LIMIT = 1e6


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
    search_box : int
        Background box (pixels) of the search for large bright galaxies (independent of
        the final fit's box: the search needs boxes larger than the galaxies' cores).
    """

    enabled: bool = True
    core_nsigma: float = 10.0
    region_nsigma: float = 0.05
    margin: int = 256
    search_box: int = 128


@dataclass
class PointingBackground:
    """
    Results of :func:`pointing_background` (lists in the order of the inputs).

    Attributes
    ----------
    backgrounds : list of ndarray
        float32 background maps, 0 off the footprint.
    tiermasks : list of ndarray
        Unsigned integer bitmasks: bit 0 no data (non-physical values included), bits
        1..n tiers, bit n+1 the cores of modelled galaxies (shared by all mosaics).
    merged_mask : ndarray of bool
        True where any mosaic's tiers or a modelled galaxy core (after hand edits)
        mask a source.
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


def exclude_nonphysical(data, nodata, *, name="mosaic", limit=NONPHYSICAL_LIMIT):
    """
    ``nodata`` plus the pixels of ``data`` that cannot be physical (non-finite, or
    ``|data| > limit``), reported once in the log with their number.

    Such values (a 3x3 group at 1e30, an unflagged hot cluster) would otherwise enter
    the smoothing of every tier; by the FFTs' float32 round-off alone a single 1e30
    pixel leaves ~1e23 everywhere, and the tiers' noise estimates explode.

    Returns
    -------
    ndarray of bool
        New no-data mask.
    """
    data = np.asarray(data)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(data) <= np.float32(limit))  # NaN compares False: also bad
    bad &= ~np.asarray(nodata, dtype=bool)
    count = int(np.count_nonzero(bad))
    if count:
        log.warning(
            "%s: %d pixel(s) non-finite or beyond |%g| (not physical) treated as no data", name, count, limit
        )
        return np.asarray(nodata, dtype=bool) | bad
    return np.asarray(nodata, dtype=bool)


def _mask_one(data, nodata, noise, tiers, ring_radius, ring_width, clip_nsigma, workers, ceiling_nsigma=None):
    """
    Tier bits of one mosaic, detected over its ring median (values above ``ceiling_nsigma`` clipped).

    The ring median is made row chunk by row chunk where the tiers use it, and the
    clipping at the detection ceiling (``tiered_source_mask(ceiling_nsigma=...)``) is
    applied in the same pass: neither a full-size background nor a clipped copy of the
    mosaic is held.
    """
    background = ring_median_background(
        data, nodata, radius=ring_radius, width=ring_width, clip_nsigma=clip_nsigma, rows=True, threads=workers
    )
    bits = tiered_source_mask(
        data,
        coverage=nodata,
        tiers=tiers,
        noise=_relative_noise(noise),
        background=background,
        workers=workers,
        ceiling_nsigma=ceiling_nsigma or None,
    )
    bits |= nodata.view(np.uint8).astype(bits.dtype, copy=False) if nodata.dtype == bool else nodata.astype(bits.dtype)
    return bits


def pointing_background(
    images,
    *,
    nodata,
    tiers,
    noise=None,
    names=None,
    edit_mask=None,
    ring_radius=80.0,
    ring_width=4.0,
    clip_nsigma=5.0,
    box_size=128,
    filter_size=3,
    clip_sigma=3.0,
    smoothing=None,
    detection_ceiling=None,
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
        Non-physical values are added (:func:`exclude_nonphysical`).
    tiers : list of sequence of `~jwst_ceers.masking.MaskTier`
        Per mosaic, its detection tiers (e.g. NIRCam or HST sets).
    noise : list of (ndarray or None), optional
        Per mosaic, a per-pixel noise sigma map (ERR or 1/sqrt(WHT)); detections then
        follow signal-to-noise where the depth varies.
    names : list of str, optional
        Per mosaic, a name for the log.
    edit_mask : callable, optional
        ``edit_mask(merged) -> new merged`` (e.g. DS9 region edits), applied to the
        merged mask.
    ring_radius, ring_width, clip_nsigma : float
        Ring-median pre-filter (pixels, pixels, sigma).
    box_size, filter_size, clip_sigma :
        Background fit: box (pixels), median filter over boxes, clipping sigma.
    smoothing : float, optional
        Background fit: bending weight of the thin-plate smoothing spline through the
        boxes (:func:`~jwst_ceers.mosaic_bkg.box_fit.fit_boxes`; None: thin-plate
        filling of empty boxes and a ``filter_size`` median filter).
    detection_ceiling : float, optional
        Pixels above the ring median by more than this many pixel sigma are clipped to
        it before the tiers smooth them (``tiered_source_mask``'s ``ceiling_nsigma``); None: no clipping.
    galaxy_modelling : GalaxyModelling or None
        Sersic models of large bright galaxies, fitted per mosaic after the first
        masks; the source masks are then remade around them on the model-subtracted
        mosaics, and the background fit sees the data minus the models (None or not
        enabled: no models).
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
    names = list(names) if names is not None else [f"mosaic {k + 1}" for k in range(n)]
    nodata = [exclude_nonphysical(d, m, name=name) for d, m, name in zip(images, nodata, names, strict=True)]
    noise = list(noise) if noise is not None else [None] * n
    cpu_threads = max(1, int(threads))
    threads = max(1, min(cpu_threads, n, int(parallel_mosaics or cpu_threads)))
    fft_workers = max(1, cpu_threads // threads)
    # cut-outs of the remasking (each smaller than a mosaic) run this many at once
    cutout_threads = max(1, min(cpu_threads, int(parallel_mosaics or cpu_threads)))
    cutout_fft_workers = max(1, cpu_threads // cutout_threads)
    edit = edit_mask if edit_mask is not None else (lambda merged: merged)

    def run(function, *columns, workers=threads):
        if workers == 1 or len(columns[0]) == 1:
            return [function(*args) for args in zip(*columns, strict=True)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(function, *columns))

    tiermasks = run(
        lambda d, m, s, t: _mask_one(d, m, s, t, ring_radius, ring_width, clip_nsigma, fft_workers, detection_ceiling),
        images,
        nodata,
        noise,
        tiers,
    )
    merged = edit(merge_source_masks(tiermasks))
    models = [[] for _ in range(n)]
    large_sources = [None] * n  # None: fit_background searches for them itself
    core = None
    if galaxy_modelling is not None and galaxy_modelling.enabled:
        # all mosaics at once (``parallel_mosaics`` bounds the masking's memory; the fits
        # work on 8 x 8 block means)
        # the fits run ahead on worker processes (least squares holds the GIL: on
        # threads two fits ran at 1.1x one); they start during the searches
        model_threads = max(1, min(cpu_threads, n))
        with single_threaded_blas(), FitWorkers(cpu_threads if cpu_threads > 1 else 0) as fit_workers:
            found = run(
                lambda d, m: large_galaxy_models(d, merged | m, nodata=m, box_size=galaxy_modelling.search_box,
                                                 workers=fit_workers, threads=max(1, cpu_threads // model_threads)),
                images,
                nodata,
                workers=model_threads,
            )
        models = [f.components for f in found]
        large_sources = [f.unmodelled for f in found]
        if any(models):
            # the mosaics remasked at once as they were masked (``threads`` of them, the
            # FFTs sharing the rest): most of a masking is single-threaded numpy, so one
            # mosaic after the other with threaded FFTs left a core idle
            core = _remask_around_models(
                images, nodata, noise, tiers, tiermasks, models, [f.pixel_noise for f in found], galaxy_modelling,
                lambda d, m, s, t, whole: _mask_one(
                    d, m, s, t, ring_radius, ring_width, clip_nsigma, fft_workers if whole else cutout_fft_workers,
                    detection_ceiling,
                ),
                run=run,
                cutout_run=lambda function, items: run(function, items, workers=cutout_threads),
            )
            merged = edit(merge_source_masks(tiermasks))
            if core is not None:
                # the modelled galaxies' cores stay masked (the model is least exact there)
                added = core & ~merged
                merged = edit(merged | core)
                if added.any():
                    for index in range(n):
                        tiermasks[index] = _set_bit(tiermasks[index], added & ~nodata[index], len(tiers[index]) + 1)

    def fit(data, bad, components, sources):
        background, _ = fit_background(
            data, merged | bad, box_size=box_size, filter_size=filter_size, sigma=clip_sigma, components=components,
            large_sources=sources, smoothing=smoothing,
            search_box=galaxy_modelling.search_box if galaxy_modelling is not None else 128,
            threads=max(1, cpu_threads // fit_workers),
        )
        return background

    # all mosaics at once: a fit's working set (~10 bytes per pixel) is below a
    # masking's (13-21 bytes per pixel, see MosaicBackground's memory plan)
    fit_workers = max(1, min(cpu_threads, n))
    backgrounds = run(fit, images, nodata, models, large_sources, workers=fit_workers)
    for background, bad in zip(backgrounds, nodata, strict=True):
        background[bad] = 0
    return PointingBackground(backgrounds=backgrounds, tiermasks=tiermasks, merged_mask=merged, galaxy_models=models)


def _remask_around_models(images, nodata, noise, tiers, tiermasks, models, sigmas, modelling, mask_one, *,
                          run=None, cutout_run=None):
    """
    Remake the tier masks (in place in ``tiermasks``) on the model-subtracted mosaics
    where any galaxy model exceeds ``modelling.region_nsigma``; return the core mask
    (any model above ``modelling.core_nsigma``); ``sigmas``: each mosaic's pixel noise;
    ``run(function, items)``: maps a function over the mosaics' indices when the
    whole mosaics are remasked; ``cutout_run(function, items)`` over (cut-out, mosaic)
    pairs otherwise (default for both: one after the other).

    The masks are remade on cut-outs (the region's bounding box plus a margin that
    covers the ring median, the smoothing kernels and the dilations) and only the
    inner part is kept, so the cost stays proportional to the modelled area. Cut-outs
    run in parallel (``cutout_run``) even for one mosaic: most of a masking is
    single-threaded numpy (14 cut-outs of a 10469 x 4824 pointing: 3.2 s one after the
    other).
    """
    shape = np.shape(images[0])
    block = 8
    region = np.zeros((-(-shape[0] // block), -(-shape[1] // block)), dtype=bool)
    for components, sigma in zip(models, sigmas, strict=True):
        if components:
            region |= evaluate_components(components, shape, block=block) > modelling.region_nsigma * sigma
    if not region.any():
        return None
    cutouts = _merged_cutouts(find_objects(label(region)[0]), block=block, margin=int(modelling.margin), shape=shape)

    def in_order(function, items):
        return [function(item) for item in items]

    whole = len(cutouts) == 1 and cutouts[0][1] == (0, shape[0], 0, shape[1])
    mapper = (run if whole else cutout_run) or in_order

    def remask(task):
        (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) = cutouts[task[0]]
        index = task[1]
        cut = (slice(cy0, cy1), slice(cx0, cx1))
        # each component evaluated within its truncation radius only
        model = evaluate_components(models[index], (cy1 - cy0, cx1 - cx0), origin=(cy0, cx0))
        local_noise = noise[index][cut] if noise[index] is not None and np.ndim(noise[index]) == 2 else noise[index]
        bits = mask_one(np.asarray(images[index][cut], dtype=np.float32) - model, nodata[index][cut], local_noise,
                        tiers[index], whole)
        # the inner parts of the cut-outs do not overlap: each pixel is written once
        tiermasks[index][y0:y1, x0:x1] = bits[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0].astype(tiermasks[index].dtype)
        return cut, model > modelling.core_nsigma * sigmas[index]

    tasks = [(k, index) for k in range(len(cutouts)) for index in range(len(models))]
    # the largest first, so that the last to finish is small
    tasks.sort(key=lambda t: -(cutouts[t[0]][1][1] - cutouts[t[0]][1][0]) * (cutouts[t[0]][1][3] - cutouts[t[0]][1][2]))
    core = np.zeros(shape, dtype=bool)
    for cut, model_core in mapper(remask, tasks if not whole else [(0, index) for index in range(len(models))]):
        core[cut] |= model_core
    log.info(
        "source masks remade on the model-subtracted mosaics in %d cut-out(s) (%.0f%% of the area; %d modelled galaxies)",
        len(cutouts), 100.0 * sum((c[1] - c[0]) * (c[3] - c[2]) for _, c in cutouts) / (shape[0] * shape[1]),
        sum(len(m) for m in models),
    )
    return core & ~np.logical_and.reduce([np.asarray(bad, dtype=bool) for bad in nodata])


def _merged_cutouts(boxes, *, block, margin, shape):
    """
    ``[((y0, y1, x0, x1), (cy0, cy1, cx0, cx1)), ...]``: regions (block slices from
    ``find_objects``, in pixels) and their cut-outs (plus ``margin``). Regions that
    overlap are merged (each pixel's mask comes from one cut-out), and so are regions
    whose merged cut-out is no larger than their two cut-outs (fewer pixels masked);
    regions whose cut-outs only overlap are kept apart, since merging them would mask
    the sky between them as well (29 models on a 10469 x 4824 pointing: cut-outs of
    51% of the image instead of one box over all of it). When the cut-outs still cover
    most of the image (60%), one cut-out of the whole image: the remasking costs at
    most about one masking of the mosaic, whatever the number of models (a lower
    switch, 25%, was measured slower and 0.5 GB larger on a 10600 x 4800 mosaic with
    8 models).
    """
    ny, nx = shape
    rects = [
        (box[0].start * block, min(ny, box[0].stop * block), box[1].start * block, min(nx, box[1].stop * block))
        for box in boxes
    ]

    def grown(r):
        return max(0, r[0] - margin), min(ny, r[1] + margin), max(0, r[2] - margin), min(nx, r[3] + margin)

    def area(r):
        return (r[1] - r[0]) * (r[3] - r[2])

    def union(a, b):
        return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])

    def overlap(a, b):
        return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]

    merged = True
    while merged and len(rects) > 1:
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                both = union(a, b)
                if overlap(a, b) or area(grown(both)) <= area(grown(a)) + area(grown(b)):
                    rects[i] = both
                    rects.pop(j)
                    merged = True
                    break
            if merged:
                break
    cutouts = [(r, grown(r)) for r in rects]
    if sum(area(c) for _, c in cutouts) > 0.6 * ny * nx:
        whole = (0, ny, 0, nx)
        return [(whole, whole)]
    return cutouts


def _set_bit(bits, where, bit):
    dtype = np.dtype(tier_mask_dtype(bit))
    if dtype.itemsize > bits.dtype.itemsize:
        bits = bits.astype(dtype)
    bits |= where.astype(bits.dtype) << bits.dtype.type(bit)
    return bits
