"""
The sky plane of one exposure, fitted to the LOWER envelope of block medians.

Why: in deep fields the light of large galaxies reaches far beyond any source mask
(low-surface-brightness wings at 0.02-0.5 sigma per pixel over hundreds of pixels).
Faint as it is per pixel, it covers so much of a detector that a histogram of all
unmasked pixels peaks 0.1-0.2 sigma above the sky, and a smooth background map (block
medians, box >> sources) absorbs it into the "gradient". But such light only ever adds
flux and is spatially coherent: averaged over blocks of ``box`` x ``box`` unmasked
pixels it stands out from the block noise, while the sky itself is smooth (a constant
pedestal plus a gradient). So a plane ``a + gx * u + gy * v`` is fitted to the block
medians with ASYMMETRIC rejection: the block-median scatter is measured from the blocks
BELOW the plane (which wings cannot reach), blocks more than ``reject`` of that scatter
above the plane are dropped, and the fit is repeated until the accepted set is stable.
The pedestal is then measured only on pixels of the accepted blocks.

Coordinates: ``u = (x - (nx - 1) / 2) / nx`` and ``v = (y - (ny - 1) / 2) / ny``, so the
plane's slope term has zero mean over the array and ``a`` is the sky averaged over the
whole array.

Limit (measured, see ``benchmarks/bench_pedestal.py``): when one galaxy's halo covers
essentially the whole detector (~90% of the pixels above 0.05 sigma), no block is at the
sky level, the plane follows the halo's outskirts and the pedestal comes out up to
0.08 sigma high; the accepted fraction (0.38-0.40 there) does not single such cases out.
"""

from dataclasses import dataclass

import bottleneck as bn
import numpy as np

__all__ = ["SkyPlane", "fit_sky_plane"]

# blocks with fewer usable pixels than this fraction of box**2 are not used
MIN_BLOCK_FRACTION = 0.1
# negative outliers (beyond this many block sigma below the plane: e.g. a missed bad
# column) are dropped too
NEGATIVE_REJECT = 5.0
# fewest sky pixels for the pixel-level fallback plane
MIN_PLANE_PIXELS = 20


@dataclass
class SkyPlane:
    """
    Result of :func:`fit_sky_plane`.

    Attributes
    ----------
    level : float
        Plane value at the array centre (= its mean over the array), from block medians.
    slope_x, slope_y : float
        Gradient coefficients ``gx, gy`` (change of the sky across the whole array).
    accepted : ndarray of bool
        Block grid (ny_blocks, nx_blocks): True for blocks at the sky level.
    measured : ndarray of bool
        Block grid: True for blocks with enough unmasked pixels to be measured.
    box : int
        Block size in pixels.
    block_scatter : float
        Robust scatter of the accepted block medians about the plane (data units, for a
        block with ``box**2`` usable pixels); NaN for ``method='pixels'``.
    excess : ndarray
        Block grid: height of each measured block above the plane in units of the block
        scatter (NaN where not measured; 0 for ``method='pixels'``).
    method : str
        'blocks', or 'pixels' when too few blocks had enough sky pixels and the plane was
        fitted (3-sigma clipped) to the sky pixels themselves, nothing rejected.
    """

    level: float
    slope_x: float
    slope_y: float
    accepted: np.ndarray
    measured: np.ndarray
    box: int
    block_scatter: float
    excess: np.ndarray = None
    method: str = "blocks"

    @property
    def accepted_fraction(self):
        """Fraction of the measured blocks that are at the sky level."""
        return float(self.accepted.sum() / max(1, self.measured.sum()))

    def slope_image(self, shape):
        """Zero-mean gradient ``gx * u + gy * v`` over an array of ``shape`` (float32)."""
        ny, nx = shape
        u = ((np.arange(nx) - (nx - 1) / 2.0) / nx).astype(np.float32)
        v = ((np.arange(ny) - (ny - 1) / 2.0) / ny).astype(np.float32)
        return np.float32(self.slope_x) * u[None, :] + np.float32(self.slope_y) * v[:, None]

    def accepted_pixels(self, shape, *, below=None):
        """
        Pixel mask (True inside accepted blocks) for an array of ``shape``.

        With ``below``: True inside measured blocks whose ``excess`` is below that value.
        """
        ny, nx = shape
        blocks = self.accepted
        if below is not None:
            blocks = self.measured & (np.nan_to_num(self.excess, nan=np.inf) < below)
        full = np.repeat(np.repeat(blocks, self.box, axis=0), self.box, axis=1)
        return full[:ny, :nx]


