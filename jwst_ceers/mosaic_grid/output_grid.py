"""The output pixel grid shared by every filter of a pointing, in resample's terms.

jwst's ``resample`` step builds its output WCS from five parameters: ``crpix``
(0-based x, y of the tangent point), ``crval`` (RA, Dec of the tangent point,
deg), ``rotation`` (position angle of the output +y axis, east of north, deg),
``pixel_scale`` (arcsec) and ``output_shape`` (nx, ny). With a JWST reference
image (VPARITY = -1, as for NIRCam) the resulting FITS-equivalent WCS is a
gnomonic (TAN) projection with

    CRPIX = crpix + 1,  CRVAL = crval,
    CD = pixel_scale / 3600 * [[-cos(rotation), sin(rotation)],
                               [ sin(rotation), cos(rotation)]],

i.e. east to the left of north like any sky image. Giving every filter of a
pointing the same five numbers makes their mosaics pixel-aligned.

Two ways to choose the numbers:

* :func:`grid_from_reference_header` — share a reference mosaic's tangent point,
  rotation and pixel lattice (e.g. the HST mosaics of the field), optionally at
  an integer multiple or divisor of its pixel scale, and optionally cropped to
  the exposures' footprints by an integer pixel shift;
* :func:`grid_from_footprints` — cover the union of the exposures' footprints at
  a chosen pixel scale and rotation, with a rounded tangent point and a margin.
"""

import math
from dataclasses import dataclass

import numpy as np

from jwst_ceers.errors import CeersFileError, CeersParameterError

__all__ = [
    "OutputGrid",
    "grid_from_reference_header",
    "grid_from_footprints",
    "sky_to_grid_pixels",
    "default_rotation",
]

# Relative tolerance for "the pixel-scale ratio is an integer" and for a
# rotation-only (no skew, standard parity) CD matrix.
_RATIO_TOLERANCE = 1e-6
# A grid larger than this (16 GiB per float32 array) is a mistake (e.g. a pixel scale in deg, not arcsec)
MAX_GRID_PIXELS = 2**32
_MATRIX_TOLERANCE = 1e-6


