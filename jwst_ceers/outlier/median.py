"""Median of drizzled exposure groups stored as cut-outs of the output grid.

Stock outlier_detection (``stcal.outlier_detection.median.MedianComputer``) stacks one
full output-grid image per exposure group and runs ``np.nanmedian`` over every output
pixel, also the many that no group covers (48 x 1024^2 NIRCam inputs: 20 of 35 Mpix;
numpy then emits one "All-NaN slice" warning per such pixel, 24 s of a 41 s median).
Here each group keeps only its non-NaN pixels (values and a bit mask of their bounding
box), and the median is computed only where at least one group has data, with the
same arithmetic as ``np.nanmedian``: the middle value of the sorted finite values,
or the float32 mean of the two middle ones.
"""

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CutoutStack", "GridCutout", "finite_bounding_box", "nanmedian_columns"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridCutout:
    """
    Where a cut-out lies on the output grid.

    Attributes
    ----------
    y0, x0 : int
        Grid row and column of the cut-out's first pixel.
    shape : tuple of int
        (rows, columns) of the cut-out.
    """

    y0: int
    x0: int
    shape: tuple

    @property
    def y1(self):
        """Grid row after the cut-out's last row."""
        return self.y0 + self.shape[0]

    @property
    def x1(self):
        """Grid column after the cut-out's last column."""
        return self.x0 + self.shape[1]


def finite_bounding_box(image):
    """
    Smallest rectangle of ``image`` holding all its non-NaN pixels.

    Parameters
    ----------
    image : ndarray
        2-D array.

    Returns
    -------
    GridCutout
        Zero-sized (shape (0, 0)) when every pixel is NaN.
    """
    finite = ~np.isnan(image)
    rows = np.flatnonzero(finite.any(axis=1))
    if rows.size == 0:
        return GridCutout(0, 0, (0, 0))
    cols = np.flatnonzero(finite[rows[0] : rows[-1] + 1].any(axis=0))
    return GridCutout(int(rows[0]), int(cols[0]), (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)))


