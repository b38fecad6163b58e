"""Per-exposure source catalogs with windowed (Gaussian-weighted) centroids.

CEERS measured source positions with Source Extractor windowed centroids
(XWIN_IMAGE/YWIN_IMAGE) on each image with a flat RMS map, because the star
finders built into tweakreg returned too many spurious detections. This module
does the same with `sep`, the Source Extractor library:

1. background estimated with `sep.Background` on the unmasked pixels and
   subtracted;
2. detection with `sep.extract` at ``snr_threshold`` times an RMS map (the
   ERR array, or one flat value -- the background RMS -- as CEERS did),
   a Gaussian filter of ``kernel_fwhm`` pixels and ``npixels`` connected pixels;
3. rejection of cosmic rays and hot pixels (peak / isophotal flux above
   ``max_peak_fraction``, or a peak pixel much brighter than its four
   neighbours, ``max_sharpness``: a point source spreads over several pixels,
   a cosmic ray does not), of sources touching excluded (DQ-flagged, non-finite)
   pixels or the image edge, of truncated or badly deblended objects, and (given
   saturated cores) of detections on stars' halos and diffraction spikes;
4. windowed centroids with `sep.winpos`, the window sigma being
   ``2 * half-light radius / 2.35`` exactly as Source Extractor's XWIN;
5. the ``brightest`` sources (by flux) are kept.

Why sep rather than photutils ``SourceCatalog.x_centroid_win``: both give the
same windowed-centroid accuracy (0.040 px rms on 600 injected stars in
``benchmarks/bench_tweakreg.py``; 0.008 vs 0.010 px on bright ones in an
earlier probe). Speed: the full `find_sources` takes 0.36 s on the
synthetic 2048^2 image against 0.40 s for bare photutils, and 0.59 s on a
simulated CEERS SW exposure (sep.extract 0.31 s of it, background 0.05 s,
flux_radius 0.06 s, winpos 0.07 s; ``benchmarks/bench_tweakreg.py``). It
was 1.2 s with a 9x9 detection kernel and a whole-image dilation of the
flagged-pixel mask, now a 5x5 kernel (+-1 FWHM) and a summed-area lookup
at the source positions. sep also reproduces exactly what CEERS ran --
Source Extractor's XWIN with the window sigma derived from FLUX_RADIUS --
and gives filtering, deblending and isophotal peaks in one C call.

Pixel coordinates are 0-based (the first pixel's centre is 0, 0), the JWST
gwcs convention.
"""

import logging
from pathlib import Path

import numpy as np
from astropy.table import Table

from jwst_ceers.atomic_io import atomic_output
from jwst_ceers.errors import CeersFileError
from jwst_ceers.inputs import require_file

__all__ = [
    "find_sources",
    "exclusion_mask_from_dq",
    "artefact_regions_from_dq",
    "spike_angles_from_wcs",
    "near_artefacts",
    "on_spike_light",
    "read_source_catalog",
    "write_source_catalog",
]

log = logging.getLogger(__name__)

# Source Extractor: window sigma = 2 * FLUX_RADIUS(0.5) / 2.35
_WIN_SIGMA_PER_HALF_LIGHT_RADIUS = 2.0 / 2.35
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def exclusion_mask_from_dq(dq, *, bad_bits=1):
    """
    Pixels to exclude from detection, from a JWST DQ array.

    Parameters
    ----------
    dq : ndarray of int
        Data-quality array.
    bad_bits : int, optional
        Bit mask of DQ flags that exclude a pixel (default: DO_NOT_USE = 1).

    Returns
    -------
    ndarray of bool
        True where the pixel is excluded.
    """
    return (np.asarray(dq).astype(np.uint32) & np.uint32(bad_bits)) != 0


