"""Hand edits of the merged mask from DS9 region files (astropy ``regions``).

Convention (DS9's own include/exclude flag): a shape written normally, e.g.
``circle(100,200,30)``, ADDS its pixels to the merged mask; a shape prefixed with a
minus sign, e.g. ``-box(...)`` (DS9 "exclude"), REMOVES its pixels from it. Shapes are
applied in file order, files in the order given, so a later shape wins. Sky shapes
(fk5/icrs) are converted to pixels with the mosaics' FITS WCS; image-coordinate shapes
are used as they are. A pixel belongs to a shape when its centre does.
"""

import numpy as np

from jwst_ceers.errors import CeersFileError

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
    from pathlib import Path

    from regions import Regions

    edits = []
    for path in paths or ():
        path = require_file(path, what="edit_regions file")
        try:
            shapes = Regions.read(str(path), format="ds9")
        except Exception as exc:  # regions raises several parser error types
            raise CeersFileError(f"{path}: cannot be read as a DS9 region file ({exc})") from exc
        for shape in shapes:
            include = shape.meta.get("include", True)
            edits.append((shape, bool(include)))
    return edits


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
    from regions import SkyRegion

    out = np.array(mask, dtype=bool, copy=True)
    for shape, add in edits:
        if isinstance(shape, SkyRegion):
            if wcs is None:
                raise CeersFileError("edit_regions: a sky region needs the mosaics' WCS")
            shape = shape.to_pixel(wcs)
        region_mask = shape.to_mask(mode="center")
        big, small = region_mask.get_overlap_slices(out.shape)
        if big is None:
            continue
        inside = region_mask.data[small].astype(bool)
        if add:
            out[big] |= inside
        else:
            out[big] &= ~inside
    return out
