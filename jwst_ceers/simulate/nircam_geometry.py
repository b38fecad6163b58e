"""
NIRCam imaging geometry from the SIAF shipped with pysiaf: filters, detectors, gwcs.

The WCS is built the way the JWST calibration pipeline builds NIRCam imaging WCSs
(without CRDS): ``detector`` (0-based pixels) -> Shift to the SIAF science reference
pixel -> ``Sci2Idl`` distortion polynomials -> V3IdlYAngle rotation and VIdlParity
-> (V2Ref, V3Ref) gives ``v2v3`` (arcsec); then
`jwst.assign_wcs.pointing._v23tosky` (a 3D rotation by v2_ref, v3_ref, roll_ref,
dec_ref, ra_ref) gives ``world`` (ICRS, deg). A subarray adds the full-frame pixel
offset in front.

Conventions: ``roll_ref`` is the V3 position angle (deg east of north) at the
aperture reference point (V2Ref, V3Ref), and ``ra_ref, dec_ref`` are the sky
coordinates of that point (as in ``meta.wcsinfo``).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from jwst_ceers.errors import CeersParameterError
from jwst_ceers.simulate.sources import PIVOT_WAVELENGTH_UM

__all__ = [
    "NircamFilter",
    "FILTERS",
    "DETECTORS",
    "SW_DETECTORS",
    "LW_DETECTORS",
    "FULL_SIZE",
    "siaf_aperture",
    "subarray_window",
    "nircam_gwcs",
    "nircam_wcsinfo",
    "detector_pointing",
    "module_centre_v2v3",
    "pixel_area_sr",
    "abmag_to_pixel_sum",
]

FULL_SIZE = 2048
SW_DETECTORS = tuple(f"NRC{m}{i}" for m in "AB" for i in range(1, 5))
LW_DETECTORS = ("NRCALONG", "NRCBLONG")
DETECTORS = SW_DETECTORS + LW_DETECTORS
_SIAF_NAME = {**{d: d for d in SW_DETECTORS}, "NRCALONG": "NRCA5", "NRCBLONG": "NRCB5"}
_ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0


@dataclass(frozen=True)
class NircamFilter:
    """
    Properties of one NIRCam filter used by the simulator.

    Attributes
    ----------
    name : str
        Filter name (``"F150W"``).
    channel : str
        ``"SW"`` (0.031"/pix, NRCA1-4/NRCB1-4) or ``"LW"`` (0.063"/pix, NRCALONG/NRCBLONG).
    pixel_scale : float
        Nominal pixel scale, arcsec.
    psf_fwhm : float
        FWHM of the (Gaussian) PSF used for rendering, arcsec.
    sky_mjysr : float
        Typical zodiacal sky level in a CEERS field, MJy/sr.
    photmjsr : float
        Photometric conversion, MJy/sr per DN/s (``meta.photometry.conversion_megajanskys``).
    gain : float
        Electrons per DN.
    read_noise_e : float
        Effective read noise of one ~2900 s exposure (ramp fit), electrons.
    pivot_um : float
        Pivot wavelength, micron.
    """

    name: str
    channel: str
    pixel_scale: float
    psf_fwhm: float
    sky_mjysr: float
    photmjsr: float
    gain: float
    read_noise_e: float
    pivot_um: float

    @property
    def mjysr_per_electron_rate(self):
        """MJy/sr corresponding to 1 electron/s in one pixel."""
        return self.photmjsr / self.gain

    @property
    def detectors(self):
        """Detector names of this filter's channel."""
        return SW_DETECTORS if self.channel == "SW" else LW_DETECTORS


def _filter(name, channel, fwhm, sky, photmjsr):
    scale = 0.031 if channel == "SW" else 0.063
    gain = 2.05 if channel == "SW" else 1.82
    read_noise = 50.0 if channel == "SW" else 40.0
    return NircamFilter(name, channel, scale, fwhm, sky, photmjsr, gain, read_noise, PIVOT_WAVELENGTH_UM[name])


#: Filters known to the simulator (name -> :class:`NircamFilter`).
FILTERS = {f.name: f for f in (
    _filter("F090W", "SW", 0.033, 0.12, 0.50),
    _filter("F115W", "SW", 0.040, 0.13, 0.36),
    _filter("F150W", "SW", 0.050, 0.15, 0.26),
    _filter("F200W", "SW", 0.066, 0.14, 0.19),
    _filter("F277W", "LW", 0.092, 0.13, 0.42),
    _filter("F356W", "LW", 0.116, 0.18, 0.40),
    _filter("F410M", "LW", 0.137, 0.22, 0.90),
    _filter("F444W", "LW", 0.145, 0.30, 0.45),
)}


def _check_detector(detector):
    name = str(detector).upper()
    if name not in _SIAF_NAME:
        raise CeersParameterError(f"detector {detector!r} unknown; expected one of {', '.join(DETECTORS)}")
    return name


@lru_cache(maxsize=1)
def _siaf():
    import pysiaf

    return pysiaf.Siaf("NIRCam")


