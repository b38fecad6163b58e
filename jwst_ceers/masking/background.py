"""A coarse, smooth background map from block medians of unmasked pixels."""

import bottleneck as bn
import numpy as np
import scipy.ndimage

__all__ = ["coarse_background"]


def _interpolation_weights(n_pixels, n_blocks, box):
    """
    Linear interpolation from block centres to pixel centres: lower block index and weight.

    Pixels beyond the outermost block centres are linearly extrapolated from the two
    outermost blocks, so ramps stay exact up to the image edges. Returns ``(lower,
    frac)``: pixel ``i`` is ``(1 - frac[i]) * block[lower[i]] + frac[i] * block[lower[i] + 1]``.
    """
    if n_blocks == 1:
        return np.zeros(n_pixels, dtype=np.intp), np.zeros(n_pixels, dtype=np.float32)
    position = (np.arange(n_pixels, dtype=np.float64) + 0.5) / box - 0.5
    lower = np.clip(np.floor(position).astype(np.intp), 0, n_blocks - 2)
    return lower, (position - lower).astype(np.float32)


def _interpolate_blocks(values, shape, box, *, rows_per_chunk=1024):
    """
    Bilinear interpolation of a block grid to a full-resolution float32 image.

    Written with gathers and element-wise products rather than a BLAS matrix
    product: a multi-threaded BLAS changes its rounding with its thread count
    (OPENBLAS_NUM_THREADS=1 in a dask worker), which made masks and pedestals of a
    survey run on workers differ from a serial run. These operations give the
    same bits whatever the threads.
    """
    ny, nx = shape
    nby, nbx = values.shape
    values = values.astype(np.float32)
    lower_x, frac_x = _interpolation_weights(nx, nbx, box)
    upper_x = np.minimum(lower_x + 1, nbx - 1)
    columns = values[:, lower_x] * (1 - frac_x) + values[:, upper_x] * frac_x  # (nby, nx)
    lower_y, frac_y = _interpolation_weights(ny, nby, box)
    upper_y = np.minimum(lower_y + 1, nby - 1)
    out = np.empty((ny, nx), dtype=np.float32)
    for start in range(0, ny, rows_per_chunk):
        rows = slice(start, min(start + rows_per_chunk, ny))
        chunk = out[rows]
        np.multiply(columns[lower_y[rows]], (1 - frac_y[rows])[:, None], out=chunk)
        chunk += columns[upper_y[rows]] * frac_y[rows][:, None]
    return out


def coarse_background(data, *, exclude, box=128, min_fraction=0.25, filter_size=3):
    """
    Smooth background: median of unmasked pixels per ``box`` x ``box`` block, interpolated.

    Blocks with fewer than ``min_fraction`` usable pixels take the value of the nearest
    usable block; the block grid is median-filtered over ``filter_size`` blocks and
    interpolated bilinearly to every pixel (extrapolated linearly beyond the outermost
    block centres).

    Parameters
    ----------
    data : ndarray
        2-D image (NaNs allowed; they are not used).
    exclude : ndarray of bool
        True where a pixel must not be used (sources, no data).
    box : int, optional
        Block size in pixels.
    min_fraction : float, optional
        Minimum fraction of usable pixels for a block to be measured.
    filter_size : int, optional
        Median filter size on the block grid (1 = none).

    Returns
    -------
    ndarray or None
        New float32 background map, or None when no block is usable.
    """
    data = np.asarray(data, dtype=np.float32)
    ny, nx = data.shape
    box = int(box)
    nby, nbx = -(-ny // box), -(-nx // box)
    # blocks of >= 64 px: the median of every 2nd pixel in x and y is as good, 4x cheaper
    stride = 2 if box >= 64 and box % 2 == 0 else 1
    sub_box = box // stride
    values = np.where(np.asarray(exclude), np.nan, data)[::stride, ::stride]
    padded = np.full((nby * sub_box, nbx * sub_box), np.nan, dtype=np.float32)
    padded[: values.shape[0], : values.shape[1]] = values
    blocks = padded.reshape(nby, sub_box, nbx, sub_box).transpose(0, 2, 1, 3).reshape(nby, nbx, -1)
    usable = (~np.isnan(blocks)).sum(axis=2) >= min_fraction * sub_box * sub_box
    if not usable.any():
        return None
    medians = bn.nanmedian(blocks, axis=2)
    if not usable.all():
        _, (iy, ix) = scipy.ndimage.distance_transform_edt(~usable, return_indices=True)
        medians = medians[iy, ix]
    if filter_size > 1:
        # odd reflection (linear extrapolation) keeps ramps exact up to the edges
        edge = filter_size // 2
        padded_grid = np.pad(medians, edge, mode="reflect", reflect_type="odd")
        medians = scipy.ndimage.median_filter(padded_grid, size=filter_size)[edge:-edge, edge:-edge]
    return _interpolate_blocks(medians, (ny, nx), box)
