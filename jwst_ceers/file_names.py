"""Exposure roots of JWST product file names, shared by every step that pairs files.

``jw01345001001_02101_00001_nrca1_a3001_crf.fits``, ``..._cal.fits`` and
``..._rate.fits`` all belong to the exposure ``jw01345001001_02101_00001_nrca1``; saved
WCS solutions, source masks and skymatch groups are keyed by that root.
"""

import re
from pathlib import Path

__all__ = ["CEERS_STEP_SUFFIXES", "exposure_root"]

# jw<program 5><observation 3><visit 3>_<visit group 2><sequence 1><activity 2>_<exposure 5>_<detector>
_JWST_ROOT = re.compile(r"^(jw\d{11}_\d{5}_\d{5}_[a-z0-9]+?)(?=_|$)", re.IGNORECASE)

# Output suffixes of the jwst_ceers steps (their aliases without "ceers_", and the
# background-subtracted products); the one list, used by the steps' naming too.
CEERS_STEP_SUFFIXES = ("varfill", "pedestal", "mosaic_bkg", "bkgsub")

# product suffixes that may follow an exposure root (stripped repeatedly, last first):
# stock jwst products, CEERS's own scripts' products (wisp/1/f/snowball corrections,
# match = skymatched) and the jwst_ceers steps'
_SUFFIXES = (
    "uncal", "rate", "rateints", "cal", "crf", "i2d", "s2d", "bsub", "tweakreg", "skymatch",
    "outlier_i2d", "outlierdetection", "match", "skysub",
    "wisp", "1overf", "1fcor", "snowball",
    *CEERS_STEP_SUFFIXES,
)
_ASN_ID = re.compile(r"^(o\d{3}|c\d{4}|a\d{4})$", re.IGNORECASE)


def exposure_root(filename):
    """
    Exposure root of a JWST product file name.

    Examples: ``jw01345001001_02101_00001_nrca1_a3001_crf.fits`` ->
    ``jw01345001001_02101_00001_nrca1``; ``myexp_cal.fits`` -> ``myexp``.

    Parameters
    ----------
    filename : str or Path
        File name (directory ignored).

    Returns
    -------
    str
    """
    name = Path(str(filename)).name
    for extension in (".fits.gz", ".fits", ".fit", ".asdf"):
        if name.lower().endswith(extension):
            name = name[: -len(extension)]
            break
    match = _JWST_ROOT.match(name)
    if match:
        return match.group(1)
    parts = name.split("_")
    while len(parts) > 1 and (parts[-1].lower() in _SUFFIXES or _ASN_ID.match(parts[-1])):
        parts.pop()
    return "_".join(parts)
