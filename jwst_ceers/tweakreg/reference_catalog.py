"""Absolute astrometric reference catalogs (user files: ECSV, FITS, ...).

The catalog needs right ascension and declination, in degrees (numbers, or unit-
carrying columns convertible to degrees) or as sexagesimal strings (RA in hours
``14:19:21.3`` / ``14h19m21.3s``, DEC in degrees ``+52:52:01`` / ``52d52m01s``), in
columns named RA/DEC in any capitalisation (also ``ra_deg``/``dec_deg``, ``alpha_j2000`` /
``delta_j2000``, ``x_world``/``y_world``); a magnitude column (``MAG``,
``mag``, ``mag_auto``, ...) is optional and only used for brightness cuts.
The result always has upper-case ``RA``/``DEC`` (and ``MAG`` when found), which
is what tweakwcs expects.
"""

import logging

import numpy as np
from astropy.table import Table

from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.inputs import require_file

__all__ = ["load_reference_catalog"]

log = logging.getLogger(__name__)

_RA_NAMES = ("ra", "ra_deg", "raj2000", "alpha_j2000", "x_world")
_DEC_NAMES = ("dec", "dec_deg", "dej2000", "decj2000", "delta_j2000", "y_world")
_MAG_NAMES = ("mag", "magnitude", "mag_auto", "mag_best", "f160w_mag", "mag_f160w")


def _find_column(table, candidates):
    lower = {}
    for name in table.colnames:
        lower.setdefault(name.lower(), name)
    return next((lower[c] for c in candidates if c in lower), None)


def load_reference_catalog(path, *, mag_range=None):
    """
    Read an absolute reference catalog.

    Parameters
    ----------
    path : str or Path
        Catalog file readable by `astropy.table.Table.read`.
    mag_range : sequence of two floats, optional
        Keep sources with ``mag_range[0] <= MAG <= mag_range[1]``. Requires a
        magnitude column.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``RA``, ``DEC`` (deg) and ``MAG`` when present; rows with
        non-finite coordinates removed; ``meta['name']`` is the file name.

    Raises
    ------
    CeersFileError
        If the file is missing or unreadable, has no RA/DEC (or, with
        ``mag_range``, no magnitude) column, or no row with finite RA/DEC.
    CeersParameterError
        If ``mag_range`` is not two increasing numbers or keeps no source.
    """
    path = require_file(path, what="abs_refcat file")
    try:
        table = Table.read(path)
    except Exception as exc:  # astropy raises many types for unreadable tables
        raise CeersFileError(f"abs_refcat {path}: cannot be read as a table ({exc})") from exc

    ra_name = _find_column(table, _RA_NAMES)
    dec_name = _find_column(table, _DEC_NAMES)
    if ra_name is None or dec_name is None:
        raise CeersFileError(
            f"abs_refcat {path}: no RA/DEC columns found (columns: {', '.join(table.colnames)})"
        )
    out = Table()
    out["RA"], out["DEC"] = _coordinates_in_degrees(table[ra_name], table[dec_name], path=path)
    mag_name = _find_column(table, _MAG_NAMES)
    if mag_name is not None:
        out["MAG"] = np.asarray(table[mag_name], dtype=np.float64)

    good = np.isfinite(out["RA"]) & np.isfinite(out["DEC"])
    if mag_range is not None:
        if len(mag_range) != 2 or not mag_range[0] < mag_range[1]:
            raise CeersParameterError(f"abs_mag_range must be two increasing numbers, got {mag_range}")
        if mag_name is None:
            raise CeersFileError(f"abs_refcat {path}: abs_mag_range given but the catalog has no magnitude column")
        good &= (out["MAG"] >= mag_range[0]) & (out["MAG"] <= mag_range[1])
    out = out[good]
    if len(out) == 0:
        if mag_range is not None and np.isfinite(np.asarray(table[ra_name], dtype=np.float64)).any():
            raise CeersParameterError(f"abs_mag_range={list(mag_range)} keeps no source of abs_refcat {path}")
        raise CeersFileError(f"abs_refcat {path}: holds no source with finite RA/DEC")
    out.meta["name"] = path.name
    log.info("Reference catalog %s: %d sources", path.name, len(out))
    return out


def _coordinates_in_degrees(ra, dec, *, path):
    """RA and DEC columns as float64 degrees: numbers, angle quantities or sexagesimal strings."""
    if ra.dtype.kind in "US" or dec.dtype.kind in "US" or ra.dtype.kind == "O":
        return _parse_text_coordinates(ra, dec, path=path)
    try:
        return _as_degrees(ra), _as_degrees(dec)
    except (TypeError, ValueError) as exc:
        raise CeersFileError(f"abs_refcat {path}: RA/DEC columns are not numbers or angles ({exc})") from exc


def _parse_text_coordinates(ra, dec, *, path):
    """Text RA/DEC: decimal degrees, or sexagesimal (RA in hours, DEC in degrees)."""
    from astropy.coordinates import SkyCoord  # function-local: only text catalogs need it
    from astropy import units as u

    ra_text = np.char.strip(np.asarray(ra, dtype=str))
    dec_text = np.char.strip(np.asarray(dec, dtype=str))
    try:
        return ra_text.astype(np.float64), dec_text.astype(np.float64)
    except ValueError:
        pass
    ra_unit = u.deg if ra.unit is not None and str(ra.unit) == "deg" else u.hourangle
    try:
        coords = SkyCoord(ra_text, dec_text, unit=(ra_unit, u.deg), frame="icrs")
    except Exception as exc:  # astropy raises ValueError/UnitsError/... for unparsable angles
        raise CeersFileError(
            f"abs_refcat {path}: RA/DEC are text that is neither decimal degrees nor sexagesimal "
            f"(e.g. RA={str(ra_text[0])!r}, DEC={str(dec_text[0])!r})"
        ) from exc
    log.info("Reference catalog %s: sexagesimal RA (hours) / DEC (degrees) converted to degrees", path.name)
    return coords.ra.deg, coords.dec.deg


def _as_degrees(column):
    unit = getattr(column, "unit", None)
    values = np.asarray(column, dtype=np.float64)
    if unit is not None and str(unit) not in ("", "deg"):
        try:
            values = (values * unit).to_value("deg")
        except Exception:  # unit not convertible to an angle: keep numbers as degrees
            log.warning("Reference catalog column unit %s is not an angle; assuming degrees", unit)
    return values
