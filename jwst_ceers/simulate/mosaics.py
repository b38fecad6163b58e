"""Synthetic drizzled mosaics of one CEERS-like pointing, with their truth.

:func:`simulate_mosaics` makes, for several filters, images that look like the
``*_i2d.fits`` products of Image3 for one NIRCam pointing, all on ONE pixel grid
(a TAN projection with the tangent point at the grid centre, as a CEERS pointing
grid has): shared sources with colours (stars, galaxies, a few large bright
galaxies with extended low-surface-brightness wings), one source present in a
single filter only, an irregular footprint with NaN outside (as resample writes),
drizzle-like correlated noise whose ERR/WHT arrays are consistent with it, and a
smooth known background (gradient plus large-scale bumps) of a few sigma.

Calibration (independent of the background step's score):

- Galaxy counts: ``CEERS_F160W_GALAXY_COUNTS`` (sources.py), measured on the real
  CEERS HST F160W catalogue (MAG column, 210 arcmin^2, stars subtracted): ~3.5x the
  exposure simulator's default law at mag 22-26, 0.35 galaxies arcmin^-2 at mag
  16-18.5. Sizes, Sersic indices and shapes of ALL galaxies, the bright ones included,
  follow one size-magnitude relation (median r_eff 0.3" at mag 23, 0.1 dex larger per
  brighter mag, 0.2 dex scatter: ~1.2" at mag 17) and disc/bulge mixture. The
  catalogue's ``rh`` column (half-light radius in 0.03" pixels) cannot calibrate sizes:
  its floor of 3.5 px is the F160W PSF and it grows towards faint magnitudes (noise
  bias of a measured half-light radius), never above 11.4.
- Large bright galaxies: no longer forced (the old default put at least one of mag
  16-18.5 with r_eff uniform 1-4" and n uniform 1-4 in every field, twice a full
  pointing's density at 2000^2). They come from the counts, Poisson: ~0.35 per 2000^2
  field, ~4 per 10600 x 4800 pointing. ``n_large_galaxies`` adds more, drawn from the
  same relations and placed inside the field, for tests that need one.
- Noise correlation: per filter from drizzling its native pixels at pixfrac 1 onto the
  grid (``drizzle_correlation_spread``): NIRCam SW lag-1 correlation 0.26 (a = 0.14),
  LW 0.62 (a = 0.42); it was 0.56 (a = 0.35) for every filter.

How hard these mosaics are (measured after the calibration, seeds 1-3 at 2000^2,
F150W / F356W, ``benchmarks/bench_mosaic_bkg.py``): the CEERS reference
(``benchmarks/ceers_reference_background.py``, both filters merged) masks 86-92% of
the footprint and gets rms 0.059 / 0.094, 0.21 / 0.51 (seed 2: a bright galaxy),
0.074 / 0.110; the step masks 73-85% and gets 0.050 / 0.045, 0.092 / 0.183,
0.033 / 0.061 (after the wing-growth peak condition). Most of the masking is noise:
on noise alone (no sources) the reference's tier 4 (2 px kernel, npixels 1, 1.5 x the
unsmoothed pixel rms, 19 px dilation) masks 17% of an F150W mosaic and 83% of an
F356W one, because drizzled LW noise is strongly correlated. Issue 8's mosaic (20.8%
masked, rms 0.111, bias +0.090) must have had much less correlated noise; with the
per-filter drizzle correlation no realistic source population brings the reference
near 20% masked. Before the step modelled large galaxies (Sersic fits), its residual
was dominated by the bright galaxies that the counts put in a field (F356W, where
galaxies are ~0.5 mag brighter): a field with a mag ~16.5, r_eff ~1.4" galaxy was at
rms 0.18-0.37 in F356W; with the models, seed 2 gives 0.050 / 0.055.

Optionally it also writes HST-like plain-FITS mosaics (PRIMARY + SCI + WHT, FILTER
keyword) on the same grid. The truth (background, noiseless sources, noise sigma
map, footprint) is returned and also written beside the mosaics, so that another
process can read it (:func:`read_mosaic_truth`).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from jwst_ceers.simulate.sources import CEERS_F160W_GALAXY_COUNTS

__all__ = [
    "MosaicSet",
    "simulate_mosaics",
    "mosaic_wcs_header",
    "read_mosaic_truth",
    "MOSAIC_FILTER_PROPERTIES",
    "NATIVE_PIXEL_SCALE",
    "drizzle_correlation_spread",
    "BACKGROUND_FAMILIES",
    "SOURCE_DENSITIES",
]

log = logging.getLogger(__name__)

# PSF FWHM (arcsec) and a CEERS-like 5-sigma point-source depth (AB) per filter,
# used to set the pixel noise; HST filters for the optional HST-like mosaics.
MOSAIC_FILTER_PROPERTIES = {
    "F115W": (0.040, 28.9),
    "F150W": (0.050, 28.9),
    "F200W": (0.066, 29.1),
    "F277W": (0.092, 29.2),
    "F356W": (0.116, 29.2),
    "F410M": (0.137, 28.5),
    "F444W": (0.145, 28.8),
    "F606W": (0.080, 28.6),
    "F814W": (0.090, 28.3),
    "F125W": (0.150, 27.5),
    "F140W": (0.160, 27.0),
    "F160W": (0.180, 27.6),
}
HST_INSTRUMENTS = {"F606W": "ACS", "F814W": "ACS", "F125W": "WFC3", "F140W": "WFC3", "F160W": "WFC3"}

# Native detector pixel scales (arcsec) that set the drizzled noise correlation:
# NIRCam SW 0.031", LW 0.063", ACS/WFC 0.05", WFC3/IR 0.128".
NATIVE_PIXEL_SCALE = {"NIRCAM_SW": 0.031, "NIRCAM_LW": 0.063, "ACS": 0.05, "WFC3": 0.128}
_LW_FILTERS = ("F277W", "F356W", "F410M", "F444W")

# CEERS pointing-like tangent point and grid rotation (EGS field).
DEFAULT_CRVAL = (214.98, 52.98)
DEFAULT_ROTATION_DEG = -49.7


@dataclass
class MosaicSet:
    """
    What :func:`simulate_mosaics` made.

    Attributes
    ----------
    paths : dict
        Filter name -> mosaic file (``*_i2d.fits`` or HST ``*_drz.fits``); empty
        when nothing was written.
    truth_paths : dict
        Filter name -> truth file (see :func:`read_mosaic_truth`).
    header : `astropy.io.fits.Header`
        The shared FITS WCS header of the grid.
    coverage : ndarray of bool
        True where there are NO data (off the footprint), as in the mosaics' NaNs.
    truth : dict
        Filter name -> dict with ``background``, ``sources`` (noiseless source
        image) and ``noise_sigma`` float32 arrays (same units as the mosaics).
    single_filter_source : dict
        ``filter``, ``x``, ``y`` (0-based pixels) and ``radius`` (pixels within
        which its flux exceeds ~0.5 sigma) of the source present in one filter only.
    sources : `astropy.table.Table`
        The source population with pixel positions ``x``, ``y``.
    images : dict
        Filter name -> the simulated mosaic (float32, NaN off the footprint).
    """

    paths: dict = field(default_factory=dict)
    truth_paths: dict = field(default_factory=dict)
    header: object = None
    coverage: np.ndarray = None
    truth: dict = field(default_factory=dict)
    single_filter_source: dict = field(default_factory=dict)
    sources: object = None
    images: dict = field(default_factory=dict)


def mosaic_wcs_header(shape, *, crval=DEFAULT_CRVAL, rotation_deg=DEFAULT_ROTATION_DEG, pixel_scale=0.03):
    """
    FITS TAN WCS header of a pointing grid with the tangent point at its centre.

    Parameters
    ----------
    shape : tuple of int
        (ny, nx).
    crval : tuple of float
        Tangent point (RA, Dec) in degrees.
    rotation_deg : float
        Rotation of the grid (position angle of +y, degrees east of north).
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    `astropy.io.fits.Header`
    """
    from astropy.io import fits

    ny, nx = shape
    theta = np.deg2rad(rotation_deg)
    cdelt = pixel_scale / 3600.0
    header = fits.Header()
    header["WCSAXES"] = 2
    header["CTYPE1"] = "RA---TAN"
    header["CTYPE2"] = "DEC--TAN"
    header["CUNIT1"] = "deg"
    header["CUNIT2"] = "deg"
    header["CRPIX1"] = (nx + 1) / 2.0
    header["CRPIX2"] = (ny + 1) / 2.0
    header["CRVAL1"] = float(crval[0])
    header["CRVAL2"] = float(crval[1])
    header["CDELT1"] = -cdelt
    header["CDELT2"] = cdelt
    header["PC1_1"] = np.cos(theta)
    header["PC1_2"] = -np.sin(theta)
    header["PC2_1"] = np.sin(theta)
    header["PC2_2"] = np.cos(theta)
    header["RADESYS"] = "ICRS"
    return header


def _gwcs_from_header(header, shape):
    """A gwcs pixel -> ICRS equal to the FITS TAN WCS of ``header`` (0-based pixels)."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    pc = np.array([[header["PC1_1"], header["PC1_2"]], [header["PC2_1"], header["PC2_2"]]])
    cd = pc * np.array([[header["CDELT1"]], [header["CDELT2"]]])
    transform = (
        (models.Shift(-(header["CRPIX1"] - 1)) & models.Shift(-(header["CRPIX2"] - 1)))
        | models.AffineTransformation2D(matrix=cd)
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(header["CRVAL1"], header["CRVAL2"], 180.0)
    )
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    wcs = gwcs_wcs.WCS([(detector, transform), (sky, None)])
    ny, nx = shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return wcs


