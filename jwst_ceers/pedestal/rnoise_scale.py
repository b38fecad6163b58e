"""
Sky variance on the 7x7-pixel scale and the VAR_RNOISE rescaling factor (CEERS).

CEERS rescales VAR_RNOISE so that it carries the measured sky variance: the robust
variance of sums over 7x7 blocks of unmasked sky pixels, divided by 49 (for white noise
this is the per-pixel variance; correlated noise such as 1/f striping adds its share on
the 7x7 scale). Drizzle's ``ivm`` weights are 1/VAR_RNOISE, so the weights then follow
the real sky noise.

The sky must only lose structure on scales much larger than 7 pixels before blocks are
summed: CEERS subtracted a 2D background with 5-pixel boxes, which absorbed part of
the block-scale noise and gave factors ~13% low. Here the residual is the pedestal-
subtracted image minus a smooth background of ``box`` >> 7 pixels.
"""

import numpy as np
from scipy.stats import norm

from jwst_ceers.masking.robust import robust_location_scale

__all__ = ["block_sum_variance", "robust_mean", "rnoise_scale_factor"]

# A Gaussian clipped at +-3 sigma keeps a variance of this fraction of the original.
_CLIP = 3.0
_CLIPPED_VARIANCE_FRACTION = 1.0 - 2.0 * _CLIP * norm.pdf(_CLIP) / (2.0 * norm.cdf(_CLIP) - 1.0)


def _window_sums(residual, usable, block, step):
    """Sums of ``block`` x ``block`` windows (lower-left corners every ``step`` px) and completeness."""
    y = np.arange(0, residual.shape[0] - block + 1, step)
    x = np.arange(0, residual.shape[1] - block + 1, step)

    def window_sums(image, dtype):
        # running sums along x, kept only at the window columns, then along y
        along_x = np.zeros((image.shape[0], image.shape[1] + 1), dtype=dtype)
        np.cumsum(image, axis=1, dtype=dtype, out=along_x[:, 1:])
        rows = along_x[:, x + block] - along_x[:, x]
        along_y = np.zeros((rows.shape[0] + 1, rows.shape[1]), dtype=dtype)
        np.cumsum(rows, axis=0, out=along_y[1:])
        return along_y[y + block] - along_y[y]

    sums = window_sums(np.where(usable, residual, np.float32(0)), np.float64)
    complete = window_sums(usable, np.int32) == block * block
    return sums, complete


def block_sum_variance(residual, usable, *, block=7, step=3):
    """
    Robust variance of ``block`` x ``block`` sums of usable pixels, divided by block**2.

    The CEERS statistic. Only windows whose pixels are all usable count. Windows are
    taken every ``step`` pixels (``step = block``: the CEERS tiling): overlapping windows
    have the same distribution of sums, and using them halves the statistical error of
    the variance (measured on simulated 1024^2 exposures: 2.1% -> 1.1% rms). The scale
    is estimated with an iterative 3-sigma clip around the median (MAD start) and the
    standard deviation of the clipped sums, corrected for the clipping: efficient like a
    standard deviation, robust to unmasked cosmic rays and faint sources.

    Parameters
    ----------
    residual : ndarray
        2-D image with the sky level and large-scale structure removed.
    usable : ndarray of bool
        True for sky pixels (not masked, not bad).
    block : int, optional
        Block size (7 in CEERS).
    step : int, optional
        Spacing of the windows in pixels.

    Returns
    -------
    variance : float
        Per-pixel-equivalent variance (NaN if fewer than 50 complete windows).
    nblocks : int
        Number of complete windows used.
    """
    usable = np.asarray(usable, dtype=bool)
    if min(usable.shape) < block:
        return float("nan"), 0
    sums, complete = _window_sums(residual, usable, block, int(step))
    sums = sums[complete]
    if sums.size < 50:
        return float("nan"), int(sums.size)
    location, scale = robust_location_scale(sums[:: max(1, sums.size // 500_000)], clip=_CLIP)
    for _ in range(10):
        kept = sums[np.abs(sums - location) <= _CLIP * scale]
        location = float(np.mean(kept))
        new_scale = float(np.std(kept) / np.sqrt(_CLIPPED_VARIANCE_FRACTION))
        if abs(new_scale - scale) <= 1e-4 * scale:
            scale = new_scale
            break
        scale = new_scale
    return scale**2 / block**2, int(sums.size)


def robust_mean(values):
    """Mean of the finite, positive values within 3 robust sigma of their median."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return float("nan")
    location, scale = robust_location_scale(values[:: max(1, values.size // 500_000)], clip=_CLIP)
    if not scale > 0:
        return location
    return float(np.mean(values[np.abs(values - location) <= _CLIP * scale]))


def rnoise_scale_factor(residual, usable, var_rnoise, *, block=7):
    """
    Factor that makes the robust mean VAR_RNOISE of sky pixels equal the sky variance.

    Returns
    -------
    factor : float
        ``sky_variance / robust mean VAR_RNOISE`` (NaN when either is unavailable).
    sky_variance : float
        From :func:`block_sum_variance`.
    mean_rnoise : float
        Robust mean of VAR_RNOISE over the usable pixels before rescaling.
    nblocks : int
    """
    sky_variance, nblocks = block_sum_variance(residual, usable, block=block)
    mean_rnoise = robust_mean(np.asarray(var_rnoise)[usable])
    factor = sky_variance / mean_rnoise if mean_rnoise > 0 else float("nan")
    return float(factor), float(sky_variance), float(mean_rnoise), nblocks
