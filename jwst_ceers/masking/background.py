"""A coarse, smooth background map from block medians of unmasked pixels."""

import bottleneck as bn
import numpy as np
import scipy.ndimage

__all__ = ["coarse_background"]


def _interpolation_matrix(n_pixels, n_blocks, box):
    """
    Linear interpolation weights from block centres to pixel centres (n_pixels x n_blocks).

    Pixels beyond the outermost block centres are linearly extrapolated from the two
    outermost blocks, so ramps stay exact up to the image edges.
    """
    weights = np.zeros((n_pixels, n_blocks), dtype=np.float32)
    if n_blocks == 1:
        weights[:, 0] = 1
        return weights
    position = (np.arange(n_pixels, dtype=np.float64) + 0.5) / box - 0.5
    lower = np.clip(np.floor(position).astype(int), 0, n_blocks - 2)
    frac = position - lower
    rows = np.arange(n_pixels)
    weights[rows, lower] = (1 - frac).astype(np.float32)
    weights[rows, lower + 1] = frac.astype(np.float32)
    return weights


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
    wy = _interpolation_matrix(ny, nby, box)
    wx = _interpolation_matrix(nx, nbx, box)
    return (wy @ medians.astype(np.float32) @ wx.T).astype(np.float32, copy=False)
