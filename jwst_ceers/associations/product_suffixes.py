"""Which Level-2 products a directory holds: the suffixes stock and CEERS reductions use.

A stock reduction hands Stage 3 ``*_cal.fits`` (or ``*_crf.fits``); CEERS users have
``*_tweakreg.fits`` and ``*_a3001_match.fits``. A directory is searched for the one
kind it holds; when it holds several, or none, the error says which were found.
"""

import logging
from collections import defaultdict

from jwst_ceers.errors import CeersFileError

__all__ = ["RECOGNISED_SUFFIXES", "directory_exposure_files"]

log = logging.getLogger(__name__)

# Level-2 product suffixes recognised in directories when none is given: the stock
# pipeline's cal/crf and CEERS's tweakreg/match (``<root>_a3001_match.fits``), in that order.
RECOGNISED_SUFFIXES = ("cal", "crf", "tweakreg", "match")


def _suffix_census(directory):
    """``{suffix: number of *_<suffix>.fits files}`` of a directory (last underscore word)."""
    counts = defaultdict(int)
    for path in directory.glob("*_*.fits"):
        counts[path.name[: -len(".fits")].rsplit("_", 1)[-1]] += 1
    return dict(sorted(counts.items()))


def directory_exposure_files(path, suffixes=None):
    """
    The ``*_<suffix>.fits`` files of directory ``path``.

    Parameters
    ----------
    path : Path
        A directory.
    suffixes : sequence of str, optional
        Suffixes to take. Default: the one of `RECOGNISED_SUFFIXES` the directory holds.

    Returns
    -------
    list of Path

    Raises
    ------
    CeersFileError
        When nothing matches, or (default) several recognised kinds are present; the
        message lists the suffixes found and those looked for.
    """
    if suffixes is not None:
        matches = [m for s in suffixes for m in path.glob(f"*_{s}.fits")]
        if not matches:
            pattern = ", ".join(f"*_{s}.fits" for s in suffixes)
            found = ", ".join(f"*_{k}.fits ({n})" for k, n in _suffix_census(path).items()) or "no *_<suffix>.fits"
            raise CeersFileError(f"{path}: directory holds no {pattern} file (it holds {found}); give --suffix")
        return matches
    present = {s: sorted(path.glob(f"*_{s}.fits")) for s in RECOGNISED_SUFFIXES}
    present = {s: files for s, files in present.items() if files}
    if len(present) == 1:
        suffix, files = next(iter(present.items()))
        log.info("%s: using the %d *_%s.fits files", path, len(files), suffix)
        return files
    looked_for = ", ".join(f"*_{s}.fits" for s in RECOGNISED_SUFFIXES)
    if not present:
        found = ", ".join(f"*_{k}.fits ({n})" for k, n in _suffix_census(path).items()) or "no *_<suffix>.fits"
        raise CeersFileError(
            f"{path}: directory holds none of {looked_for} (it holds {found}); give --suffix <word>"
        )
    found = ", ".join(f"*_{s}.fits ({len(f)})" for s, f in present.items())
    raise CeersFileError(
        f"{path}: directory holds several kinds of Level-2 products ({found}), possibly of the same exposures; "
        f"give --suffix with the one(s) to associate"
    )
