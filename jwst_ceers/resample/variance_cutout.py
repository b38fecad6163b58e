"""The output cut-out one input can reach, and stock's variance weighting on it.

stcal's ``Resample.resample_variance_arrays`` (stcal 1.20) drizzles each variance
array of each input onto a NEW full-size output array (NaN where the input adds
nothing), then builds a full-size float64 weight and full-size masks to add
``var * weight**2`` and ``weight`` into the running sums. Outside the pixels the
input reaches, its drizzled variance is NaN and nothing is added. These functions
find that reachable region (:func:`output_cutout`), so that the same drizzle and
the same arithmetic run on the cut-out only (:func:`accumulate_variance`): the
cost then grows with the input's pixels, not with the mosaic's.

Drizzle on a cut-out sees the pixel map shifted by the cut-out origin (an integer),
so its outputs equal the full-grid ones up to float rounding of the shifted
coordinates: with the square kernel a few hundred of 35 million mosaic pixels differ
by at most 6 float32 ulp (48 x 1024^2, ``benchmarks/bench_resample.py``); SCI, WHT
and CON are untouched and bit-identical; see tests/test_resample_cutout.py.
"""

import math
import warnings

import numpy as np

__all__ = [
    "CUTOUT_KERNELS",
    "accumulate_variance",
    "kernel_reach",
    "output_cutout",
    "pixmap_step",
    "variance_weight",
]

#: Kernels whose footprint is centred on the input pixel's mapped position, so that
#: a cut-out padded by :func:`kernel_reach` holds all of it. drizzle 2.2's "turbo"
#: kernel offsets each input pixel by the start of its scan line, which depends on
#: the output bounds: it keeps stock's full-grid path.
CUTOUT_KERNELS = ("square", "point", "gaussian", "lanczos2", "lanczos3")

#: Extra output pixels around the reach: the input polygon drizzle clips against the
#: output is the input box grown by half a pixel, and its corners are extrapolated.
_MARGIN_PIXELS = 3

#: Every how many input rows/columns the pixel map's derivatives are sampled.
_DERIVATIVE_STRIDE = 16


