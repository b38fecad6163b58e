"""
Tiered source masks (CEERS, Bagley et al. 2023 sec. 3.3.3), fast and memory-lean.

Several detection passes run from heavily to lightly smoothed images; each pass
("tier") thresholds the smoothed image, keeps connected groups of at least
``npixels`` pixels and dilates them by a disk. Tier k (1-based) sets bit k of the
returned integer mask; bit 0 is left free for the caller's coverage (no-data) mask.

Differences from the CEERS script, on purpose:

- tiers are iterative: the location and noise used by tier k are measured on pixels
  that neither the coverage mask nor tiers 1..k-1 mask;
- the threshold of a smoothed image is ``nsigma`` times the robust rms of THAT
  smoothed image (measured on unmasked pixels), so the depth of a tier does not depend
  on how correlated the noise is. ``nsigma`` therefore means a significance in the
  smoothed image, not a multiple of the unsmoothed pixel rms as in CEERS;
- a tier that detects nothing (or cannot measure a noise) contributes no pixel;
- smoothing and dilation use FFTs. With ``coarse=True`` (default) a tier detects on
  block-averaged images (blocks of at most kernel_fwhm / 4 pixels, where the smoothed
  image has no finer structure) and dilates on blocks of at most dilate / 6 pixels:
  mask edges then move by about one block (<= dilate / 6) but the cost drops several
  fold. ``coarse=False`` works at full resolution with exact dilation radii.
"""

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from jwst_ceers.masking.background import coarse_background
from jwst_ceers.masking.fft_ops import (
    FourierImage,
    block_any,
    block_mean,
    block_means,
    dilate_disk,
    expand_blocks,
)
from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked

__all__ = [
    "MaskTier",
    "CEERS_NIRCAM_MOSAIC_TIERS",
    "CEERS_HST_MOSAIC_TIERS",
    "CEERS_EXPOSURE_TIERS",
    "tiered_source_mask",
    "tier_mask_dtype",
    "source_bits_to_bool",
]

log = logging.getLogger(__name__)

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class MaskTier:
    """
    One detection pass of a tiered source mask (all sizes in pixels).

    Attributes
    ----------
    kernel_fwhm : float
        FWHM of the Gaussian smoothing kernel (0: no smoothing).
    nsigma : float
        Detection threshold in units of the robust rms of the smoothed image.
    npixels : int
        Minimum number of 8-connected pixels above threshold for a detection.
    dilate : float
        Radius of the disk each detection is dilated by (0: no dilation).
    """

    kernel_fwhm: float
    nsigma: float
    npixels: int
    dilate: float

    def __post_init__(self):
        if not (np.isfinite(self.kernel_fwhm) and self.kernel_fwhm >= 0):
            raise ValueError(f"MaskTier: kernel_fwhm must be >= 0, got {self.kernel_fwhm}")
        if not (np.isfinite(self.nsigma) and self.nsigma > 0):
            raise ValueError(f"MaskTier: nsigma must be > 0, got {self.nsigma}")
        if int(self.npixels) != self.npixels or self.npixels < 1:
            raise ValueError(f"MaskTier: npixels must be an integer >= 1, got {self.npixels}")
        if not (np.isfinite(self.dilate) and self.dilate >= 0):
            raise ValueError(f"MaskTier: dilate must be >= 0, got {self.dilate}")


# CEERS NIRCam mosaic tiers (issue 8): the defaults of MosaicBackground's nircam_*
# parameters (its spec is generated from this constant; parameter_files/ must match,
# tests/test_tier_defaults.py checks). CEERS built its kernels with
# Gaussian2DKernel(size), i.e. 25, 15, 5, 2 px are standard deviations: the FWHMs are
# 2.3548 times larger (rounded to 0.01 px). Dilation radii 33, 25, 21, 19 px (photutils
# circular_footprint). Thresholds are in smoothed-image sigma (see the module
# docstring); CEERS's 1.5 x the unsmoothed pixel rms is, for white noise, 133, 80, 27
# and 11 smoothed sigma, and less for correlated mosaic noise. The two wide tiers use
# 4.0: at 3.0 (until issue 18) they also detected the background's own bumps and ripple
# a few hundred pixels wide (0.3 sigma left by the 80 px ring median is 15 sigma of the
# 59 px smoothed image), masked the tops of bumps and biased the fit beneath
# (benchmarks/robustness_mosaic.py: masked share 67-69% -> 59-64%, rms of bump and
# ripple families 0.107 -> 0.07). Still far deeper than CEERS for extended light.
CEERS_NIRCAM_MOSAIC_TIERS = (
    MaskTier(kernel_fwhm=58.87, nsigma=4.0, npixels=15, dilate=33.0),
    MaskTier(kernel_fwhm=35.32, nsigma=4.0, npixels=10, dilate=25.0),
    MaskTier(kernel_fwhm=11.77, nsigma=3.5, npixels=3, dilate=21.0),
    MaskTier(kernel_fwhm=4.71, nsigma=4.0, npixels=1, dilate=19.0),
)

