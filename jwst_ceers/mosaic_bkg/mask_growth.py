"""Growth of a source mask over the faint wings of large galaxies.

:func:`grow_wing_mask` (used by the step): the low-surface-brightness wings of large
bright galaxies reach far past any fixed dilation, and a background fitted around
them is biased high over hundreds of pixels. The mosaics are block-averaged (8 x 8
pixels: the noise of a block is ~5x lower than a pixel's), a background is fitted to
the blocks outside the current mask (so the wings already masked cannot bias it),
the residual in pixel-sigma units is smoothed with a wide Gaussian and thresholded
at a low significance, and only the connected regions above threshold that touch
a mask region whose surroundings are significantly bright are added to it
(hysteresis: wings are contiguous with their galaxy; isolated noise peaks are not,
and faint compact sources, which have no detectable wings, do not seed growth).
Fit, detection and growth are iterated a few times, each fit seeing the grown mask;
the detections of all filters are merged, so wings seen in the deepest filter are
masked in all. Everything runs on the block-reduced grid (64x fewer cells), so it
costs a few percent of the step.

:func:`grow_masks_by_size` (optional, ``grow_factor``): a purely geometric growth,
every connected masked region is grown by a radius proportional to how much larger
it is than a typical small-source mask: a region of equivalent radius ``r_eq`` grows
by ``factor * max(0, r_eq - min_radius)``. The work is done on a block-reduced grid
with one Euclidean distance transform, so it is O(N).
"""

import logging

import numpy as np

__all__ = ["grow_masks_by_size", "grow_wing_mask"]

log = logging.getLogger(__name__)


def grow_masks_by_size(mask, *, factor=1.0, min_radius=40.0, block=8, exclude=None):
    """
    Grow each connected region of ``mask`` according to its size.

    Parameters
    ----------
    mask : ndarray of bool
        Source mask (True = masked).
    factor : float
        Growth radius per pixel of equivalent radius beyond ``min_radius``; 0 = no growth.
    min_radius : float
        Regions with an equivalent radius (sqrt(area / pi)) below this do not grow.
    block : int
        Block size of the working grid (the growth is rounded up to whole blocks).
    exclude : ndarray of bool, optional
        Pixels never added (e.g. no data).

    Returns
    -------
    ndarray of bool
        New mask (a superset of ``mask``).
    """
    from scipy.ndimage import distance_transform_edt, label

    from jwst_ceers.masking.fft_ops import block_any, expand_blocks

    mask = np.asarray(mask, dtype=bool)
    if factor <= 0 or not mask.any():
        return mask.copy()
    reduced = block_any(mask, factor=block)
    labels, nlabels = label(reduced, structure=np.ones((3, 3), dtype=bool))
    area = np.bincount(labels.ravel(), minlength=nlabels + 1).astype(float) * block * block
    r_eq = np.sqrt(area / np.pi)
    grow = factor * np.maximum(0.0, r_eq - min_radius) / block  # in blocks
    grow[0] = 0.0
    if not np.any(grow > 0.5):
        return mask.copy()
    distance, indices = distance_transform_edt(~reduced, return_indices=True)
    nearest = labels[indices[0], indices[1]]
    added = (distance <= grow[nearest]) & ~reduced
    grown = mask | expand_blocks(added, factor=block, shape=mask.shape)
    if exclude is not None:
        grown &= ~np.asarray(exclude, dtype=bool)
    return grown


def _reduced_residual_inputs(image, nodata, noise, block, components=()):
    """Block means of the data (minus galaxy models) and of the noise map, and which blocks are usable."""
    from jwst_ceers.masking.fft_ops import block_mean
    from jwst_ceers.mosaic_bkg.galaxy_models import evaluate_components

    valid = ~np.asarray(nodata, dtype=bool) & np.isfinite(image)
    if noise is not None:
        valid &= np.isfinite(noise) & (noise > 0)
    data, fraction = block_mean(image, valid, factor=block)
    if len(components):
        data -= evaluate_components(components, np.shape(image), block=block)
    if noise is None:
        from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked

        _, scale = robust_location_scale(sample_unmasked(image, ~valid))
        sigma = np.full(data.shape, np.float32(scale if np.isfinite(scale) and scale > 0 else 1.0))
    else:
        sigma, _ = block_mean(np.asarray(noise, dtype=np.float32), valid, factor=block)
    usable = (fraction >= 0.5) & (sigma > 0)
    return data, np.where(usable, sigma, np.float32(1)), usable


