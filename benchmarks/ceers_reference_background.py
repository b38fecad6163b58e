"""Straightforward reference implementation of the CEERS mosaic background algorithm.

Written from the description in issue 8 (Bagley et al. 2023, sec. 3.3.3), as the
baseline that ``bench_mosaic_bkg.py`` compares the ``ceers_mosaic_bkg`` step against.
It is deliberately plain: float64 everywhere, a full-resolution ring-median filter
(``scipy.ndimage.median_filter`` with a ring footprint), FFT Gaussian convolutions,
``photutils.segmentation.detect_sources`` with the unsmoothed pixel rms as threshold,
binary dilation with disk footprints, the masks of all filters OR-ed together, and
``photutils.background.Background2D`` (box 10, filter 5, biweight, 3-sigma clip, zoom
interpolation) on the unmasked pixels.

Known departures from the CEERS scripts: a tier that detects nothing contributes an
empty mask here (CEERS crashes). ``ring_block`` > 1 (used by the quick robustness
benchmark only) computes the ring median on ``ring_block`` x ``ring_block`` block means
with the ring scaled accordingly and interpolates it back (the full-resolution ring
median is ~85% of the reference's time); 1 (default) is the exact algorithm.
"""

import numpy as np

__all__ = ["CEERS_REFERENCE_TIERS", "reference_tier_masks", "reference_background"]

# (kernel FWHM [pix], nsigma, npixels, dilation radius [pix]) per tier
CEERS_REFERENCE_TIERS = ((25, 1.5, 15, 33), (15, 1.5, 10, 25), (5, 1.5, 3, 21), (2, 1.5, 1, 19))


def _ring_footprint(radius, width):
    size = int(np.ceil(radius + width))
    yy, xx = np.mgrid[-size : size + 1, -size : size + 1]
    r = np.hypot(xx, yy)
    return (r >= radius) & (r <= radius + width)


def _disk(radius):
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return xx**2 + yy**2 <= radius**2


def reference_ring_median_filtered(data, nodata, *, radius=80, width=4, clip_nsigma=5.0, coarse_box=100, ring_block=1):
    """Data minus its ring-median filter, after clipping pixels above a 5-sigma ceiling."""
    from astropy.stats import sigma_clipped_stats
    from photutils.background import Background2D, MedianBackground
    from scipy.ndimage import median_filter, zoom

    _, _, rms = sigma_clipped_stats(data[~nodata], sigma=3.0)
    filled = np.where(nodata, 0.0, data)
    coarse = Background2D(
        filled, coarse_box, coverage_mask=nodata, filter_size=3, bkg_estimator=MedianBackground(), fill_value=0.0
    ).background
    ceiling = coarse + clip_nsigma * rms
    clipped = np.where(filled > ceiling, coarse, filled)
    clipped[nodata] = coarse[nodata]
    if ring_block > 1:
        b = int(ring_block)
        ny, nx = clipped.shape
        padded = np.pad(clipped, ((0, -ny % b), (0, -nx % b)), mode="edge")
        small = padded.reshape(padded.shape[0] // b, b, padded.shape[1] // b, b).mean(axis=(1, 3))
        footprint = _ring_footprint(radius / b, max(width / b, 1.0))
        ring_small = median_filter(small, footprint=footprint, mode="reflect")
        ring = zoom(ring_small, b, order=1, grid_mode=True, mode="nearest")[:ny, :nx]
    else:
        ring = median_filter(clipped, footprint=_ring_footprint(radius, width), mode="reflect")
    return filled - ring, rms


def reference_tier_masks(data, nodata, *, tiers=CEERS_REFERENCE_TIERS, ring_block=1):
    """CEERS tiers on one float64 mosaic: returns the uint bitmask (bit 0 = no data) and the union mask."""
    from astropy.convolution import Gaussian2DKernel
    from photutils.segmentation import detect_sources
    from scipy.ndimage import binary_dilation
    from scipy.signal import fftconvolve

    filtered, rms = reference_ring_median_filtered(data, nodata, ring_block=ring_block)
    bitmask = nodata.astype(np.int64)
    union = np.zeros(data.shape, dtype=bool)
    for bit, (fwhm, nsigma, npixels, dilate) in enumerate(tiers, start=1):
        kernel = Gaussian2DKernel(fwhm / 2.3548).array
        kernel /= kernel.sum()
        smoothed = fftconvolve(filtered, kernel, mode="same")
        segm = detect_sources(smoothed, nsigma * rms, npixels, mask=nodata | union)
        if segm is None:
            continue
        tier = binary_dilation(segm.data > 0, structure=_disk(dilate))
        tier &= ~nodata
        bitmask[tier] |= 1 << bit
        union |= tier
    return bitmask, union


def reference_background(images, *, tiers=CEERS_REFERENCE_TIERS, box_size=10, filter_size=5, ring_block=1):
    """
    The CEERS algorithm on the mosaics of one pointing.

    Parameters
    ----------
    images : list of ndarray
        Mosaics on one grid, NaN off the footprint.

    Returns
    -------
    dict
        ``background`` and ``bkgsub`` (lists of float64 arrays, 0 off the footprint),
        ``tiermask`` (list of int64 bitmasks) and ``merged_mask`` (bool).
    """
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, BiweightLocationBackground, BkgZoomInterpolator

    images = [np.asarray(image, dtype=np.float64) for image in images]
    nodata = [~np.isfinite(image) for image in images]
    tiermasks = []
    merged = np.zeros(images[0].shape, dtype=bool)
    for image, bad in zip(images, nodata, strict=True):
        bitmask, union = reference_tier_masks(image, bad, tiers=tiers, ring_block=ring_block)
        tiermasks.append(bitmask)
        merged |= union
    backgrounds, bkgsubs = [], []
    for image, bad in zip(images, nodata, strict=True):
        filled = np.where(bad, 0.0, image)
        bkg = Background2D(
            filled,
            box_size,
            mask=merged,
            coverage_mask=bad,
            fill_value=0.0,
            filter_size=filter_size,
            sigma_clip=SigmaClip(sigma=3.0),
            bkg_estimator=BiweightLocationBackground(),
            interpolator=BkgZoomInterpolator(),
        ).background
        bkg = np.where(bad, 0.0, bkg)
        backgrounds.append(bkg)
        bkgsubs.append(np.where(bad, 0.0, filled - bkg))
    return {"background": backgrounds, "bkgsub": bkgsubs, "tiermask": tiermasks, "merged_mask": merged}