@dataclass(frozen=True)
class OutputGrid:
    """A resample output grid.

    Attributes
    ----------
    crpix : tuple of float
        0-based (x, y) pixel position of the tangent point.
    crval : tuple of float
        (RA, Dec) of the tangent point in degrees.
    rotation : float
        Position angle of the output +y axis, degrees east of north.
    pixel_scale : float
        Pixel size in arcsec.
    output_shape : tuple of int
        (nx, ny) size of the mosaic.
    """

    crpix: tuple
    crval: tuple
    rotation: float
    pixel_scale: float
    output_shape: tuple

    def __post_init__(self):
        # Store plain Python numbers so that YAML/ASDF/TOML writers see no numpy types.
        object.__setattr__(self, "crpix", tuple(float(v) for v in self.crpix))
        object.__setattr__(self, "crval", tuple(float(v) for v in self.crval))
        object.__setattr__(self, "rotation", float(self.rotation))
        object.__setattr__(self, "pixel_scale", float(self.pixel_scale))
        object.__setattr__(self, "output_shape", tuple(int(v) for v in self.output_shape))
        if len(self.crpix) != 2 or len(self.crval) != 2 or len(self.output_shape) != 2:
            raise CeersParameterError("crpix, crval and output_shape must each have two values")
        if not (math.isfinite(self.pixel_scale) and self.pixel_scale > 0):
            raise CeersParameterError(f"pixel_scale={self.pixel_scale}: must be > 0")
        if not math.isfinite(self.rotation):
            raise CeersParameterError(f"rotation={self.rotation}: must be a finite angle in degrees")
        ra, dec = self.crval
        if not (math.isfinite(ra) and math.isfinite(dec) and -90.0 <= dec <= 90.0):
            raise CeersParameterError(f"crval={list(self.crval)}: must be finite (RA, Dec) with -90 <= Dec <= 90")
        if not all(math.isfinite(v) for v in self.crpix):
            raise CeersParameterError(f"crpix={list(self.crpix)}: must be finite")
        if min(self.output_shape) < 2:
            raise CeersParameterError(f"output_shape={list(self.output_shape)}: each size must be >= 2")
        if self.output_shape[0] * self.output_shape[1] > MAX_GRID_PIXELS:
            raise CeersParameterError(
                f"output_shape={list(self.output_shape)}: more than {MAX_GRID_PIXELS:.0e} pixels "
                f"(pixel_scale={self.pixel_scale:g} arcsec too small?)"
            )

    @classmethod
    def from_mapping(cls, mapping):
        """Build a grid from a dict with the five resample keys (e.g. a TOML table).

        Raises
        ------
        CeersParameterError
            If a key is missing.
        """
        missing = [k for k in ("crpix", "crval", "rotation", "pixel_scale", "output_shape") if mapping.get(k) is None]
        if missing:
            raise CeersParameterError(f"grid: missing {', '.join(missing)}")
        return cls(
            crpix=mapping["crpix"],
            crval=mapping["crval"],
            rotation=mapping["rotation"],
            pixel_scale=mapping["pixel_scale"],
            output_shape=mapping["output_shape"],
        )

    def resample_parameters(self):
        """Return the grid as a dict of ``ResampleStep`` parameters (lists, not tuples)."""
        return {
            "crpix": list(self.crpix),
            "crval": list(self.crval),
            "rotation": self.rotation,
            "pixel_scale": self.pixel_scale,
            "output_shape": list(self.output_shape),
        }

    def cd_matrix(self):
        """The 2x2 CD matrix (deg/pixel) resample builds for this grid (VPARITY = -1)."""
        theta = math.radians(self.rotation)
        scale = self.pixel_scale / 3600.0
        return scale * np.array([[-math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]])

    def to_fits_wcs(self):
        """Return the equivalent `astropy.wcs.WCS` (TAN), with ``pixel_shape`` set."""
        from astropy.wcs import WCS

        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.cunit = ["deg", "deg"]
        wcs.wcs.crpix = [self.crpix[0] + 1.0, self.crpix[1] + 1.0]
        wcs.wcs.crval = list(self.crval)
        wcs.wcs.cd = self.cd_matrix()
        wcs.wcs.radesys = "ICRS"
        wcs.wcs.set()
        wcs.pixel_shape = self.output_shape
        return wcs

    def to_fits_header(self):
        """Return a FITS header with the grid's WCS and NAXIS1/NAXIS2."""
        header = self.to_fits_wcs().to_header()
        header["NAXIS1"] = self.output_shape[0]
        header["NAXIS2"] = self.output_shape[1]
        return header


def sky_to_grid_pixels(grid, ra, dec):
    """
    Project sky positions onto a grid.

    Parameters
    ----------
    grid : OutputGrid
    ra, dec : array-like
        Coordinates in degrees.

    Returns
    -------
    x, y : ndarray
        0-based pixel coordinates on ``grid``.
    """
    x, y = grid.to_fits_wcs().all_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
    return np.asarray(x), np.asarray(y)


def _pixel_index_range(coordinates, margin):
    """First and last pixel index (inclusive) covering ``coordinates`` plus ``margin`` pixels."""
    low = math.floor(float(np.min(coordinates)) + 0.5) - margin
    high = math.floor(float(np.max(coordinates)) + 0.5) + margin
    return low, high


def _crop_to_footprints(grid, footprints, margin):
    """Shift/trim ``grid`` by whole pixels so it just covers ``footprints`` plus a margin."""
    vertices = np.vstack([np.asarray(f, float).reshape(-1, 2) for f in footprints])
    x, y = sky_to_grid_pixels(grid, vertices[:, 0], vertices[:, 1])
    x0, x1 = _pixel_index_range(x, margin)
    y0, y1 = _pixel_index_range(y, margin)
    return OutputGrid(
        crpix=(grid.crpix[0] - x0, grid.crpix[1] - y0),
        crval=grid.crval,
        rotation=grid.rotation,
        pixel_scale=grid.pixel_scale,
        output_shape=(x1 - x0 + 1, y1 - y0 + 1),
    )