def _footprint_nodata(shape, rng):
    """True off an irregular, slightly rotated footprint with a notch (like i2d NaN borders)."""
    ny, nx = shape
    angle = np.deg2rad(rng.uniform(-2.5, 2.5))
    yy = np.arange(ny, dtype=np.float32)[:, None] - ny / 2
    xx = np.arange(nx, dtype=np.float32)[None, :] - nx / 2
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = xx * cos + yy * sin
    half_u = 0.5 * nx * (1 - rng.uniform(0.04, 0.07)) - ny * abs(sin) / 2
    inside = np.abs(u) < half_u
    del u
    v = yy * cos - xx * sin
    half_v = 0.5 * ny * (1 - rng.uniform(0.04, 0.07)) - nx * abs(sin) / 2
    inside &= np.abs(v) < half_v
    # a dither-step notch at one corner, as drizzled footprints have
    notch_u = int(0.18 * nx)
    notch_v = int(0.12 * ny)
    inside[ny - notch_v - int(0.04 * ny):, : notch_u + int(0.04 * nx)] = False
    del v
    return ~inside


def _depth_map(shape, rng):
    """Relative number of exposures per pixel (piecewise constant strips, as dithers give)."""
    ny, nx = shape
    nexp = np.full(shape, 3.0, dtype=np.float32)
    # a thin module-gap-like strip with fewer exposures and two overlap strips with more
    gap = int(rng.uniform(0.45, 0.55) * nx)
    width = max(2, int(0.015 * nx))
    nexp[:, gap : gap + width] = 2.0
    for frac in (0.2, 0.75):
        row = int(frac * ny)
        nexp[row : row + max(2, int(0.03 * ny)), :] += 1.0
    return nexp


