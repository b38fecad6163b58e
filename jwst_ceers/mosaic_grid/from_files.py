"""Grid inputs read from files: exposure footprints, roll angles, reference mosaic headers.

:func:`pointing_grid` is the one-call entry point used by ``jwst-ceers grid``.
"""

import logging
from pathlib import Path

import numpy as np

from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.inputs import require_file
from jwst_ceers.mosaic_grid.output_grid import (
    _crop_to_footprints as crop_to_footprints,
    default_rotation,
    grid_from_footprints,
    grid_from_reference_header,
)
from jwst_ceers.mosaic_grid.parameter_file import read_grid_parameter_file

__all__ = [
    "exposure_footprint",
    "exposure_rotation_keywords",
    "read_reference_header",
    "pointing_grid",
    "read_grid_source",
    "snap_grid_to_footprints",
]

log = logging.getLogger(__name__)


def exposure_footprint(path):
    """
    (RA, Dec) footprint polygon of one exposure.

    Uses the S_REGION keyword of the SCI header (headers only); when it is absent
    the file is opened as a datamodel and the footprint is computed from its WCS.

    Parameters
    ----------
    path : str or Path
        A Level-2 (cal/crf) or Level-3 (i2d) product.

    Returns
    -------
    ndarray, shape (N, 2)
        Vertices in degrees.

    Raises
    ------
    CeersFileError
        If the file is missing or unreadable, or has neither S_REGION nor a WCS.
    """
    from astropy.io import fits

    path = require_file(path, what="input file")
    try:
        with fits.open(path) as hdul:
            header = hdul["SCI"].header if "SCI" in hdul else hdul[0].header
            s_region = header.get("S_REGION")
    except Exception as exc:  # astropy raises many types for corrupt files
        raise CeersFileError(f"{path}: cannot read FITS header ({exc})") from exc
    if s_region:
        words = str(s_region).replace("(", " ").replace(")", " ").replace(",", " ").split()
        numbers = []
        for word in words:
            try:
                numbers.append(float(word))
            except ValueError:
                continue  # POLYGON, ICRS ...
        if len(numbers) >= 6 and len(numbers) % 2 == 0:
            return np.array(numbers).reshape(-1, 2)
        log.warning("%s: S_REGION %r not a single polygon; using the WCS", path.name, s_region)
    from jwst_ceers.inputs import open_image_model

    with open_image_model(path) as model:
        if model.meta.wcs is None:
            raise CeersFileError(f"{path}: no S_REGION keyword and no WCS to compute a footprint")
        return np.asarray(model.meta.wcs.footprint(), dtype=float)