def _integer_ratio(value, what):
    """Return ``round(value)`` if ``value`` is a positive integer within tolerance, else raise."""
    nearest = round(value)
    if nearest < 1 or abs(value - nearest) > _RATIO_TOLERANCE * max(1.0, value):
        raise CeersParameterError(f"{what}: must be an integer multiple or divisor of the reference pixel scale")
    return int(nearest)


def grid_from_reference_header(header, *, pixel_scale=None, footprints=None, margin=0, source="reference header"):
    """
    Grid sharing a reference mosaic's tangent point, rotation and pixel lattice.

    Output pixel edges coincide with reference pixel edges: at the same scale the
    pixels are the reference pixels; at ``k`` times the scale each output pixel is
    a ``k x k`` block starting at the reference's first pixel; at ``1/k`` of the
    scale each reference pixel is split into ``k x k``.

    Parameters
    ----------
    header : `astropy.io.fits.Header`
        Header of the reference mosaic (celestial TAN WCS with CD or PC/CDELT,
        NAXIS1/NAXIS2, no distortion, east to the left of north).
    pixel_scale : float, optional
        Output pixel scale in arcsec; an integer multiple or divisor of the
        reference scale. Default: the reference scale.
    footprints : list of (N, 2) arrays, optional
        (RA, Dec) polygons of the exposures. When given, the grid is cropped (by an
        integer pixel shift, keeping the alignment) to cover them plus ``margin``;
        otherwise it covers the whole reference image.
    margin : int, optional
        Extra pixels on every side when cropping to ``footprints``.
    source : str, optional
        Name of the header's file, used in error messages.

    Returns
    -------
    OutputGrid

    Raises
    ------
    CeersFileError
        If the header has no usable celestial TAN WCS or no NAXIS1/NAXIS2, or its
        WCS is skewed, mirrored or distorted.
    CeersParameterError
        If ``pixel_scale`` is not an integer multiple or divisor of the reference scale.
    """
    from astropy.wcs import WCS, FITSFixedWarning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:  # astropy raises several types for broken WCS keywords
            raise CeersFileError(f"{source}: no readable WCS ({exc})") from exc
    ctype = [c.upper() for c in wcs.wcs.ctype]
    if not (ctype[0].startswith("RA") and ctype[0].endswith("-TAN") and ctype[1].startswith("DEC")):
        raise CeersFileError(f"{source}: WCS must be RA---TAN/DEC--TAN, got {ctype}")
    if wcs.sip is not None or wcs.cpdis1 is not None or wcs.det2im1 is not None:
        raise CeersFileError(f"{source}: WCS has distortion terms; a drizzled mosaic has none")
    nx_ref, ny_ref = header.get("NAXIS1"), header.get("NAXIS2")
    if not nx_ref or not ny_ref:
        raise CeersFileError(f"{source}: no NAXIS1/NAXIS2 in the header")

    cd = wcs.pixel_scale_matrix  # deg / pixel, CD-equivalent
    determinant = np.linalg.det(cd)
    scale_deg = math.sqrt(abs(determinant))
    rotation_only = np.array([[-cd[1, 1], cd[0, 1]], [cd[0, 1], cd[1, 1]]])
    if determinant >= 0 or np.max(np.abs(cd - rotation_only)) > _MATRIX_TOLERANCE * scale_deg:
        raise CeersFileError(
            f"{source}: CD matrix {cd.tolist()} is not a pure rotation with east left of north; "
            "resample cannot reproduce it"
        )
    reference_scale = scale_deg * 3600.0
    rotation = math.degrees(math.atan2(cd[0, 1], cd[1, 1]))

    # ratio = output pixels per reference pixel along an axis
    if pixel_scale is None or pixel_scale == reference_scale:
        upsample, downsample = 1, 1
    elif pixel_scale < reference_scale:
        upsample, downsample = _integer_ratio(reference_scale / pixel_scale, f"pixel_scale={pixel_scale}"), 1
    else:
        upsample, downsample = 1, _integer_ratio(pixel_scale / reference_scale, f"pixel_scale={pixel_scale}")
    ratio = upsample / downsample
    # Keep the header's exact scale times an exact integer factor (not the rounded
    # user value) so that output and reference pixel edges coincide exactly.
    out_scale = reference_scale * downsample / upsample

    crpix_ref = wcs.wcs.crpix - 1.0  # 0-based
    # A reference pixel edge at x_ref - 0.5 is an output edge at x_out - 0.5 with
    # x_out = ratio * (x_ref + 0.5) - 0.5.
    crpix = tuple(ratio * (c + 0.5) - 0.5 for c in crpix_ref)
    full = OutputGrid(
        crpix=crpix,
        crval=tuple(wcs.wcs.crval),
        rotation=rotation,
        pixel_scale=out_scale,
        output_shape=(math.ceil(nx_ref * ratio), math.ceil(ny_ref * ratio)),
    )
    if footprints is None:
        return full
    return _crop_to_footprints(full, footprints, int(margin))


