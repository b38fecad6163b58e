"""Opening and checking user inputs, with errors that name the file and the problem.

Every step checks its inputs here, before any algorithm runs, so that a bad file
ends in a `~jwst_ceers.errors.CeersError` naming it (instead of a traceback from
deep inside numpy or astropy hours into a run):

- :func:`read_association` / :func:`check_input_files`: association JSON readable,
  with members that exist and start like a FITS or ASDF file;
- :func:`open_image_model` / :func:`open_library`: files that open as jwst models;
- :func:`check_image_model`: a non-empty 2-D science array in surface-brightness
  units (MJy/sr) when units are recorded, with DQ/ERR/variance arrays of the same
  shape and no negative variance;
- :func:`input_file_paths`: every file a step input names (to protect them from
  being written);
- :func:`has_usable_pixels`: False for an all-NaN or all-DO_NOT_USE exposure (steps
  then record SKIPPED with a warning rather than fail the whole association);
- :func:`check_wcs`: a WCS is present where one is needed.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jwst_ceers.errors import CeersDataError, CeersFileError

__all__ = [
    "SURFACE_BRIGHTNESS_UNITS",
    "open_image_model",
    "check_image_model",
    "has_usable_pixels",
    "check_wcs",
    "read_association",
    "check_input_files",
    "input_file_paths",
    "require_file",
    "check_complete_asdf",
    "open_library",
    "ARRAYS_OF_SCI_SHAPE",
    "UNPHYSICAL_SURFACE_BRIGHTNESS",
    "unphysical_pixels",
    "VARIANCE_ARRAYS",
]

# bunit_data values accepted as MJy/sr (the unit of Level-2 cal and Level-3 i2d data)
SURFACE_BRIGHTNESS_UNITS = ("mjy/sr", "mjy sr-1", "mjy / sr", "mjy.sr-1", "mjy sr^-1")

# |SCI| above this (MJy/sr) cannot be astronomical: the brightest unsaturated NIRCam
# pixels are ~1e4 MJy/sr; such values are artefacts (e.g. 1e30 fill values) and are
# excluded from every statistic (and flagged DO_NOT_USE by the pipeline)
UNPHYSICAL_SURFACE_BRIGHTNESS = 1e6

# DQ bits that make a pixel unusable (as jwst: DO_NOT_USE, NON_SCIENCE)
_UNUSABLE_DQ = 1 | 512

# First bytes of the file kinds a jwst model can be read from
_MAGIC = (b"SIMPLE  =", b"#ASDF")
# binary block header magic of ASDF files
_ASDF_BLOCK_MAGIC = b"\xd3BLK"
# gzip: datamodels (astropy) opens *.fits.gz directly
_GZIP_MAGIC = b"\x1f\x8b"

# Arrays that must have the science array's shape when present (stdatamodels names)
ARRAYS_OF_SCI_SHAPE = ("dq", "err", "var_poisson", "var_rnoise", "var_flat")
# ... of which these are variances (never negative; NaN and +inf are allowed)
VARIANCE_ARRAYS = ("var_poisson", "var_rnoise", "var_flat")
# arrays that can never be negative: the variances and ERR (their square root)
_NON_NEGATIVE_ARRAYS = ("err", *VARIANCE_ARRAYS)


def require_file(path, *, what):
    """
    Return ``path`` as a Path if it is an existing regular file (or a link to one).

    Raises
    ------
    CeersFileError
        "<path>: <what> is a directory, not a file" or "<path>: <what> does not exist".
    """
    path = Path(path)
    if path.is_dir():
        raise CeersFileError(f"{path}: {what} is a directory, not a file")
    if not path.is_file():
        raise CeersFileError(f"{path}: {what} does not exist")
    return path


def _check_readable_model_file(path, *, what):
    path = require_file(path, what=what)
    try:
        with path.open("rb") as handle:
            start = handle.read(16)
    except OSError as exc:
        raise CeersFileError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from exc
    if start.startswith(_GZIP_MAGIC) and path.name.lower().endswith((".fits.gz", ".fit.gz")):
        return path
    if not start.startswith(_MAGIC):
        raise CeersFileError(f"{path}: {what} is not a FITS or ASDF file (nor a gzipped .fits.gz)")
    if start.startswith(b"#ASDF"):
        check_complete_asdf(path, what=what)
    return path


def check_complete_asdf(path, *, what):
    """
    Raise CeersFileError if an ASDF file is cut short (an interrupted copy or write).

    The YAML tree must end (``...``) and every binary block must fit in the file
    (block headers give their sizes), so the user reads "truncated" instead of an
    IndexError or a YAML ReaderError from deep inside asdf.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(min(size, 16 * 1024 * 1024))  # trees are small; blocks follow
        tree_end = head.find(b"\n...")
        block = head.find(_ASDF_BLOCK_MAGIC, max(tree_end, 0))
        if tree_end < 0 and block < 0:
            raise CeersFileError(
                f"{path}: {what} is a truncated or corrupt ASDF file (its YAML tree has no end '...'); "
                "copy or write it again"
            )
        number = 0
        while block >= 0:
            handle.seek(block + 4)
            header_size = int.from_bytes(handle.read(2), "big")
            header = handle.read(header_size)
            if len(header) < 16:
                break
            allocated = int.from_bytes(header[8:16], "big")  # flags 4, compression 4, allocated 8
            end = block + 6 + header_size + allocated
            number += 1
            if end > size:
                raise CeersFileError(
                    f"{path}: {what} is a truncated ASDF file (binary block {number} ends at byte {end}, "
                    f"the file has {size}); copy or write it again"
                )
            handle.seek(end)
            block = end if handle.read(4) == _ASDF_BLOCK_MAGIC else -1