def grow_wing_mask(
    images,
    *,
    nodata,
    mask,
    noise=None,
    block=8,
    kernel_fwhm=64.0,
    nsigma=1.5,
    iterations=5,
    box_size=128,
    cap=1.0,
    seed_nsigma=3.0,
    fit_min_fraction=0.3,
    workers=2,
    components=None,
):
    """
    Grow a merged source mask over faint extended emission connected to it.

    Parameters
    ----------
    images : list of ndarray
        Mosaics on one grid.
    nodata : list of ndarray of bool
        Per mosaic, True where there are no data.
    mask : ndarray of bool
        Current merged source mask (the seeds of the growth).
    noise : list of (ndarray or None), optional
        Per mosaic, the pixel noise sigma map (ERR or 1/sqrt(WHT)); None: a constant
        measured on the data.
    block : int
        Block size of the working grid (pixels; a power of two). Growth is in whole blocks.
    kernel_fwhm : float
        FWHM (pixels) of the Gaussian smoothing of the block residuals.
    nsigma : float
        Threshold in units of the robust rms of the smoothed residual (measured on
        unmasked blocks). The smoothed noise is ~0.02-0.03 pixel sigma for 64 px, so
        1.5 traces wings down to ~0.04 pixel sigma.
    iterations : int
        Fit / detect / grow cycles (0: no growth).
    box_size : int
        Box (pixels) of the background fitted before each detection. Each fit
        excludes what is already grown, so the growth creeps outwards one ring per
        iteration; a box much larger than the final fit's lets the residual of the
        background's own structure seed spurious growth (measured: 256 px boxes
        over-mask bumps of a few hundred pixels and bias the final fit low).
    cap : float
        Block residuals above this (pixel sigma) are capped before smoothing, so that
        bright cores do not spread into the surroundings.
    seed_nsigma : float
        A mask region grows only while the mean of the smoothed residual in a ring one
        kernel wide around it is significant at this level (its wings are detected;
        the ring's number of independent values is taken into account).
    fit_min_fraction : float
        Boxes of those fits with fewer unmasked blocks than this fraction are filled
        from their neighbours: a box mostly covered by a large galaxy's mask would
        otherwise take its level from the few wing pixels left, absorb the wing and
        hide it from detection.
    workers : int
        FFT threads.
    components : list of (sequence of SersicComponent), optional
        Per mosaic, models of large galaxies subtracted before the detection (their
        wings are modelled, not grown over).

    Returns
    -------
    ndarray of bool
        New full-resolution mask of the ADDED pixels (not including ``mask``).
    """
    from scipy.ndimage import grey_dilation, label

    from jwst_ceers.masking.fft_ops import block_any, expand_blocks, gaussian_smooth
    from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked
    from jwst_ceers.mosaic_bkg.background_fit import fit_background

    mask = np.asarray(mask, dtype=bool)
    if iterations <= 0 or not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    noise = list(noise) if noise is not None else [None] * len(images)
    components = list(components) if components is not None else [()] * len(images)
    reduced = [
        _reduced_residual_inputs(i, b, s, block, c) for i, b, s, c in zip(images, nodata, noise, components, strict=True)
    ]
    seeds = block_any(mask, factor=block)
    any_data = np.zeros(seeds.shape, dtype=bool)
    for _, _, usable in reduced:
        any_data |= usable
    grown = seeds.copy()
    fit_box = max(2, int(round(box_size / block)))
    connectivity = np.ones((3, 3), dtype=bool)
    ring_size = 2 * int(np.ceil(kernel_fwhm / block / 2)) + 1
    correlation_area = 4.0 * np.pi * (kernel_fwhm / block / 2.3548) ** 2
    for iteration in range(int(iterations)):
        significance = np.full(seeds.shape, -np.inf, dtype=np.float32)
        for data, sigma, usable in reduced:
            exclude = grown | ~usable
            if (~exclude).sum() < 16:
                continue
            try:
                background, _ = fit_background(
                    np.where(usable, data, np.float32(np.nan)), exclude, box_size=fit_box, filter_size=3, stride=1,
                    min_fraction=fit_min_fraction, large_source_box=None,
                )
            except ValueError:
                continue
            residual = np.where(usable, (data - background) / sigma, np.float32(0))
            np.minimum(residual, np.float32(cap), out=residual)
            smoothed = gaussian_smooth(residual, fwhm=kernel_fwhm / block, workers=workers)
            location, scale = robust_location_scale(sample_unmasked(smoothed, exclude))
            if not (np.isfinite(scale) and scale > 0):
                continue
            np.maximum(significance, np.where(usable, (smoothed - location) / scale, -np.inf), out=significance)
        # only mask regions whose immediate surroundings (a ring one kernel wide) are
        # significantly bright grow: faint compact sources have no detectable wings, and
        # letting them seed the hysteresis would let noise excursions creep outwards
        regions, nregions = label(grown, structure=connectivity)
        ring = grey_dilation(regions, size=(ring_size, ring_size)) * ~grown
        in_ring = (ring > 0) & np.isfinite(significance)
        ring_sum = np.bincount(ring[in_ring], weights=significance[in_ring], minlength=nregions + 1)
        ring_count = np.bincount(ring[in_ring], minlength=nregions + 1)
        # significance of the ring MEAN: the smoothed noise is correlated over ~4 pi
        # sigma_kernel^2 blocks, so a ring of n blocks holds ~n / that independent values
        independent = np.maximum(1.0, ring_count / correlation_area)
        active = np.zeros(nregions + 1, dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            active[1:] = (ring_sum[1:] / ring_count[1:]) * np.sqrt(independent[1:]) >= seed_nsigma
        # candidate additions: connected detections outside the mask that touch an
        # active region AND peak at seed_nsigma themselves. Without the peak condition,
        # a mask that percolates over most of the field (realistic source densities
        # and drizzle-correlated LW noise: 65-80% masked) is one region whose huge ring
        # is always "significant" (a +0.02 sigma mean of faint unmasked light over
        # thousands of blocks), and 1.5-sigma detections chained to it crept outwards
        # each iteration, each fit seeing less sky: -0.035 sigma bias on a 2000^2 field
        # with no large galaxy (realistic counts, seed 1). A large galaxy's wings next
        # to its mask are far above seed_nsigma and still grow.
        detected = (significance > nsigma) & ~grown
        labels, nlabels = label(detected, structure=connectivity)
        if nlabels == 0:
            new = np.zeros(grown.shape, dtype=bool)
        else:
            peak = np.full(nlabels + 1, -np.inf, dtype=np.float32)
            np.maximum.at(peak, labels.ravel(), significance.ravel())
            next_to_active = grey_dilation(np.where(active[regions], 1, 0).astype(np.uint8), size=(3, 3)) > 0
            touching = np.zeros(nlabels + 1, dtype=bool)
            touching[np.unique(labels[next_to_active & detected])] = True
            touching &= peak >= seed_nsigma
            touching[0] = False
            new = touching[labels] & any_data
        log.info(
            "wing growth, iteration %d: %d of %d mask regions grow, %d blocks of %d px added",
            iteration + 1,
            int(active.sum()),
            nregions,
            int(new.sum()),
            block,
        )
        if not new.any():
            break
        grown |= new
    added = grown & ~seeds
    full = expand_blocks(added, factor=block, shape=mask.shape)
    return full & ~mask
