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


def _banded_median_filter(values, footprint, *, threads):
    """``median_filter(values, footprint=footprint, mode="reflect")`` over bands of rows on threads.

    Each band is filtered with a halo of half the footprint's height (the image's own
    edges are reflected as in the whole-grid call), so the values are the same.
    """
    ny = values.shape[0]
    if threads <= 1 or ny < 4 * footprint.shape[0]:
        return median_filter(values, footprint=footprint, mode="reflect")
    halo = footprint.shape[0] // 2
    out = np.empty_like(values)

    def band(start, stop):
        y0, y1 = max(0, start - halo), min(ny, stop + halo)
        filtered = median_filter(values[y0:y1], footprint=footprint, mode="reflect")
        out[start:stop] = filtered[start - y0 : stop - y0]

    for_row_chunks(band, ny, rows=-(-ny // int(threads)), threads=threads)
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
    filtered = _banded_median_filter(block_values, ring, threads=threads)
    upsampler = CubicUpsampler(filtered, shape=data.shape, box=block)
    return upsampler if rows else upsampler()
