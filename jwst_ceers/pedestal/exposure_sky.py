"""
Everything PedestalSkySub measures on one exposure, on plain arrays.

1. source mask: given (from a file) or built with tiered masks;
2. a sky plane (pedestal + gradient) is fitted to the LOWER envelope of block medians
   of the unmasked pixels (`fit_sky_plane`): blocks raised by extended low-surface-
   brightness light that no source mask catches (galaxy wings) are rejected. The plane
   and the pedestal (3.) are measured on a working copy without the 1/f row offsets
   that change within a plane block (`subtract_row_offsets`, per 512-column amplifier,
   drifts over more than ``flatten_box`` rows left in): stripes go both ways, and the
   lower envelope would sink into their negative half; the data written keep their
   stripes (one scalar pedestal is subtracted);
3. the pedestal is fitted to the histogram of the sky pixels of the accepted blocks,
   after removing the plane's zero-mean gradient (Gaussian fitted mostly to the
   negative side of the peak, see `fit_pedestal`);
4. the sky variance on the 7x7-block scale and the VAR_RNOISE rescaling factor are
   measured on the pedestal- and gradient-subtracted sky (stripes kept), minus a smooth (128-px)
   background (`sky_block_variance`): differences of horizontally neighbouring 7x7
   windows in the blocks at most ``VARIANCE_REJECT`` block-sigma above the plane (halo
   light adds its Poisson noise), at least 3 pixels away from any masked source (their
   edges carry source light and its noise), plus the share of the 1/f row offsets,
   measured per 512-column amplifier on every sky pixel.

The two rejection thresholds were chosen on simulated deep fields (3x the default
source density, large galaxies, gradients, 1/f striping; ``benchmarks/bench_pedestal.py``):
1.25 keeps halo light out of the pedestal (worst case 0.03 sigma instead of 0.04 with
1.5), while the variance needs the looser 2.0 (rejecting blocks that are only slightly
high also rejects positive 1/f noise and biases the variance 2-3% low).
"""

import logging
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from jwst_ceers.inputs import unphysical_pixels
from jwst_ceers.masking import CEERS_EXPOSURE_TIERS, coarse_background, tiered_source_mask
from jwst_ceers.pedestal.rnoise_scale import rnoise_scale_factor, subtract_row_offsets
from jwst_ceers.pedestal.sky_pedestal import MIN_FIT_PIXELS, PedestalFit, fit_pedestal
from jwst_ceers.pedestal.sky_plane import MIN_PLANE_PIXELS, SkyPlane, fit_sky_plane

__all__ = ["ExposureSky", "measure_exposure_sky"]

log = logging.getLogger(__name__)

# blocks more than this many block-sigma above the sky plane hold extended emission
PLANE_REJECT = 1.25
# ... for the 7x7 variance statistic: rejecting blocks that are only slightly high
# removes blocks with positive noise (1/f stripes) and biases the variance low
VARIANCE_REJECT = 2.0
# 7x7 blocks of the variance statistic keep this distance (px) from masked sources
SOURCE_CLEARANCE = 3
# smooth background (block size, px) removed before the 7x7-block variance: >> 7 px, so
# it takes out leftover extended light without absorbing block-scale noise
VARIANCE_BACKGROUND_BOX = 128


