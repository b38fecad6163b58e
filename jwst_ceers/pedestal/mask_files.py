"""
Finding and reading user-supplied source masks ``<exposure-root>_<suffix>.fits``.

CEERS writes its tiered source masks during the 1/f correction as segmentation maps
named after the rate file (``<root>_rate_1fmask.fits``); later products of the same
exposure carry other suffixes (``_cal``, ``_crf``, ``_a3001_crf``, ``_tweakreg`` ...).
The exposure root is recovered from the JWST file-name pattern when possible, else by
stripping known product suffixes.
"""

import logging
from pathlib import Path

import numpy as np

from jwst_ceers.errors import CeersFileError
from jwst_ceers.file_names import exposure_root

__all__ = ["exposure_root", "mask_candidates", "find_mask_file", "read_mask_file"]

log = logging.getLogger(__name__)



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
