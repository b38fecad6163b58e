"""
JWST point-spread functions computed offline from the pupil geometry (no WebbPSF, no CRDS).

The pupil is the JWST primary as built (Lightsey et al. 2012, Proc. SPIE 8442; the
WebbPSF ``JWST_OTE_LV_pupil`` has the same layout): 18 flat-topped hexagonal segments of
1.32 m flat-to-flat on a 1.32 + 0.007 m pitch (7 mm gaps), the central segment position
empty (it holds the secondary obscuration), and three secondary-mirror struts (effective width 0.03 m,
set so their spikes are ~5x fainter than the segment spikes as in flight images), one along +V3 and two at -30 deg either side of -V3. Its far-field
pattern has JWST's six bright diffraction spikes perpendicular to the segment edges (at
0, +-60 deg from V3 and opposite) and two fainter horizontal ones from the +V3 strut
(the lower struts' spikes fall on the +-60 deg ones). The PSF is the squared modulus of
the pupil's Fourier transform, summed over three wavelengths across a wide filter
(pivot x 0.89, 1, 1.11: R ~ 4), computed ``oversample`` times finer than the detector
pixel, then integrated over detector pixels and blurred by a Gaussian of
``JITTER_SIGMA_PIX`` detector pixels standing in for line-of-sight jitter, charge
diffusion and IPC (NIRCam F150W then has FWHM ~0.05", as measured in flight: Rieke et al.
2023, PASP 135, 028001). No wavefront error: the PSF is centro-symmetric, so a star's
centroid is its true position (real WFE ~ 60-80 nm rms mostly changes the core shape).

Spike angles are set in the detector frame from the detector's V3 direction (computed
from its gwcs), so they follow each detector's orientation and parity.
"""

from functools import lru_cache

import numpy as np
import scipy.fft

from jwst_ceers.errors import CeersParameterError

__all__ = ["jwst_pupil", "PupilPSF", "pupil_psf", "wide_psf", "spike_angles_deg", "add_point_sources_psf",
           "stamp_half_size", "SEGMENT_FLAT_TO_FLAT_M", "JITTER_SIGMA_PIX"]

SEGMENT_FLAT_TO_FLAT_M = 1.32
SEGMENT_GAP_M = 0.007
# effective projected strut width: with it the horizontal (strut) spikes are ~5x fainter than
# the six segment-edge spikes, as in flight images (measured on this PSF at 20-60 px)
STRUT_WIDTH_M = 0.03
# extent of the primary (outer vertex to vertex along V2) ~ 6.6 m
PUPIL_DIAMETER_M = 6.6
# Gaussian blur (detector pixels, sigma) for jitter + charge diffusion + IPC
JITTER_SIGMA_PIX = 0.3
# relative wavelengths summed across a wide filter
_BAND_SAMPLES = (0.89, 1.0, 1.11)
_ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0


def _segment_centres():
    """Centres (m) of the 18 segments: rings 1 and 2 of a flat-topped hexagonal lattice."""
    pitch = SEGMENT_FLAT_TO_FLAT_M + SEGMENT_GAP_M
    # flat-topped hexagons touch across edges whose normals are at 30 + 60k deg
    normals = np.radians(30.0 + 60.0 * np.arange(6))
    a1 = pitch * np.array([np.cos(normals[0]), np.sin(normals[0])])
    a2 = pitch * np.array([np.cos(normals[1]), np.sin(normals[1])])
    centres = []
    for i in range(-2, 3):
        for j in range(-2, 3):
            k = -i - j
            ring = max(abs(i), abs(j), abs(k))
            if 1 <= ring <= 2:
                centres.append(i * a1 + j * a2)
    return np.array(centres)


