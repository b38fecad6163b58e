"""Tier thresholds: CEERS's unsmoothed-noise nsigma and jwst_ceers's smoothed-noise nsigma.

CEERS's mosaic-background script thresholds each tier's smoothed image at
``tier_nsigma`` times the rms of the UNSMOOTHED image (astropy sigma-clipped std of
the data). jwst_ceers's tiers (`jwst_ceers.masking.tiered_source_mask`) threshold at
``nsigma`` times the rms of the SMOOTHED image itself. The two agree when

    nsigma_smoothed = nsigma_unsmoothed * rms(unsmoothed) / rms(smoothed)
                    = nsigma_unsmoothed * gain(kernel, noise correlation).

For white noise and a unit-sum Gaussian of standard deviation s pixels the gain is
``2 sqrt(pi) s`` (25 px: 88.6, so CEERS's 1.5 is 133 smoothed sigma). Drizzled mosaics
have correlated noise, which smoothing reduces less: the gain is smaller and must be
measured on the mosaic (:func:`measured_smoothing_gain`). CEERS's 1.5 copied as a
smoothed-noise nsigma masks practically every pixel of a pure-noise frame.
"""

import math

import numpy as np

from jwst_ceers.masking import gaussian_smooth, robust_location_scale, sample_unmasked

__all__ = [
    "NSIGMA_REFERENCES",
    "FWHM_PER_SIGMA",
    "white_noise_smoothing_gain",
    "measured_smoothing_gain",
    "smoothed_nsigma",
    "tier_threshold",
]

NSIGMA_REFERENCES = ("smoothed", "unsmoothed")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548


def white_noise_smoothing_gain(kernel_fwhm):
    """
    rms(unsmoothed) / rms(smoothed) of white noise for a unit-sum Gaussian kernel.

    Parameters
    ----------
    kernel_fwhm : float
        Kernel FWHM in pixels (> 0). Exact for the continuous Gaussian; within 1% of a
        sampled kernel for FWHM >= 2.5 px.

    Returns
    -------
    float
    """
    if not kernel_fwhm > 0:
        raise ValueError(f"kernel_fwhm must be > 0, got {kernel_fwhm}")
    return 2.0 * math.sqrt(math.pi) * kernel_fwhm / FWHM_PER_SIGMA


def measured_smoothing_gain(image, *, kernel_fwhm, excluded=None, noise=None, background=None, workers=2):
    """
    rms(unsmoothed) / rms(smoothed) measured on an image (its noise correlation included).

    Both rms values are robust (clipped MAD) estimates over the pixels not
    ``excluded``, so sources affect them little.

    Parameters
    ----------
    image : ndarray
        2-D image (NaN where there are no data).
    kernel_fwhm : float or sequence of float
        Kernel FWHM(s) in pixels.
    excluded : ndarray of bool, optional
        True where there are no data (added to the NaNs of ``image``).
    noise : ndarray, optional
        Relative per-pixel noise (ERR or 1/sqrt(WHT)); the image is divided by it first,
        as ``tiered_source_mask`` does.
    background : ndarray, optional
        Large-scale background subtracted first (MosaicBackground's ring median), so
        that it does not count as smoothed-image noise.
    workers : int, optional
        FFT threads.

    Returns
    -------
    float or ndarray
        One gain per kernel.
    """
    data = np.asarray(image, dtype=np.float32)
    if background is not None:
        data = data - np.asarray(background, dtype=np.float32)
    bad = ~np.isfinite(data) if excluded is None else (np.asarray(excluded, bool) | ~np.isfinite(data))
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float32)
        bad |= ~(np.isfinite(noise) & (noise > 0))
        data = np.where(bad, np.float32(0), data / np.where(bad, np.float32(1), noise))
    if bad.all():
        raise ValueError("measured_smoothing_gain: no finite pixel")
    level, rms = robust_location_scale(sample_unmasked(data, bad))
    work = np.where(bad, np.float32(0), data - np.float32(level))
    fwhms = np.atleast_1d(np.asarray(kernel_fwhm, dtype=float))
    gains = []
    for fwhm in fwhms:
        smoothed = gaussian_smooth(work, fwhm=float(fwhm), workers=workers)
        # pixels near no-data edges are smoothed with zeros: leave a kernel's width out
        near_edge = gaussian_smooth(bad.astype(np.float32), fwhm=float(fwhm), workers=workers) > 0.01
        _, smoothed_rms = robust_location_scale(sample_unmasked(smoothed, bad | near_edge))
        gains.append(rms / smoothed_rms)
    gains = np.array(gains)
    return float(gains[0]) if np.ndim(kernel_fwhm) == 0 else gains


def smoothed_nsigma(nsigma, *, reference, gain):
    """
    A tier threshold in units of the smoothed image's rms (what jwst_ceers's tiers use).

    Parameters
    ----------
    nsigma : float or sequence of float
        Threshold(s) as given.
    reference : {'smoothed', 'unsmoothed'}
        Noise the threshold is counted in: jwst_ceers = ``smoothed``; CEERS's
        ``mosaic_background.cfg`` ``tier_nsigma`` = ``unsmoothed``.
    gain : float or sequence of float
        rms(unsmoothed) / rms(smoothed) per tier (:func:`white_noise_smoothing_gain`
        or :func:`measured_smoothing_gain`).

    Returns
    -------
    float or ndarray
    """
    if reference not in NSIGMA_REFERENCES:
        raise ValueError(f"nsigma reference must be one of {NSIGMA_REFERENCES}, got {reference!r}")
    nsigma = np.asarray(nsigma, dtype=float)
    converted = nsigma if reference == "smoothed" else nsigma * np.asarray(gain, dtype=float)
    return float(converted) if converted.ndim == 0 else converted


def tier_threshold(*, nsigma, reference, smoothed_rms, unsmoothed_rms, location=0.0):
    """
    Detection threshold of one tier's smoothed image.

    ``reference='smoothed'`` (jwst_ceers): ``location + nsigma * smoothed_rms``;
    ``'unsmoothed'`` (CEERS): ``location + nsigma * unsmoothed_rms``.
    """
    if reference not in NSIGMA_REFERENCES:
        raise ValueError(f"nsigma reference must be one of {NSIGMA_REFERENCES}, got {reference!r}")
    return location + nsigma * (smoothed_rms if reference == "smoothed" else unsmoothed_rms)