def drizzle_correlation_spread(native_scale, pixel_scale, *, pixfrac=1.0):
    """
    The ``a`` of the separable [a, 1, a] noise kernel that matches drizzling.

    Drizzling input pixels of ``native_scale`` shrunk by ``pixfrac`` onto an output grid
    of ``pixel_scale`` (many dithers, so drop phases are uniform) correlates output
    neighbours, per axis, like the autocorrelation of the overlap of a drop of width
    ``d = pixfrac * native_scale / pixel_scale`` (output pixels) with one output pixel,
    at lag 1. The [a, 1, a] kernel gives lag-1 correlation 2a / (1 + 2a^2); ``a`` is
    solved for (capped at 1/sqrt(2), the kernel's largest lag-1 correlation 0.707).
    CEERS NIRCam (pixfrac 1 onto 0.03"): SW (0.031") lag-1 correlation 0.26, a = 0.14;
    LW (0.063") 0.62, a = 0.42.

    Parameters
    ----------
    native_scale, pixel_scale : float
        Input and output pixel scales (arcsec).
    pixfrac : float
        Drizzle drop shrink factor.

    Returns
    -------
    float
    """
    d = pixfrac * native_scale / pixel_scale
    x = np.linspace(-(d + 3.0), d + 3.0, 20001)

    def overlap(centre):
        return np.clip(np.minimum(centre + d / 2, 0.5) - np.maximum(centre - d / 2, -0.5), 0.0, None)

    base = overlap(x)
    rho1 = float(np.sum(base * overlap(x - 1.0)) / np.sum(base * base))
    if rho1 >= np.sqrt(0.5) - 1e-9:
        return float(np.sqrt(0.5))
    # 2a / (1 + 2a^2) = rho1, smaller root
    return float((1.0 - np.sqrt(1.0 - 2.0 * rho1**2)) / (2.0 * rho1)) if rho1 > 0 else 0.0


def _filter_correlation_spread(filter_name, pixel_scale):
    """Drizzle noise correlation ``a`` of a filter's mosaic (pixfrac 1, as CEERS drizzles)."""
    name = filter_name.upper()
    if name in HST_INSTRUMENTS:
        native = NATIVE_PIXEL_SCALE[HST_INSTRUMENTS[name]]
    else:
        native = NATIVE_PIXEL_SCALE["NIRCAM_LW" if name in _LW_FILTERS else "NIRCAM_SW"]
    return drizzle_correlation_spread(native, pixel_scale)