@dataclass
class ExposureSky:
    """
    Result of :func:`measure_exposure_sky`.

    Attributes
    ----------
    pedestal : PedestalFit
        The fitted pedestal (``pedestal.level``) and how it was obtained.
    source_mask : ndarray of bool
        Sources (True) used; tier bits in ``tier_bits`` when built internally.
    tier_bits : ndarray or None
        Internal tiered mask (bit k = tier k), None when a mask was given.
    sky : ndarray of bool
        Pixels used for the pedestal and the variance (good and not source).
    sky_selection : str
        'unmasked' or 'all_good_pixels' (fallback when too few unmasked pixels).
    background : ndarray (float32)
        The fitted sky gradient, with zero mean over the array (add the pedestal to get
        the full sky model).
    plane : SkyPlane or None
        The sky plane and its accepted blocks (None without ``flatten_box`` or when too
        few blocks could be measured).
    fit_pixels : ndarray of bool
        Pixels whose histogram gave the pedestal (sky pixels of the accepted blocks).
    rnoise_factor, sky_variance, mean_rnoise : float
        VAR_RNOISE rescaling factor, 7x7-block sky variance, robust mean VAR_RNOISE
        before rescaling (NaN when not measured).
    nblocks : int
        7x7 window pairs used for the sky variance.
    row_offset_variance : float
        The 1/f row offsets' share in ``sky_variance`` (NaN when not measured).
    """

    pedestal: PedestalFit
    source_mask: np.ndarray
    tier_bits: np.ndarray
    sky: np.ndarray
    sky_selection: str
    background: np.ndarray
    plane: SkyPlane = None
    fit_pixels: np.ndarray = None
    rnoise_factor: float = float("nan")
    sky_variance: float = float("nan")
    mean_rnoise: float = float("nan")
    nblocks: int = 0
    row_offset_variance: float = float("nan")


