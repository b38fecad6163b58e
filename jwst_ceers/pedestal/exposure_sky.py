"""
Everything PedestalSkySub measures on one exposure, on plain arrays.

1. source mask: given (from a file) or built with tiered masks;
2. a smooth background (blocks of ``flatten_box`` pixels) fitted on sky pixels removes
   gradients without changing the mean level over the exposure;
3. the pedestal is fitted to the histogram of the flattened sky pixels;
4. the sky variance on the 7x7-block scale and the VAR_RNOISE rescaling factor are
   measured on the flattened, pedestal-subtracted sky.
"""

import logging
from dataclasses import dataclass

import numpy as np

from jwst_ceers.masking import CEERS_EXPOSURE_TIERS, coarse_background, tiered_source_mask
from jwst_ceers.pedestal.rnoise_scale import rnoise_scale_factor
from jwst_ceers.pedestal.sky_pedestal import PedestalFit, fit_pedestal

__all__ = ["ExposureSky", "measure_exposure_sky"]

log = logging.getLogger(__name__)


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
        Smooth 2-D background with zero mean over the good pixels (add the pedestal to
        get the full sky model).
    rnoise_factor, sky_variance, mean_rnoise : float
        VAR_RNOISE rescaling factor, 7x7-block sky variance, robust mean VAR_RNOISE
        before rescaling (NaN when not measured).
    nblocks : int
        7x7 blocks used for the sky variance.
    """

    pedestal: PedestalFit
    source_mask: np.ndarray
    tier_bits: np.ndarray
    sky: np.ndarray
    sky_selection: str
    background: np.ndarray
    rnoise_factor: float = float("nan")
    sky_variance: float = float("nan")
    mean_rnoise: float = float("nan")
    nblocks: int = 0


def measure_exposure_sky(
    data,
    bad,
    *,
    source_mask=None,
    add_internal_masks=False,
    tiers=CEERS_EXPOSURE_TIERS,
    var_rnoise=None,
    flatten_box=128,
    tier_background_box=128,
    min_sky_fraction=0.05,
    block=7,
    workers=2,
):
    """
    Measure the pedestal, smooth background and sky variance of one exposure.

    Parameters
    ----------
    data : ndarray
        Science array (NaNs allowed).
    bad : ndarray of bool
        True for pixels without usable data (DQ-flagged; NaNs are added).
    source_mask : ndarray of bool, optional
        True on sources. None: build tiered masks with ``tiers``.
    add_internal_masks : bool, optional
        With a ``source_mask``, also mask what the tiered masks detect (their union).
    tiers : sequence of MaskTier, optional
        Tiers of the internal mask.
    var_rnoise : ndarray, optional
        VAR_RNOISE; when given, the rescaling factor is measured.
    flatten_box : int, optional
        Block size of the smooth background removed before the fit (0: none).
    tier_background_box : int, optional
        Block size of the background re-fitted before each internal mask tier.
    min_sky_fraction : float, optional
        If fewer than this fraction of the good pixels are unmasked, all good pixels
        are used instead (recorded in ``sky_selection``).
    block : int, optional
        Block size of the sky-variance statistic (7 in CEERS).
    workers : int, optional
        FFT threads for the internal masks.

    Returns
    -------
    ExposureSky
    """
    data = np.asarray(data, dtype=np.float32)
    good = ~np.asarray(bad, dtype=bool) & np.isfinite(data)
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

    background = np.zeros(data.shape, dtype=np.float32)
    if flatten_box:
        smooth = coarse_background(data, exclude=~sky, box=int(flatten_box))
        if smooth is not None:
            background = smooth - np.float32(np.mean(smooth[good], dtype=np.float64))
    flattened = data - background
    fit = fit_pedestal(flattened[sky])
    result = ExposureSky(
        pedestal=fit, source_mask=source_mask, tier_bits=tier_bits, sky=sky,
        sky_selection=sky_selection, background=background,
    )
    if var_rnoise is not None and np.isfinite(fit.level):
        usable = sky & np.isfinite(np.asarray(var_rnoise))
        factor, sky_variance, mean_rnoise, nblocks = rnoise_scale_factor(
            flattened - np.float32(fit.level), usable, var_rnoise, block=block
        )
        result.rnoise_factor, result.sky_variance = factor, sky_variance
        result.mean_rnoise, result.nblocks = mean_rnoise, nblocks
    return result
