"""Grid inputs read from files: exposure footprints, roll angles, reference mosaic headers.

:func:`pointing_grid` is the one-call entry point used by ``jwst-ceers grid``.
"""

import logging
from pathlib import Path

import numpy as np

from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.inputs import require_file
from jwst_ceers.mosaic_grid.output_grid import (
    default_rotation,
    grid_from_footprints,
    grid_from_reference_header,
)

__all__ = [
    "exposure_footprint",
    "exposure_rotation_keywords",
    "read_reference_header",
    "pointing_grid",
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
        Reference mosaic (e.g. HST): its tangent point, rotation and pixel lattice
        are kept (see :func:`~jwst_ceers.mosaic_grid.grid_from_reference_header`).
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
