"""Saved WCS solutions: ``<wcs_dir>/<exposure>_tweakreg.asdf``.

Each file holds the aligned gwcs (``wcs``), the model's ``meta.wcsinfo``
after alignment (``wcsinfo``, including the FITS/SIP approximation) and a few
provenance fields. Re-applying it sets exactly the saved transform, so a later
reduction reproduces the aligned WCS without refitting (CEERS' practice).
"""

import logging
from pathlib import Path

from jwst_ceers.atomic_io import atomic_output
from jwst_ceers.errors import CeersFileError
from jwst_ceers.file_names import exposure_root

__all__ = ["solution_path", "save_wcs_solution", "load_wcs_solution", "exposure_root"]

log = logging.getLogger(__name__)

SOLUTION_SUFFIX = "_tweakreg.asdf"


def solution_path(wcs_dir, filename):
    """Path of the saved solution of exposure ``filename`` in ``wcs_dir``."""
    return Path(wcs_dir) / f"{exposure_root(filename)}{SOLUTION_SUFFIX}"


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

    path = Path(path)
    if not path.is_file():
        raise CeersFileError(f"{path}: saved WCS solution does not exist (use_saved_wcs=True needs it)")
    try:
        with asdf.open(path, lazy_load=False, memmap=False) as handle:
            wcs = handle.tree.get("wcs")
            wcsinfo = dict(handle.tree.get("wcsinfo", {}))
    except Exception as exc:  # asdf raises many types for corrupt files
        raise CeersFileError(f"{path}: cannot be read as a saved WCS solution ({exc})") from exc
    if wcs is None:
        raise CeersFileError(f"{path}: no 'wcs' entry in the saved WCS solution")
    return wcs, wcsinfo
