"""Median of drizzled exposure groups stored as cut-outs of the output grid.

Stock outlier_detection (``stcal.outlier_detection.median.MedianComputer``) stacks one
full output-grid image per exposure group and runs ``np.nanmedian`` over every output
pixel, also the many that no group covers (48 x 1024^2 NIRCam inputs: 20 of 35 Mpix;
numpy then emits one "All-NaN slice" warning per such pixel, 24 s of a 41 s median).
Here each group keeps only the rectangle of the grid where its drizzled data are not
NaN, and the median is computed only where at least one group has data, with the
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


class CutoutStack:
    """
    Drizzled group images as cut-outs, in memory or in temporary files, and their median.

    Parameters
    ----------
    grid_shape : tuple of int
        Shape of the full output grid.
    n_groups : int
        Number of group images that will be added.
    in_memory : bool
        Keep the cut-outs in memory; else write each to a temporary file (like stock's
        on-disk median) and read back one band of rows at a time.
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
        self._cutouts = []  # (GridCutout, array or Path)
        self._tempdir = None if in_memory else tempfile.TemporaryDirectory(prefix="ceers_median_", dir=tempdir)

    def add(self, image, box):
        """
        Add one group image, of which only ``box`` (a `GridCutout`) is kept.

        Parameters
        ----------
        image : ndarray
            The full-grid image, NaN outside ``box``.
        box : GridCutout
            The rectangle to keep (zero-sized: nothing kept).
        """
        if box.shape[0] == 0 or box.shape[1] == 0:
            return
        cutout = image[box.y0 : box.y1, box.x0 : box.x1]
        if self.in_memory:
            self._cutouts.append((box, np.array(cutout, dtype=self.dtype, copy=True)))
        else:
            path = Path(self._tempdir.name) / f"group{len(self._cutouts):04d}.bin"
            np.ascontiguousarray(cutout, dtype=self.dtype).tofile(path)
            self._cutouts.append((box, path))

    def _arrays(self):
        for box, item in self._cutouts:
            if isinstance(item, Path):
                yield box, np.memmap(item, dtype=self.dtype, mode="r", shape=box.shape)
            else:
                yield box, item

    def median(self, *, rows_per_band=None):
        """
        The NaN-median of the group images over the full grid.

        Parameters
        ----------
        rows_per_band : int, optional
            Grid rows combined at once (default: as stock's on-disk median, about one
            grid image of data in the band buffer).

        Returns
        -------
        ndarray
            Full-grid median; NaN where no group has data.
        """
        ny, nx = self.grid_shape
        median = np.full(self.grid_shape, np.nan, dtype=self.dtype)
        if not self._cutouts:
            return median
        n = len(self._cutouts)
        if rows_per_band is None:
            rows_per_band = max(1, ny // max(n, 1))
        x_lo = min(box.x0 for box, _ in self._cutouts)
        x_hi = max(box.x1 for box, _ in self._cutouts)
        y_lo = min(box.y0 for box, _ in self._cutouts)
        y_hi = max(box.y1 for box, _ in self._cutouts)
        arrays = list(self._arrays())
        for r0 in range(y_lo, y_hi, rows_per_band):
            r1 = min(r0 + rows_per_band, y_hi)
            band = np.full((n, r1 - r0, x_hi - x_lo), np.nan, dtype=self.dtype)
            for k, (box, array) in enumerate(arrays):
                a0, a1 = max(r0, box.y0), min(r1, box.y1)
                if a0 >= a1:
                    continue
                band[k, a0 - r0 : a1 - r0, box.x0 - x_lo : box.x1 - x_lo] = array[a0 - box.y0 : a1 - box.y0]
            band = band.reshape(n, -1)
            covered = np.flatnonzero((~np.isnan(band)).any(axis=0))
            if covered.size:
                values = np.full(band.shape[1], np.nan, dtype=self.dtype)
                values[covered] = nanmedian_columns(band[:, covered])
                median[r0:r1, x_lo:x_hi] = values.reshape(r1 - r0, x_hi - x_lo)
        log.info(
            "Median of %d group cut-out(s) (%.1f of %.1f Mpix covered by the union of their boxes)",
            n, (y_hi - y_lo) * (x_hi - x_lo) / 1e6, ny * nx / 1e6,
        )
        return median

    def cleanup(self):
        """Remove the temporary files (on disk)."""
        self._cutouts = []
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
