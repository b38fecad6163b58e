"""Reading the mosaics of a pointing (jwst i2d models or plain FITS) and writing products.

A member may be a jwst ``*_i2d.fits`` ImageModel (file or open model) or a plain FITS
mosaic such as the CEERS HST ones: the image in ``SCI`` or in the primary HDU, optional
``WHT`` (inverse variance) or ``ERR`` extensions, a FITS WCS in the image header and a
``FILTER`` keyword (ACS ``FILTER1``/``FILTER2`` are understood). Every output is written
atomically with a FITS WCS in its image header and the FILTER keyword.
"""

import gc
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from jwst.stpipe.utilities import record_step_status
from stdatamodels.jwst.datamodels import ImageModel

from jwst_ceers.atomic_io import fits_safe_text, write_fits_atomic, write_model_atomic
from jwst_ceers.errors import CeersDataError, CeersError, CeersFileError
from jwst_ceers.inputs import open_image_model, require_file

__all__ = [
    "Mosaic",
    "STEP_KEYWORD",
    "read_mosaic",
    "check_same_grid",
    "product_name",
    "write_image_fits",
    "write_mosaic_bkgsub",
]

log = logging.getLogger(__name__)

STEP_KEYWORD = "CMBKGSTP"  # status keyword of plain-FITS outputs (meta.cal_step.ceers_mosaic_bkg)
_WCS_KEYS = ("crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2", "pc1_1", "pc1_2", "pc2_1", "pc2_2")


@dataclass
class Mosaic:
    """One member of the pointing, as arrays plus what is needed to write its products."""

    name: str
    filter: str
    data: np.ndarray
    nodata: np.ndarray
    noise: np.ndarray | None
    header: object  # astropy.io.fits.Header of the image, with its WCS
    source: str  # file name or "<model>"
    is_jwst: bool
    telescope: str
    model: object = None
    hdul: object = None
    reopen: str | None = None  # jwst file whose model is re-opened (mapped) to write the output


def product_name(filename):
    """
    ``ceers_p1_f150w_i2d.fits`` -> ``ceers_p1_f150w`` (drops i2d/drz/drc/sci/img suffixes).

    A ``_bkgsub`` suffix is kept: the products of a second pass over background-
    subtracted mosaics (``..._bkgsub_bkgsub.fits``) then never take their inputs' names.
    """
    stem = Path(str(filename)).name
    stem = re.sub(r"\.fits(\.gz)?$", "", stem, flags=re.IGNORECASE)
    return re.sub(r"_(i2d|drz|drc|sci|img)$", "", stem, flags=re.IGNORECASE)


def _header_from_wcsinfo(model):
    info = model.meta.wcsinfo
    header = fits.Header()
    if info.crpix1 is None:
        return header
    header["WCSAXES"] = 2
    header["CTYPE1"] = info.ctype1 or "RA---TAN"
    header["CTYPE2"] = info.ctype2 or "DEC--TAN"
    header["CUNIT1"] = "deg"
    header["CUNIT2"] = "deg"
    for key in _WCS_KEYS:
        value = getattr(info, key, None)
        if value is not None:
            header[key.upper()] = value
    return header


def _filter_from_header(*headers):
    for header in headers:
        for key in ("FILTER", "FILTER1", "FILTER2"):
            value = str(header.get(key, "")).strip().upper()
            if value.startswith("F") and value != "CLEAR":
                return value
    return None


def _noise_from(err, wht, shape):
    """
    Per-pixel sigma (native float32; NaN where unknown) from ERR, else from WHT (1/sqrt).

    ERR is used when it has the image's shape and a positive value; pixels with
    ERR <= 0 become NaN. Each array is converted once and edited in place (the inputs,
    possibly big-endian memory maps of a file, are only read).
    """
    if err is not None and np.shape(err) == shape:
        noise = np.array(err, dtype=np.float32)  # one native-order copy (FITS data are big-endian)
        positive = noise > 0
        if positive.any():
            # NaN where ERR <= 0 (or NaN): the mask is inverted in place
            np.copyto(noise, np.float32(np.nan), where=np.logical_not(positive, out=positive))
            return noise
        del noise, positive
    if wht is not None and np.shape(wht) == shape:
        with np.errstate(divide="ignore", invalid="ignore"):
            noise = np.sqrt(wht, dtype=np.float32)  # of WHT as float32
            unknown = ~(noise > 0)  # WHT <= 0 or NaN (the root of a positive float32 is positive)
            np.divide(np.float32(1.0), noise, out=noise)
        np.copyto(noise, np.float32(np.nan), where=unknown)
        return noise
    return None