def pixmap_step(pixmap, *, stride=_DERIVATIVE_STRIDE):
    """
    Largest change of an output coordinate between two adjacent input pixels.

    Sampled on every ``stride``-th row (x steps) and column (y steps); NaN entries
    are ignored. This is the size (output pixels) of one input pixel.

    Parameters
    ----------
    pixmap : ndarray, shape (ny, nx, 2)
        Output (x, y) of each input pixel centre.
    stride : int, optional

    Returns
    -------
    float
        The step; NaN when no two adjacent finite entries were sampled.
    """
    x_steps = np.abs(np.diff(pixmap[::stride, :, :], axis=1))
    y_steps = np.abs(np.diff(pixmap[:, ::stride, :], axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN samples
        return float(np.nanmax([np.nanmax(x_steps, initial=np.nan), np.nanmax(y_steps, initial=np.nan)]))


def kernel_reach(kernel, *, pixfrac, pixel_scale_ratio, input_pixel):
    """
    How far (output pixels) drizzle spreads an input pixel from its mapped centre.

    From drizzle 2.2's kernels (``cdrizzlebox.c``): square: the shrunken pixel's
    corners (``pixfrac / 2`` input pixels from the centre along both axes); point:
    the nearest output pixel; gaussian: ``max(2.5 pixfrac / 2.3548, 1.2) / scale``;
    lanczos: ``order * pixfrac / scale + 1``, ``scale`` being the output / input
    pixel-scale ratio drizzle is given.

    Parameters
    ----------
    kernel : str
        One of `CUTOUT_KERNELS`.
    pixfrac : float
    pixel_scale_ratio : float or None
        Output / input pixel scale (None: taken as ``1 / input_pixel``, as drizzle
        estimates it from the pixel map).
    input_pixel : float
        Size of an input pixel in output pixels (:func:`pixmap_step`).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For a kernel not in `CUTOUT_KERNELS`.
    """
    scale = pixel_scale_ratio if pixel_scale_ratio else 1.0 / input_pixel
    if kernel == "square":
        return pixfrac * input_pixel  # half a (shrunken) pixel along each of two axes
    if kernel == "point":
        return 0.5
    if kernel == "gaussian":
        return max(2.5 * pixfrac / 2.3548, 1.2) / scale
    if kernel in ("lanczos2", "lanczos3"):
        return int(kernel[-1]) * pixfrac / scale + 1.0
    raise ValueError(f"kernel {kernel!r}: no cut-out reach known (cut-out kernels: {', '.join(CUTOUT_KERNELS)})")


def output_cutout(pixmap, *, xmin, xmax, ymin, ymax, out_shape, reach):
    """
    The output region drizzle can touch from input pixels ``[ymin:ymax+1, xmin:xmax+1]``.

    The bounding box of the finite mapped centres of those pixels (and of their
    direct neighbours, which drizzle interpolates for pixel corners), grown by
    ``reach`` + the size of one input pixel + a margin, clipped to the output.

    Parameters
    ----------
    pixmap : ndarray, shape (ny, nx, 2)
        Output (x, y) of each input pixel centre (NaN: unmapped).
    xmin, xmax, ymin, ymax : int
        Input pixel range drizzle resamples (inclusive), as stcal passes it.
    out_shape : tuple of int
        Output array shape (ny, nx).
    reach : float
        :func:`kernel_reach` plus the size of one input pixel (output pixels).

    Returns
    -------
    tuple of slice or None
        ``(y slice, x slice)`` into the output arrays; None when no pixel of the
        range maps to a finite position or the region misses the output.
    """
    ny_in, nx_in = pixmap.shape[:2]
    section = pixmap[max(ymin - 1, 0):min(ymax + 2, ny_in), max(xmin - 1, 0):min(xmax + 2, nx_in)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN section
        lows = np.nanmin(section, axis=(0, 1))
        highs = np.nanmax(section, axis=(0, 1))
    if not (np.all(np.isfinite(lows)) and np.all(np.isfinite(highs))):
        return None
    pad = math.ceil(reach) + _MARGIN_PIXELS
    ny, nx = out_shape
    x0 = max(math.floor(lows[0]) - pad, 0)
    x1 = min(math.ceil(highs[0]) + pad + 1, nx)
    y0 = max(math.floor(lows[1]) - pad, 0)
    y1 = min(math.ceil(highs[1]) + pad + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def variance_weight(weight_type, *, rnoise_variance=None, exposure_time=None, shape=None):
    """
    Stock's per-output-pixel weight of one input's resampled variances.

    ``ivm``: ``1 / rnoise_variance`` where that is positive and finite, else 0;
    ``exptime``: the input's measurement (or exposure) time everywhere. float64,
    as stcal builds it (so that the sums below round as stock's do).

    Parameters
    ----------
    weight_type : str
        ``ivm*`` or ``exptime``.
    rnoise_variance : ndarray, optional
        The input's resampled VAR_RNOISE (``ivm``).
    exposure_time : float, optional
        ``exptime``: the time to weight with.
    shape : tuple of int, optional
        ``exptime``: the array shape.

    Returns
    -------
    ndarray of float64
    """
    if weight_type.startswith("ivm"):
        usable = (rnoise_variance > 0) & np.isfinite(rnoise_variance)
        weight = np.zeros(rnoise_variance.shape)
        weight[usable] = np.reciprocal(rnoise_variance[usable])
        return weight
    if weight_type == "exptime":
        return np.full(shape, exposure_time)
    raise ValueError(f"weight_type {weight_type!r}: expected 'ivm' or 'exptime'")


def accumulate_variance(weighted_sum, weight_sum, variance, weight):
    """
    Add one input's resampled variance into the running sums, as stcal does.

    Where ``variance`` is finite and non-negative and ``weight`` positive:
    ``weighted_sum += variance * weight * weight`` (NaN sums start from 0) and
    ``weight_sum += weight``. Arguments may be views into the full-size sums (the
    cut-out), which are updated in place.

    Parameters
    ----------
    weighted_sum, weight_sum : ndarray of float32
        Running sums (modified in place).
    variance : ndarray of float32
        The input's drizzled variance (NaN where it adds nothing).
    weight : ndarray of float64
        From :func:`variance_weight`.
    """
    use = (variance >= 0) & np.isfinite(variance) & (weight > 0)
    # as stcal: weights multiplied one at a time (overflow only in extreme cases); pixels
    # outside ``use`` (inf * 0, NaN) are computed but never added
    with np.errstate(over="ignore", invalid="ignore"):
        added = variance * weight * weight  # float64, as stcal's
    # stcal: wsum[use] = nansum([wsum[use], added[use]]) and wt[use] += weight[use]; the
    # same float64 sums cast to float32, without fancy-indexed copies
    np.copyto(weighted_sum, 0, where=use & np.isnan(weighted_sum))
    np.add(weighted_sum, added, out=weighted_sum, where=use, casting="same_kind")
    np.add(weight_sum, weight, out=weight_sum, where=use, casting="same_kind")
