"""The table of alignment fits (``results_file``), read from tweakwcs ``fit_info``.

CEERS parsed the tweakreg log into ``tweakreg_results_all.<visit>_<filter>.txt``;
here every number comes from the fit's own ``fit_info`` dictionary, one row per
fit: a relative fit per image, an absolute fit per group.

Columns: ``kind`` (relative / absolute / visit / saved), ``group``, ``image``
(one exposure, or the comma-separated members of an absolute fit), ``nmatch``,
``rmse`` and ``mae`` (arcsec), ``xshift`` and ``yshift`` (arcsec, in the fit's
V2/V3-aligned tangent plane), ``rotation`` (deg), ``scale``, ``fitgeometry``
and ``status`` (SUCCESS, REFERENCE, FAILED: / SKIPPED: reason, APPLIED).
An absolute row holds the group's whole correction (first pass, visit-level
rotation and refinement summed; ``fitgeometry`` e.g. ``shift+visit-rshift``)
with the match statistics of its last pass; a visit row (only with
``abs_visit_fitgeometry``) the rotation/scale common to the visit's groups.
"""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from astropy.table import Table

from jwst_ceers.atomic_io import atomic_output

__all__ = ["FitRecord", "record_from_fit_info", "results_table", "write_results_table"]


@dataclass
class FitRecord:
    """One alignment fit (one row of the results table)."""

    kind: str
    group: str
    image: str
    nmatch: int = 0
    rmse: float = np.nan
    mae: float = np.nan
    xshift: float = np.nan
    yshift: float = np.nan
    rotation: float = np.nan
    scale: float = np.nan
    fitgeometry: str = ""
    status: str = ""

    @classmethod
    def without_fit(cls, kind, group, image, status, fitgeometry=""):
        """A row with no fit of its own: failed, skipped, or applied from a saved solution (``status`` says which)."""
        return cls(kind=kind, group=group, image=image, fitgeometry=fitgeometry, status=status)


def record_from_fit_info(kind, group, image, fit_info, *, status=None):
    """
    Build a `FitRecord` from a tweakwcs ``fit_info`` dictionary.

    Parameters
    ----------
    kind, group, image : str
        Row identification.
    fit_info : dict
        ``corrector.meta['fit_info']`` after `tweakwcs.align_wcs`.
    status : str, optional
        Status to record instead of ``fit_info['status']``.
    """
    status = status if status is not None else fit_info.get("status", "")
    record = FitRecord(kind=kind, group=group, image=image, status=status)
    record.fitgeometry = str(fit_info.get("fitgeom", ""))
    if "nmatches" in fit_info:
        record.nmatch = int(fit_info["nmatches"])
    if status != "SUCCESS":
        return record
    shift = np.asarray(fit_info["shift"], dtype=float)
    record.rmse = float(fit_info["rmse"])
    record.mae = float(fit_info["mae"])
    record.xshift = float(shift[0])
    record.yshift = float(shift[1])
    record.rotation = float(fit_info.get("proper_rot", fit_info.get("<rot>", np.nan)))
    record.scale = float(fit_info.get("<scale>", np.nan))
    if "fitmask" in fit_info and not record.nmatch:
        record.nmatch = int(np.count_nonzero(fit_info["fitmask"]))
    return record


_UNITS = {"rmse": "arcsec", "mae": "arcsec", "xshift": "arcsec", "yshift": "arcsec", "rotation": "deg"}


def results_table(records):
    """The results as an `~astropy.table.Table` (one row per `FitRecord`)."""
    names = [f.name for f in fields(FitRecord)]
    rows = [asdict(r) for r in records]
    table = Table(
        {name: [row[name] for row in rows] for name in names},
        dtype=[str, str, str, int, float, float, float, float, float, float, str, str],
    ) if rows else Table(names=names, dtype=[str, str, str, int] + [float] * 6 + [str, str])
    for name, unit in _UNITS.items():
        table[name].unit = unit
    table.meta["description"] = "jwst_ceers ceers_tweakreg alignment fits (from tweakwcs fit_info)"
    return table


def write_results_table(records, path):
    """Write the results of ``records`` to ``path`` as ECSV, atomically; return the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        results_table(records).write(tmp, format="ascii.ecsv", overwrite=True)
    return path