def _nodata_mask(data, wht):
    """True where ``data`` is not finite or, when WHT has the image's shape, WHT is not > 0."""
    usable = np.isfinite(data)
    if wht is not None and np.shape(wht) == data.shape:
        usable &= np.greater(wht, 0)
    return np.logical_not(usable, out=usable)


def _open_fits(path):
    """
    ``path`` opened with its arrays memory-mapped (read where used), or CeersFileError.

    A file shorter than its headers say (an interrupted copy or write) is refused here,
    instead of failing where an array is first used.
    """
    try:
        hdul = fits.open(path, memmap=True)
    except OSError as exc:
        raise CeersFileError(f"{path}: cannot be read as FITS ({exc})") from exc
    try:
        truncated = not str(path).lower().endswith(".gz") and _is_truncated(hdul, path)
    except BaseException:
        hdul.close()
        raise
    if truncated:
        hdul.close()
        raise CeersFileError(f"{path}: truncated FITS file (shorter than its headers describe); an interrupted copy or write?")
    return hdul


def _is_truncated(hdul, path):
    """True if an HDU's data end past the end of the file, or an extension header is cut."""
    end = max(info["datLoc"] + info["datSpan"] for info in map(hdul.fileinfo, range(len(hdul))))
    size = Path(path).stat().st_size
    if end > size:
        return True
    with open(path, "rb") as handle:  # astropy skips an extension whose header is cut
        handle.seek(end)
        return handle.read(8) == b"XTENSION"


def _is_jwst(hdul):
    return "ASDF" in hdul and str(hdul[0].header.get("TELESCOP", "")).upper() == "JWST"


def read_mosaic(item):
    """
    Read one member.

    The arrays of a file are memory-mapped and converted once to native float32
    (SCI -> data, ERR or else WHT -> noise; WHT and non-finite SCI -> nodata): no
    other copy of them is made, and nothing of them is held once read. A jwst file's
    datamodel is opened over the mapped file only to validate it and read its
    ``meta`` (filter, wcsinfo), as ``datamodels.open`` would (same errors); its
    ERR/WHT are mapped again only to write the output (:func:`write_mosaic_bkgsub`).

    Parameters
    ----------
    item : str, Path or `~stdatamodels.jwst.datamodels.ImageModel`

    Returns
    -------
    Mosaic

    Raises
    ------
    CeersFileError
        Missing or unreadable file, no image, no WCS, no FILTER.
    CeersDataError
        Science array not 2-D, or no usable pixel.
    """
    if isinstance(item, ImageModel):
        return _from_model(item, item.meta.filename or "<model>")
    path = require_file(item, what="input mosaic")
    hdul = _open_fits(path)
    try:
        jwst_file = _is_jwst(hdul)
    except BaseException:
        hdul.close()
        raise
    if jwst_file:
        with hdul:
            return _from_jwst_file(hdul, path)
    return _from_plain_fits(hdul, path)


