"""Saved WCS solutions: ``<wcs_dir>/<exposure>_tweakreg.asdf``.

Each file written here holds the aligned gwcs (``wcs``), the model's
``meta.wcsinfo`` after alignment (``wcsinfo``, including the FITS/SIP
approximation) and a few provenance fields. Re-applying it sets exactly the saved
transform, so a later reduction reproduces the aligned WCS without refitting
(CEERS' practice).

CEERS's published solutions are read as they are: they hold only ``wcs`` (no
``wcsinfo``) and are named ``<root>_tweakreg.asdf`` or, in an earlier release,
``<root>_<asn id>_tweakreg.asdf`` (e.g. ``..._nrca1_a3001_tweakreg.asdf``).
:func:`find_wcs_solution` looks for both, in that order.
"""

import logging
import re
from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import atomic_output
from jwst_ceers.errors import CeersDataError, CeersFileError
from jwst_ceers.file_names import exposure_root
from jwst_ceers.inputs import require_file

__all__ = [
    "solution_path",
    "solution_candidates",
    "find_wcs_solution",
    "asn_id_of",
    "check_solution_frame",
    "fits_header_offset_mas",
    "save_wcs_solution",
    "load_wcs_solution",
    "exposure_root",
]

log = logging.getLogger(__name__)

SOLUTION_SUFFIX = "_tweakreg.asdf"
# association ids as they appear in Level-3 names: a3001 (CEERS), o001, c1000
_ASN_ID = re.compile(r"^(a\d{4}|o\d{3}|c\d{4})$", re.IGNORECASE)
# a solution's bounding box may differ from the frame edges (-0.5, n - 0.5) by this much (pixels)
_FRAME_TOLERANCE = 1.0


def solution_path(wcs_dir, filename):
    """Path of the saved solution of exposure ``filename`` in ``wcs_dir`` (the name written here)."""
    return Path(wcs_dir) / f"{exposure_root(filename)}{SOLUTION_SUFFIX}"


def asn_id_of(filename):
    """
    Association id carried in a Level-2/3 file name, or None.

    ``jw01345001001_02201_00001_nrca1_a3001_match.fits`` -> ``a3001``.
    """
    name = Path(str(filename)).name
    root = exposure_root(name)
    rest = name[len(root):] if name.startswith(root) else ""
    for word in rest.split("."):
        for part in word.split("_"):
            if _ASN_ID.match(part):
                return part.lower()
    return None


def solution_candidates(wcs_dir, filename, *, asn_ids=()):
    """
    Solution files looked for, in order, for exposure ``filename``.

    ``<root>_tweakreg.asdf`` first, then ``<root>_<asn id>_tweakreg.asdf`` for each
    association id given (and the one in ``filename`` itself, if any).

    Returns
    -------
    list of Path
    """
    root = exposure_root(filename)
    ids = [i.lower() for i in asn_ids if i]
    own = asn_id_of(filename)
    if own and own not in ids:
        ids.append(own)
    wcs_dir = Path(wcs_dir)
    return [wcs_dir / f"{root}{SOLUTION_SUFFIX}"] + [wcs_dir / f"{root}_{i}{SOLUTION_SUFFIX}" for i in ids]


def find_wcs_solution(wcs_dir, filename, *, asn_ids=()):
    """
    The saved solution of exposure ``filename``, or None.

    Tries :func:`solution_candidates` in order; when no association id is known,
    also accepts a single ``<root>_<asn id>_tweakreg.asdf`` found in ``wcs_dir``.

    Returns
    -------
    path : Path or None
        The file found.
    looked_for : list of str
        Every name tried (for the message when nothing is found).

    Raises
    ------
    CeersFileError
        When several ``<root>_<asn id>_tweakreg.asdf`` files exist and no association
        id says which one is meant.
    """
    candidates = solution_candidates(wcs_dir, filename, asn_ids=asn_ids)
    for path in candidates:
        if path.is_file():
            return path, [str(p) for p in candidates]
    root = exposure_root(filename)
    pattern = f"{root}_*{SOLUTION_SUFFIX}"
    found = sorted(
        p for p in Path(wcs_dir).glob(pattern)
        if _ASN_ID.match(p.name[len(root) + 1: -len(SOLUTION_SUFFIX)])
    )
    looked_for = [str(p) for p in candidates] + [str(Path(wcs_dir) / f"{root}_<asn id>{SOLUTION_SUFFIX}")]
    if len(found) == 1:
        return found[0], looked_for
    if len(found) > 1:
        raise CeersFileError(
            f"{filename}: several saved WCS solutions in {wcs_dir} ({', '.join(p.name for p in found)}) and "
            "no association id to choose one; keep one or give the association (its asn_id picks the file)"
        )
    return None, looked_for