def exposure_rotation_keywords(path):
    """
    (ROLL_REF, V3I_YANG, VPARITY) of one exposure, from its SCI header.

    Returns
    -------
    tuple of float or None
        ``None`` when a keyword is missing.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path) as hdul:
            header = hdul["SCI"].header if "SCI" in hdul else hdul[0].header
            values = [header.get(k) for k in ("ROLL_REF", "V3I_YANG", "VPARITY")]
    except Exception as exc:  # astropy raises many types for corrupt files
        raise CeersFileError(f"{path}: cannot read FITS header ({exc})") from exc
    if any(v is None for v in values):
        return None
    return tuple(float(v) for v in values)


def read_reference_header(path, *, extension=None):
    """
    Header of a reference mosaic holding its 2-D celestial WCS.

    Parameters
    ----------
    path : str or Path
        FITS mosaic (e.g. an HST drizzled image, or a jwst i2d).
    extension : int or str, optional
        HDU to use. Default: the first of ``SCI`` / primary / other HDUs that has
        NAXIS = 2 and CTYPE1 (a header-only primary with NAXIS = 0 is skipped).

    Returns
    -------
    astropy.io.fits.Header

    Raises
    ------
    CeersFileError
        If the file is missing or unreadable, or no HDU holds a 2-D image WCS.
    """
    from astropy.io import fits

    path = require_file(path, what="reference mosaic")
    try:
        with fits.open(path) as hdul:
            if extension is not None:
                try:
                    return hdul[extension].header.copy()
                except (KeyError, IndexError) as exc:
                    raise CeersFileError(f"{path}: no extension {extension!r}") from exc
            candidates = ([hdul["SCI"]] if "SCI" in hdul else []) + list(hdul)
            for hdu in candidates:
                header = hdu.header
                if header.get("NAXIS") == 2 and header.get("CTYPE1"):
                    return header.copy()
    except CeersFileError:
        raise
    except Exception as exc:  # astropy raises many types for corrupt files
        raise CeersFileError(f"{path}: cannot read FITS header ({exc})") from exc
    raise CeersFileError(f"{path}: no 2-D image HDU with a celestial WCS (CTYPE1) found")


def pointing_grid(
    exposures=(),
    *,
    reference=None,
    reference_extension=None,
    pixel_scale=None,
    rotation=None,
    crval=None,
    crval_step=1e-4,
    margin=10,
):
    """
    The shared output grid of one pointing, from files.

    Parameters
    ----------
    exposures : sequence of str or Path, optional
        The pointing's exposures (all filters). Their footprints (S_REGION, or the
        WCS when absent) bound the grid. May be empty when ``reference`` is given:
        the grid then covers the whole reference mosaic.
    reference : str or Path, optional
        Reference mosaic (e.g. HST), or an ASDF parameter file holding a grid (e.g.
        CEERS's Image3 file): its tangent point, rotation and pixel lattice are kept
        (see :func:`~jwst_ceers.mosaic_grid.grid_from_reference_header`).
    reference_extension : int or str, optional
        HDU of ``reference`` holding the WCS.
    pixel_scale : float, optional
        Output scale in arcsec. Default: the reference's scale; required without
        a reference.
    rotation : float, optional
        Without a reference: position angle of +y (deg). Default: the exposures'
        own orientation (resample's default, from ROLL_REF/V3I_YANG/VPARITY).
    crval : (float, float), optional
        Without a reference: tangent point (default: rounded footprint centre).
    crval_step : float, optional
        Rounding step (deg) of the default tangent point.
    margin : int, optional
        Extra pixels around the footprints.

    Returns
    -------
    OutputGrid

    Raises
    ------
    CeersFileError
        For a missing or unreadable file (named in the message).
    CeersParameterError
        For inconsistent options (e.g. no exposures and no reference).
    """
    exposures = [Path(p) for p in exposures]
    footprints = [exposure_footprint(p) for p in exposures] or None
    if reference is not None:
        if rotation is not None or crval is not None:
            raise CeersParameterError("rotation/crval: taken from the reference mosaic; do not give them")
        if Path(reference).suffix.lower() == ".asdf":  # a parameter file's grid is a lattice too
            lattice = read_grid_source(reference)
            if footprints is None and pixel_scale is None:
                return lattice
            header = lattice.to_fits_header()
            if footprints is not None and pixel_scale is None:
                return snap_grid_to_footprints(lattice, footprints, margin=margin, source=str(reference))
        else:
            header = read_reference_header(reference, extension=reference_extension)
        return grid_from_reference_header(
            header, pixel_scale=pixel_scale, footprints=footprints, margin=margin, source=str(reference)
        )
    if footprints is None:
        raise CeersParameterError("exposures: give exposures, a reference mosaic, or both")
    if pixel_scale is None:
        raise CeersParameterError("pixel_scale: required when no reference mosaic is given")
    if rotation is None:
        keywords = [exposure_rotation_keywords(p) for p in exposures]
        missing = [p for p, k in zip(exposures, keywords, strict=True) if k is None]
        if missing:
            raise CeersFileError(
                f"{missing[0]}: no ROLL_REF/V3I_YANG/VPARITY to derive the rotation; give rotation"
            )
        rotation = default_rotation(keywords)
        log.info("rotation %.4f deg from the exposures' roll angles", rotation)
    return grid_from_footprints(
        footprints, pixel_scale=pixel_scale, rotation=rotation, crval=crval, crval_step=crval_step, margin=margin
    )


def read_grid_source(path, *, extension=None):
    """
    The grid of an existing product: a parameter file or a mosaic.

    Parameters
    ----------
    path : str or Path
        An ASDF parameter file holding resample's grid (a stock or CEERS
        ``Image3Pipeline`` file, an ``Image3Ceers`` or ``ResampleStep`` file), or a
        FITS mosaic (jwst ``*_i2d.fits``, an HST drizzled image).
    extension : int or str, optional
        HDU of a FITS mosaic holding the WCS.

    Returns
    -------
    OutputGrid
        Exactly that grid (a mosaic: all of it).

    Raises
    ------
    CeersFileError
        If the file is missing, unreadable or holds no complete grid.
    """
    path = Path(path)
    if not path.is_file():
        raise CeersFileError(f"{path}: grid source does not exist")
    if path.suffix.lower() == ".asdf":
        return read_grid_parameter_file(path)
    header = read_reference_header(path, extension=extension)
    return grid_from_reference_header(header, source=str(path))


def snap_grid_to_footprints(grid, footprints, *, margin=10, pixel_scale=None, source="grid"):
    """
    A grid covering ``footprints`` on the pixel lattice of ``grid``.

    Same tangent point, rotation and scale (or an integer multiple or divisor of the
    scale, with pixel edges kept on the lattice's edges); only ``crpix`` moves, by
    whole pixels, and the shape shrinks to the footprints plus ``margin``. A mosaic
    made on it shares its pixels with every mosaic made on ``grid`` (e.g. CEERS's
    and the HST mosaics of the field).

    Parameters
    ----------
    grid : OutputGrid
        The lattice to keep.
    footprints : list of (N, 2) arrays
        (RA, Dec) polygons of the exposures, degrees.
    margin : int, optional
        Extra pixels on every side.
    pixel_scale : float, optional
        Output scale (arcsec), an integer multiple or divisor of ``grid``'s.
    source : str, optional
        Name of the lattice for messages.

    Returns
    -------
    OutputGrid
    """
    if not footprints:
        raise CeersParameterError("snap: no exposure footprint given")
    if pixel_scale is None or pixel_scale == grid.pixel_scale:
        # the lattice's own numbers, untouched: only crpix moves, by whole pixels
        return crop_to_footprints(grid, footprints, int(margin))
    return grid_from_reference_header(
        grid.to_fits_header(), pixel_scale=pixel_scale, footprints=footprints, margin=int(margin), source=source
    )