def _correlated_noise(shape, rng, *, spread):
    """Unit-variance Gaussian noise correlated like drizzled noise (separable [a, 1, a] kernel)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    weights = np.array([spread, 1.0, spread], dtype=np.float32)
    weights /= np.sqrt(np.sum(weights**2))
    out = np.empty_like(white)
    # along x
    out[:, 1:-1] = weights[0] * white[:, :-2] + weights[1] * white[:, 1:-1] + weights[2] * white[:, 2:]
    out[:, 0] = white[:, 0]
    out[:, -1] = white[:, -1]
    # along y (reuse white as the output buffer)
    white[1:-1] = weights[0] * out[:-2] + weights[1] * out[1:-1] + weights[2] * out[2:]
    white[0] = out[0]
    white[-1] = out[-1]
    return white


def _smooth_background(shape, rng, *, amplitude):
    """Gradient plus one or two broad Gaussian bumps, scaled to peak-to-valley ``amplitude``."""
    ny, nx = shape
    y = (np.arange(ny, dtype=np.float32)[:, None] - ny / 2) / max(ny, nx)
    x = (np.arange(nx, dtype=np.float32)[None, :] - nx / 2) / max(ny, nx)
    angle = rng.uniform(0, 2 * np.pi)
    bkg = np.float32(np.cos(angle)) * x + np.float32(np.sin(angle)) * y
    for _ in range(int(rng.integers(1, 3))):
        cy, cx = rng.uniform(0.2, 0.8) * ny, rng.uniform(0.2, 0.8) * nx
        sigma = min(rng.uniform(400.0, 800.0), 0.3 * max(ny, nx))
        gy = np.exp(-0.5 * ((np.arange(ny, dtype=np.float32) - cy) / sigma) ** 2)
        gx = np.exp(-0.5 * ((np.arange(nx, dtype=np.float32) - cx) / sigma) ** 2)
        bkg += np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)) * np.outer(gy, gx)
    bkg *= np.float32(amplitude / max(float(np.ptp(bkg)), 1e-12))
    bkg += np.float32(rng.uniform(-0.3, 0.3) * amplitude)
    return bkg


def _unit_axes(shape):
    """Row and column coordinates centred on the grid, in units of its larger side."""
    ny, nx = shape
    size = float(max(ny, nx))
    y = (np.arange(ny, dtype=np.float32)[:, None] - ny / 2) / np.float32(size)
    x = (np.arange(nx, dtype=np.float32)[None, :] - nx / 2) / np.float32(size)
    return y, x


def _gaussian_bump(shape, cy, cx, width, *, axis_ratio=1.0, angle=0.0):
    """Unit elliptical Gaussian of major-axis sigma ``width`` pixels (float32)."""
    ny, nx = shape
    dy = np.arange(ny, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(nx, dtype=np.float32)[None, :] - np.float32(cx)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (dx * c + dy * s) / np.float32(width)
    v = (dy * c - dx * s) / np.float32(width * axis_ratio)
    return np.exp(-0.5 * (u * u + v * v))


def _family_plane(shape, rng, sigma, total):
    """A random gradient of ``total`` sigma across the grid (float32, data units)."""
    y, x = _unit_axes(shape)
    angle = rng.uniform(0, 2 * np.pi)
    return np.float32(total * sigma) * (np.float32(np.cos(angle)) * x + np.float32(np.sin(angle)) * y)


def _family_bumps(shape, rng, sigma):
    """Gradient of 0.5 sigma plus 3-6 round-ish bumps 100-400 px wide (sigma), +-0.6-1.2 sigma."""
    ny, nx = shape
    bkg = _family_plane(shape, rng, sigma, 0.5)
    for _ in range(int(rng.integers(3, 7))):
        bkg += np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2) * sigma) * _gaussian_bump(
            shape, rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(100.0, 400.0),
            axis_ratio=rng.uniform(0.5, 1.0), angle=rng.uniform(0, np.pi))
    return bkg


def _family_ripple(shape, rng, sigma):
    """Two crossed low-level ripples (wavelengths 250-700 px, 0.15-0.3 sigma each) on a 0.8 sigma gradient."""
    ny, nx = shape
    bkg = _family_plane(shape, rng, sigma, 0.8)
    rows = np.arange(ny, dtype=np.float32)[:, None]
    cols = np.arange(nx, dtype=np.float32)[None, :]
    for _ in range(2):
        angle = rng.uniform(0, np.pi)
        k = np.float32(2 * np.pi / rng.uniform(250.0, 700.0))
        phase = np.float32(rng.uniform(0, 2 * np.pi))
        bkg += np.float32(rng.uniform(0.15, 0.3) * sigma) * np.sin(
            k * (np.float32(np.cos(angle)) * cols + np.float32(np.sin(angle)) * rows) + phase)
    return bkg


def _family_saddle(shape, rng, sigma):
    """Whole-mosaic quadratic surface (bowl or saddle) of up to 2 sigma peak-to-valley, plus a gradient."""
    y, x = _unit_axes(shape)
    a, b, c = rng.uniform(-1.0, 1.0, 3)
    surface = np.float32(a) * x * x + np.float32(b) * x * y + np.float32(c) * y * y
    surface *= np.float32(rng.uniform(1.2, 2.0) * sigma / max(float(np.ptp(surface)), 1e-12))
    return surface + _family_plane(shape, rng, sigma, 0.5)


def _family_steps(shape, rng, sigma):
    """Detector-like patches: a 2-4 x 2-3 grid of tiles with offsets of +-0.2-0.5 sigma, edges smoothed over ~60-120 px.

    As left by sky matching that did not equalise every detector of a mosaic."""
    ny, nx = shape
    ty, tx = int(rng.integers(2, 4)), int(rng.integers(2, 5))
    edges_y = np.sort(rng.uniform(0.15, 0.85, ty - 1)) * ny
    edges_x = np.sort(rng.uniform(0.15, 0.85, tx - 1)) * nx
    iy = np.searchsorted(edges_y, np.arange(ny))
    ix = np.searchsorted(edges_x, np.arange(nx))
    offsets = (rng.choice([-1.0, 1.0], (ty, tx)) * rng.uniform(0.2, 0.5, (ty, tx)) * sigma).astype(np.float32)
    tiles = offsets[iy[:, None], ix[None, :]]
    smooth = rng.uniform(30.0, 60.0)  # Gaussian sigma: 10-90% edge width ~2.5 sigma
    return gaussian_filter(tiles, smooth, mode="nearest") + _family_plane(shape, rng, sigma, 0.3)


def _family_edge_glow(shape, rng, sigma):
    """A 1-2 sigma glow rising towards one edge over 150-400 px (scattered light, wisp residual), plus a bump."""
    ny, nx = shape
    side = int(rng.integers(4))
    length = rng.uniform(150.0, 400.0)
    rows = np.arange(ny, dtype=np.float32)[:, None]
    cols = np.arange(nx, dtype=np.float32)[None, :]
    distance = {0: rows + 0 * cols, 1: (ny - 1 - rows) + 0 * cols, 2: cols + 0 * rows, 3: (nx - 1 - cols) + 0 * rows}[side]
    bkg = np.float32(rng.uniform(1.0, 2.0) * sigma) * np.exp(-distance / np.float32(length))
    bkg += np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0) * sigma) * _gaussian_bump(
        shape, rng.uniform(0.3, 0.7) * ny, rng.uniform(0.3, 0.7) * nx, rng.uniform(200.0, 400.0))
    return bkg


#: Smooth background families (name -> function(shape, rng, sigma) -> float32 map in data
#: units), beyond the default gradient-plus-broad-bumps (``"gradient_bumps"``). Scales
#: from ~100 px to the whole mosaic, amplitudes up to ~2 sigma, each a structure real
#: mosaics show: bumps a few hundred px wide, low-level ripple, whole-field curvature,
#: detector-like steps left by sky matching, glow towards an edge.
BACKGROUND_FAMILIES = {
    "bumps": _family_bumps,
    "ripple": _family_ripple,
    "saddle": _family_saddle,
    "steps": _family_steps,
    "edge_glow": _family_edge_glow,
}

#: Source density presets: factor on the galaxy counts at every magnitude.
SOURCE_DENSITIES = {"sparse": 0.35, "field": 1.0, "dense": 2.0, "cluster_core": 4.0}


def _ab_to_image_flux(mag, pixel_scale):
    """Total flux of an AB magnitude in MJy/sr x pixel units (sum over the pixels of a mosaic)."""
    pixel_sr = (pixel_scale / 206264.80624709636) ** 2
    return 3631.0 * 10 ** (-0.4 * np.asarray(mag, dtype=float)) * 1e-6 / pixel_sr


def _pixel_sigma(filter_name, pixel_scale, correlation_spread):
    """Pixel noise sigma (MJy/sr) giving the filter's 5-sigma depth in a 0.1"-radius aperture."""
    fwhm, depth = MOSAIC_FILTER_PROPERTIES.get(filter_name.upper(), (0.1, 28.5))
    aperture_px = np.pi * (0.1 / pixel_scale) ** 2
    # fraction of a Gaussian PSF inside r = 0.1"
    sigma_arcsec = fwhm / 2.3548
    enclosed = 1 - np.exp(-0.5 * (0.1 / sigma_arcsec) ** 2)
    aperture_sigma = _ab_to_image_flux(depth, pixel_scale) * enclosed / 5.0
    # correlated noise: variance of an aperture sum is larger than npix * sigma^2
    w = np.array([correlation_spread, 1.0, correlation_spread])
    w /= np.sqrt(np.sum(w**2))
    gain = np.sum(w) ** 2  # per axis; for large apertures
    return float(aperture_sigma / np.sqrt(aperture_px * gain))