def siaf_aperture(detector):
    """The pysiaf ``<detector>_FULL`` aperture of a detector (NRCALONG -> NRCA5_FULL)."""
    return _siaf()[f"{_SIAF_NAME[_check_detector(detector)]}_FULL"]


def subarray_window(subarray):
    """
    0-based full-frame start and size of a centred subarray.

    Parameters
    ----------
    subarray : int or None
        Size of a square subarray centred on the detector; None (or 2048) for full frame.

    Returns
    -------
    (start, size) : tuple of int
        ``start`` is the 0-based full-frame pixel of subarray pixel 0 (both axes).
    """
    if subarray is None:
        return 0, FULL_SIZE
    size = int(subarray)
    if not 8 <= size <= FULL_SIZE:
        raise CeersParameterError(f"subarray size must be in 8..{FULL_SIZE}, got {subarray}")
    return (FULL_SIZE - size) // 2, size


def _sci2idl_models(aperture, inverse=False):
    """Astropy Polynomial2D pair from the SIAF Sci2Idl (or Idl2Sci) coefficients."""
    from astropy.modeling.models import Polynomial2D

    coeffs = aperture.get_polynomial_coefficients()
    deg = int(aperture.Sci2IdlDeg)
    polys = []
    for key in (("Idl2SciX", "Idl2SciY") if inverse else ("Sci2IdlX", "Sci2IdlY")):
        params = {}
        k = 0
        for i in range(deg + 1):
            for j in range(i + 1):  # SIAF term order: x**(i-j) * y**j
                params[f"c{i - j}_{j}"] = float(coeffs[key][k])
                k += 1
        polys.append(Polynomial2D(deg, **params))
    return polys


def _detector_to_v2v3(detector, subarray):
    """Transform detector (0-based, subarray) pixels -> V2, V3 (arcsec)."""
    from astropy.modeling.models import AffineTransformation2D, Mapping, Shift

    ap = siaf_aperture(detector)
    px, py = _sci2idl_models(ap)
    start, _ = subarray_window(subarray)
    ang = np.radians(ap.V3IdlYAngle)
    par = ap.VIdlParity
    # planar ideal -> tel: v2 = V2Ref + par*x*cos(a) + y*sin(a); v3 = V3Ref - par*x*sin(a) + y*cos(a)
    idl2tel = AffineTransformation2D(
        matrix=[[par * np.cos(ang), np.sin(ang)], [-par * np.sin(ang), np.cos(ang)]],
        translation=[ap.V2Ref, ap.V3Ref], name="idl2v2v3")
    to_sci = Shift(start + 1 - ap.XSciRef, name="x_to_sci") & Shift(start + 1 - ap.YSciRef, name="y_to_sci")
    sci2idl = Mapping((0, 1, 0, 1)) | (px & py)
    sci2idl.name = "sci2idl"
    forward = to_sci | sci2idl | idl2tel
    # analytic inverse from the SIAF Idl2Sci polynomials (as CRDS distortion files have),
    # so that world -> pixel is fast for tweakreg, resample and source placement
    ix, iy = _sci2idl_models(ap, inverse=True)
    idl2sci = Mapping((0, 1, 0, 1)) | (ix & iy)
    forward.inverse = idl2tel.inverse | idl2sci | to_sci.inverse
    return forward


def nircam_gwcs(detector, *, ra_ref, dec_ref, roll_ref, subarray=None):
    """
    Build a NIRCam imaging gwcs ``detector -> v2v3 -> world`` from the SIAF.

    Parameters
    ----------
    detector : str
        ``NRCA1``..``NRCB4``, ``NRCALONG``, ``NRCBLONG``.
    ra_ref, dec_ref : float
        Sky position (deg) of the aperture reference point (V2Ref, V3Ref).
    roll_ref : float
        V3 position angle at the reference point, deg.
    subarray : int or None
        Size of a centred square subarray (e.g. 512, 1024); None for full frame (2048).
        The full-frame offset is part of the transform.

    Returns
    -------
    gwcs.wcs.WCS
        With ``bounding_box`` covering the (sub)array, 0-based pixel coordinates.
    """
    from astropy import coordinates as coord
    from astropy import units as u
    from gwcs import coordinate_frames as cf
    from gwcs.wcs import WCS
    from jwst.assign_wcs.pointing import _v23tosky

    ap = siaf_aperture(detector)
    _, size = subarray_window(subarray)
    det2v2v3 = _detector_to_v2v3(detector, subarray)
    tel2sky = _v23tosky(ap.V2Ref / 3600.0, ap.V3Ref / 3600.0, roll_ref, ra_ref, dec_ref)
    detector_frame = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    wcs = WCS([(detector_frame, det2v2v3), (v2v3, tel2sky), (world, None)])
    wcs.bounding_box = ((-0.5, size - 0.5), (-0.5, size - 0.5))
    return wcs


def module_centre_v2v3():
    """V2, V3 (arcsec) of the NIRCam module-A centre (SIAF ``NRCALL_FULL`` reference point)."""
    centre = _siaf()["NRCALL_FULL"]
    return float(centre.V2Ref), float(centre.V3Ref)