def nanmedian_columns(stack):
    """
    ``np.nanmedian(stack, axis=0)``, bit for bit, for a (n, m) float stack.

    numpy's median of a small axis (``_nanmedian_small``: masked sort, then the sum
    of the low and high middle values divided by 2 in the input dtype) is reproduced
    with one sort; all-NaN columns give NaN (without numpy's warning per column).

    Parameters
    ----------
    stack : ndarray
        (n, m) array; NaN = no data.

    Returns
    -------
    ndarray
        (m,) medians, same dtype as ``stack``.
    """
    count = np.count_nonzero(~np.isnan(stack), axis=0)
    ordered = np.sort(stack, axis=0)  # NaN last
    columns = np.arange(stack.shape[1])
    low = ordered[np.maximum(count - 1, 0) // 2, columns]
    high = ordered[count // 2 - (count == 0), columns]
    median = low + high
    median /= np.asarray(2, dtype=stack.dtype)
    median[count == 0] = np.nan
    return median


#: Bytes of group data combined at once by `CutoutStack.median` (a band of grid rows).
BAND_BYTES = 32 * 2**20


@dataclass(frozen=True)
class _StoredGroup:
    """One group image: its box, where each box row starts in ``values``, mask bits, values."""

    box: GridCutout
    row_starts: np.ndarray
    bits: object  # ndarray, or (path, shape) on disk
    values: object  # ndarray, or (path, shape) on disk

    def opened(self, dtype):
        """This group with its arrays in memory, or memory-mapped from their files."""
        if isinstance(self.values, np.ndarray):
            return self
        (bits_path, bits_shape), (values_path, values_shape) = self.bits, self.values
        bits = np.memmap(bits_path, dtype=np.uint8, mode="r", shape=bits_shape)
        if values_shape[0]:
            values = np.memmap(values_path, dtype=dtype, mode="r", shape=values_shape)
        else:  # numpy cannot map an empty file
            values = np.empty(0, dtype=dtype)
        return _StoredGroup(self.box, self.row_starts, bits, values)


class CutoutStack:
    """
    Drizzled group images, kept compactly in memory or in temporary files, and their median.

    Of each group image only the non-NaN pixels inside its bounding box are kept: their
    values (row by row) and a bit mask of the box. A NIRCam exposure covers a fraction
    of its bounding box (two modules, gaps, rotated on the grid).

    Parameters
    ----------
    grid_shape : tuple of int
        Shape of the full output grid.
    n_groups : int
        Number of group images that will be added.
    in_memory : bool
        Keep them in memory; else write them to temporary files (as stock's on-disk
        median) and read back one band of grid rows at a time.
    dtype : dtype, optional
        Data type of the images.
    tempdir : str or Path, optional
        Parent folder of the temporary folder (default: the system's temporary folder).
    """

    def __init__(self, grid_shape, n_groups, *, in_memory, dtype=np.float32, tempdir=None):
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.n_groups = int(n_groups)
        self.in_memory = bool(in_memory)
        self.dtype = np.dtype(dtype)
        self._groups = []  # _StoredGroup
        self._tempdir = None if in_memory else tempfile.TemporaryDirectory(prefix="ceers_median_", dir=tempdir)

    def add(self, image, box):
        """
        Add one group image.

        Parameters
        ----------
        image : ndarray
            The full-grid image, NaN outside ``box``.
        box : GridCutout
            A rectangle holding all its non-NaN pixels (zero-sized: nothing kept).
        """
        if box.shape[0] == 0 or box.shape[1] == 0:
            return
        cutout = image[box.y0 : box.y1, box.x0 : box.x1]
        finite = ~np.isnan(cutout)
        row_starts = np.zeros(box.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.count_nonzero(finite, axis=1), out=row_starts[1:])
        bits = np.packbits(finite, axis=1)
        values = np.asarray(cutout[finite], dtype=self.dtype)
        del finite
        if not self.in_memory:
            stem = Path(self._tempdir.name) / f"group{len(self._groups):04d}"
            bits.tofile(f"{stem}_mask.bin")
            values.tofile(f"{stem}_values.bin")
            bits, values = (f"{stem}_mask.bin", bits.shape), (f"{stem}_values.bin", values.shape)
        self._groups.append(_StoredGroup(box, row_starts, bits, values))

    def median(self, *, rows_per_band=None):
        """
        The NaN-median of the group images over the full grid.

        Parameters
        ----------
        rows_per_band : int, optional
            Grid rows combined at once (default: bands of ~`BAND_BYTES`).

        Returns
        -------
        ndarray
            Full-grid median; NaN where no group has data.
        """
        ny, nx = self.grid_shape
        median = np.full(self.grid_shape, np.nan, dtype=self.dtype)
        if not self._groups:
            return median
        n = len(self._groups)
        groups = [group.opened(self.dtype) for group in self._groups]
        x_lo = min(group.box.x0 for group in groups)
        x_hi = max(group.box.x1 for group in groups)
        y_lo = min(group.box.y0 for group in groups)
        y_hi = max(group.box.y1 for group in groups)
        if rows_per_band is None:
            rows_per_band = max(1, BAND_BYTES // (n * (x_hi - x_lo) * self.dtype.itemsize))
        for r0 in range(y_lo, y_hi, rows_per_band):
            r1 = min(r0 + rows_per_band, y_hi)
            band = np.full((n, r1 - r0, x_hi - x_lo), np.nan, dtype=self.dtype)
            for k, group in enumerate(groups):
                box = group.box
                a0, a1 = max(r0, box.y0), min(r1, box.y1)
                if a0 >= a1:
                    continue
                rows = slice(a0 - box.y0, a1 - box.y0)
                finite = np.unpackbits(group.bits[rows], axis=1, count=box.shape[1]).view(bool)
                target = band[k, a0 - r0 : a1 - r0, box.x0 - x_lo : box.x1 - x_lo]
                target[finite] = group.values[group.row_starts[rows.start] : group.row_starts[rows.stop]]
            band = band.reshape(n, -1)
            covered = np.flatnonzero((~np.isnan(band)).any(axis=0))
            if covered.size:
                values = np.full(band.shape[1], np.nan, dtype=self.dtype)
                values[covered] = nanmedian_columns(band[:, covered])
                median[r0:r1, x_lo:x_hi] = values.reshape(r1 - r0, x_hi - x_lo)
        log.info(
            "Median of %d group image(s): %.1f Mpix of data kept (%.2f GB with masks), grid %.1f Mpix",
            n, sum(g.values.shape[0] for g in groups) / 1e6,
            sum(g.values.nbytes + g.bits.nbytes for g in groups) / 2**30, ny * nx / 1e6,
        )
        return median

    def cleanup(self):
        """Forget the group images and remove the temporary files (on disk)."""
        self._groups = []
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