def _footprint_center(footprints):
    """(RA, Dec) of the centre of the footprints' bounding box on the unit sphere."""
    vertices = np.radians(np.vstack([np.asarray(f, float).reshape(-1, 2) for f in footprints]))
    ra, dec = vertices[:, 0], vertices[:, 1]
    xyz = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    mid = (xyz.max(axis=1) + xyz.min(axis=1)) / 2.0
    ra_c = math.degrees(math.atan2(mid[1], mid[0])) % 360.0
    dec_c = math.degrees(math.atan2(mid[2], math.hypot(mid[0], mid[1])))
    return ra_c, dec_c


def grid_from_footprints(footprints, *, pixel_scale, rotation, crval=None, crval_step=1e-4, margin=10):
    """
    Grid covering the union of exposure footprints.

    Parameters
    ----------
    footprints : list of (N, 2) arrays
        (RA, Dec) polygons in degrees (e.g. from S_REGION).
    pixel_scale : float
        Output pixel scale in arcsec.
    rotation : float
        Position angle of the output +y axis, degrees east of north.
    crval : (float, float), optional
        Tangent point. Default: centre of the footprints rounded to ``crval_step``.
    crval_step : float, optional
        Rounding step (deg) of the default tangent point, so that re-running on a
        slightly different file list gives the same tangent point; 0 disables.
    margin : int, optional
        Extra pixels on every side.

    Returns
    -------
    OutputGrid
        Tangent point on a pixel centre (integer ``crpix``); every footprint vertex
        falls inside the image, at least ``margin`` pixels from the edge.

    Raises
    ------
    CeersParameterError
        For an empty footprint list, a non-positive scale or a negative margin.
    """
    if not footprints:
        raise CeersParameterError("footprints: no exposure footprint given")
    if not pixel_scale or pixel_scale <= 0:
        raise CeersParameterError(f"pixel_scale={pixel_scale}: must be > 0")
    if margin < 0:
        raise CeersParameterError(f"margin={margin}: must be >= 0")
    if crval is None:
        ra_c, dec_c = _footprint_center(footprints)
        if crval_step:
            ra_c = round(ra_c / crval_step) * crval_step % 360.0
            dec_c = round(dec_c / crval_step) * crval_step
        crval = (ra_c, dec_c)
    seed = OutputGrid(crpix=(0.0, 0.0), crval=crval, rotation=rotation, pixel_scale=pixel_scale, output_shape=(2, 2))
    return _crop_to_footprints(seed, footprints, int(margin))


def default_rotation(wcsinfo_values):
    """
    The rotation resample uses by default (detector-aligned) for given wcsinfo values.

    Parameters
    ----------
    wcsinfo_values : iterable of (roll_ref, v3yangle, vparity)
        One tuple per exposure, angles in degrees (ROLL_REF, V3I_YANG, VPARITY).

    Returns
    -------
    float
        Circular mean of ``roll_ref - vparity * v3yangle`` (deg, in (-180, 180]).
    """
    angles = [math.radians(roll - parity * yangle) for roll, yangle, parity in wcsinfo_values]
    if not angles:
        raise CeersParameterError("rotation: no exposure with ROLL_REF/V3I_YANG/VPARITY to derive it from")
    mean = math.degrees(math.atan2(sum(map(math.sin, angles)), sum(map(math.cos, angles))))
    return mean