# DQ bits (jwst dqflags.pixel): SATURATED, JUMP_DET
_SATURATED = 2
_JUMP_DET = 4
# a JUMP_DET region at least this large is a snowball, not a cosmic-ray hit
SNOWBALL_MIN_AREA = 20
# snowball halos (unflagged charge) reach ~2.5 core radii (JDox; Bagley et al. 2023)
SNOWBALL_HALO_SCALE = 3.0
# saturated star of core radius r (px): halo radius STAR_HALO_SCALE * r + 10, spikes out to
# STAR_SPIKE_SCALE * r**1.5 + 20 (a spike's length grows as sqrt(flux), the core's radius
# as flux**(1/3)), within SPIKE_HALF_WIDTH + SPIKE_WIDENING * distance of the spike line
# (its beaded fringes). Measured on the pupil-PSF simulations (AB 13-18 stars): false
# detections lie within ~60 px of the core and up to ~400 px along the spikes of a star
# with r = 4 px, up to ~12 px off the line.
STAR_HALO_SCALE = 12.0
STAR_SPIKE_SCALE = 50.0
SPIKE_HALF_WIDTH = 6.0
SPIKE_WIDENING = 0.03
# Beyond that geometry, spike light is measured on the image (:func:`on_spike_light`): the
# median of the pixels on a segment of +-SPIKE_LIGHT_HALF_LENGTH px parallel to a spike
# through the detection (a compact source fills a few of its 33 samples; spike light all),
# within SPIKE_LIGHT_SEARCH_WIDTH px of a spike line. At SPIKE_LIGHT_SIGMA or more (the
# median's own noise is ~0.22 sigma) the detection sits on spike light. A star with r = 10 px
# has spikes with beaded fringes ~+-20 px wide where the fixed corridor is 12-18 px: on the
# robustness matrix's saturated_stars seed 4, such fringe detections moved 15-50 mas between
# dithers. Measured on the matrix (tweakreg worst exposure rms, 5 seeds): saturated_stars
# 4.04 -> 1.52 mas, and on seeds 5-9 with NRCA1 + NRCA3 3.33 -> 2.09; realistic and
# real_geometry unchanged. Half lengths 16-24 px or a 1-sigma level left 2.9-3.7 mas, 48 px
# 2.1 mas (more good sources lost near other light): segments of +-32 px at 0.7 sigma.
SPIKE_LIGHT_HALF_LENGTH = 32
SPIKE_LIGHT_SEARCH_WIDTH = 64.0
SPIKE_LIGHT_SIGMA = 0.7


def artefact_regions_from_dq(dq):
    """
    Saturated cores and snowballs from a JWST DQ array.

    Returns
    -------
    stars : ndarray (k, 3)
        ``x, y, r_eq`` of each connected SATURATED region (centroid, equivalent radius).
    snowballs : ndarray (m, 3)
        The same for JUMP_DET regions of at least ``SNOWBALL_MIN_AREA`` pixels.
    """
    from scipy import ndimage

    dq = np.asarray(dq).astype(np.uint32)
    out = []
    for bit, min_area in ((_SATURATED, 1), (_JUMP_DET, SNOWBALL_MIN_AREA)):
        mask = (dq & np.uint32(bit)) != 0
        labels, n = ndimage.label(mask)
        if n == 0:
            out.append(np.empty((0, 3)))
            continue
        index = np.arange(1, n + 1)
        area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        centres = np.array(ndimage.center_of_mass(mask, labels, index)).reshape(-1, 2)
        big = area >= min_area
        out.append(np.column_stack([centres[big, 1], centres[big, 0], np.sqrt(area[big] / np.pi)]))
    return out[0], out[1]


