"""
Finding and reading user-supplied source masks ``<exposure-root>_<suffix>.fits``.

CEERS writes its tiered source masks during the 1/f correction as segmentation maps
named after the rate file (``<root>_rate_1fmask.fits``); later products of the same
exposure carry other suffixes (``_cal``, ``_crf``, ``_a3001_crf``, ``_tweakreg`` ...).
The exposure root is recovered from the JWST file-name pattern when possible, else by
stripping known product suffixes.
"""

import logging
import re
from pathlib import Path

import numpy as np

from jwst_ceers.errors import CeersFileError

__all__ = ["exposure_root", "mask_candidates", "find_mask_file", "read_mask_file"]

log = logging.getLogger(__name__)

# jw<program 5><observation 3><visit 3>_<visit group 2><sequence 1><activity 2>_<exposure 5>_<detector>
_JWST_ROOT = re.compile(r"^(jw\d{11}_\d{5}_\d{5}_[a-z0-9]+?)(?=_|$)", re.IGNORECASE)

# product suffixes that may follow an exposure root (stripped repeatedly, last first)
_SUFFIXES = (
    "uncal", "rate", "rateints", "cal", "crf", "i2d", "s2d", "bsub", "tweakreg", "skymatch",
    "outlier_i2d", "outlierdetection", "match", "skysub", "bkgsub", "pedestalskysub",
    "ceers_pedestal", "wisp", "1overf", "1fcor", "snowball", "varfill", "variancehole_fill",
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


def mask_candidates(filename, suffix, directory):
    """Mask file names tried, in order: ``<root>_<suffix>``, ``<root>_rate_<suffix>``, ``<root>_cal_<suffix>``."""
    root = exposure_root(filename)
    directory = Path(directory)
    return [directory / f"{root}{middle}_{suffix}.fits" for middle in ("", "_rate", "_cal")]


def find_mask_file(filename, suffix, directories):
    """First existing candidate mask file in ``directories`` (None if there is none)."""
    for directory in directories:
        if directory is None:
            continue
        for candidate in mask_candidates(filename, suffix, directory):
            if candidate.is_file():
                return candidate
    return None


def read_mask_file(path, shape):
    """
    Read a source mask (segmentation map or boolean/0-1 image) as bool, True = source.

    The first image HDU with 2-D data is used (PRIMARY, else SCI/MASK/first extension).

    Raises
    ------
    CeersFileError
        If the file is unreadable, holds no 2-D image, or its shape is not ``shape``.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            data = None
            for hdu in hdul:
                if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
                    data = np.asarray(hdu.data)
                    break
    except OSError as exc:
        raise CeersFileError(f"{path}: cannot read source mask file: {exc}") from exc
    if data is None:
        raise CeersFileError(f"{path}: source mask file holds no 2-D image")
    if data.shape != tuple(shape):
        raise CeersFileError(
            f"{path}: source mask shape {data.shape} does not match the exposure's {tuple(shape)}"
        )
    if data.dtype.kind == "f":
        return np.isfinite(data) & (data != 0)
    return data != 0
