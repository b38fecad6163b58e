"""The whole mosaic background algorithm for the mosaics of one pointing, on arrays.

For every mosaic (filter): a ring-median pre-filter (:mod:`.ring_median`), tiered
source masks (:func:`jwst_ceers.masking.tiered_source_mask`, bit 0 = no data,
bits 1.. = tiers). The source bits of all mosaics (NIRCam and HST) are OR-ed into one
merged mask, hand edits are applied to it, and a smooth background is fitted to the
unmasked pixels of every mosaic (:mod:`.background_fit`). A second "wing" pass then
looks for faint extended light left outside the merged mask on the
background-subtracted mosaics (block-averaged and heavily smoothed, so that the
low-surface-brightness wings of large galaxies show up), adds it to the merged mask
(one more tier bit) and fits the background again.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from jwst_ceers.mosaic_bkg.background_fit import fit_background
from jwst_ceers.mosaic_bkg.mask_growth import grow_masks_by_size
from jwst_ceers.mosaic_bkg.ring_median import ring_median_background

__all__ = ["PointingBackground", "WingPass", "pointing_background", "merge_source_masks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WingPass:
    """
    Second masking pass for faint extended light, run on background-subtracted mosaics.

    Attributes
    ----------
    kernel_fwhm : float
        Gaussian smoothing FWHM (pixels); 0 disables the pass.
    nsigma : float
        Threshold in units of the smoothed image's robust rms.
    npixels : int
        Minimum connected size (full-resolution pixels).
    dilate : float
        Dilation radius (pixels).
    """

    kernel_fwhm: float = 64.0
    nsigma: float = 3.0
    npixels: int = 4096
    dilate: float = 32.0


@dataclass
class PointingBackground:
    """
    Results of :func:`pointing_background` (lists in the order of the inputs).

    Attributes
    ----------
    backgrounds : list of ndarray
        float32 background maps, 0 off the footprint.
    tiermasks : list of ndarray
        Unsigned integer bitmasks: bit 0 no data, bits 1..n tiers, bit n+1 the wing pass.
    merged_mask : ndarray of bool
        True where any mosaic's tiers or wing pass (after hand edits) mask a source.
    """

    backgrounds: list = field(default_factory=list)
    tiermasks: list = field(default_factory=list)
    merged_mask: np.ndarray = None


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
    box_size=64,
    filter_size=5,
    clip_sigma=3.0,
    wing_pass=None,
    grow_factor=0.0,
    grow_min_radius=40.0,
    threads=2,
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
        Per mosaic, a relative per-pixel noise map (ERR or 1/sqrt(WHT)); detections then
        follow signal-to-noise where the depth varies.
    edit_mask : callable, optional
        ``edit_mask(merged) -> new merged`` (e.g. DS9 region edits), applied to the
        merged mask before each background fit.
    ring_radius, ring_width, clip_nsigma : float
        Ring-median pre-filter (pixels, pixels, sigma).
    box_size, filter_size, clip_sigma :
        Background fit: box (pixels), median filter over boxes, clipping sigma.
    wing_pass : WingPass or None
        Second pass for faint extended light (None or kernel_fwhm 0: skipped).
    threads : int
        Mosaics processed in parallel (FFTs then use one thread each).

    Returns
    -------
    PointingBackground
    """
    from jwst_ceers.masking import MaskTier, tiered_source_mask

    n = len(images)
    if not (len(nodata) == len(tiers) == n):
        raise ValueError("pointing_background: images, nodata and tiers must have the same length")
    noise = list(noise) if noise is not None else [None] * n
    threads = max(1, min(int(threads), n))
    fft_workers = max(1, 2 // threads)
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
    if grow_factor > 0:
        grown = grow_masks_by_size(merged, factor=grow_factor, min_radius=grow_min_radius)
        for index in range(n):
            tiermasks[index] = _set_bit(tiermasks[index], grown & ~merged & ~nodata[index], len(tiers[index]) + 1)
        merged = grown
    merged = edit(merged)

    def fit(data, bad):
        background, _ = fit_background(
            data, merged | bad, box_size=box_size, filter_size=filter_size, sigma=clip_sigma
        )
        return background

    backgrounds = run(fit, images, nodata)

    if wing_pass is not None and wing_pass.kernel_fwhm > 0:
        wing_tier = (MaskTier(wing_pass.kernel_fwhm, wing_pass.nsigma, int(wing_pass.npixels), wing_pass.dilate),)

        def wings(data, bad, bkg, sigma_map):
            bits = tiered_source_mask(
                data,
                coverage=bad | merged,
                tiers=wing_tier,
                noise=_relative_noise(sigma_map),
                background=bkg,
                workers=fft_workers,
            )
            return (bits >> 1).astype(bool)

        wing_masks = run(wings, images, nodata, backgrounds, noise)
        for index, wing in enumerate(wing_masks):
            bit = len(tiers[index]) + 2
            tiermasks[index] = _set_bit(tiermasks[index], wing & ~nodata[index], bit)
        merged = edit(merge_source_masks(tiermasks))
        backgrounds = run(fit, images, nodata)

    for background, bad in zip(backgrounds, nodata, strict=True):
        background[bad] = 0
    return PointingBackground(backgrounds=backgrounds, tiermasks=tiermasks, merged_mask=merged)


def _set_bit(bits, where, bit):
    from jwst_ceers.masking import tier_mask_dtype

    dtype = np.dtype(tier_mask_dtype(bit))
    if dtype.itemsize > bits.dtype.itemsize:
        bits = bits.astype(dtype)
    bits |= where.astype(bits.dtype) << bits.dtype.type(bit)
    return bits
