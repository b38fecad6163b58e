"""stcal's final variance and error arithmetic, row block by row block, in place.

stcal (1.20) finishes a mosaic with whole-array expressions: each variance is
``wsum * scaling / wt / wt`` (two full-size temporaries, and a new output array
while all six running sums are alive), and ERR is ``sqrt(nansum([v1, v2, v3], 0))``
(a stacked copy of the three variances, a NaN-free copy of it, and a stacked NaN
mask). On a 50 Mpix mosaic that is ~1.5 GB above the arrays themselves. The same
element-wise operations, done on blocks of rows (and the variance written over its
running sum), give bit-identical results with block-sized temporaries.
"""

import warnings

import numpy as np

__all__ = ["ROWS_PER_BLOCK", "error_from_variances", "finish_variance_in_place"]

#: Output rows per block (a 10k-pixel-wide mosaic: ~40 MB of float32 per variance).
ROWS_PER_BLOCK = 1024


def _blocks(n_rows, rows_per_block):
    for start in range(0, n_rows, rows_per_block):
        yield slice(start, min(start + rows_per_block, n_rows))


def finish_variance_in_place(weighted_sum, weight_sum, scaling, *, rows_per_block=ROWS_PER_BLOCK):
    """
    Turn a running sum into the mosaic variance ``weighted_sum * scaling / weight_sum**2``, in place.

    As stcal's ``finalize_resample_variance``: the two divisions are done one after
    the other (no overflow of ``weight_sum**2``), zero weight gives NaN or inf
    without warnings.

    Parameters
    ----------
    weighted_sum : ndarray
        Sum of ``variance * weight**2``; overwritten with the variance.
    weight_sum : ndarray
        Sum of weights.
    scaling : float
        Pixel-scale factor (stcal: ``1 / pixel_scale_ratio**2`` for imaging).
    rows_per_block : int, optional

    Returns
    -------
    ndarray
        ``weighted_sum``, now the variance.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "invalid value*", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero*", RuntimeWarning)
        for rows in _blocks(weighted_sum.shape[0], rows_per_block):
            weighted_sum[rows] = weighted_sum[rows] * scaling / weight_sum[rows] / weight_sum[rows]
    return weighted_sum


def error_from_variances(variances, *, rows_per_block=ROWS_PER_BLOCK):
    """
    ``sqrt`` of the NaN-ignoring sum of the variances; NaN where all are NaN (as stcal).

    Parameters
    ----------
    variances : sequence of ndarray
        Arrays of one shape and dtype.
    rows_per_block : int, optional

    Returns
    -------
    ndarray
        New array, of the variances' dtype.
    """
    first = variances[0]
    error = np.empty(first.shape, dtype=np.result_type(*variances))
    for rows in _blocks(first.shape[0], rows_per_block):
        block = [variance[rows] for variance in variances]
        error[rows] = np.sqrt(np.nansum(block, axis=0))
        error[rows][np.all(np.isnan(block), axis=0)] = np.nan
    return error