# HST mosaics on the same grid (MosaicBackground's hst_* defaults): more strongly
# correlated drizzled noise, so a higher last-tier threshold and larger groups.
CEERS_HST_MOSAIC_TIERS = (
    MaskTier(kernel_fwhm=58.87, nsigma=4.0, npixels=15, dilate=33.0),
    MaskTier(kernel_fwhm=35.32, nsigma=4.0, npixels=10, dilate=25.0),
    MaskTier(kernel_fwhm=11.77, nsigma=3.5, npixels=5, dilate=21.0),
    MaskTier(kernel_fwhm=4.71, nsigma=4.5, npixels=2, dilate=19.0),
)

# Per-exposure tiers for 2048 x 2048 NIRCam cal/crf images (~0.031-0.063"/pix): the
# same idea, with kernels and dilations scaled to what a single exposure resolves.
CEERS_EXPOSURE_TIERS = (
    MaskTier(kernel_fwhm=24.0, nsigma=3.5, npixels=15, dilate=15),
    MaskTier(kernel_fwhm=10.0, nsigma=3.5, npixels=10, dilate=9),
    MaskTier(kernel_fwhm=4.0, nsigma=3.5, npixels=5, dilate=5),
    MaskTier(kernel_fwhm=2.0, nsigma=4.0, npixels=2, dilate=3),
)


def tier_mask_dtype(ntiers):
    """Smallest unsigned integer dtype holding bits 0..ntiers (uint8 up to 7 tiers)."""
    if ntiers <= 7:
        return np.uint8
    if ntiers <= 15:
        return np.uint16
    if ntiers <= 31:
        return np.uint32
    raise ValueError(f"at most 31 tiers are supported, got {ntiers}")


def source_bits_to_bool(bits):
    """True where any source bit (bits >= 1) of a tier mask is set."""
    return (np.asarray(bits) >> 1) != 0


def _power_of_two_below(limit):
    factor = 1
    while factor * 2 <= min(limit, 8.0):
        factor *= 2
    return factor


def _working_factors(tier, coarse):
    """
    Block factors (detection, dilation) of a tier: powers of two, at most 8.

    Detection runs on blocks of at most ``kernel_fwhm / 4`` pixels (the smoothed image
    has no finer structure); dilation on blocks of at most ``dilate / 6`` pixels and never
    coarser than ``dilate / 6`` even when detection blocks are larger.
    """
    if not coarse:
        return 1, 1
    return _power_of_two_below(tier.kernel_fwhm / 4.0), _power_of_two_below(tier.dilate / 6.0)


def _keep_large_groups(detected, npixels):
    """Remove 8-connected groups of fewer than ``npixels`` pixels."""
    if npixels <= 1 or not detected.any():
        return detected
    labels, nlabels = scipy.ndimage.label(detected, structure=_EIGHT_CONNECTED)
    sizes = np.bincount(labels.ravel(), minlength=nlabels + 1)
    keep = sizes >= npixels
    keep[0] = False
    return keep[labels]


def _prepare(data, valid, *, noise, background):
    """Background-subtracted (optionally noise-whitened) float32 image, 0 outside ``valid``."""
    work = np.asarray(data, dtype=np.float32)
    # one new image, modified in place (the same values as out-of-place operations)
    if background is not None:
        work = np.subtract(work, np.asarray(background, dtype=np.float32))
    else:
        work = work.copy()
    if noise is not None:
        np.divide(work, np.asarray(noise, dtype=np.float32), out=work)
    work[~valid] = 0
    return work


