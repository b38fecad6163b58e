"""Replace exactly-zero variance values so that drizzle gives those pixels no weight."""

import numpy as np

__all__ = ["fill_zero_variance"]


def fill_zero_variance(variance, *, fill_value=np.inf):
    """
    Return a copy of ``variance`` with every pixel that is exactly 0 set to ``fill_value``.

    A variance of exactly zero marks a pixel the calibration could not characterise
    (typically a bad pixel). Drizzle weights by inverse variance, so such a pixel would
    either get an infinite weight or leave a zero-error "hole" in the mosaic ERR array;
    an infinite variance gives it zero weight instead.

    Parameters
    ----------
    variance : array-like
        Variance array (any shape).
    fill_value : float, optional
        Value given to zero-variance pixels; +inf by default.

    Returns
    -------
    filled : ndarray
        New array, same dtype as ``variance`` (float32 stays float32).
    nfilled : int
        Number of pixels replaced.
    """
    variance = np.asarray(variance)
    holes = variance == 0
    filled = variance.copy()
    filled[holes] = fill_value
    return filled, int(np.count_nonzero(holes))
