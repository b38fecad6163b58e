"""
Sky variance on the 7x7-pixel scale and the VAR_RNOISE rescaling factor (CEERS).

CEERS rescales VAR_RNOISE so that it carries the measured sky variance: the robust
variance of sums over 7x7 blocks of unmasked sky pixels, divided by 49 (for white noise
this is the per-pixel variance; correlated noise such as 1/f striping adds its share on
the 7x7 scale). Drizzle's ``ivm`` weights are 1/VAR_RNOISE, so the weights then follow
the real sky noise.

The statistic is sensitive to anything smooth left in the sky: a residual r (in sky
sigma) adds 49 r^2 to it, so 0.1 sigma of flat-field or wisp structure adds 50%. CEERS
subtracted a 2D background with 5-pixel boxes, which absorbed part of the block-scale
noise (factors ~13% low); a smooth background on scales >> 7 px leaves structure on
100-400 px scales in (flat and wisp residuals: +10-35% on simulated exposures). So the
variance is measured in two parts that smooth structure cannot enter
(:func:`sky_block_variance`):

- :func:`block_difference_variance`: the variance of the DIFFERENCE of two horizontally
  neighbouring 7x7 sums, halved. Smooth structure cancels; white noise, column offsets
  and any short-range pixel correlation count in full; 1/f row offsets cancel (same
  rows, same amplifier);
- :func:`row_offset_variance`: the row offsets' share, from per-amplifier row means with
  their drift over more than ``ROW_OFFSET_SCALE`` rows removed.

Definition (what drizzle's ``ivm`` weighting wants): the noise of a 7x7-pixel aperture
relative to its local sky. Row offsets change from row to row, so no background
removes them from an aperture: they count, as in the CEERS statistic. Their drift over
many rows is sky structure that a local background takes out, like flat-field
residuals: it does not count (with plain white row offsets this removes ~6% of their
share: the drift adds coherently over the 7 rows of a block).
"""

import numpy as np
import scipy.ndimage
from scipy.stats import norm

from jwst_ceers.masking.robust import robust_location_scale

__all__ = [
    "amplifier_index", "amplifier_row_offsets", "block_difference_variance", "block_sum_variance", "robust_mean", "rnoise_scale_factor",
    "row_offset_variance", "sky_block_variance", "subtract_row_offsets",
]

# A Gaussian clipped at +-3 sigma keeps a variance of this fraction of the original.
_CLIP = 3.0
# readout amplifiers of a NIRCam detector: bands of 512 columns (full-frame coordinates)
AMPLIFIER_WIDTH = 512
# row-offset drifts over more than ~this many rows (Gaussian sigma) are background, not noise:
# a 7x7 aperture's local sky comes from within a few tens of pixels (64 let wisp structure
# on 60-90 px scales into the row means: +3.7% -> +6.5% on a wisp detector)
ROW_OFFSET_SCALE = 32.0
_CLIPPED_VARIANCE_FRACTION = 1.0 - 2.0 * _CLIP * norm.pdf(_CLIP) / (2.0 * norm.cdf(_CLIP) - 1.0)


def _window_sums(residual, usable, block, y, x):
    """Sums of ``block`` x ``block`` windows with lower-left corners at rows ``y`` x columns ``x``, and completeness."""

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