def tiered_source_mask(
    data,
    *,
    coverage,
    tiers=CEERS_NIRCAM_MOSAIC_TIERS,
    noise=None,
    background=None,
    background_box=None,
    coarse=True,
    workers=2,
):
    """
    Tiered source mask of one image.

    Parameters
    ----------
    data : ndarray
        2-D image (any float dtype; NaNs allowed where ``coverage`` is True).
    coverage : ndarray of bool
        True where there is NO data (NaN, DQ-flagged, off footprint). Such pixels are
        never detected, never used for statistics and never get a source bit. Non-finite
        pixels of ``data`` are added to it.
    tiers : sequence of MaskTier, optional
        Detection passes, applied in order (usually from large to small kernels).
    noise : float or ndarray, optional
        Relative per-pixel rms of ``data`` (e.g. ERR, or 1/sqrt(weight)); the image is
        divided by it before smoothing so that detections follow signal-to-noise where
        depth varies. Its absolute scale does not matter: each tier's threshold uses the
        rms measured on its smoothed image. Pixels where it is not finite or <= 0 are
        treated as coverage.
    background : float or ndarray, optional
        Background subtracted before detection. By default the robust median of the
        unmasked pixels is removed (and each tier re-measures the residual level of its
        smoothed image on pixels that earlier tiers left unmasked).
    background_box : int, optional
        If given, a smooth background (block medians of ``background_box`` pixels, see
        `coarse_background`) is re-fitted before every tier on the pixels not masked so
        far and subtracted (after ``background``). Use it for images with gradients.
    coarse : bool, optional
        Let tiers with large kernels and dilations work on 2x2..8x8 block averages
        (much faster; mask edges move by about the block size). False: every tier at
        full resolution, exact dilation radii.
    workers : int, optional
        Threads used by the FFTs.

    Returns
    -------
    ndarray
        Unsigned integer array (uint8 for up to 7 tiers) of the image's shape: bit k
        (k = 1..len(tiers)) is set where tier k masks; bit 0 is never set.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"tiered_source_mask: data must be 2-D, got shape {data.shape}")
    coverage = np.asarray(coverage, dtype=bool)
    if coverage.shape != data.shape:
        raise ValueError(
            f"tiered_source_mask: coverage shape {coverage.shape} != data shape {data.shape}"
        )
    tiers = tuple(tiers)
    bits = np.zeros(data.shape, dtype=tier_mask_dtype(len(tiers)))
    valid = ~coverage & np.isfinite(data)
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float32)
        valid &= np.isfinite(noise) & (noise > 0)
    if background is not None:
        background = np.asarray(background, dtype=np.float32)
        valid &= np.isfinite(background)
    if not valid.any() or not tiers:
        return bits

    work = _prepare(data, valid, noise=noise, background=background)
    if background is None and background_box is None:
        level, _ = robust_location_scale(sample_unmasked(work, ~valid))
        work -= np.float32(level)
        work[~valid] = 0
    excluded = ~valid
    factors = [_working_factors(tier, coarse) for tier in tiers]
    max_fwhm = {}
    for tier, (factor, _) in zip(tiers, factors):
        max_fwhm[factor] = max(max_fwhm.get(factor, 0.0), tier.kernel_fwhm / factor)
    reduced, pyramid = {}, {}
    for number, (tier, (factor, dilate_factor)) in enumerate(zip(tiers, factors), start=1):
        if background_box is not None:
            smooth_bkg = coarse_background(work, exclude=excluded, box=int(background_box))
            if smooth_bkg is not None:
                work = np.where(valid, work - smooth_bkg, np.float32(0))
                reduced.clear()
                pyramid.clear()
        if factor not in reduced:
            if factor == 1:
                # work is 0 outside valid already: its block "means" are itself
                image, usable_pixels = work, valid
            else:
                if factor not in pyramid:
                    # the block means of all coarse factors at once, from one chain of
                    # halvings (the same values; the full-resolution passes made once)
                    pyramid = block_means(work, valid, factors={f for f, _ in factors if f > 1} - set(reduced))
                image, fraction = pyramid.pop(factor)
                usable_pixels = fraction >= 0.5
                del fraction
            fourier = FourierImage(image, max_fwhm=max_fwhm[factor], workers=workers)
            reduced[factor] = (fourier, usable_pixels)
            del image, usable_pixels
        fourier, usable = reduced[factor]
        if tier.kernel_fwhm > 0:
            smoothed = fourier.smoothed(tier.kernel_fwhm / factor)
        else:
            smoothed = block_mean(work, valid, factor=factor)[0]
        unmasked = ~usable | block_any(excluded, factor=factor) if factor > 1 else excluded
        location, scale = robust_location_scale(sample_unmasked(smoothed, unmasked))
        if not (np.isfinite(scale) and scale > 0):
            log.warning("tier %d: no unmasked pixels left to measure the noise; tier skipped", number)
            continue
        detected = (smoothed > location + tier.nsigma * scale) & usable
        del smoothed
        detected = _keep_large_groups(detected, int(np.ceil(tier.npixels / factor**2)))
        ndetected = int(np.count_nonzero(detected))
        if ndetected == 0:
            log.info("tier %d: nothing detected above %.2f sigma", number, tier.nsigma)
            continue
        if dilate_factor > factor:
            detected = block_any(detected, factor=dilate_factor // factor)
        elif dilate_factor < factor:
            grid = (-(-data.shape[0] // dilate_factor), -(-data.shape[1] // dilate_factor))
            detected = expand_blocks(detected, factor=factor // dilate_factor, shape=grid)
        detected = dilate_disk(detected, radius=tier.dilate / dilate_factor, workers=workers)
        tier_pixels = expand_blocks(detected, factor=dilate_factor, shape=data.shape)
        tier_pixels &= valid
        np.bitwise_or(bits, bits.dtype.type(1 << number), out=bits, where=tier_pixels)
        excluded |= tier_pixels
        log.info(
            "tier %d (fwhm %.1f px, %.1f sigma, blocks %d/%d): %.2f%% of the data pixels masked",
            number,
            tier.kernel_fwhm,
            tier.nsigma,
            factor,
            dilate_factor,
            100.0 * np.count_nonzero(tier_pixels) / max(1, np.count_nonzero(valid)),
        )
    return bits