def check_solution_frame(wcs, shape, *, solution, exposure):
    """
    Refuse a solution whose bounding box is not the exposure's frame.

    A full-frame (2048 x 2048) solution applied to a subarray would place it by the
    subarray's offset (hundreds of pixels) without any other sign.

    Parameters
    ----------
    wcs : `gwcs.WCS`
        The saved solution.
    shape : tuple of int
        (ny, nx) of the exposure's data.
    solution, exposure : str
        Names for the message.

    Raises
    ------
    CeersDataError
        Naming both files, the bounding box and the frame.
    """
    try:
        box = wcs.bounding_box
    except NotImplementedError:  # gwcs raises it for a transform without a bounding box
        box = None
    if box is None:
        log.warning("%s: no bounding box; cannot check that it fits %s (%d x %d)", solution, exposure, shape[1], shape[0])
        return
    # astropy's ModelBoundingBox, or the plain ((x0, x1), (y0, y1)) tuple older gwcs gave
    intervals = box.bounding_box(order="F") if hasattr(box, "bounding_box") else box
    intervals = [tuple(float(v) for v in interval) for interval in intervals]
    ny, nx = shape[-2:]
    frame = [(-0.5, nx - 0.5), (-0.5, ny - 0.5)]
    error = max(abs(a - b) for interval, edges in zip(intervals, frame, strict=True) for a, b in zip(interval, edges))
    if not np.isfinite(error) or error > _FRAME_TOLERANCE:
        raise CeersDataError(
            f"{solution}: bounding box x {intervals[0]}, y {intervals[1]} does not fit the frame of "
            f"{exposure} ({nx} x {ny} pixels: x {frame[0]}, y {frame[1]}); a full-frame solution cannot be "
            "applied to a subarray (or the other way round)"
        )


def save_wcs_solution(path, wcs, wcsinfo, *, provenance=None):
    """
    Write a WCS solution atomically.

    Parameters
    ----------
    path : str or Path
        Output file (``..._tweakreg.asdf``).
    wcs : `gwcs.WCS`
        The aligned WCS.
    wcsinfo : dict
        ``meta.wcsinfo`` contents to restore with it.
    provenance : dict, optional
        Extra information stored under ``provenance`` (strings and numbers).
    """
    import asdf

    path = Path(path)
    tree = {"wcs": wcs, "wcsinfo": dict(wcsinfo), "provenance": dict(provenance or {})}
    with atomic_output(path) as tmp:
        asdf.AsdfFile(tree).write_to(tmp)
    return path


def load_wcs_solution(path):
    """
    Read a saved solution.

    Returns
    -------
    wcs : `gwcs.WCS`
    wcsinfo : dict

    Raises
    ------
    CeersFileError
        If the file is missing, unreadable or has no ``wcs`` entry.
    """
    import asdf

    path = require_file(path, what="saved WCS solution")
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as handle:
            wcs = handle.tree.get("wcs")
            wcsinfo = dict(handle.tree.get("wcsinfo", {}))
    except Exception as exc:  # asdf raises many types for corrupt files
        raise CeersFileError(f"{path}: cannot be read as a saved WCS solution ({exc})") from exc
    if wcs is None:
        raise CeersFileError(f"{path}: no 'wcs' entry in the saved WCS solution")
    return wcs, wcsinfo


def fits_header_offset_mas(wcsinfo, wcs, shape, *, npoints=17):
    """
    Largest sky distance between a FITS/SIP ``wcsinfo`` and a gwcs over a detector.

    What DS9, astropy and catalogues see (the FITS keywords of ``meta.wcsinfo``)
    compared with what jwst uses (the gwcs), on an ``npoints`` x ``npoints`` grid
    spanning the frame edge to edge.

    Parameters
    ----------
    wcsinfo : mapping
        ``meta.wcsinfo`` contents (lower-case FITS keywords: ctype1, crpix1, cd1_1,
        a_order, a_0_2 ...).
    wcs : `gwcs.WCS`
    shape : tuple of int
        (ny, nx) of the frame.
    npoints : int, optional

    Returns
    -------
    float
        Maximum distance in milli-arcseconds.
    """
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    header = fits.Header()
    for key, value in dict(wcsinfo).items():
        if len(key) <= 8 and isinstance(value, (str, int, float, np.integer, np.floating)):
            header[key.upper()] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        fits_wcs = WCS(header)
    ny, nx = shape[-2:]
    x, y = np.meshgrid(np.linspace(0, nx - 1, npoints), np.linspace(0, ny - 1, npoints))
    ra_h, dec_h = fits_wcs.all_pix2world(x, y, 0)
    ra_g, dec_g = wcs(x, y, with_bounding_box=False)
    dra = (ra_h - ra_g) * np.cos(np.deg2rad(dec_g))
    return float(3.6e6 * np.max(np.hypot(dra, dec_h - dec_g)))