def _clipped_scale(values):
    """Standard deviation of ``values`` after an iterative 3-sigma clip, corrected for the clipping."""
    location, scale = robust_location_scale(values[:: max(1, values.size // 500_000)], clip=_CLIP)
    for _ in range(10):
        kept = values[np.abs(values - location) <= _CLIP * scale]
        location = float(np.mean(kept))
        new_scale = float(np.std(kept) / np.sqrt(_CLIPPED_VARIANCE_FRACTION))
        if abs(new_scale - scale) <= 1e-4 * scale:
            return new_scale
        scale = new_scale
    return scale


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
    y = np.arange(0, residual.shape[0] - block + 1, int(step))
    x = np.arange(0, residual.shape[1] - block + 1, int(step))
    sums, complete = _window_sums(residual, usable, block, y, x)
    sums = sums[complete]
    if sums.size < 50:
        return float("nan"), int(sums.size)
    return _clipped_scale(sums) ** 2 / block**2, int(sums.size)


def amplifier_index(ncols, *, first_column=0, width=AMPLIFIER_WIDTH):
    """Readout amplifier (0-3 on a full frame) of each of ``ncols`` columns starting at full-frame ``first_column``."""
    return (int(first_column) + np.arange(int(ncols))) // int(width)


def block_difference_variance(residual, usable, *, amplifier, block=7, step=3):
    """
    Variance of the CEERS 7x7 block sum without anything that is the same in two neighbouring blocks of a row.

    Robust variance of the differences between the sums of horizontally adjacent
    ``block`` x ``block`` windows (same rows, same amplifier), divided by ``2 * block**2``.
    Whatever is smooth on scales >> ``block`` (leftover gradients, flat-field structure,
    wisps) cancels in the difference, and so do the row offsets of 1/f striping (constant
    along a row within an amplifier; :func:`row_offset_variance` measures them); white
    noise and independent column offsets count in full.

    Parameters
    ----------
    residual : ndarray
    usable : ndarray of bool
    amplifier : ndarray of int
        Amplifier of each column (:func:`amplifier_index`); pairs across a boundary are not used.
    block, step : int, optional
        Window size; spacing of the window pairs in pixels.

    Returns
    -------
    variance : float
        Per-pixel-equivalent variance (NaN if fewer than 50 complete pairs).
    npairs : int
    """
    usable = np.asarray(usable, dtype=bool)
    ny, nx = usable.shape
    if ny < block or nx < 2 * block:
        return float("nan"), 0
    y = np.arange(0, ny - block + 1, int(step))
    x = np.arange(0, nx - 2 * block + 1, int(step))
    x = x[np.asarray(amplifier)[x] == np.asarray(amplifier)[x + 2 * block - 1]]
    # both windows of every pair from one pass of running sums
    sums, complete = _window_sums(residual, usable, block, y, np.concatenate([x, x + block]))
    differences = (sums[:, : x.size] - sums[:, x.size :])[complete[:, : x.size] & complete[:, x.size :]]
    if differences.size < 50:
        return float("nan"), int(differences.size)
    return _clipped_scale(differences) ** 2 / (2 * block**2), int(differences.size)


def amplifier_row_offsets(residual, usable, *, amplifier, limit, scale=ROW_OFFSET_SCALE, min_fraction=0.1):
    """
    The 1/f row offsets of each readout amplifier, from clipped row means of the usable pixels.

    Per amplifier (a contiguous column range), the mean of each row's usable pixels within
    ``limit`` of zero is that row's offset plus the row's share of any smooth sky structure;
    the smooth part (a Gaussian of ``scale`` rows, normalised over the measured rows) is taken
    out, so what is returned changes from row to row like the stripes and holds no sky
    structure on scales >> ``scale`` rows.

    Parameters
    ----------
    residual : ndarray
        Image with the sky level removed (the clipping is about zero).
    usable : ndarray of bool
    amplifier : ndarray of int
        Amplifier of each column (:func:`amplifier_index`).
    limit : float
        Pixels with ``|residual| > limit`` are not used (sources, cosmic rays).
    scale : float, optional
        Gaussian sigma (rows) of the smooth part removed.
    min_fraction : float, optional
        Rows with fewer usable pixels than this fraction of the amplifier width are not used.

    Yields
    ------
    columns : slice
        The amplifier's columns.
    offsets : ndarray (ny,)
        High-passed row offsets of one amplifier (0 on rows not used), in column order of the amplifiers.
    count : ndarray of int (ny,)
        Usable pixels of each row.
    valid : ndarray of bool (ny,)
        Rows measured.
    """
    residual = np.asarray(residual, dtype=np.float32)
    usable = np.asarray(usable, dtype=bool)
    amplifier = np.asarray(amplifier)
    # amplifiers are contiguous column ranges: slices, not copies
    edges = np.flatnonzero(np.diff(amplifier)) + 1
    for start, stop in zip(np.r_[0, edges], np.r_[edges, amplifier.size]):
        values = residual[:, start:stop]
        keep = usable[:, start:stop] & (np.abs(values) <= limit)
        count = np.count_nonzero(keep, axis=1)
        valid = count >= max(min_fraction * (stop - start), 2)
        totals = np.where(keep, values, np.float32(0)).sum(axis=1).astype(np.float64)
        means = np.where(valid, totals / np.maximum(count, 1), 0.0)
        weight = scipy.ndimage.gaussian_filter1d(valid.astype(np.float64), scale, mode="reflect")
        smooth = scipy.ndimage.gaussian_filter1d(means, scale, mode="reflect") / np.maximum(weight, 1e-12)
        yield slice(start, stop), np.where(valid, means - smooth, 0.0), count, valid


def subtract_row_offsets(data, usable, *, first_column=0, scale=ROW_OFFSET_SCALE):
    """
    Copy of ``data`` without its 1/f row offsets (stripes changing over less than ~``scale`` rows).

    The offsets are :func:`amplifier_row_offsets` of the usable pixels (clipped at 5 white
    sigma about their median, so sources and cosmic rays do not enter); drifts over more than
    ~``scale`` rows, like every smooth sky structure, stay in. The high-passed offsets have
    zero mean, so the sky level of the copy is that of ``data``.

    Parameters
    ----------
    data : ndarray
        2-D image (NaNs allowed).
    usable : ndarray of bool
        Sky pixels (not masked, not bad).
    first_column : int, optional
        Full-frame column (0-based) of column 0, for the amplifier boundaries.
    scale : float, optional
        Gaussian sigma (rows) of the drift that is left in.

    Returns
    -------
    ndarray (float32)
        A new array; ``data`` itself when fewer than 50 usable pixel pairs give no noise level.
    """
    data = np.asarray(data, dtype=np.float32)
    usable = np.asarray(usable, dtype=bool) & np.isfinite(data)
    amplifier = amplifier_index(data.shape[1], first_column=first_column)
    if not usable.any():
        return data
    # the clipping is about zero: centre on a (subsampled) median of the usable pixels
    residual = data - np.float32(np.median(data[usable][::7]))
    pixel_variance = _pixel_variance(residual, usable, amplifier)
    if not np.isfinite(pixel_variance):
        return data
    out = data.copy()
    for columns, offsets, _, _ in amplifier_row_offsets(residual, usable, amplifier=amplifier,
                                                        limit=5.0 * np.sqrt(pixel_variance), scale=scale):
        out[:, columns] -= offsets.astype(np.float32)[:, None]
    return out


def row_offset_variance(residual, usable, *, amplifier, pixel_variance, block=7, scale=ROW_OFFSET_SCALE,
                        min_fraction=0.1):
    """
    Share of the row offsets (1/f striping) in the CEERS 7x7 block variance.

    Per amplifier, the mean of each row's usable pixels (clipped at 5 pixel sigma) is
    that row's offset plus the row's share of any smooth sky structure; the smooth part
    (a Gaussian of ``scale`` rows, normalised over the measured rows) is taken out: drifts
    over more than ~``scale`` rows are background, not noise on the 7-px scale. A block
    sum holds ``block`` times the sum of its ``block`` row offsets, so the share is the
    variance of sums of ``block`` consecutive high-passed offsets, less the part that the
    pixel noise of the means contributes (``pixel_variance / n`` per row).

    Parameters
    ----------
    residual : ndarray
    usable : ndarray of bool
    amplifier : ndarray of int
        Amplifier of each column.
    pixel_variance : float
        White per-pixel variance (for the noise of the row means and the clipping).
    block : int, optional
    scale : float, optional
        Gaussian sigma (rows) of the smooth part removed.
    min_fraction : float, optional
        Rows with fewer usable pixels than this fraction of the amplifier width are not used.

    Returns
    -------
    variance : float
        Per-pixel-equivalent share (0 when it cannot be measured: fewer than 50 windows).
    nwindows : int
    """
    sums, corrections = [], []
    for _, offsets, count, valid in amplifier_row_offsets(residual, usable, amplifier=amplifier,
                                                       limit=5.0 * np.sqrt(pixel_variance), scale=scale,
                                                       min_fraction=min_fraction):
        noise = np.where(valid, pixel_variance / np.maximum(count, 1), 0.0)
        window = np.ones(block)
        complete = np.convolve(valid.astype(np.int32), window.astype(np.int32), mode="valid") == block
        sums.append(np.convolve(offsets, window, mode="valid")[complete])
        corrections.append(np.convolve(noise, window, mode="valid")[complete])
    sums = np.concatenate(sums) if sums else np.zeros(0)
    if sums.size < 50:
        return 0.0, int(sums.size)
    share = _clipped_scale(sums) ** 2 - float(np.mean(np.concatenate(corrections)))
    return max(share, 0.0), int(sums.size)


def sky_block_variance(residual, usable, *, block=7, first_column=0, row_pixels=None):
    """
    The CEERS 7x7-block sky variance, measured so that smooth sky structure does not enter it.

    ``block_difference_variance`` (white noise, column offsets, any short-range correlation)
    plus ``row_offset_variance`` (1/f row offsets, drifts over > ``ROW_OFFSET_SCALE`` rows
    excluded). For white noise this is the per-pixel variance; for striped noise it is the
    variance of 7x7-block sums / 49 of the noise less its structure on scales > ~``ROW_OFFSET_SCALE`` px.

    Parameters
    ----------
    residual : ndarray
        Sky-subtracted image.
    usable : ndarray of bool
        Pixels for the 7x7 windows.
    block : int, optional
    first_column : int, optional
        Full-frame column (0-based) of column 0 (subarrays), for the amplifier boundaries.
    row_pixels : ndarray of bool, optional
        Pixels for the row means (default ``usable``).

    Returns
    -------
    variance : float
        NaN when the block differences cannot be measured.
    npairs : int
    row_variance : float
        The row offsets' share in ``variance``.
    """
    amplifier = amplifier_index(np.shape(residual)[1], first_column=first_column)
    white, npairs = block_difference_variance(residual, usable, amplifier=amplifier, block=block)
    if not np.isfinite(white):
        return white, npairs, float("nan")
    row_pixels = usable if row_pixels is None else np.asarray(row_pixels, dtype=bool)
    pixel_variance = _pixel_variance(residual, row_pixels, amplifier)
    rows = 0.0
    if np.isfinite(pixel_variance):
        rows, _ = row_offset_variance(residual, row_pixels, amplifier=amplifier, pixel_variance=pixel_variance,
                                      block=block)
    return white + rows, npairs, float(rows)


def _pixel_variance(residual, usable, amplifier):
    """Per-pixel white variance from differences of horizontally adjacent usable pixels (same amplifier)."""
    # every 4th row: the variance only sets the clipping and the (few-%) noise correction of the row means
    residual, usable = residual[::4], usable[::4]
    pair = usable[:, 1:] & usable[:, :-1] & (amplifier[1:] == amplifier[:-1])[None, :]
    differences = (residual[:, 1:] - residual[:, :-1])[pair]
    if differences.size < 50:
        return float("nan")
    return _clipped_scale(differences) ** 2 / 2.0


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


def rnoise_scale_factor(residual, usable, var_rnoise, *, block=7, first_column=0, row_pixels=None):
    """
    Factor that makes the robust mean VAR_RNOISE of sky pixels equal the sky variance.

    Parameters
    ----------
    residual, usable, block, first_column, row_pixels
        As for :func:`sky_block_variance`.
    var_rnoise : ndarray
        VAR_RNOISE before rescaling.

    Returns
    -------
    factor : float
        ``sky_variance / robust mean VAR_RNOISE`` (NaN when either is unavailable).
    sky_variance : float
        From :func:`sky_block_variance`.
    mean_rnoise : float
        Robust mean of VAR_RNOISE over the usable pixels before rescaling.
    nblocks : int
        Number of 7x7 window pairs used.
    row_variance : float
        The 1/f row offsets' share in ``sky_variance``.
    """
    sky_variance, nblocks, row_variance = sky_block_variance(residual, usable, block=block, first_column=first_column,
                                               row_pixels=row_pixels)
    mean_rnoise = robust_mean(np.asarray(var_rnoise)[usable])
    factor = sky_variance / mean_rnoise if mean_rnoise > 0 else float("nan")
    return float(factor), float(sky_variance), float(mean_rnoise), nblocks, row_variance
