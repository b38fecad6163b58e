"""Robust location and scale of the unmasked pixels of large images, on a subsample."""

import numpy as np

__all__ = ["MAD_TO_SIGMA", "robust_location_scale", "sample_unmasked"]

# sigma of a Gaussian = 1.4826 * median absolute deviation
MAD_TO_SIGMA = 1.482602218505602


def sample_unmasked(data, exclude, *, max_samples=300_000):
    """
    Return the finite values of ``data`` where ``exclude`` is False, regularly subsampled.

    Parameters
    ----------
    data : ndarray
        2-D image.
    exclude : ndarray of bool or None
        True where a pixel must not be used.
    max_samples : int, optional
        Pixels are taken on a regular grid (every k-th row and column) so that at most
        about this many are examined; statistics of smooth images do not suffer from it.

    Returns
    -------
    ndarray
        1-D array of the selected values (a new array).
    """
    data = np.asarray(data)
    step = max(1, int(np.sqrt(data.size / max_samples)))
    sub = data[::step, ::step]
    keep = np.isfinite(sub)
    if exclude is not None:
        keep &= ~np.asarray(exclude)[::step, ::step]
    return sub[keep]


def robust_location_scale(values, *, clip=3.0, iterations=5):
    """
    Median and MAD-based standard deviation, iteratively clipped at ``clip`` sigma.

    Parameters
    ----------
    values : array-like
        Sample (any shape; NaNs must have been removed).
    clip : float, optional
        Clipping threshold in units of the current scale (both sides).
    iterations : int, optional
        Maximum number of clipping iterations (stops earlier when nothing changes).

    Returns
    -------
    location : float
        Median of the clipped sample (NaN if the sample is empty).
    scale : float
        1.4826 x median absolute deviation of the clipped sample (NaN if empty).
    """
    sample = np.asarray(values, dtype=np.float32).ravel()
    if sample.size == 0:
        return float("nan"), float("nan")
    location = float(np.median(sample))
    scale = MAD_TO_SIGMA * float(np.median(np.abs(sample - location)))
    for _ in range(iterations):
        if not scale > 0:
            break
        kept = sample[np.abs(sample - location) <= clip * scale]
        if kept.size == sample.size or kept.size < 3:
            break
        sample = kept
        location = float(np.median(sample))
        scale = MAD_TO_SIGMA * float(np.median(np.abs(sample - location)))
    return location, scale