def spike_angles_from_wcs(wcs, shape):
    """
    Directions (deg from +x, in [0, 180)) of JWST's diffraction spikes on a detector.

    The six bright spikes run along V3 and at +-60 deg from it, the two faint ones along
    V2 (the +V3 strut); their pixel directions come from the gwcs ``detector -> v2v3``
    transform at the array centre. None when the WCS has no ``v2v3`` frame.
    """
    try:
        to_v2v3 = wcs.get_transform("detector", "v2v3")
    except (AttributeError, ValueError, KeyError, TypeError):
        return None
    if to_v2v3 is None:
        return None
    cy, cx = ((n - 1) / 2.0 for n in shape)
    v2, v3 = to_v2v3(np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0]))
    jac = np.array([[v2[1] - v2[0], v2[2] - v2[0]], [v3[1] - v3[0], v3[2] - v3[0]]])
    inv = np.linalg.inv(jac)
    angles = []
    for dv2, dv3 in ((0.0, 1.0), (np.sin(np.radians(60)), np.cos(np.radians(60))),
                     (-np.sin(np.radians(60)), np.cos(np.radians(60))), (1.0, 0.0)):
        dx, dy = inv @ np.array([dv2, dv3])
        angles.append(np.degrees(np.arctan2(dy, dx)) % 180.0)
    return np.array(angles)


def _spike_reach(core_radius):
    """How far (px) the spikes of a saturated star of core radius ``core_radius`` reach."""
    return STAR_SPIKE_SCALE * core_radius**1.5 + 20.0


def near_artefacts(x, y, *, stars=(), snowballs=(), spike_angles=None):
    """
    True for positions on a saturated star's halo or spikes, or a snowball's halo.

    A star of saturated-core radius ``r`` rejects positions within
    ``STAR_HALO_SCALE * r + 10`` px, and within ``SPIKE_HALF_WIDTH + SPIKE_WIDENING * d``
    px of its spike lines (``spike_angles``) out to ``d = STAR_SPIKE_SCALE * r**1.5 + 20``
    px; a snowball of core radius ``r`` rejects positions within
    ``SNOWBALL_HALO_SCALE * r`` px.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    near = np.zeros(x.shape, dtype=bool)
    for sx, sy, r in np.reshape(np.asarray(snowballs, dtype=float), (-1, 3)):
        near |= np.hypot(x - sx, y - sy) <= SNOWBALL_HALO_SCALE * r
    for sx, sy, r in np.reshape(np.asarray(stars, dtype=float), (-1, 3)):
        dx, dy = x - sx, y - sy
        d = np.hypot(dx, dy)
        near |= d <= STAR_HALO_SCALE * r + 10.0
        if spike_angles is not None:
            reach = d <= _spike_reach(r)
            for a in np.radians(np.asarray(spike_angles, dtype=float)):
                across = np.abs(-dx * np.sin(a) + dy * np.cos(a))
                near |= reach & (across <= SPIKE_HALF_WIDTH + SPIKE_WIDENING * d)
    return near


def on_spike_light(image, x, y, *, noise, stars, spike_angles, excluded=None):
    """
    True for positions that sit on a saturated star's diffraction-spike light, measured.

    For each star of :func:`artefact_regions_from_dq` and each spike direction, positions
    within ``SPIKE_LIGHT_SEARCH_WIDTH`` px of the spike line and within the spike reach of
    :func:`near_artefacts` take the median of ``image`` on a segment of
    ``+-SPIKE_LIGHT_HALF_LENGTH`` px through them, parallel to the spike (33 samples, 2 px
    apart; excluded and outside pixels are left out). A compact source covers a few
    samples, the spike's light all of them: a median of ``SPIKE_LIGHT_SIGMA`` times
    ``noise`` or more is spike light (or a large galaxy lying along the spike, whose
    detections are poor positions too). This measures each star's spike width and length
    on the image instead of assuming them, as real PSFs are not the simulated ones.

    Parameters
    ----------
    image : ndarray
        Background-subtracted image.
    x, y : array-like
        Positions (0-based pixels).
    noise : float or ndarray
        1-sigma pixel noise: one value, or a map of ``image``'s shape (read at each position).
    stars : array-like (k, 3)
        ``x, y, r_eq`` of the saturated cores.
    spike_angles : array-like or None
        Spike directions (deg from +x, :func:`spike_angles_from_wcs`); None: nothing is on
        spike light.
    excluded : ndarray of bool, optional
        Pixels not to sample.

    Returns
    -------
    ndarray of bool
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    on = np.zeros(x.shape, dtype=bool)
    stars = np.reshape(np.asarray(stars, dtype=float), (-1, 3))
    if spike_angles is None or len(stars) == 0 or x.size == 0:
        return on
    image = np.asarray(image)
    ny, nx = image.shape
    offsets = np.arange(-SPIKE_LIGHT_HALF_LENGTH, SPIKE_LIGHT_HALF_LENGTH + 1, 2, dtype=float)
    if np.ndim(noise) == 2:
        sigma = np.asarray(noise)[np.clip(np.round(y).astype(int), 0, ny - 1), np.clip(np.round(x).astype(int), 0, nx - 1)]
    else:
        sigma = np.full(x.shape, float(noise))
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.inf)
    for sx, sy, r in stars:
        dx, dy = x - sx, y - sy
        reach = np.hypot(dx, dy) <= _spike_reach(r)
        for angle in np.radians(np.asarray(spike_angles, dtype=float)):
            cos, sin = np.cos(angle), np.sin(angle)
            near = reach & ~on & (np.abs(-dx * sin + dy * cos) <= SPIKE_LIGHT_SEARCH_WIDTH)
            if not near.any():
                continue
            ix = np.round(x[near, None] + offsets * cos).astype(int)
            iy = np.round(y[near, None] + offsets * sin).astype(int)
            inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            ix, iy = np.clip(ix, 0, nx - 1), np.clip(iy, 0, ny - 1)
            usable = inside if excluded is None else inside & ~excluded[iy, ix]
            samples = np.where(usable, image[iy, ix], np.nan)
            enough = usable.sum(axis=1) >= offsets.size // 2
            with np.errstate(all="ignore"):
                level = np.nanmedian(np.where(enough[:, None], samples, 0.0), axis=1)
            on[near] = enough & (level >= SPIKE_LIGHT_SIGMA * sigma[near])
    return on