def simulate_mosaics(
    out_dir=None,
    *,
    shape=(2000, 2000),
    filters=("F150W", "F356W"),
    hst_filters=(),
    pixel_scale=0.03,
    seed=1,
    crval=DEFAULT_CRVAL,
    rotation_deg=DEFAULT_ROTATION_DEG,
    background_amplitude_sigma=(1.0, 3.0),
    mag_limit=30.0,
    mag_bright=16.0,
    star_fraction=0.05,
    n_large_galaxies=0,
    galaxy_counts=CEERS_F160W_GALAXY_COUNTS,
    correlation_spread=None,
    pointing="ceers_nircam1",
    single_filter=None,
    background_family="gradient_bumps",
    density=1.0,
):
    """
    Make drizzled-mosaic-like images of one pointing on one grid, with their truth.

    Parameters
    ----------
    out_dir : str or Path, optional
        Where to write ``<pointing>_<filter>_i2d.fits`` (jwst ImageModels), HST-like
        ``<pointing>_<filter>_drz.fits`` and ``<pointing>_<filter>_truth.fits``.
        None: nothing is written (arrays only, in the returned truth).
    shape : tuple of int
        (ny, nx) of the grid (CEERS NIRCam pointings: (4800, 10600)).
    filters : sequence of str
        NIRCam filters.
    hst_filters : sequence of str
        HST filters written as plain FITS mosaics on the same grid.
    pixel_scale : float
        Arcsec per pixel.
    seed : int
        Random seed; everything is deterministic given it.
    crval, rotation_deg : optional
        Tangent point (deg) and grid rotation (deg).
    background_amplitude_sigma : tuple of float
        Range of the smooth background's peak-to-valley amplitude, in pixel-noise units
        (drawn per filter).
    mag_limit, mag_bright, star_fraction : float
        Source population parameters (see ``make_source_population``).
    n_large_galaxies : int
        Large bright galaxies (mag 16-18.5, sizes and profiles from the size-magnitude
        relation) added on top of the population, for tests that need one in a small
        field. The default 0 leaves them to the calibrated counts: Poisson, 0.35 per
        arcmin^2 at mag 16-18.5 (~0.35 per 2000^2 field, ~4 per 10600 x 4800 pointing).
    galaxy_counts : sequence of (mag, log10 dN/dm) pairs, optional
        Galaxy differential counts; default the CEERS HST F160W counts
        (``CEERS_F160W_GALAXY_COUNTS``); None: the exposure simulator's default law.
    correlation_spread : float, optional
        Drizzle-like noise correlation: the separable kernel is [a, 1, a] per axis.
        None (default): per filter from drizzling its native pixels at pixfrac 1
        (:func:`drizzle_correlation_spread`: SW 0.14, LW 0.42, ACS 0.30, WFC3/IR 0.71);
        a number: that ``a`` for NIRCam and ``min(0.8, 2a)`` for HST filters.
    pointing : str
        Name used in file names.
    single_filter : str, optional
        Filter in which one extra source alone is present (default: the last NIRCam
        filter, or the only filter).
    background_family : str
        ``"gradient_bumps"`` (default): gradient plus one or two broad bumps, scaled to
        ``background_amplitude_sigma``; or one of `BACKGROUND_FAMILIES` (its own
        amplitudes, in pixel sigma; ``background_amplitude_sigma`` then only adds a
        constant level).
    density : float or str
        Factor on the galaxy counts (or a `SOURCE_DENSITIES` name: ``"sparse"`` 0.35 to
        ``"cluster_core"`` 4).

    Returns
    -------
    MosaicSet
    """
    from astropy.wcs import WCS

    from jwst_ceers.simulate.sources import make_source_population, render_sources, source_mag

    shape = (int(shape[0]), int(shape[1]))
    if background_family != "gradient_bumps" and background_family not in BACKGROUND_FAMILIES:
        raise ValueError(
            f"background_family {background_family!r}: use 'gradient_bumps' or one of {sorted(BACKGROUND_FAMILIES)}"
        )
    density = float(SOURCE_DENSITIES.get(density, density)) if isinstance(density, str) else float(density)
    if not density > 0:
        raise ValueError(f"density must be > 0, got {density}")
    if density != 1.0:
        galaxy_counts = [
            (mag, value + np.log10(density)) for mag, value in (galaxy_counts or CEERS_F160W_GALAXY_COUNTS)
        ]
    rng = np.random.default_rng(seed)
    header = mosaic_wcs_header(shape, crval=crval, rotation_deg=rotation_deg, pixel_scale=pixel_scale)
    wcs = WCS(header)
    ny, nx = shape
    nodata = _footprint_nodata(shape, rng)
    nexp = _depth_map(shape, rng)
    depth_factor = np.sqrt(3.0 / nexp)  # relative noise sigma
    del nexp

    table = make_source_population(
        ra=crval[0],
        dec=crval[1],
        width_arcsec=nx * pixel_scale * 1.02,
        height_arcsec=ny * pixel_scale * 1.02,
        seed=int(rng.integers(2**31)),
        mag_limit=mag_limit,
        mag_bright=mag_bright,
        star_fraction=star_fraction,
        n_large_galaxies=int(n_large_galaxies),
        galaxy_counts=galaxy_counts,
        large_galaxy_sizes="size_relation",
    )
    # the population is laid out in RA/Dec around the tangent point; keep what falls on the grid
    x, y = wcs.all_world2pix(np.asarray(table["ra"]), np.asarray(table["dec"]), 0)
    if n_large_galaxies > 0:
        # explicitly requested large galaxies (the last rows) are put well inside the
        # field, so that a small test field really holds one (not just its wings)
        x[-n_large_galaxies:] = rng.uniform(0.2, 0.8, n_large_galaxies) * nx
        y[-n_large_galaxies:] = rng.uniform(0.2, 0.8, n_large_galaxies) * ny
        ra_big, dec_big = wcs.all_pix2world(x[-n_large_galaxies:], y[-n_large_galaxies:], 0)
        table["ra"][-n_large_galaxies:] = ra_big
        table["dec"][-n_large_galaxies:] = dec_big
    keep = (x > -50) & (x < nx + 50) & (y > -50) & (y < ny + 50)
    table = table[keep]
    table["x"] = x[keep]
    table["y"] = y[keep]

    all_filters = [f.upper() for f in filters] + [f.upper() for f in hst_filters]
    single_filter = (single_filter or filters[-1]).upper()
    # the single-filter source: a compact galaxy, well detected, away from the big ones
    single = _place_single_filter_source(table, shape, nodata, rng, pixel_scale)

    out = MosaicSet(header=header, coverage=nodata, sources=table)
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    for filter_name in all_filters:
        is_hst = filter_name in [f.upper() for f in hst_filters]
        fwhm_arcsec = MOSAIC_FILTER_PROPERTIES.get(filter_name, (0.1, 28.5))[0]
        if correlation_spread is None:
            spread = _filter_correlation_spread(filter_name, pixel_scale)
        else:
            spread = correlation_spread if not is_hst else min(0.8, correlation_spread * 2)
        sigma0 = _pixel_sigma(filter_name, pixel_scale, spread)
        mags = np.asarray(source_mag(table, filter_name), dtype=float)
        flux = _ab_to_image_flux(mags, pixel_scale)
        r_eff_pix = np.asarray(table["r_eff"], dtype=float) / pixel_scale
        sources = render_sources(
            shape,
            np.asarray(table["x"], dtype=float),
            np.asarray(table["y"], dtype=float),
            flux,
            r_eff_pix=r_eff_pix,
            sersic_n=np.asarray(table["sersic_n"], dtype=float),
            axis_ratio=np.asarray(table["axis_ratio"], dtype=float),
            pa_deg=np.asarray(table["pa"], dtype=float),
            psf_fwhm_pix=fwhm_arcsec / pixel_scale,
        ).astype(np.float32, copy=False)
        if filter_name == single_filter:
            sources += render_sources(
                shape,
                np.array([single["x"]]),
                np.array([single["y"]]),
                np.array([single["snr_flux"] * sigma0]),
                r_eff_pix=np.array([single["r_eff_pix"]]),
                sersic_n=np.array([1.0]),
                axis_ratio=np.array([0.8]),
                pa_deg=np.array([30.0]),
                psf_fwhm_pix=fwhm_arcsec / pixel_scale,
            ).astype(np.float32, copy=False)
        amplitude = rng.uniform(*background_amplitude_sigma) * sigma0
        if background_family == "gradient_bumps":
            background = _smooth_background(shape, rng, amplitude=amplitude)
        else:
            background = BACKGROUND_FAMILIES[background_family](shape, rng, sigma0).astype(np.float32, copy=False)
            background += np.float32(rng.uniform(-0.3, 0.3) * amplitude)
        noise_sigma = (depth_factor * np.float32(sigma0)).astype(np.float32)
        data = _correlated_noise(shape, rng, spread=spread)
        data *= noise_sigma
        data += background
        data += sources
        data[nodata] = np.nan
        noise_sigma_out = noise_sigma.copy()
        noise_sigma_out[nodata] = np.nan
        out.truth[filter_name] = {"background": background, "sources": sources, "noise_sigma": noise_sigma}
        if filter_name == single_filter:
            out.single_filter_source = {
                "filter": filter_name,
                "x": single["x"],
                "y": single["y"],
                "radius": single["radius"],
            }
        if out_dir is not None:
            stem = f"{pointing}_{filter_name.lower()}"
            if is_hst:
                path = out_dir / f"{stem}_drz.fits"
                _write_hst_mosaic(path, data, noise_sigma_out, header, filter_name)
            else:
                path = out_dir / f"{stem}_i2d.fits"
                _write_i2d(path, data, noise_sigma_out, header, shape, filter_name, pixel_scale)
            out.paths[filter_name] = path
            truth_path = out_dir / f"{stem}_truth.fits"
            _write_truth(truth_path, out.truth[filter_name], nodata, header, filter_name, out.single_filter_source if filter_name == single_filter else None)
            out.truth_paths[filter_name] = truth_path
        out.images[filter_name] = data
        del noise_sigma_out
        log.info("simulated %s mosaic %s (sigma %.4g MJy/sr)", filter_name, shape, sigma0)
    return out