def measure_exposure_sky(
    data,
    bad,
    *,
    source_mask=None,
    add_internal_masks=False,
    tiers=CEERS_EXPOSURE_TIERS,
    var_rnoise=None,
    flatten_box=64,
    tier_background_box=128,
    min_sky_fraction=0.05,
    block=7,
    first_column=0,
    workers=2,
):
    """
    Measure the pedestal, smooth background and sky variance of one exposure.

    Parameters
    ----------
    data : ndarray
        Science array (NaNs allowed).
    bad : ndarray of bool
        True for pixels without usable data (DQ-flagged; non-finite and unphysical
        ``|data| > 1e6`` pixels are added).
    source_mask : ndarray of bool, optional
        True on sources. None: build tiered masks with ``tiers``.
    add_internal_masks : bool, optional
        With a ``source_mask``, also mask what the tiered masks detect (their union).
    tiers : sequence of MaskTier, optional
        Tiers of the internal mask.
    var_rnoise : ndarray, optional
        VAR_RNOISE; when given, the rescaling factor is measured.
    flatten_box : int, optional
        Block size of the sky plane fit and of the rejection of blocks with extended
        emission (0: neither; the pedestal is fitted to all sky pixels as they are).
    tier_background_box : int, optional
        Block size of the background re-fitted before each internal mask tier.
    min_sky_fraction : float, optional
        If fewer than this fraction of the good pixels are unmasked, all good pixels
        are used instead (recorded in ``sky_selection``).
    block : int, optional
        Block size of the sky-variance statistic (7 in CEERS).
    first_column : int, optional
        Full-frame column (0-based) of the array's column 0 (subarrays): places the
        512-column readout amplifiers for the striping part of the sky variance.
    workers : int, optional
        FFT threads for the internal masks.

    Returns
    -------
    ExposureSky
    """
    data = np.asarray(data, dtype=np.float32)
    good = ~np.asarray(bad, dtype=bool) & ~unphysical_pixels(data)
    # unusable pixels become NaN in a working copy, so that no statistic or convolution
    # (FFT round-off spreads a 1e30 over the whole array) ever sees their values
    data = np.where(good, data, np.float32(np.nan))
    tier_bits = None
    if source_mask is None or add_internal_masks:
        tier_bits = tiered_source_mask(
            data, coverage=~good, tiers=tiers, background_box=tier_background_box or None, workers=workers
        )
        internal = tier_bits != 0
        source_mask = internal if source_mask is None else internal | np.asarray(source_mask, dtype=bool)
    source_mask = np.asarray(source_mask, dtype=bool)
    sky = good & ~source_mask
    ngood, nsky = int(good.sum()), int(sky.sum())
    sky_selection = "unmasked"
    if nsky < max(min_sky_fraction * ngood, 1):
        log.warning(
            "only %d of %d good pixels (%.1f%%) are not masked as sources: using all good pixels",
            nsky, ngood, 100.0 * nsky / max(ngood, 1),
        )
        sky, sky_selection = good, "all_good_pixels"

    # the plane and the pedestal are measured on a copy without the 1/f stripes that change within
    # a plane block (< ~flatten_box rows): stripes are two-sided structure that drags the lower
    # envelope down (unremoved striping: -0.32 -> -0.19 sigma worst on 1024^2 simulations); the
    # SCI written keeps them (one scalar pedestal is subtracted), and the sky variance below
    # measures them on the original data
    original = data
    if flatten_box:
        data = subtract_row_offsets(data, sky, first_column=first_column, scale=float(flatten_box))
    background = np.zeros(data.shape, dtype=np.float32)
    fit_pixels = sky
    plane = None
    if flatten_box:
        plane = fit_sky_plane(data, sky, box=int(flatten_box), reject=PLANE_REJECT)
        if plane is None:
            log.warning("fewer than %d sky pixels: no sky plane, no gradient removed", MIN_PLANE_PIXELS)
        else:
            background = plane.slope_image(data.shape)
            in_accepted = sky & plane.accepted_pixels(data.shape)
            if plane.method == "pixels":
                log.warning("too few %d-px blocks with sky pixels: sky plane fitted to the pixels", flatten_box)
            elif np.count_nonzero(in_accepted) >= MIN_FIT_PIXELS:
                fit_pixels = in_accepted
            else:
                log.warning(
                    "only %d sky pixels in blocks at the sky level: pedestal fitted to all sky pixels",
                    np.count_nonzero(in_accepted),
                )
    fit = fit_pedestal((data - background)[fit_pixels])
    flattened = original - background
    result = ExposureSky(
        pedestal=fit, source_mask=source_mask, tier_bits=tier_bits, sky=sky,
        sky_selection=sky_selection, background=background, plane=plane, fit_pixels=fit_pixels,
    )
    if var_rnoise is not None and np.isfinite(fit.level):
        residual = flattened - np.float32(fit.level)
        smooth = coarse_background(residual, exclude=~sky, box=VARIANCE_BACKGROUND_BOX)
        if smooth is not None:
            residual -= smooth
        variance_pixels = fit_pixels
        if plane is not None and plane.method == "blocks" and fit_pixels is not sky:
            # blocks judged on the data WITH their stripes: their block scatter then includes the
            # stripes, so VARIANCE_REJECT keeps halo blocks out as before (judged on the destriped
            # copy, halo Poisson noise entered: striping +2.8% -> +4.2% worst)
            selection = fit_sky_plane(original, sky, box=int(flatten_box), reject=PLANE_REJECT)
            if selection is not None and selection.method == "blocks":
                variance_pixels = sky & selection.accepted_pixels(data.shape, below=VARIANCE_REJECT)
        usable = variance_pixels & np.isfinite(np.asarray(var_rnoise))
        # the row offsets are measured on every sky pixel: the blocks rejected above are also the
        # ones lifted by strong stripes (keeping only the others biased the share 10-30% low)
        row_pixels = sky & np.isfinite(np.asarray(var_rnoise))
        if sky_selection == "unmasked":
            near_source = scipy.ndimage.maximum_filter(good & ~sky, size=2 * SOURCE_CLEARANCE + 1)
            clear = usable & ~near_source
            # crowded fields: fall back to all usable blocks when too few clear ones remain
            if _complete_blocks(clear, block) >= 50:
                usable = clear
        factor, sky_variance, mean_rnoise, nblocks, row_variance = rnoise_scale_factor(
            residual, usable, var_rnoise, block=block, first_column=first_column, row_pixels=row_pixels
        )
        result.rnoise_factor, result.sky_variance = factor, sky_variance
        result.mean_rnoise, result.nblocks = mean_rnoise, nblocks
        result.row_offset_variance = row_variance
    return result


def _complete_blocks(usable, block):
    """Number of block x block blocks whose pixels are all usable."""
    ny, nx = (s - s % block for s in usable.shape)
    return int(usable[:ny, :nx].reshape(ny // block, block, nx // block, block).all(axis=(1, 3)).sum())