def open_image_model(path, *, hdulist=None):
    """
    Open ``path`` as an `~stdatamodels.jwst.datamodels.ImageModel`.

    Parameters
    ----------
    path : str or Path
        The file.
    hdulist : `~astropy.io.fits.HDUList`, optional
        ``path`` already opened, e.g. with ``memmap=True``: a file written as an
        ImageModel (``DATAMODL``) is then modelled over it, as ``datamodels.open``
        does over the HDUList it reads, and validated alike, but an array is read only
        where it is used. The caller closes ``hdulist`` after the model. Other files
        are opened by ``datamodels.open``.

    Raises
    ------
    CeersFileError
        If the file is missing, unreadable or not a 2-D image model.
    """
    from stdatamodels.jwst import datamodels

    path = _check_readable_model_file(path, what="input file")
    try:
        if hdulist is not None and hdulist[0].header.get("DATAMODL") == "ImageModel":
            model = datamodels.ImageModel(hdulist)
        else:
            model = datamodels.open(path)
    except Exception as exc:  # astropy/asdf raise many types for corrupt files
        raise CeersFileError(
            f"{path}: cannot be read as a JWST datamodel; truncated or corrupt file? "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(model, datamodels.ImageModel):
        name = type(model).__name__
        model.close()
        raise CeersFileError(f"{path}: expected a 2-D ImageModel (cal/crf/i2d), got {name}")
    return model


def check_image_model(model, *, what="input", units=SURFACE_BRIGHTNESS_UNITS):
    """
    Check that ``model`` holds a usable 2-D science array.

    Parameters
    ----------
    model : `~stdatamodels.jwst.datamodels.JwstDataModel`
        The exposure or mosaic.
    what : str, optional
        Name used in messages when the model has no ``meta.filename``.
    units : sequence of str or None, optional
        Accepted ``meta.bunit_data`` values (case and spaces ignored). A model
        without ``bunit_data`` passes. None: no unit check.

    Returns
    -------
    model

    Raises
    ------
    CeersDataError
        If the science array is missing, not 2-D or empty, or its unit is not one of
        ``units`` (e.g. a ``*_rate.fits`` in DN/s given instead of a ``*_cal.fits``),
        a DQ/ERR/variance array has another shape than the science array, or a
        variance array holds negative values; the message names the file and array.
    """
    name = getattr(model.meta, "filename", None) or what
    data = model.data if model.hasattr("data") else None
    if data is None or np.ndim(data) != 2:
        shape = None if data is None else np.shape(data)
        raise CeersDataError(f"{name}: science array is not 2-D (shape {shape})")
    if 0 in np.shape(data):
        raise CeersDataError(f"{name}: science array is empty (shape {np.shape(data)})")
    unit = getattr(model.meta, "bunit_data", None)
    if units is not None and unit:
        normalised = " ".join(str(unit).lower().split())
        if normalised not in units:
            raise CeersDataError(
                f"{name}: science array unit is {unit!r}, expected MJy/sr "
                "(a *_cal.fits, *_crf.fits or *_i2d.fits product, not a *_rate.fits)"
            )
    check_array_shapes_and_signs(model, what=what)
    return model


def check_array_shapes_and_signs(model, *, what="input"):
    """
    Check that DQ/ERR/variance arrays match the science shape; ERR and variances not negative.

    Arrays that are absent (or not yet allocated) are not checked. NaN and +inf
    values are allowed (bad pixels; ``ceers_varfill``'s fill value).

    Raises
    ------
    CeersDataError
        Naming the file and the array.
    """
    name = getattr(model.meta, "filename", None) or what
    shape = np.shape(model.data)
    for array_name in ARRAYS_OF_SCI_SHAPE:
        if not _has_array(model, array_name):
            continue
        array = getattr(model, array_name)
        if np.shape(array) != shape:
            raise CeersDataError(
                f"{name}: {array_name.upper()} array has shape {np.shape(array)}, "
                f"the science array {shape}; the file is inconsistent"
            )
        if array_name in _NON_NEGATIVE_ARRAYS:
            negative = int(np.count_nonzero(np.asarray(array) < 0))
            if negative:
                kind = "an error" if array_name == "err" else "a variance"
                raise CeersDataError(
                    f"{name}: {array_name.upper()} array has {negative} negative value(s) "
                    f"(minimum {float(np.nanmin(array)):.4g}); {kind} cannot be negative"
                )
    return model


def _has_array(model, array_name):
    """True if ``model`` holds ``array_name`` (without allocating a default one)."""
    try:
        return model.hasattr(array_name) and getattr(model, array_name) is not None
    except AttributeError:
        return False


def has_usable_pixels(model):
    """
    True if the science array has at least one finite pixel not flagged DO_NOT_USE/NON_SCIENCE.

    Parameters
    ----------
    model : `~stdatamodels.jwst.datamodels.ImageModel`

    Returns
    -------
    bool
    """
    data = np.asarray(model.data)
    good = np.isfinite(data)
    dq = model.dq if model.hasattr("dq") else None
    if dq is not None and np.shape(dq) == data.shape:
        good &= (np.asarray(dq) & _UNUSABLE_DQ) == 0
    return bool(good.any())


def unphysical_pixels(data, *, limit=UNPHYSICAL_SURFACE_BRIGHTNESS):
    """
    True where ``data`` cannot be a measured surface brightness: non-finite or ``|data| > limit``.

    Parameters
    ----------
    data : array-like
        Science array in MJy/sr.
    limit : float, optional
        Largest physical absolute value.

    Returns
    -------
    ndarray of bool
    """
    data = np.asarray(data)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(data) | (np.abs(data) > limit)


def check_wcs(model, *, what="input"):
    """
    Raise CeersDataError naming the file unless ``model.meta.wcs`` is set.

    Returns
    -------
    model
    """
    if getattr(model.meta, "wcs", None) is None:
        name = getattr(model.meta, "filename", None) or what
        raise CeersDataError(f"{name}: has no WCS (meta.wcs); run assign_wcs (calwebb_image2) first")
    return model


def read_association(path, *, exptypes=("science",)):
    """
    Read an association JSON file and check its members.

    Parameters
    ----------
    path : str or Path
        The association file.
    exptypes : sequence of str, optional
        Member ``exptype`` values that must exist as files (others are not used by
        the steps and are not checked). A member without ``exptype`` is science.

    Returns
    -------
    dict
        The association.

    Raises
    ------
    CeersFileError
        If the file is missing or not JSON, has no product or member, or a member
        file is missing or is not a FITS/ASDF file; the message names the file.
    """
    path = require_file(path, what="association file")
    try:
        asn = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CeersFileError(f"{path}: association file is not readable JSON ({exc})") from exc
    products = asn.get("products") if isinstance(asn, Mapping) else None
    if not products or not isinstance(products, Sequence) or not isinstance(products[0], Mapping):
        raise CeersFileError(f"{path}: association has no 'products' entry")
    nmembers = 0
    for product in products:
        members = product.get("members") if isinstance(product, Mapping) else None
        if not isinstance(members, Sequence):
            raise CeersFileError(f"{path}: association product has no 'members' list")
        for member in members:
            if not isinstance(member, Mapping) or not member.get("expname"):
                raise CeersFileError(f"{path}: association member without 'expname': {member!r}")
            if str(member.get("exptype", "science")).lower() not in exptypes:
                continue
            nmembers += 1
            _check_readable_model_file(path.parent / member["expname"], what=f"member of association {path.name}")
    if nmembers == 0:
        raise CeersFileError(f"{path}: association has no {'/'.join(exptypes)} member")
    return asn


def check_input_files(input_data):
    """
    Check the files named by a step input (association path, file path or list of them).

    Models, dicts and ModelLibraries are passed through unchecked (they are already
    open). Raises CeersFileError naming the first missing or unreadable file.
    """
    if isinstance(input_data, (str, Path)):
        path = Path(input_data)
        if path.suffix.lower() in (".json", ".yaml", ".yml"):
            read_association(path)
        else:
            _check_readable_model_file(path, what="input file")
    elif isinstance(input_data, Sequence):
        for item in input_data:
            if isinstance(item, (str, Path)):
                _check_readable_model_file(item, what="input file")
    return input_data


def input_file_paths(input_data):
    """
    Every file a step input names: association files and their members, files, lists.

    Models and libraries built in memory name no file; for a ModelLibrary read from an
    association, its members are returned. Never raises (used to protect inputs, not to
    check them).

    Returns
    -------
    list of Path
    """
    from jwst.datamodels import ModelLibrary  # function-local: keep `import jwst_ceers` cheap

    paths = []
    if isinstance(input_data, (str, Path)):
        path = Path(input_data)
        paths.append(path)
        if path.suffix.lower() in (".json", ".yaml", ".yml"):
            paths.extend(_association_members(path))
    elif isinstance(input_data, ModelLibrary):
        directory = getattr(input_data, "_asn_dir", None)
        if directory:
            try:
                members = input_data.asn["products"][0]["members"]
            except (KeyError, IndexError, TypeError):
                members = []
            paths.extend(Path(directory) / m["expname"] for m in members if isinstance(m, Mapping) and m.get("expname"))
    elif isinstance(input_data, Sequence):
        for item in input_data:
            paths.extend(input_file_paths(item) if isinstance(item, (str, Path)) else [])
    return paths


def _association_members(path):
    """Member files of association ``path`` (empty if it cannot be read)."""
    try:
        asn = json.loads(path.read_text())
        members = asn["products"][0]["members"]
        return [path.parent / m["expname"] for m in members if isinstance(m, Mapping) and m.get("expname")]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError):
        return []


def open_library(input_data, *, on_disk=False):
    """
    A `~jwst.datamodels.ModelLibrary` of the input, with input files checked first.

    Parameters
    ----------
    input_data : str, Path, list, dict or ModelLibrary
        An association file, a list of files or models, or a library (returned as is).
    on_disk : bool, optional
        Keep models on disk between uses (ModelLibrary ``on_disk``).

    Raises
    ------
    CeersFileError
        If a file is missing or unreadable; the message names it.
    """
    from jwst.datamodels import ModelLibrary

    if isinstance(input_data, ModelLibrary):
        return input_data
    check_input_files(input_data)
    if isinstance(input_data, Path):
        input_data = str(input_data)
    try:
        return ModelLibrary(input_data, on_disk=on_disk)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, CeersFileError):
            raise
        where = input_data if isinstance(input_data, str) else "input list"
        raise CeersFileError(f"{where}: cannot open the input as jwst models ({exc})") from exc