def _place_single_filter_source(table, shape, nodata, rng, pixel_scale):
    """Position and size of the source that only one filter sees."""
    ny, nx = shape
    big = np.asarray(table["r_eff"]) / pixel_scale > 15
    bx, by = np.asarray(table["x"])[big], np.asarray(table["y"])[big]
    for _ in range(200):
        x = rng.uniform(0.25, 0.75) * nx
        y = rng.uniform(0.25, 0.75) * ny
        if nodata[int(y), int(x)]:
            continue
        if bx.size == 0 or np.min(np.hypot(bx - x, by - y)) > 250:
            break
    r_eff = 3.0
    # total flux in units of sigma_pixel: bright enough for every tier to see it
    snr_flux = 400.0
    return {"x": float(x), "y": float(y), "r_eff_pix": r_eff, "snr_flux": snr_flux, "radius": 4.0 * r_eff}


def _write_i2d(path, data, noise_sigma, header, shape, filter_name, pixel_scale):
    from stdatamodels.jwst import datamodels

    from jwst_ceers.atomic_io import write_model_atomic

    model = datamodels.ImageModel(data=data)
    model.err = noise_sigma
    with np.errstate(divide="ignore", invalid="ignore"):
        wht = np.where(np.isfinite(noise_sigma), 1.0 / noise_sigma**2, 0.0).astype(np.float32)
    model.wht = wht
    meta = model.meta
    meta.telescope = "JWST"
    meta.instrument.name = "NIRCAM"
    meta.instrument.detector = "MULTIPLE"
    meta.instrument.filter = filter_name
    meta.instrument.pupil = "CLEAR"
    meta.instrument.module = "MULTIPLE"
    meta.exposure.type = "NRC_IMAGE"
    meta.bunit_data = "MJy/sr"
    meta.bunit_err = "MJy/sr"
    meta.filename = Path(path).name
    meta.wcs = _gwcs_from_header(header, shape)
    wcsinfo = meta.wcsinfo
    wcsinfo.wcsaxes = 2
    wcsinfo.ctype1, wcsinfo.ctype2 = header["CTYPE1"], header["CTYPE2"]
    wcsinfo.cunit1, wcsinfo.cunit2 = "deg", "deg"
    wcsinfo.crpix1, wcsinfo.crpix2 = header["CRPIX1"], header["CRPIX2"]
    wcsinfo.crval1, wcsinfo.crval2 = header["CRVAL1"], header["CRVAL2"]
    wcsinfo.cdelt1, wcsinfo.cdelt2 = header["CDELT1"], header["CDELT2"]
    wcsinfo.pc1_1, wcsinfo.pc1_2 = header["PC1_1"], header["PC1_2"]
    wcsinfo.pc2_1, wcsinfo.pc2_2 = header["PC2_1"], header["PC2_2"]
    wcsinfo.ra_ref, wcsinfo.dec_ref = header["CRVAL1"], header["CRVAL2"]
    wcsinfo.s_region = ""
    meta.resample.pixel_scale_ratio = 1.0
    meta.resample.pixfrac = 1.0
    meta.resample.weight_type = "ivm"
    write_model_atomic(model, path)
    model.close()


