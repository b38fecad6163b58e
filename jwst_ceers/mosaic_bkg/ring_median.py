"""O(N) ring-median pre-filter of a mosaic, computed on a block-reduced grid.

CEERS subtracts a ring-median filter (ring radius 80 px, width 4 px) from each
mosaic before detecting sources, after replacing pixels above a 5-sigma ceiling over
a coarse background. A full-resolution ring median costs ~2000 comparisons per pixel.
Here the same idea is applied on ``block`` x ``block`` block medians: the ceiling
clipping and the ring median act on a grid 64 times smaller, and the result is
interpolated back to full resolution (cubic), so the cost is a few operations per pixel.
"""

import bottleneck as bn
import numpy as np
from scipy.ndimage import median_filter

from jwst_ceers.masking.fft_ops import for_row_chunks
from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked

from jwst_ceers.mosaic_bkg.grid_resampling import CubicUpsampler, block_samples, fill_invalid_nearest

__all__ = ["ring_footprint", "ring_median_background"]


def ring_footprint(radius, width):
    """Boolean ring ``radius <= r <= radius + width`` (in grid cells), at least one cell wide."""
    width = max(float(width), 1.0)
    size = int(np.ceil(radius + width))
    yy, xx = np.mgrid[-size : size + 1, -size : size + 1]
    r = np.hypot(xx, yy)
    return (r >= radius - 0.5) & (r <= radius + width - 0.5)


def _median_filter(values, footprint, *, threads=1):
    """
    ``median_filter(values, footprint=footprint, mode="reflect")``, the same values, ~4x faster.

    For each band of rows the footprint's values are gathered into one row per cell and
    the median element (rank ``size // 2``, as scipy's rank filter takes it) selected with
    ``np.partition``; scipy's filter selects per cell through a generic buffer. Bands run
    on ``threads``. Grids smaller than the footprint or with non-finite values (whose
    order the two selections may treat differently) go to scipy.
    """
    ny, nx = values.shape
    half = footprint.shape[0] // 2
    if (
        footprint.shape != (2 * half + 1, 2 * half + 1)
        or min(ny, nx) <= half
        or not np.all(np.isfinite(values))
    ):
        return median_filter(values, footprint=footprint, mode="reflect")
    padded = np.pad(values, half, mode="symmetric")  # scipy's "reflect": d c b a | a b c d
    dy, dx = np.nonzero(footprint)
    size = dy.size
    rank = size // 2
    out = np.empty_like(values)
    rows_per_band = max(1, (1 << 21) // (nx * size))

    def band(start, stop):
        gathered = np.empty((size, stop - start, nx), dtype=values.dtype)
        for k in range(size):
            gathered[k] = padded[start + dy[k] : stop + dy[k], dx[k] : dx[k] + nx]
        cells = gathered.reshape(size, -1).T.copy()
        del gathered
        cells.partition(rank, axis=-1)
        out[start:stop] = cells[:, rank].reshape(stop - start, nx)

    for_row_chunks(band, ny, rows=rows_per_band, threads=threads)
    return out


def ring_median_background(
    data, nodata, *, radius=80, width=4, clip_nsigma=5.0, block=8, noise=None, rows=False, threads=1
):
    """
    Ring-median estimate of the large-scale background of ``data``.

    Parameters
    ----------
    data : ndarray
        2-D mosaic (values under ``nodata`` are ignored).
    nodata : ndarray of bool
        True where there are no data.
    radius, width : float
        Ring radius and width in pixels (CEERS: 80 and 4).
    clip_nsigma : float
        Pixels above the coarse background by more than this many pixel sigmas are
        replaced by the ceiling before the ring median.
    block : int
        Block size of the reduced grid (the ring is scaled accordingly).
    noise : float, optional
        Pixel noise sigma; measured robustly from the data when not given.
    rows : bool, optional
        Return a `~jwst_ceers.mosaic_bkg.grid_resampling.CubicUpsampler` that makes
        any rows of the estimate on demand (the same values) instead of the full map.
    threads : int, optional
        Threads for the ring median (bands of rows; the same values).

    Returns
    -------
    ndarray or CubicUpsampler
        New float32 full-resolution background estimate (finite everywhere).
    """
    if noise is None:
        _, noise = robust_location_scale(sample_unmasked(data, nodata))
    stride = 2 if block % 2 == 0 else 1
    samples = block_samples(data, nodata, box=block, stride=stride)
    with np.errstate(all="ignore"):
        coarse = bn.nanmedian(samples, axis=-1)
        valid = np.isfinite(coarse)
        if not valid.any():
            zero = np.zeros((1, 1), dtype=np.float32)
            return CubicUpsampler(zero, shape=data.shape, box=block) if rows else np.zeros(data.shape, np.float32)
        coarse = fill_invalid_nearest(coarse, valid)
        coarse = median_filter(coarse, size=3, mode="nearest")
        ceiling = (coarse + np.float32(clip_nsigma * noise))[:, :, None]
        clipped = np.where(samples > ceiling, ceiling, samples)
        block_values = bn.nanmean(clipped, axis=-1)
    block_values = fill_invalid_nearest(block_values, valid)
    ring = ring_footprint(radius / block, width / block)
    filtered = _median_filter(block_values, ring, threads=threads)
    upsampler = CubicUpsampler(filtered, shape=data.shape, box=block)
    return upsampler if rows else upsampler()