def jwst_pupil(n, dx, *, rotation_deg=0.0, parity=1):
    """
    The JWST pupil transmission on an ``n x n`` grid of ``dx`` metres.

    Parameters
    ----------
    n : int
        Grid size.
    dx : float
        Pupil sampling (m per grid cell).
    rotation_deg : float
        Counter-clockwise rotation of the pupil (V3 axis at 90 + rotation_deg from +x).
    parity : int
        +1, or -1 to mirror x (the detector's parity relative to V2/V3).

    Returns
    -------
    ndarray of float32
        1 inside the aperture, 0 outside.
    """
    # only the window holding the aperture (radius < 3.5 m) is evaluated
    half = min(n // 2, int(np.ceil(3.5 / dx)) + 2)
    lo = n // 2 - half
    coords = (np.arange(lo, lo + 2 * half) - n / 2.0) * dx
    xx, yy = np.meshgrid(coords, coords)
    # to the pupil's own frame (V2 = x, V3 = y)
    th = np.radians(rotation_deg)
    u = (np.cos(th) * xx + np.sin(th) * yy) * parity
    v = -np.sin(th) * xx + np.cos(th) * yy
    pupil = np.zeros(xx.shape, dtype=bool)
    half_flat = SEGMENT_FLAT_TO_FLAT_M / 2.0
    reach = SEGMENT_FLAT_TO_FLAT_M / np.sqrt(3.0)
    normals = np.radians(30.0 + 60.0 * np.arange(3))
    for cx, cy in _segment_centres():
        near = (np.abs(u - cx) <= reach) & (np.abs(v - cy) <= reach)
        du, dv = u[near] - cx, v[near] - cy
        inside = np.ones(du.shape, dtype=bool)
        for a in normals:
            inside &= np.abs(du * np.cos(a) + dv * np.sin(a)) <= half_flat
        pupil[near] |= inside
    # struts: +V3 and two at -V3 -+ 30 deg (angles 90, 240, 300 deg in the V2/V3 frame)
    for angle in (90.0, 240.0, 300.0):
        a = np.radians(angle)
        along = u * np.cos(a) + v * np.sin(a)
        across = -u * np.sin(a) + v * np.cos(a)
        pupil &= ~((along > 0) & (np.abs(across) <= STRUT_WIDTH_M / 2.0))
    out = np.zeros((n, n), dtype=np.float32)
    out[lo:lo + 2 * half, lo:lo + 2 * half] = pupil
    return out


def spike_angles_deg(rotation_deg=0.0, parity=1):
    """
    Directions of the diffraction spikes in the image (deg from +x, in [0, 180)).

    Returns
    -------
    main : ndarray
        The three bright spike axes (perpendicular to the segment edges).
    strut : float
        The faint spike axis of the +V3 strut (perpendicular to V3).
    """
    def image_angle(a):
        # pupil -> image is a Fourier transform: directions map unchanged (with the same
        # rotation and parity as the pupil)
        vx, vy = np.cos(np.radians(a)) * parity, np.sin(np.radians(a))
        th = np.radians(rotation_deg)
        x = np.cos(th) * vx - np.sin(th) * vy
        y = np.sin(th) * vx + np.cos(th) * vy
        return np.degrees(np.arctan2(y, x)) % 180.0

    main = np.array([image_angle(a) for a in (30.0, 90.0, 150.0)])
    return np.sort(main), float(image_angle(0.0))


class PupilPSF:
    """
    A pupil-geometry PSF of one filter and orientation, sampled ``oversample`` x finer.

    Attributes
    ----------
    oversampled : ndarray
        PSF on the fine grid, normalised to sum 1, centre at ``(n // 2, n // 2)``.
    oversample : int
    half_size : int
        Half width of the detector-pixel stamp it supports.
    """

    def __init__(self, oversampled, oversample):
        self.oversampled = oversampled
        self.oversample = int(oversample)
        self.half_size = oversampled.shape[0] // (2 * self.oversample)
        self._ft = {}

    def stamp(self, dx, dy, half_size):
        """
        Detector-pixel PSF (sum ~1) centred at offset ``(dx, dy)`` px from the stamp centre.

        Shifted exactly in Fourier space on the fine grid, then integrated over the
        detector pixels; ``half_size`` (<= ``self.half_size``) sets the stamp to
        ``2 * half_size + 1`` pixels.
        """
        os_ = self.oversample
        half_size = int(min(half_size, self.half_size - 1))
        n_fine = (2 * half_size + 2) * os_
        if n_fine not in self._ft:
            c = self.oversampled.shape[0] // 2
            cut = self.oversampled[c - n_fine // 2:c + n_fine // 2, c - n_fine // 2:c + n_fine // 2]
            self._ft[n_fine] = np.fft.rfft2(np.fft.ifftshift(cut))
        ft = self._ft[n_fine]
        ky = np.fft.fftfreq(n_fine)[:, None]
        kx = np.fft.rfftfreq(n_fine)[None, :]
        # fine grid: detector pixel centre k at fine index k*os + (os-1)/2 -> extra shift
        sx = dx * os_ + (os_ - 1) / 2.0
        sy = dy * os_ + (os_ - 1) / 2.0
        shifted = np.fft.irfft2(ft * np.exp(-2j * np.pi * (kx * sx + ky * sy)), s=(n_fine, n_fine))
        shifted = np.fft.fftshift(shifted)
        # fine pixels [half*os .. ] -> detector pixels; centre of detector pixel half_size+... at fine n/2
        start = n_fine // 2 - half_size * os_
        block = shifted[start:start + (2 * half_size + 1) * os_, start:start + (2 * half_size + 1) * os_]
        m = 2 * half_size + 1
        return block.reshape(m, os_, m, os_).sum(axis=(1, 3))


@lru_cache(maxsize=32)
def pupil_psf(wavelength_um, pixel_scale, *, rotation_deg=0.0, parity=1, half_size=128):
    """
    Polychromatic pupil PSF for a filter of pivot ``wavelength_um`` and detector ``pixel_scale``.

    Parameters
    ----------
    wavelength_um : float
        Pivot wavelength (micron).
    pixel_scale : float
        Detector pixel (arcsec).
    rotation_deg, parity
        Pupil orientation in the detector frame (see :func:`jwst_pupil`); rounded to
        0.5 deg by callers so the cache is shared.
    half_size : int
        Half width in detector pixels of the computed PSF (the FFT grid).

    Returns
    -------
    PupilPSF
    """
    if not (0.5 <= wavelength_um <= 6.0 and 0.01 <= pixel_scale <= 0.1):
        raise CeersParameterError(f"pupil_psf: wavelength {wavelength_um} um / pixel {pixel_scale}\" out of range")
    from scipy import ndimage

    pix_rad = pixel_scale / _ARCSEC_PER_RAD
    lam_min = wavelength_um * 1e-6 * _BAND_SAMPLES[0]
    # fine sampling must be Nyquist for the shortest wavelength: pixel/os <= lambda / (2 D)
    oversample = max(2, int(np.ceil(2.0 * PUPIL_DIAMETER_M * pix_rad / lam_min)))
    # computed on a grid twice the kept size: the spikes that an FFT wraps around (it is
    # periodic) then land beyond the kept part, 4x fainter than they would inside it
    m = 2 * half_size * oversample
    n = 2 * m
    total = np.zeros((n, n), dtype=np.float32)
    for rel in _BAND_SAMPLES:
        lam = wavelength_um * 1e-6 * rel
        dx = lam / (n * pix_rad / oversample)
        pupil = jwst_pupil(n, dx, rotation_deg=rotation_deg, parity=parity)
        field = scipy.fft.fft2(np.fft.ifftshift(pupil), workers=1)
        total += (np.fft.fftshift(np.abs(field) ** 2) / (rel**2 * pupil.sum())).astype(np.float32)
    total = total[m // 2:m // 2 + m, m // 2:m // 2 + m].astype(np.float64)
    total = ndimage.gaussian_filter(total, JITTER_SIGMA_PIX * oversample, mode="constant")
    # smooth fade to zero over the outer quarter (bright stars continue with wide_psf)
    r = np.hypot(*np.meshgrid(np.arange(m) - m / 2.0, np.arange(m) - m / 2.0)) / (m / 2.0)
    total *= _taper(r)
    total /= total.sum()
    return PupilPSF(total, oversample)


# the core PSF fades out between these fractions of its half size; the wide PSF fades in
_TAPER_START = 0.75


def _taper(r):
    """cos^2 fade from 1 at r <= 0.75 to 0 at r >= 1 (r in units of the half size)."""
    return np.cos(np.clip((r - _TAPER_START) / (1 - _TAPER_START), 0, 1) * np.pi / 2) ** 2


@lru_cache(maxsize=8)
def wide_psf(wavelength_um, pixel_scale, *, rotation_deg=0.0, parity=1, half_size=512):
    """
    The far field of the pupil PSF sampled at detector pixel centres out to ``half_size`` px.

    For saturated stars, whose spikes and halo reach hundreds of px: computed at the detector
    sampling (exact point samples, too coarse to shift by sub-pixels, which the far field
    does not need), on a grid twice the kept size (no wrapped spikes), normalised to sum 1.
    """
    pix_rad = pixel_scale / _ARCSEC_PER_RAD
    m = 2 * half_size
    n = 2 * m
    total = np.zeros((n, n), dtype=np.float32)
    for rel in _BAND_SAMPLES:
        lam = wavelength_um * 1e-6 * rel
        pupil = jwst_pupil(n, lam / (n * pix_rad), rotation_deg=rotation_deg, parity=parity)
        field = scipy.fft.fft2(np.fft.ifftshift(pupil), workers=1)
        total += (np.fft.fftshift(np.abs(field) ** 2) / (rel**2 * pupil.sum())).astype(np.float32)
    total = total[m // 2:m // 2 + m + 1, m // 2:m // 2 + m + 1].astype(np.float64)
    r = np.hypot(*np.meshgrid(np.arange(m + 1) - m / 2.0, np.arange(m + 1) - m / 2.0)) / (m / 2.0)
    total *= _taper(r)
    return total / total.sum()


# spike intensity per pixel at r px from a star of total flux 1 is about SPIKE_LEVEL / r**2
# (measured on these PSFs: ~1e-5 at 24 px); stamps reach where spikes fall below 0.1 noise
SPIKE_LEVEL = 6e-3
_STAMP_HALF_SIZES = (16, 32, 64, 127, 512)


def stamp_half_size(flux, noise):
    """Stamp half width (px, one of 16..255) reaching where the spikes drop below 0.1 ``noise``."""
    need = np.sqrt(max(float(flux), 0.0) * SPIKE_LEVEL / (0.1 * float(noise))) if noise > 0 else np.inf
    for h in _STAMP_HALF_SIZES:
        if h >= need:
            return h
    return _STAMP_HALF_SIZES[-1]


def add_point_sources_psf(image, x, y, flux, psf, *, noise, wide=None):
    """
    Add point sources drawn with a :class:`PupilPSF` onto ``image`` in place.

    Each stamp is as large as its spikes need (:func:`stamp_half_size`), so bright
    stars get their spikes and halo far out.

    Parameters
    ----------
    image : ndarray
        2-D image (modified in place).
    x, y, flux : array-like
        0-based pixel positions and total fluxes.
    psf : PupilPSF
    noise : float
        Per-pixel noise sigma of the image (sets the stamp sizes).
    wide : callable, optional
        Returns the :func:`wide_psf` (called only when a star's spikes reach beyond
        ``psf``): its far field, faded in where ``psf`` fades out, is added around the
        nearest pixel.
    """
    ny, nx = image.shape
    for xi, yi, fi in zip(np.atleast_1d(x), np.atleast_1d(y), np.atleast_1d(flux), strict=True):
        if not (np.isfinite(xi) and np.isfinite(yi) and np.isfinite(fi)) or fi <= 0:
            continue
        h = stamp_half_size(fi, noise)
        if h > psf.half_size and wide is not None:
            _add_far_field(image, xi, yi, fi, wide(), core_half_size=psf.half_size)
        h = min(h, psf.half_size - 1)
        ix, iy = int(np.round(xi)), int(np.round(yi))
        if ix + h < 0 or iy + h < 0 or ix - h > nx - 1 or iy - h > ny - 1:
            continue
        stamp = psf.stamp(xi - ix, yi - iy, h) * fi
        x0, y0 = ix - h, iy - h
        xs, ys = max(0, x0), max(0, y0)
        xe, ye = min(nx, x0 + stamp.shape[1]), min(ny, y0 + stamp.shape[0])
        image[ys:ye, xs:xe] += stamp[ys - y0:ye - y0, xs - x0:xe - x0].astype(image.dtype)


def _add_far_field(image, x, y, flux, far, *, core_half_size):
    """Add ``flux`` x the part of ``far`` outside the core PSF's fade (complementary weights)."""
    m = far.shape[0] // 2
    ny, nx = image.shape
    ix, iy = int(np.round(x)), int(np.round(y))
    x0, y0 = ix - m, iy - m
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(nx, x0 + far.shape[1]), min(ny, y0 + far.shape[0])
    if xs >= xe or ys >= ye:
        return
    yy, xx = np.mgrid[ys - y0:ye - y0, xs - x0:xe - x0]
    r = np.hypot(xx - m, yy - m) / core_half_size
    part = far[ys - y0:ye - y0, xs - x0:xe - x0] * (1.0 - _taper(r))
    image[ys:ye, xs:xe] += (flux * part).astype(image.dtype)