def _from_jwst_file(hdul, path):
    """A jwst file's Mosaic: meta from its datamodel, arrays from ``hdul``'s maps."""
    # the model is made over a map of its own: the arrays read below are mapped by ``hdul``
    # only, and are unmapped when it closes (a datamodel sits in reference cycles: a map it
    # holds would stay resident until the cyclic garbage collector runs)
    with fits.open(path, memmap=True) as model_handle:
        model = open_image_model(path, hdulist=model_handle)
        mapped = model_handle[0].header.get("DATAMODL") == "ImageModel"  # else read by datamodels.open
        try:
            if model.data is None or np.ndim(model.data) != 2:
                raise CeersDataError(f"{path}: science array is not 2-D")
            filter_name, wcsinfo_header = _model_filter_and_wcs(model, str(path))
            has_wht, has_err = model.hasattr("wht"), model.hasattr("err")
        finally:
            model.close()
            del model
            if not mapped:
                gc.collect()  # its arrays were read into memory, and wait for the cyclic collector
    sci = hdul["SCI"]
    header = sci.header.copy() if "CRPIX1" in sci.header else wcsinfo_header
    return _mosaic_of(
        sci.data, source=path, copy=True,
        err=hdul["ERR"].data if has_err and "ERR" in hdul else None,
        wht=hdul["WHT"].data if has_wht and "WHT" in hdul else None,
        name=product_name(path), filter=filter_name, header=header, is_jwst=True, telescope="JWST", reopen=str(path),
    )


def _mosaic_of(image, *, source, copy, err, wht, **fields):
    """
    The Mosaic of ``image`` with its ERR and WHT arrays (None: absent), and ``fields``.

    ``image`` becomes native float32 in one pass (always a copy with ``copy``: a file's
    memory map is then not held), ``nodata`` and ``noise`` are derived from the three
    arrays (see :func:`_nodata_mask`, :func:`_noise_from`).

    Raises
    ------
    CeersDataError
        If no pixel is usable.
    """
    data = np.array(image, dtype=np.float32) if copy else np.asarray(image, dtype=np.float32)
    nodata = _nodata_mask(data, wht)
    _check_some_data(nodata, str(source))
    return Mosaic(data=data, nodata=nodata, noise=_noise_from(err, wht, data.shape), source=str(source), **fields)


def _from_plain_fits(hdul, path):
    """A plain FITS member (e.g. an HST drizzled mosaic); ``hdul`` stays open in the Mosaic (closed on error)."""
    try:
        image_hdu = None
        if "SCI" in hdul and hdul["SCI"].data is not None:
            image_hdu = hdul["SCI"]
        elif hdul[0].data is not None and hdul[0].data.ndim == 2:
            image_hdu = hdul[0]
        else:
            image_hdu = next((h for h in hdul[1:] if h.data is not None and np.ndim(h.data) == 2), None)
        if image_hdu is None:
            raise CeersFileError(f"{path}: no 2-D image in PRIMARY or SCI")
        header = image_hdu.header.copy()
        if "CTYPE1" not in header:
            raise CeersFileError(f"{path}: image header has no FITS WCS (CTYPE1)")
        filter_name = _filter_from_header(header, hdul[0].header)
        if filter_name is None:
            raise CeersFileError(f"{path}: no FILTER keyword")
        telescope = str(hdul[0].header.get("TELESCOP", header.get("TELESCOP", "HST"))).upper()
        return _mosaic_of(
            image_hdu.data, source=path, copy=True,
            err=hdul["ERR"].data if "ERR" in hdul else None,
            wht=hdul["WHT"].data if "WHT" in hdul else None,
            name=product_name(path), filter=filter_name, header=header, is_jwst=False, telescope=telescope, hdul=hdul,
        )
    except BaseException:
        hdul.close()
        raise


def _model_filter_and_wcs(model, source):
    """``model``'s filter and the FITS WCS header of its wcsinfo, or CeersFileError naming ``source``."""
    header = _header_from_wcsinfo(model)
    if "CRPIX1" not in header:
        raise CeersFileError(f"{source}: model has no FITS-like wcsinfo (crpix/crval/pc)")
    filter_name = (model.meta.instrument.filter or "").upper()
    if not filter_name:
        raise CeersFileError(f"{source}: meta.instrument.filter is not set")
    return filter_name, header


def _from_model(model, source):
    """A caller's ImageModel as a Mosaic (its arrays are read, never modified)."""
    if model.data is None or np.ndim(model.data) != 2:
        raise CeersDataError(f"{source}: science array is not 2-D")
    filter_name, header = _model_filter_and_wcs(model, source)
    return _mosaic_of(
        model.data, source=source, copy=False,
        err=model.err if model.hasattr("err") else None,
        wht=model.wht if model.hasattr("wht") else None,
        name=product_name(source if source != "<model>" else f"{filter_name.lower()}"),
        filter=filter_name, header=header, is_jwst=True, telescope="JWST", model=model,
    )