def _gaussian_kernel(fwhm):
    """
    A normalised 2-D Gaussian kernel of ``fwhm`` pixels (odd size, +-1 fwhm).

    +-1 FWHM (+-2.35 sigma, like Source Extractor's gauss_2.0_5x5) keeps the
    matched filter's gain within 1% of an untruncated kernel; the earlier
    +-2 FWHM (9x9 for FWHM 2) made ``sep.extract`` 2.5x slower.
    """
    sigma = fwhm / _FWHM_PER_SIGMA
    half = max(1, int(np.ceil(fwhm)))
    axis = np.arange(-half, half + 1, dtype=np.float64)
    profile = np.exp(-0.5 * (axis / sigma) ** 2)
    kernel = np.outer(profile, profile)
    return (kernel / kernel.sum()).astype(np.float32)


def _near_excluded_at(excluded, x, y, *, radius, edge_width):
    """
    True for positions (integer pixels ``x``, ``y``) within ``radius`` pixels
    (square) of an excluded pixel, or within ``edge_width`` of the border.

    Uses a summed-area table of ``excluded`` (one cumulative sum of the image)
    instead of dilating the whole mask: only the source positions are tested.
    """
    ny, nx = excluded.shape
    x = np.asarray(x, dtype=np.intp)
    y = np.asarray(y, dtype=np.intp)
    near = (x < edge_width) | (x >= nx - edge_width) | (y < edge_width) | (y >= ny - edge_width)
    if radius > 0:
        table = np.zeros((ny + 1, nx + 1), dtype=np.int32)
        np.cumsum(np.cumsum(excluded, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
        r = int(radius)
        x0, x1 = np.clip(x - r, 0, nx), np.clip(x + r + 1, 0, nx)
        y0, y1 = np.clip(y - r, 0, ny), np.clip(y + r + 1, 0, ny)
        count = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
        # the image border counts as excluded, as outside pixels are unknown
        clipped = (x - r < 0) | (x + r >= nx) | (y - r < 0) | (y + r >= ny)
        near |= (count > 0) | clipped
    else:
        near |= excluded[np.clip(y, 0, ny - 1), np.clip(x, 0, nx - 1)]
    return near


def _sharpness(image, xpeak, ypeak):
    """``1 - mean(4 neighbours) / peak`` at each peak pixel (about 0.6 for a star, 1 for a cosmic ray)."""
    ny, nx = image.shape
    x = np.clip(np.asarray(xpeak, dtype=int), 1, nx - 2)
    y = np.clip(np.asarray(ypeak, dtype=int), 1, ny - 2)
    peak = image[y, x]
    neighbours = 0.25 * (image[y, x - 1] + image[y, x + 1] + image[y - 1, x] + image[y + 1, x])
    with np.errstate(divide="ignore", invalid="ignore"):
        sharp = 1.0 - neighbours / peak
    return np.where(peak > 0, sharp, np.inf)


def find_sources(
    data,
    *,
    rms=None,
    excluded=None,
    snr_threshold=5.0,
    npixels=5,
    kernel_fwhm=2.0,
    deblend=False,
    brightest=200,
    edge_width=8,
    flagged_radius=2,
    max_peak_fraction=0.7,
    max_sharpness=0.9,
    bkg_boxsize=128,
    stars=(),
    snowballs=(),
    spike_angles=None,
):
    """
    Detect sources and measure windowed centroids on one image.

    Parameters
    ----------
    data : ndarray
        2-D science image (any units; a background may remain, it is removed).
    rms : ndarray, float or None, optional
        1-sigma noise per pixel. An array (e.g. the ERR extension), a single
        value, or None to use one flat value: the global RMS of the background
        (as CEERS' flat RMS maps). Non-finite or non-positive values exclude the
        pixel.
    excluded : ndarray of bool, optional
        True for pixels to ignore (DQ-flagged); they are neither detected nor
        used in centroids, and sources within ``flagged_radius`` pixels of them are
        rejected.
    snr_threshold : float, optional
        Detection threshold in units of ``rms``.
    npixels : int, optional
        Minimum number of connected pixels above threshold.
    kernel_fwhm : float, optional
        FWHM (pixels) of the Gaussian detection filter; 0 disables filtering.
    deblend : bool, optional
        Deblend overlapping sources (sep multi-threshold deblending).
    brightest : int, optional
        Keep the ``brightest`` sources by flux (0 keeps all).
    edge_width : int, optional
        Reject sources whose centre lies within this many pixels of the image
        edge.
    flagged_radius : int, optional
        Reject sources whose centre lies within this many pixels of an
        excluded pixel (a bad pixel in the core biases the centroid; further
        out, windowed centroids simply ignore it).
    max_peak_fraction : float, optional
        Reject sources whose peak pixel holds more than this fraction of their
        isophotal flux (cosmic rays, hot pixels).
    max_sharpness : float, optional
        Reject sources whose peak pixel stands out of its four neighbours more
        than this: ``1 - mean(neighbours) / peak`` is about 0.6 for a NIRCam
        point source and close to 1 for a cosmic ray (also for cosmic-ray
        pairs that the peak-fraction cut misses).
    bkg_boxsize : int, optional
        Mesh size (pixels) of the background estimate.
    stars, snowballs : array-like (k, 3), optional
        ``x, y, r_eq`` of saturated cores and snowballs (:func:`artefact_regions_from_dq`):
        detections on their halos and diffraction spikes are rejected
        (:func:`near_artefacts`; spike fragments and halo bumps are not sources), and so are
        detections on spike light measured on the image (:func:`on_spike_light`).
    spike_angles : array-like, optional
        Spike directions (deg, :func:`spike_angles_from_wcs`); None: halos only.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``id, x, y`` (windowed centroid, 0-based pixels), ``x_iso,
        y_iso`` (isophotal barycentre), ``flux``, ``peak``, ``snr``,
        ``half_light_radius``; sorted by decreasing flux. ``meta`` records the
        number of detections and of rejections per reason.
    """
    import sep

    image = np.ascontiguousarray(data, dtype=np.float32)
    ny, nx = image.shape
    bad = ~np.isfinite(image)
    if excluded is not None:
        if np.shape(excluded) != image.shape:
            raise ValueError("'excluded' must have the shape of 'data'")
        bad |= np.asarray(excluded, dtype=bool)
    rms_map = None
    if rms is not None and np.ndim(rms) == 2:
        rms_map = np.ascontiguousarray(rms, dtype=np.float32)
        bad |= ~(np.isfinite(rms_map) & (rms_map > 0))
    image = np.where(bad, np.float32(0.0), image)

    empty = _empty_catalog()
    if bad.all():
        empty.meta["n_detected"] = 0
        return empty

    box = int(min(bkg_boxsize, nx, ny))
    background = sep.Background(image, mask=bad, bw=box, bh=box, fw=3, fh=3)
    subtracted = image - background.back()
    subtracted[bad] = 0.0

    if rms_map is not None:
        err = np.where(bad, np.float32(np.inf), rms_map)
    elif rms is not None:
        err = float(rms)
    else:
        err = float(background.globalrms)
    if np.ndim(err) == 0 and not (np.isfinite(err) and err > 0):
        log.warning("Background RMS is %s: no source can be detected", err)
        empty.meta["n_detected"] = 0
        return empty

    kernel = _gaussian_kernel(kernel_fwhm) if kernel_fwhm > 0 else None
    sep.set_extract_pixstack(max(300000, nx * ny // 4))
    sep.set_sub_object_limit(4096)
    def extract():
        return sep.extract(
            subtracted,
            snr_threshold,
            err=err,
            mask=bad,
            minarea=int(npixels),
            filter_kernel=kernel,
            deblend_cont=0.005 if deblend else 1.0,
            clean=True,
        )

    try:
        objects = extract()
    except Exception as exc:  # sep raises a bare Exception when its pixel stack overflows
        if "pixel buffer full" not in str(exc):
            raise
        # bright stars' halos can put most of the image above threshold: allow every pixel
        log.info("sep pixel stack full (%s): retrying with room for all %d pixels", exc, nx * ny)
        sep.set_extract_pixstack(nx * ny)
        objects = extract()
    n_detected = len(objects)
    keep = np.ones(n_detected, dtype=bool)
    reasons = {}

    def reject(name, condition):
        newly = keep & condition
        reasons[name] = int(newly.sum())
        keep[newly] = False

    flux = objects["flux"].astype(np.float64)
    reject("nonpositive_flux", ~(flux > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        peak_fraction = objects["peak"] / flux
    reject("cosmic_ray", ~(peak_fraction <= max_peak_fraction))
    reject("sharp", _sharpness(subtracted, objects["xpeak"], objects["ypeak"]) > max_sharpness)
    reject("truncated", (objects["flag"] & sep.OBJ_TRUNC) != 0)

    ix = np.clip(np.round(objects["x"]).astype(int), 0, nx - 1)
    iy = np.clip(np.round(objects["y"]).astype(int), 0, ny - 1)
    reject("edge_or_flagged", _near_excluded_at(bad, ix, iy, radius=flagged_radius, edge_width=edge_width))
    if len(stars) or len(snowballs):
        reject("star_or_snowball", near_artefacts(objects["x"], objects["y"], stars=stars, snowballs=snowballs,
                                                  spike_angles=spike_angles))
        reject("spike_light", on_spike_light(subtracted, objects["x"], objects["y"], noise=err, stars=stars,
                                             spike_angles=spike_angles, excluded=bad))

    objects = objects[keep]
    flux = flux[keep]
    if brightest and len(objects) > 2 * brightest:
        # centroids only for plausible members of the final top N (some fail the window checks)
        top = np.argsort(-flux, kind="stable")[: 2 * brightest]
        objects = objects[top]
        flux = flux[top]
    if len(objects) == 0:
        empty.meta.update(n_detected=n_detected, rejected=reasons)
        return empty

    radius_limit = np.clip(6.0 * objects["a"], 2.0, 30.0)
    half_light, _ = sep.flux_radius(
        subtracted,
        objects["x"],
        objects["y"],
        radius_limit,
        0.5,
        normflux=flux,
        mask=bad,
        subpix=5,
    )
    sigma = _WIN_SIGMA_PER_HALF_LIGHT_RADIUS * np.where(np.isfinite(half_light), half_light, 1.0)
    x_win, y_win, win_flag = sep.winpos(subtracted, objects["x"], objects["y"], sigma, mask=bad)

    # A windowed centroid that wandered more than a pixel from the isophotal
    # barycentre converged on a neighbour or on noise: not a usable position.
    wandered = np.hypot(x_win - objects["x"], y_win - objects["y"]) > 1.0
    # (a window containing some flagged pixels is fine: they are ignored)
    unusable = (win_flag & (sep.APER_ALLMASKED | sep.APER_NONPOSITIVE)) != 0
    good = ~unusable & np.isfinite(x_win) & np.isfinite(y_win) & ~wandered
    reasons["window_centroid"] = int((~good).sum())

    if rms_map is not None:
        noise = np.sqrt(np.maximum(objects["npix"], 1)) * rms_map[
            np.clip(np.round(objects["y"]).astype(int), 0, ny - 1),
            np.clip(np.round(objects["x"]).astype(int), 0, nx - 1),
        ]
    else:
        noise = np.sqrt(np.maximum(objects["npix"], 1)) * err
    table = Table(
        {
            "x": x_win[good],
            "y": y_win[good],
            "x_iso": objects["x"][good],
            "y_iso": objects["y"][good],
            "flux": flux[good],
            "peak": objects["peak"][good].astype(np.float64),
            "snr": (flux / noise)[good],
            "half_light_radius": np.asarray(half_light)[good],
        }
    )
    table.sort("flux", reverse=True)
    if brightest and len(table) > brightest:
        table = table[:brightest]
    table.add_column(np.arange(1, len(table) + 1), name="id", index=0)
    table.meta.update(n_detected=n_detected, rejected=reasons)
    return table


def _empty_catalog():
    names = ("id", "x", "y", "x_iso", "y_iso", "flux", "peak", "snr", "half_light_radius")
    dtypes = (np.int64,) + (np.float64,) * (len(names) - 1)
    return Table(names=names, dtype=dtypes)


_X_NAMES = ("x", "xcentroid", "x_centroid", "xwin_image", "xwin", "x_win")
_Y_NAMES = ("y", "ycentroid", "y_centroid", "ywin_image", "ywin", "y_win")


def read_source_catalog(path):
    """
    Read a user/association source catalog and return it with ``x, y`` columns.

    Accepts any format astropy reads (ECSV, FITS, ...) and the usual centroid
    column names (``x``, ``xcentroid``, ``x_centroid``; case-insensitive).
    Positions must be 0-based pixel coordinates, as tweakreg expects.

    Raises
    ------
    CeersFileError
        If the file is missing, unreadable or lacks position columns.
    """
    path = require_file(path, what="source catalog")
    try:
        table = Table.read(path)
    except Exception as exc:  # astropy raises many types for unreadable tables
        raise CeersFileError(f"{path}: cannot be read as a table ({exc})") from exc
    lower = {name.lower(): name for name in table.colnames}
    out = Table()
    for axis, candidates in (("x", _X_NAMES), ("y", _Y_NAMES)):
        found = next((lower[c] for c in candidates if c in lower), None)
        if found is None:
            raise CeersFileError(
                f"{path}: source catalog has no {axis} column (expected one of {', '.join(candidates)})"
            )
        out[axis] = np.asarray(table[found], dtype=np.float64)
    for name in table.colnames:
        if name not in out.colnames and name.lower() not in ("x", "y"):
            out[name] = table[name]
    out.meta["name"] = path.stem
    return out


def write_source_catalog(table, path):
    """Write ``table`` as ECSV to ``path`` atomically (overwriting); return the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    return path