def _write_hst_mosaic(path, data, noise_sigma, header, filter_name):
    from astropy.io import fits

    from jwst_ceers.atomic_io import write_fits_atomic

    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "HST"
    primary.header["INSTRUME"] = HST_INSTRUMENTS.get(filter_name, "WFC3")
    primary.header["FILTER"] = filter_name
    primary.header["BUNIT"] = "MJy/sr"
    with np.errstate(divide="ignore", invalid="ignore"):
        wht = np.where(np.isfinite(noise_sigma), 1.0 / noise_sigma**2, 0.0).astype(np.float32)
    sci = fits.ImageHDU(data.astype(np.float32, copy=False), header=header, name="SCI")
    sci.header["FILTER"] = filter_name
    whdu = fits.ImageHDU(wht, header=header, name="WHT")
    write_fits_atomic(fits.HDUList([primary, sci, whdu]), path)


def _write_truth(path, truth, nodata, header, filter_name, single):
    from astropy.io import fits

    from jwst_ceers.atomic_io import write_fits_atomic

    primary = fits.PrimaryHDU(nodata.astype(np.uint8), header=header)
    primary.header["FILTER"] = filter_name
    primary.header["EXTNAME"] = "NODATA"
    if single is not None:
        primary.header["SFS_X"] = (single["x"], "single-filter source x (0-based)")
        primary.header["SFS_Y"] = (single["y"], "single-filter source y (0-based)")
        primary.header["SFS_R"] = (single["radius"], "single-filter source radius (pix)")
    hdus = [primary]
    for name in ("background", "sources", "noise_sigma"):
        hdus.append(fits.ImageHDU(truth[name], header=header, name=name.upper()))
    write_fits_atomic(fits.HDUList(hdus), path)


def read_mosaic_truth(path):
    """
    Read a truth file written by :func:`simulate_mosaics`.

    Returns
    -------
    dict
        ``background``, ``sources``, ``noise_sigma`` (float32), ``nodata`` (bool),
        ``filter`` and, for the single-filter source's filter, ``single_filter_source``.
    """
    from astropy.io import fits

    with fits.open(path) as hdul:
        out = {name.lower(): hdul[name].data.astype(np.float32) for name in ("BACKGROUND", "SOURCES", "NOISE_SIGMA")}
        out["nodata"] = hdul[0].data.astype(bool)
        out["filter"] = hdul[0].header["FILTER"]
        if "SFS_X" in hdul[0].header:
            h = hdul[0].header
            out["single_filter_source"] = {"filter": out["filter"], "x": h["SFS_X"], "y": h["SFS_Y"], "radius": h["SFS_R"]}
    return out
