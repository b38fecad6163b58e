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
    for_row_chunks,
    transform_shape,
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


# Row chunks of about this many pixels: the per-chunk temporaries stay in cache.
_CHUNK_PIXELS = 1 << 18


def _rows_per_chunk(nx, multiple=1):
    rows = max(1, _CHUNK_PIXELS // max(1, nx))
    return max(multiple, rows - rows % multiple)


def _row_source(values):
    """``rows -> float32 array`` for a background/noise given as None, a scalar, an array or a callable."""
    if values is None or callable(values):
        return values
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 0:
        return lambda rows: values
    return lambda rows: values[rows]


def _ceiling_scale(data, coverage, noise, background, shape):
    """Robust rms of ``(data - background) / noise`` on the regular subsample `sample_unmasked` takes."""
    step = max(1, int(np.sqrt((shape[0] * shape[1]) / 300_000)))
    every = (slice(None, None, step), slice(None, None, step))
    residual = np.asarray(data[every], dtype=np.float32) - background(slice(None, None, step))[:, ::step]
    if noise is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            residual = residual / noise(slice(None, None, step))[:, ::step]
    _, scale = robust_location_scale(sample_unmasked(residual, coverage[every], max_samples=residual.size))
    return scale


def _prepare_rows(work, bits, data, coverage, noise, background, ceiling_scale, *, threads):
    """
    Fill ``work`` (the residual) and bit 0 of ``bits`` (not usable) row chunk by row chunk.

    Per pixel, the operations of the whole-image code: the data clipped at
    ``noise * ceiling_scale + background`` (when a ceiling is asked for), minus the
    background, divided by the noise, 0 where not usable (no data, not finite, noise
    not finite or <= 0, background not finite).
    """
    ny, nx = bits.shape
    one = bits.dtype.type(1)

    def rows(start, stop):
        part = slice(start, stop)
        values = data[part]
        bkg = background(part) if background is not None else None
        sigma = noise(part) if noise is not None else None
        if ceiling_scale is not None:
            if sigma is not None:
                ceiling = sigma * ceiling_scale
                ceiling += bkg
            else:
                ceiling = ceiling_scale * np.float32(1) + bkg
            clipped = np.array(values, dtype=np.result_type(values, ceiling))
            with np.errstate(invalid="ignore"):
                np.copyto(clipped, ceiling, where=values > ceiling)
            values = clipped
        usable = ~coverage[part] & np.isfinite(values)
        if sigma is not None:
            usable &= np.isfinite(sigma) & (sigma > 0)
        if bkg is not None:
            usable &= np.isfinite(bkg)
        out = work[part]
        if bkg is not None:
            np.subtract(np.asarray(values, dtype=np.float32), bkg, out=out)
        else:
            out[...] = values
        if sigma is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(out, sigma, out=out)
        np.logical_not(usable, out=usable)
        np.copyto(out, np.float32(0), where=usable)
        np.copyto(bits[part], one, where=usable)

    with np.errstate(invalid="ignore", over="ignore"):
        for_row_chunks(rows, ny, rows=_rows_per_chunk(nx), threads=threads)


def _usable(bits):
    """True where bit 0 (not usable) is clear."""
    return (bits & bits.dtype.type(1)) == 0


def _set_tier_bits(bits, blocks, *, factor, number, threads):
    """
    ``bits |= 1 << number`` where ``expand_blocks(blocks, factor)`` is True and bit 0 is
    clear, over row chunks (no full-size expanded mask). Returns the number of pixels set.
    """
    ny, nx = bits.shape
    bit_shift = bits.dtype.type(number)
    counts = []

    def rows(start, stop):
        y0, y1 = start * factor, min(stop * factor, ny)
        block_rows = blocks[start:stop]
        if factor > 1:
            block_rows = np.repeat(np.repeat(block_rows, factor, axis=1)[:, :nx], factor, axis=0)[: y1 - y0]
        segment = bits[y0:y1]
        add = np.bitwise_and(block_rows.view(np.uint8), ~segment, dtype=bits.dtype)
        add &= bits.dtype.type(1)
        counts.append(int(np.count_nonzero(add)))
        add <<= bit_shift
        segment |= add

    for_row_chunks(rows, blocks.shape[0], rows=_rows_per_chunk(nx * factor), threads=threads)
    return sum(counts)


def residual_workspace(shape, *, tiers, coarse=True):
    """
    Zero float32 array for the residual image of :func:`tiered_source_mask`.

    It is padded to the full-resolution FFT shape when a tier works at full resolution
    (the image then goes into its top-left ``shape`` corner): that tier's transform is
    made without a padded copy.
    """
    fwhms = [t.kernel_fwhm for t in tiers if _working_factors(t, coarse)[0] == 1 and t.kernel_fwhm > 0]
    padded = transform_shape(shape, max(fwhms)) if fwhms else tuple(shape)
    return np.zeros(padded, dtype=np.float32)


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
    ceiling_nsigma=None,
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
    background : float, ndarray or callable, optional
        Background subtracted before detection. By default the robust median of the
        unmasked pixels is removed (and each tier re-measures the residual level of its
        smoothed image on pixels that earlier tiers left unmasked). A callable
        ``background(rows)`` returns the float32 rows (a slice, possibly with a step)
        of a background map made on demand (e.g.
        `~jwst_ceers.mosaic_bkg.grid_resampling.CubicUpsampler`): no full-size
        background is then held.
    background_box : int, optional
        If given, a smooth background (block medians of ``background_box`` pixels, see
        `coarse_background`) is re-fitted before every tier on the pixels not masked so
        far and subtracted (after ``background``). Use it for images with gradients.
    coarse : bool, optional
        Let tiers with large kernels and dilations work on 2x2..8x8 block averages
        (much faster; mask edges move by about the block size). False: every tier at
        full resolution, exact dilation radii.
    workers : int, optional
        Threads used by the FFTs and the row-chunked full-resolution passes.
    ceiling_nsigma : float, optional
        Clip ``data`` at ``background + ceiling_nsigma`` times the robust rms of
        ``(data - background) / noise`` (times the noise map, if any) before detecting,
        so that compact bright sources do not spread into the wide kernels' wings.
        Needs a ``background``. None or 0: no clipping. The wide tiers smooth with
        kernels of 35-59 px FWHM: unclipped, the flux of a compact bright source (a
        mag-21 star, a 3x3 artefact of 100 MJy/sr) is spread by the kernel's own wings
        over ~100 px and masked there, although the sky there holds none of it (it grew
        a 512^2 pointing's merged mask by 7.5 points); compact sources are still
        detected by the narrow tiers, which they exceed many times.

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
    if ceiling_nsigma and background is None:
        raise ValueError("tiered_source_mask: ceiling_nsigma needs a background")
    tiers = tuple(tiers)
    threads = max(1, int(workers))
    bits = np.zeros(data.shape, dtype=tier_mask_dtype(len(tiers)))
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float32)
    noise_rows, background_rows = _row_source(noise), _row_source(background)
    ceiling_scale = None
    if ceiling_nsigma:
        scale = _ceiling_scale(data, coverage, noise_rows if np.ndim(noise) == 2 else None, background_rows, data.shape)
        if np.isfinite(scale) and scale > 0:
            ceiling_scale = np.float32(ceiling_nsigma * scale)
    workspace = residual_workspace(data.shape, tiers=tiers, coarse=coarse)
    work = workspace[: data.shape[0], : data.shape[1]]
    _prepare_rows(work, bits, data, coverage, noise_rows, background_rows, ceiling_scale, threads=threads)
    del noise_rows, background_rows
    if not tiers or np.count_nonzero(bits) == bits.size:
        bits[...] = 0
        return bits
    if background is None and background_box is None:
        level, _ = robust_location_scale(_sample_where_clear(work, bits, 1))
        work -= np.float32(level)
        work[~_usable(bits)] = 0
    # the workspace is handed over: the tiers may release it once no tier needs it
    holder = [workspace]
    del workspace, work
    return _run_tiers(holder, bits, tiers=tiers, background_box=background_box, coarse=coarse, workers=threads)


def _sample_where_clear(values, bits, which):
    """`sample_unmasked` of ``values`` where the ``which`` bits of ``bits`` are clear (no full-size mask made)."""
    step = max(1, int(np.sqrt(values.size / 300_000)))
    sub = values[::step, ::step]
    return sub[np.isfinite(sub) & ((bits[::step, ::step] & bits.dtype.type(which)) == 0)]


def _run_tiers(holder, bits, *, tiers, background_box, coarse, workers):
    """
    The tiers over a prepared residual: ``holder[0]`` is the workspace (released here as
    soon as no tier needs it), bit 0 of ``bits`` marks unusable pixels (cleared on return).
    """
    shape = bits.shape
    ny, nx = shape
    workspace = holder.pop()
    work = workspace[:ny, :nx]
    padded_for_fft = workspace.shape != shape
    nvalid = bits.size - int(np.count_nonzero(bits))
    factors = [_working_factors(tier, coarse) for tier in tiers]
    max_fwhm = {}
    for tier, (factor, _) in zip(tiers, factors):
        max_fwhm[factor] = max(max_fwhm.get(factor, 0.0), tier.kernel_fwhm / factor)
    last_use = {factor: index for index, (factor, _) in enumerate(factors)}

    def work_needed_after(index, built):
        """Whether a tier from ``index`` on needs the full-resolution residual."""
        if background_box is not None:
            return True
        rest = range(index, len(tiers))
        if any(tiers[k].kernel_fwhm <= 0 for k in rest):
            return True
        return any(factors[k][0] not in built for k in range(index + 1, len(tiers)))

    reduced, pyramid = {}, {}
    for index, (tier, (factor, dilate_factor)) in enumerate(zip(tiers, factors)):
        number = index + 1
        if background_box is not None:
            excluded = bits != 0
            smooth_bkg = coarse_background(work, exclude=excluded, box=int(background_box))
            del excluded
            if smooth_bkg is not None:
                np.subtract(work, smooth_bkg, out=work)
                work[~_usable(bits)] = 0
                del smooth_bkg
                reduced.clear()
                pyramid.clear()
        if factor not in reduced:
            if factor == 1:
                # work is 0 outside the usable pixels already: its block "means" are itself
                if padded_for_fft and tier.kernel_fwhm > 0:
                    fourier = FourierImage(workspace, max_fwhm=max_fwhm[1], workers=workers, image_shape=shape)
                else:
                    fourier = FourierImage(work, max_fwhm=max_fwhm[1], workers=workers)
                usable_pixels = None  # _usable(bits), made when needed
            else:
                if factor not in pyramid:
                    # the block means of all coarse factors at once, from one chain of
                    # halvings (the same values; the full-resolution passes made once)
                    wanted = {f for f, _ in factors[index:] if f > 1} - set(reduced)
                    pyramid = block_means(work, _usable(bits), factors=wanted, zero_outside_valid=True, threads=workers)
                image, fraction = pyramid.pop(factor)
                usable_pixels = fraction >= 0.5
                del fraction
                fourier = FourierImage(image, max_fwhm=max_fwhm[factor], workers=workers)
                del image
            reduced[factor] = (fourier, usable_pixels)
            del fourier, usable_pixels
            built = set(reduced) | set(pyramid)
            if work is not None and not work_needed_after(index, built):
                del work, workspace  # the residual's last use: freed before the smoothing
                work = workspace = None
        fourier, usable = reduced[factor]
        last = last_use[factor] == index and background_box is None
        if tier.kernel_fwhm > 0:
            smoothed = fourier.smoothed(tier.kernel_fwhm / factor, last=last)
        else:
            smoothed = block_mean(work, _usable(bits), factor=factor)[0]
        if last:
            del reduced[factor]
        del fourier
        if factor > 1:
            unmasked = ~usable | block_any(bits, factor=factor, threads=workers)
            location, scale = robust_location_scale(sample_unmasked(smoothed, unmasked))
            del unmasked
        else:
            location, scale = robust_location_scale(_sample_where_clear(smoothed, bits, np.iinfo(bits.dtype).max))
        if not (np.isfinite(scale) and scale > 0):
            log.warning("tier %d: no unmasked pixels left to measure the noise; tier skipped", number)
            continue
        detected = smoothed > location + tier.nsigma * scale
        del smoothed
        detected &= usable if usable is not None else _usable(bits)
        del usable
        detected = _keep_large_groups(detected, int(np.ceil(tier.npixels / factor**2)))
        ndetected = int(np.count_nonzero(detected))
        if ndetected == 0:
            log.info("tier %d: nothing detected above %.2f sigma", number, tier.nsigma)
            continue
        if dilate_factor > factor:
            detected = block_any(detected, factor=dilate_factor // factor, threads=workers)
        elif dilate_factor < factor:
            grid = (-(-ny // dilate_factor), -(-nx // dilate_factor))
            detected = expand_blocks(detected, factor=factor // dilate_factor, shape=grid)
        detected = dilate_disk(detected, radius=tier.dilate / dilate_factor, workers=workers)
        masked = _set_tier_bits(bits, detected, factor=dilate_factor, number=number, threads=workers)
        del detected
        log.info(
            "tier %d (fwhm %.1f px, %.1f sigma, blocks %d/%d): %.2f%% of the data pixels masked",
            number,
            tier.kernel_fwhm,
            tier.nsigma,
            factor,
            dilate_factor,
            100.0 * masked / max(1, nvalid),
        )
    bits &= ~bits.dtype.type(1)
    return bits
