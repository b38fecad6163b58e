"""Hand edits of the merged mask from DS9 region files (astropy ``regions``).

Convention (DS9's own include/exclude flag): a shape written normally, e.g.
``circle(100,200,30)``, ADDS its pixels to the merged mask; a shape prefixed with a
minus sign, e.g. ``-box(...)`` (DS9 "exclude"), REMOVES its pixels from it. Shapes are
applied in file order, files in the order given, so a later shape wins. Sky shapes
(fk5/icrs) are converted to pixels with the mosaics' FITS WCS; image-coordinate shapes
are used as they are. A pixel belongs to a shape when its centre does; shapes are
clipped to the image, so a shape much larger than the mosaic costs no more than the
mosaic. Only shapes with an area edit the mask: ``text`` shapes (labels) are skipped
with a warning; ``point`` and ``line`` shapes are refused (CeersFileError naming the
file and shape), since they cannot say which pixels to add or remove.
"""

import logging

import numpy as np
from regions import PixCoord, PixelRegion, Regions, SkyRegion

from jwst_ceers.errors import CeersFileError
from jwst_ceers.inputs import require_file

log = logging.getLogger(__name__)

# shapes without an area: labels are skipped, the others refused
_LABEL_SHAPES = ("TextPixelRegion", "TextSkyRegion")
_NO_AREA_SHAPES = ("PointPixelRegion", "PointSkyRegion", "LinePixelRegion", "LineSkyRegion")
# bounding boxes up to this many times the image are rasterised whole (regions' to_mask)
_WHOLE_MASK_FACTOR = 4
# rows per chunk when a huge shape is evaluated on the image's pixel centres
_ROWS_PER_CHUNK = 256

__all__ = ["read_region_edits", "apply_region_edits"]


def read_region_edits(paths):
    """
    Read DS9 region files.

    Returns
    -------
    list of (region, bool)
        Each shape and whether it adds (True) or removes (False) pixels.

    Raises
    ------
    CeersFileError
        If a file is missing or cannot be parsed.
    """
    edits = []
    for path in paths or ():
        path = require_file(path, what="edit_regions file")
        try:
            shapes = Regions.read(str(path), format="ds9")
        except Exception as exc:  # regions raises several parser error types
            raise CeersFileError(f"{path}: cannot be read as a DS9 region file ({exc})") from exc
        labels = 0
        for number, shape in enumerate(shapes, start=1):
            kind = type(shape).__name__
            if kind in _LABEL_SHAPES:
                labels += 1
                continue
            if kind in _NO_AREA_SHAPES or not hasattr(shape, "to_mask" if _is_pixel(shape) else "to_pixel"):
                raise CeersFileError(
                    f"{path}: shape {number} ({kind.replace('PixelRegion', '').replace('SkyRegion', '').lower()}) "
                    "has no area, so it cannot add or remove mask pixels; use circle, ellipse, box, "
                    "polygon or annulus shapes"
                )
            include = shape.meta.get("include", True)
            edits.append((shape, bool(include)))
        if labels:
            log.warning("%s: %d text shape(s) (labels) ignored: they have no area", path, labels)
    return edits


def _is_pixel(shape):
    return isinstance(shape, PixelRegion)


def apply_region_edits(mask, edits, *, wcs=None):
    """
    Return a copy of ``mask`` with the region edits applied.

    Parameters
    ----------
    mask : ndarray of bool
        Merged source mask.
    edits : list of (region, bool)
        From :func:`read_region_edits`.
    wcs : `astropy.wcs.WCS`, optional
        Needed for sky regions.

    Returns
    -------
    ndarray of bool
    """
    out = np.array(mask, dtype=bool, copy=True)
    for shape, add in edits:
        if isinstance(shape, SkyRegion):
            if wcs is None:
                raise CeersFileError("edit_regions: a sky region needs the mosaics' WCS")
            shape = shape.to_pixel(wcs)
        big, inside = _pixels_inside(shape, out.shape)
        if big is None:
            continue
        if add:
            out[big] |= inside
        else:
            out[big] &= ~inside
    return out


def _pixels_inside(shape, image_shape):
    """
    (slices of the image, bool array over them) for the pixel centres inside ``shape``.

    ``(None, None)`` when the shape misses the image. Shapes whose bounding box is far
    larger than the image are evaluated only on the image's pixels.
    """
    ny, nx = image_shape
    box = shape.bounding_box
    ymin, ymax = max(box.iymin, 0), min(box.iymax, ny)
    xmin, xmax = max(box.ixmin, 0), min(box.ixmax, nx)
    if ymin >= ymax or xmin >= xmax:
        return None, None
    if box.shape[0] * box.shape[1] <= _WHOLE_MASK_FACTOR * ny * nx:
        region_mask = shape.to_mask(mode="center")
        big, small = region_mask.get_overlap_slices(image_shape)
        if big is None:
            return None, None
        return big, region_mask.data[small].astype(bool)
    inside = np.zeros((ymax - ymin, xmax - xmin), dtype=bool)
    x = np.arange(xmin, xmax, dtype=np.float64)
    for y0 in range(ymin, ymax, _ROWS_PER_CHUNK):
        y1 = min(y0 + _ROWS_PER_CHUNK, ymax)
        xx, yy = np.meshgrid(x, np.arange(y0, y1, dtype=np.float64))
        inside[y0 - ymin:y1 - ymin] = shape.contains(PixCoord(xx, yy))
    return (slice(ymin, ymax), slice(xmin, xmax)), inside