def detector_pointing(detector, *, ra, dec, pa_v3, v2=None, v3=None):
    """
    Sky position and roll of a detector's reference point for a telescope attitude.

    Parameters
    ----------
    detector : str
        Detector name.
    ra, dec : float
        Sky position (deg) placed at the focal-plane point (v2, v3).
    pa_v3 : float
        V3 position angle at (v2, v3), deg.
    v2, v3 : float, optional
        Focal-plane point (arcsec); default the NIRCam module-A centre (``NRCALL_FULL``).

    Returns
    -------
    (ra_ref, dec_ref, roll_ref) : tuple of float
        As needed by :func:`nircam_gwcs` and ``meta.wcsinfo``.
    """
    from pysiaf.utils import rotations

    if v2 is None or v3 is None:
        v2, v3 = module_centre_v2v3()
    ap = siaf_aperture(detector)
    att = rotations.attitude(v2, v3, ra, dec, pa_v3)
    ra_ref, dec_ref = rotations.pointing(att, ap.V2Ref, ap.V3Ref)
    roll_ref = rotations.posangle(att, ap.V2Ref, ap.V3Ref)
    return float(ra_ref) % 360.0, float(dec_ref), float(roll_ref) % 360.0


def nircam_wcsinfo(detector, *, ra_ref, dec_ref, roll_ref, subarray=None, wcs=None):
    """
    ``meta.wcsinfo`` values for a NIRCam imaging exposure.

    The V2/V3 reference and pointing keywords come from the SIAF and the arguments;
    ``crpix/crval/cdelt/pc`` are a local linear (TAN) approximation at the array
    centre, and ``s_region`` is the footprint polygon of the gwcs.

    Parameters
    ----------
    detector, ra_ref, dec_ref, roll_ref, subarray
        As for :func:`nircam_gwcs`.
    wcs : gwcs.wcs.WCS, optional
        The WCS these values describe (built with :func:`nircam_gwcs` if not given).

    Returns
    -------
    dict
        Keys of ``meta.wcsinfo``.
    """
    ap = siaf_aperture(detector)
    _, size = subarray_window(subarray)
    if wcs is None:
        wcs = nircam_gwcs(detector, ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref, subarray=subarray)
    centre = (size - 1) / 2.0
    xs = np.array([centre, centre + 1, centre - 1, centre, centre])
    ys = np.array([centre, centre, centre, centre + 1, centre - 1])
    ra, dec = wcs(xs, ys, with_bounding_box=False)
    ra0, dec0 = np.radians(ra[0]), np.radians(dec[0])
    rr, dd = np.radians(ra), np.radians(dec)
    # gnomonic projection about (ra0, dec0), degrees
    cosc = np.sin(dec0) * np.sin(dd) + np.cos(dec0) * np.cos(dd) * np.cos(rr - ra0)
    xi = np.degrees(np.cos(dd) * np.sin(rr - ra0) / cosc)
    eta = np.degrees((np.cos(dec0) * np.sin(dd) - np.sin(dec0) * np.cos(dd) * np.cos(rr - ra0)) / cosc)
    cd = np.array([[(xi[1] - xi[2]) / 2, (xi[3] - xi[4]) / 2],
                   [(eta[1] - eta[2]) / 2, (eta[3] - eta[4]) / 2]])
    cdelt = np.sqrt(np.abs(np.linalg.det(cd)))
    pc = cd / cdelt
    foot = wcs.footprint(center=False)
    s_region = "POLYGON ICRS " + " ".join(f"{a:.9f} {b:.9f}" for a, b in foot)
    return dict(
        v2_ref=float(ap.V2Ref), v3_ref=float(ap.V3Ref), vparity=int(ap.VIdlParity),
        v3yangle=float(ap.V3IdlYAngle), ra_ref=float(ra_ref), dec_ref=float(dec_ref), roll_ref=float(roll_ref),
        wcsaxes=2, ctype1="RA---TAN", ctype2="DEC--TAN", cunit1="deg", cunit2="deg",
        crpix1=float(centre + 1), crpix2=float(centre + 1), crval1=float(ra[0]), crval2=float(dec[0]),
        cdelt1=float(cdelt), cdelt2=float(cdelt),
        pc1_1=float(pc[0, 0]), pc1_2=float(pc[0, 1]), pc2_1=float(pc[1, 0]), pc2_2=float(pc[1, 1]),
        siaf_xref_sci=float(ap.XSciRef), siaf_yref_sci=float(ap.YSciRef),
        s_region=s_region,
    )


def pixel_area_sr(pixel_scale):
    """Solid angle (sr) of a square pixel of ``pixel_scale`` arcsec."""
    return (pixel_scale / _ARCSEC_PER_RAD) ** 2


def abmag_to_pixel_sum(mag, pixel_scale):
    """
    Total source flux expressed as a sum of MJy/sr pixel values.

    A source of AB magnitude ``mag`` has flux 3631 Jy * 10**(-0.4 mag); spread over
    pixels of solid angle ``pixel_area_sr(pixel_scale)`` its MJy/sr pixel values sum
    to ``flux[MJy] / pixel_area``.
    """
    return 3631e-6 * 10 ** (-0.4 * np.asarray(mag, dtype=float)) / pixel_area_sr(pixel_scale)