def _check_some_data(nodata, source):
    if nodata.size == 0 or nodata.all():
        raise CeersDataError(f"{source}: mosaic has no usable pixel (all NaN or zero weight)")


def check_same_grid(mosaics, *, tolerance_pix=0.01):
    """
    Raise a CeersError naming the files unless all mosaics share one pixel grid.

    The shapes must agree and the first mosaic's WCS, evaluated at the corners and the
    centre of the grid, must map to the same pixels in every other WCS.
    """

    first = mosaics[0]
    ny, nx = first.data.shape
    x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2])
    y = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    ra, dec = WCS(first.header).all_pix2world(x, y, 0)
    for other in mosaics[1:]:
        if other.data.shape != first.data.shape:
            raise CeersError(
                f"mosaics are not on one grid: {first.source} has shape {first.data.shape}, "
                f"{other.source} has shape {other.data.shape}"
            )
        ox, oy = WCS(other.header).all_world2pix(ra, dec, 0)
        offset = float(np.max(np.hypot(ox - x, oy - y)))
        if not offset <= tolerance_pix:
            raise CeersError(
                f"mosaics are not on one grid: {other.source} is offset by {offset:.3g} pixels "
                f"from {first.source} (resample all filters with the same grid parameters)"
            )


def _output_header(mosaic, extra=None):
    header = fits.Header()
    header.update(WCS(mosaic.header).to_header())
    header["FILTER"] = mosaic.filter
    header["TELESCOP"] = mosaic.telescope
    header[STEP_KEYWORD] = ("COMPLETE", "ceers_mosaic_bkg status")
    header["MBKGSRC"] = (fits_safe_text(Path(mosaic.source).name)[:60], "input mosaic")
    for key, value in (extra or {}).items():
        header[key] = value
    return header


def write_image_fits(path, array, mosaic, *, extra=None):
    """Write ``array`` in the primary HDU of ``path`` with the mosaic's WCS and FILTER."""

    hdu = fits.PrimaryHDU(array, header=_output_header(mosaic, extra))
    return write_fits_atomic(fits.HDUList([hdu]), path)


def write_mosaic_bkgsub(path, bkgsub, mosaic, *, alias="ceers_mosaic_bkg"):
    """
    Write the background-subtracted mosaic in the format of its input.

    jwst members: a copy of the ImageModel with new data and
    ``meta.cal_step.<alias> = COMPLETE``; plain FITS members: the input's HDUs with
    the image replaced and the status keyword set.
    """
    if mosaic.is_jwst:
        # a member read from a file is re-opened with its arrays mapped, not read (no copy
        # of them in memory: ~0.6 GB and ~5 s per 50-Mpix mosaic); a caller's model is
        # copied, never modified
        mapped = fits.open(mosaic.reopen, memmap=True) if mosaic.reopen is not None else None
        try:
            out = ImageModel(mapped) if mapped is not None else mosaic.model.copy()
            out.data = bkgsub
            out.meta.filename = Path(path).name
            record_step_status(out, alias, success=True)
            try:
                write_model_atomic(out, path)
            finally:
                out.close()
        finally:
            if mapped is not None:
                mapped.close()
        return Path(path)
    hdus = []
    for index, hdu in enumerate(mosaic.hdul):
        if hdu.data is not None and np.shape(hdu.data) == bkgsub.shape and hdu.name in ("SCI", "PRIMARY"):
            header = hdu.header.copy()
            header[STEP_KEYWORD] = ("COMPLETE", "ceers_mosaic_bkg status")
            cls = fits.PrimaryHDU if index == 0 else fits.ImageHDU
            hdus.append(cls(bkgsub, header=header))
        elif index == 0:
            header = hdu.header.copy()
            header[STEP_KEYWORD] = ("COMPLETE", "ceers_mosaic_bkg status")
            hdus.append(fits.PrimaryHDU(header=header))
        elif hdu.name in ("WHT", "ERR"):
            hdus.append(hdu.copy())
    return write_fits_atomic(fits.HDUList(hdus), path)