def _block_medians(data, sky, box):
    """Median, number of usable pixels and centre (u, v) of each box x box block."""
    ny, nx = data.shape
    nby, nbx = -(-ny // box), -(-nx // box)
    padded = np.full((nby * box, nbx * box), np.nan, dtype=np.float32)
    padded[:ny, :nx] = np.where(sky, data, np.nan)
    blocks = padded.reshape(nby, box, nbx, box).transpose(0, 2, 1, 3).reshape(nby, nbx, box * box)
    count = (~np.isnan(blocks)).sum(axis=2)
    medians = bn.nanmedian(blocks, axis=2)
    # centres of the part of each block inside the array (edge blocks may be partial)
    y0 = np.arange(nby) * box
    x0 = np.arange(nbx) * box
    yc = 0.5 * (y0 + np.minimum(y0 + box, ny) - 1)
    xc = 0.5 * (x0 + np.minimum(x0 + box, nx) - 1)
    v = (yc - (ny - 1) / 2.0) / ny
    u = (xc - (nx - 1) / 2.0) / nx
    uu, vv = np.meshgrid(u, v)
    return medians, count, uu, vv


def fit_sky_plane(data, sky, *, box=64, reject=1.5, iterations=30):
    """
    Plane fitted to the lower envelope of block medians of the sky pixels.

    Parameters
    ----------
    data : ndarray
        2-D image.
    sky : ndarray of bool
        True for usable sky pixels (not masked, not bad).
    box : int, optional
        Block size in pixels.
    reject : float, optional
        Blocks more than ``reject`` times the block scatter ABOVE the plane are rejected
        (the scatter is measured from blocks below the plane).
    iterations : int, optional
        Maximum number of fit / reject iterations.

    Returns
    -------
    SkyPlane or None
        None when there are fewer than ``MIN_PLANE_PIXELS`` sky pixels. When fewer than 3
        blocks have enough sky pixels, a plane fitted to the pixels (``method='pixels'``).
    """
    data = np.asarray(data, dtype=np.float32)
    sky = np.asarray(sky, dtype=bool) & np.isfinite(data)
    box = int(box)
    medians, count, uu, vv = _block_medians(data, sky, box)
    measured = (count >= MIN_BLOCK_FRACTION * box * box) & np.isfinite(medians)
    if measured.sum() < 3:
        return _pixel_plane(data, sky, box, medians.shape)
    # weights: the noise of a median of n pixels scales as 1 / sqrt(n)
    weight = np.sqrt(np.where(measured, count, 0)).astype(np.float64)
    scatter_floor = _white_noise_floor(data[sky])
    design = np.stack([np.ones_like(uu), uu, vv], axis=-1)
    accepted = measured.copy()
    coefficients = np.array([float(np.median(medians[measured])), 0.0, 0.0])
    scatter = float("nan")
    for _ in range(iterations):
        # a plane needs blocks spread in both directions; with few blocks fit a constant
        columns = 3 if accepted.sum() >= 6 else 1
        a = design[accepted][:, :columns] * weight[accepted, None]
        b = medians[accepted] * weight[accepted]
        solution, *_ = np.linalg.lstsq(a, b, rcond=None)
        coefficients = np.zeros(3)
        coefficients[:columns] = solution
        normalised = np.where(measured, (medians - design @ coefficients) * weight, np.nan)
        below = normalised[accepted & (normalised < 0)]
        if below.size < 2:
            break
        # never below what pixel noise alone gives: without this floor, each rejection
        # lowers the plane, fewer blocks stay below it, the scatter shrinks and the
        # iteration runs away (accepted fraction 0.32 instead of 0.6-0.7 on a simulated
        # exposure, moved by a 3% change of the source mask)
        scatter = max(float(np.sqrt(np.mean(below**2))), scatter_floor)
        if not scatter > 0:
            break
        new = measured & (normalised < reject * scatter) & (normalised > -NEGATIVE_REJECT * scatter)
        if new.sum() < 3 or np.array_equal(new, accepted):
            break
        accepted = new
    block_scatter = scatter / box if np.isfinite(scatter) else float("nan")
    normalised = np.where(measured, (medians - design @ coefficients) * weight, np.nan)
    excess = normalised / scatter if scatter > 0 else np.where(measured, 0.0, np.nan)
    return SkyPlane(
        level=float(coefficients[0]), slope_x=float(coefficients[1]), slope_y=float(coefficients[2]),
        accepted=accepted, measured=measured, box=box, block_scatter=float(block_scatter), excess=excess,
    )


def _white_noise_floor(values):
    """
    Smallest possible scatter of ``sqrt(n)``-weighted block medians: 1.2533 x pixel sigma.

    The pixel sigma is measured on the NEGATIVE side of the sky-pixel distribution
    (median minus its 15.87th percentile), which faint unmasked wings cannot widen.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < MIN_PLANE_PIXELS:
        return 0.0
    values = values[:: max(1, values.size // 1_000_000)]
    median, low = np.percentile(values, [50.0, 15.865525])
    return float(np.sqrt(np.pi / 2.0) * max(median - low, 0.0))


def _pixel_plane(data, sky, box, grid_shape, *, clip=3.0, iterations=5):
    """Plane fitted to the sky pixels themselves (sparse sky), iteratively clipped."""
    y, x = np.nonzero(sky)
    if y.size < MIN_PLANE_PIXELS:
        return None
    ny, nx = data.shape
    values = data[y, x].astype(np.float64)
    design = np.stack([np.ones(y.size), (x - (nx - 1) / 2.0) / nx, (y - (ny - 1) / 2.0) / ny], axis=1)
    keep = np.ones(y.size, dtype=bool)
    coefficients = np.zeros(3)
    for _ in range(iterations):
        coefficients, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = values - design @ coefficients
        scale = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
        new = np.abs(residual) <= clip * scale if scale > 0 else keep
        if new.sum() < MIN_PLANE_PIXELS or np.array_equal(new, keep):
            break
        keep = new
    everywhere = np.ones(grid_shape, dtype=bool)
    return SkyPlane(
        level=float(coefficients[0]), slope_x=float(coefficients[1]), slope_y=float(coefficients[2]),
        accepted=everywhere, measured=everywhere, box=box, block_scatter=float("nan"),
        excess=np.zeros(grid_shape), method="pixels",
    )
