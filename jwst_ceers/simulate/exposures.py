"""
Simulated NIRCam Level-2 ``*_cal.fits`` exposures and whole CEERS-like pointings.

:func:`simulate_exposure` makes one `~stdatamodels.jwst.datamodels.ImageModel` and its
:class:`ExposureTruth`; :func:`simulate_pointing` makes every exposure of a pointing
(filters x detectors x dithers x visits), writes them with their truth (true WCS
files, source masks, source table, absolute reference catalogue, a JSON truth file)
and returns a :class:`SimulatedPointing`. :func:`load_truth` reads the truth back.

Image model (all images in MJy/sr)::

    SCI = sources + pedestal + gradient + white noise + striping + cosmic rays

- ``pedestal``: constant sky level of the exposure (MJy/sr), recorded in the truth.
- ``gradient``: ``gx * u + gy * v`` with ``u = (x - (nx - 1) / 2) / nx`` and
  ``v = (y - (ny - 1) / 2) / ny`` (0-based pixels of the written array), so its mean
  over the array is zero; ``(gx, gy)`` recorded as ``gradient``.
- white noise: Gaussian with the TRUE variance ``VAR_POISSON + VAR_RNOISE_true +
  VAR_FLAT``, where ``VAR_POISSON = c * signal / t_exp`` (``c`` = MJy/sr per e-/s,
  signal = noiseless sky + sources), ``VAR_RNOISE_true = (c * read_noise_e / t_exp)**2``
  and ``VAR_FLAT = (0.002 * signal)**2``. The file's VAR_RNOISE is the true one times
  ``rnoise_scale_error``; ERR = sqrt(VAR_POISSON + VAR_RNOISE + VAR_FLAT) as written.
- striping (1/f-like, ``one_over_f`` > 0): one offset per (row, 512-column amplifier)
  with standard deviation ``one_over_f * sigma_sky`` plus one per column with standard
  deviation ``0.5 * one_over_f * sigma_sky``; not in any variance array.
- cosmic rays: unflagged, sharp (1-4 pixels), 20-500 sigma; not in any variance array.
- bad pixels: DQ ``DO_NOT_USE`` (+ HOT or DEAD), NaN in SCI, ERR and variances.
- zero-variance pixels: unflagged, VAR_POISSON = VAR_RNOISE = VAR_FLAT = ERR = 0 exactly.

WCS: the model's ``meta.wcs`` and ``meta.wcsinfo`` are the HEADER WCS, built from
``ra_ref + dra / cos(dec_ref)``, ``dec_ref + ddec`` and ``roll_ref + droll`` where
``(dra, ddec, droll) = wcs_error`` (arcsec, arcsec, deg); the TRUE WCS (used to place
the sources) is written to ``<root>_true_wcs.asdf`` (keys ``wcs`` and ``wcsinfo``).
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy import ndimage

from jwst_ceers.atomic_io import atomic_output, write_fits_atomic, write_model_atomic, write_text_atomic
from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.simulate.artefacts import (
    STRIPING_MODELS,
    flat_structure,
    persistence_image,
    realism_preset,
    saturation_rate_limit,
    snowballs,
    striping_block7_variance,
    striping_image,
    wisp_image,
)
from jwst_ceers.simulate.nircam_geometry import (
    FILTERS,
    FULL_SIZE,
    LW_DETECTORS,
    SW_DETECTORS,
    abmag_to_pixel_sum,
    detector_pointing,
    module_centre_v2v3,
    nircam_gwcs,
    nircam_wcsinfo,
    pixel_area_sr,
    subarray_window,
)
from jwst_ceers.simulate.psf import add_point_sources_psf, pupil_psf, wide_psf
from jwst_ceers.simulate.real_geometry import real_exposure_wcs, reference_pointing
from jwst_ceers.simulate.sources import (
    add_bright_stars,
    load_source_table,
    make_source_population,
    render_sources,
    source_mag,
)

__all__ = [
    "ExposureTruth",
    "SimulatedPointing",
    "simulate_exposure",
    "simulate_pointing",
    "load_truth",
    "format_exposure_root",
    "TRUTH_FILENAME",
]

log = logging.getLogger(__name__)

TRUTH_FILENAME = "simulation_truth.json"
PROGRAM = "01345"
EXPOSURE_TIME = 2834.5  # s, CEERS MEDIUM8 with 9 groups
_FLAT_ERROR = 0.002
_AMP_WIDTH = 512
_COLUMN_STRIPE_RATIO = 0.5
_MJD_START = 59752.0  # 2022-06-21, CEERS epoch 1
_DAY_S = 86400.0
# full-frame MEDIUM8 group time (10 frames of 10.73677 s): saturation is judged on full-frame
# timing even for the centred test cut-outs
_FULL_FRAME_GROUP_TIME = 10 * 10.73677
# HST WFC3/IR F160W saturates near H = 18 in the CANDELS depths: brighter stars are not in
# the simulated reference catalogue when saturation is simulated
_REFCAT_SATURATION_MAG = 18.0


@dataclass
class ExposureTruth:
    """
    What was injected into one simulated exposure.

    Attributes
    ----------
    root : str
        Exposure root name (file name without ``_cal.fits``).
    filter, detector : str
    visit, dither : int
        0-based visit and dither indices.
    pedestal : float
        Constant sky level added (MJy/sr).
    gradient : tuple of float
        ``(gx, gy)``; the sky added is ``pedestal + gx * u + gy * v`` (see module doc).
    true_wcs_file : str
        asdf file with the TRUE gwcs (``wcs``) and wcsinfo (``wcsinfo``).
    wcs_error : dict
        ``dra_arcsec`` (on the sky, i.e. times cos dec), ``ddec_arcsec``, ``droll_deg``:
        header minus true pointing at the detector's reference point (V2Ref, V3Ref).
    true_ra_ref, true_dec_ref, true_roll_ref : float
        True pointing of the reference point (deg).
    sky_variance : float
        Expected per-pixel variance of source-free sky noise at the pedestal level
        (all white components: Poisson, true read noise, flat), (MJy/sr)^2.
    block7_variance : float
        Expected variance of 7x7 block sums / 49 of source-free sky, including the
        correlated striping component (analytic; tiling from pixel (0, 0)).
    rnoise_scale_error : float
        Factor by which the written VAR_RNOISE differs from the true read-noise variance.
    true_rnoise_variance : float
        True read-noise variance per pixel, (MJy/sr)^2 (the written one is this times
        ``rnoise_scale_error``).
    one_over_f : float
        Striping amplitude in units of sqrt(sky_variance).
    n_cosmic_rays, n_bad_pixels, n_zero_variance : int
    cal_file, mask_file : str
        Written files ('' when not written).
    realism : dict
        The :class:`~jwst_ceers.simulate.artefacts.Realism` effects of the exposure.
    n_snowballs, n_persistence_ghosts, n_saturated : int
        Snowballs and persistence ghosts added; saturated (NaN, flagged) pixels.
    wisp_factor : float
        Residual wisp / full wisp (0: none).
    source_image, artefact_image, noise_image : ndarray or None
        With ``keep_source_image``: the noiseless sources; everything else added that is
        not sky or noise (flat-field residual x signal, wisp, snowballs, persistence);
        the noise (white + striping). Before NaNs and cosmic rays,
        ``SCI = source_image + sky + artefact_image + noise_image``.
    """

    root: str
    filter: str
    detector: str
    visit: int
    dither: int
    pedestal: float
    gradient: tuple
    true_wcs_file: str
    wcs_error: dict
    true_ra_ref: float
    true_dec_ref: float
    true_roll_ref: float
    sky_variance: float
    block7_variance: float
    rnoise_scale_error: float
    true_rnoise_variance: float
    one_over_f: float
    n_cosmic_rays: int = 0
    n_bad_pixels: int = 0
    n_zero_variance: int = 0
    cal_file: str = ""
    mask_file: str = ""
    realism: dict = field(default_factory=dict)
    n_snowballs: int = 0
    n_persistence_ghosts: int = 0
    n_saturated: int = 0
    wisp_factor: float = 0.0
    segmentation: np.ndarray = field(default=None, repr=False, compare=False)
    true_wcs: object = field(default=None, repr=False, compare=False)
    source_image: np.ndarray = field(default=None, repr=False, compare=False)
    artefact_image: np.ndarray = field(default=None, repr=False, compare=False)
    noise_image: np.ndarray = field(default=None, repr=False, compare=False)

    def to_dict(self):
        """JSON-serialisable dict (without the in-memory arrays and WCS)."""
        out = {k: v for k, v in asdict(self).items() if k not in _IN_MEMORY}
        out["gradient"] = list(self.gradient)
        return out

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        data["gradient"] = tuple(data["gradient"])
        return cls(**data)


_IN_MEMORY = ("segmentation", "true_wcs", "source_image", "artefact_image", "noise_image")


@dataclass
class SimulatedPointing:
    """
    Everything :func:`simulate_pointing` wrote.

    Attributes
    ----------
    out_dir : Path
    cal_files : list of Path
        The ``*_cal.fits`` exposures.
    truth : dict
        Exposure root -> :class:`ExposureTruth`.
    sources : astropy.table.Table
        The true source table (positions are the truth).
    sources_path : Path
        ECSV copy of ``sources``.
    refcat_path : Path or None
        Absolute reference catalogue (ECSV: ra, dec, mag) with astrometric noise.
    mask_files : list of Path
        ``<root>_<mask_suffix>.fits`` segmentation maps.
    truth_path : Path
        JSON truth file (read with :func:`load_truth`).
    """

    out_dir: Path
    cal_files: list
    truth: dict
    sources: Table
    sources_path: Path
    refcat_path: Path
    mask_files: list
    truth_path: Path


def format_exposure_root(*, observation, activity, dither, detector):
    """CEERS-style root ``jw01345{obs:03d}001_021{act:02d}_{dither:05d}_{det}`` (1-based numbers)."""
    return f"jw{PROGRAM}{observation:03d}001_021{activity:02d}_{dither:05d}_{detector.lower()}"


# ---------------------------------------------------------------------------
# one exposure
# ---------------------------------------------------------------------------

def _sky_to_pixel(wcs, ra, dec):
    """World -> pixel with the analytic inverse refined by two Newton steps on the forward WCS."""
    x, y = wcs.invert(ra, dec, with_bounding_box=False)
    x, y = np.asarray(x, float), np.asarray(y, float)
    for _ in range(2):
        r1, d1 = wcs(x, y, with_bounding_box=False)
        rx, dx_ = wcs(x + 1.0, y, with_bounding_box=False)
        ry, dy_ = wcs(x, y + 1.0, with_bounding_box=False)
        cosd = np.cos(np.radians(d1))
        # local Jacobian d(xi, eta)/d(x, y) in degrees
        a = ((rx - r1 + 180) % 360 - 180) * cosd
        b = ((ry - r1 + 180) % 360 - 180) * cosd
        c, d = dx_ - d1, dy_ - d1
        exi = ((ra - r1 + 180) % 360 - 180) * cosd
        eeta = dec - d1
        det = a * d - b * c
        x = x + (d * exi - b * eeta) / det
        y = y + (-c * exi + a * eeta) / det
    return x, y


def _pixel_angle(wcsinfo, pa_deg):
    """Sky position angle (deg E of N) -> angle from +x pixel axis (deg, counter-clockwise)."""
    cd = np.array([[wcsinfo["pc1_1"], wcsinfo["pc1_2"]], [wcsinfo["pc2_1"], wcsinfo["pc2_2"]]])
    pa = np.radians(np.asarray(pa_deg, float))
    vec = np.linalg.solve(cd, np.vstack([np.sin(pa), np.cos(pa)]))
    return np.degrees(np.arctan2(vec[1], vec[0]))


def _block7_variance(white_var, stripe_row_var, stripe_col_var, start, size):
    """Expected variance of 7x7 block means, averaged over the blocks tiling the array."""
    nb = size // 7
    cols = start + np.arange(nb * 7).reshape(nb, 7)
    amp = cols // _AMP_WIDTH
    # per block column: sum over amplifiers of (columns of that amplifier in the block)^2
    sq = np.array([np.sum(np.unique(a, return_counts=True)[1] ** 2) for a in amp])
    row_term = stripe_row_var * 7 * sq.mean() / 49.0**2
    col_term = stripe_col_var * 7 * 49 / 49.0**2
    return white_var / 49.0 + row_term + col_term


def _segmentation(source_image, threshold, dilate_radius):
    """CEERS-like source mask: threshold the noiseless source image, dilate, label."""
    detected = source_image > threshold
    if dilate_radius > 0:
        r = int(dilate_radius)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        detected = ndimage.binary_dilation(detected, structure=(xx**2 + yy**2) <= r * r)
    labels, _ = ndimage.label(detected)
    return labels.astype(np.int32)


def simulate_exposure(*, filter_name, detector, ra_ref, dec_ref, roll_ref, sources, seed, size=None,
                      wcs_error=(0.0, 0.0, 0.0), pedestal=None, gradient=(0.0, 0.0), rnoise_scale_error=1.0,
                      one_over_f=0.0, cosmic_ray_rate=2e-5, bad_pixel_fraction=0.002,
                      zero_variance_fraction=1e-4, exposure_time=EXPOSURE_TIME, observation=1, activity=1,
                      dither=1, visit=0, start_mjd=_MJD_START, mask_threshold=0.5, mask_dilate=None,
                      keep_source_image=False, realism=None, true_wcs=None, header_wcs=None):
    """
    Simulate one NIRCam Level-2 calibrated exposure (``*_cal.fits`` content).

    Parameters
    ----------
    filter_name : str
        Key of :data:`~jwst_ceers.simulate.nircam_geometry.FILTERS`.
    detector : str
        Detector of the filter's channel (e.g. NRCA1 for SW, NRCALONG for LW).
    ra_ref, dec_ref, roll_ref : float
        TRUE pointing of the detector's reference point (deg), see
        :func:`~jwst_ceers.simulate.nircam_geometry.detector_pointing`.
    sources : astropy.table.Table
        Source table (columns of :data:`~jwst_ceers.simulate.sources.SOURCE_COLUMNS`).
    seed : int or sequence of int
        Seed of the noise, cosmic rays and pixel defects.
    size : int or None
        None: full frame 2048^2; int: centred square subarray of that size.
    wcs_error : tuple
        ``(dra_arcsec, ddec_arcsec, droll_deg)`` added to the true pointing to make the
        header WCS (``dra`` on the sky).
    pedestal : float or None
        Sky level (MJy/sr); None uses the filter's typical sky.
    gradient : tuple
        ``(gx, gy)`` (MJy/sr), see module doc.
    rnoise_scale_error : float
        Written VAR_RNOISE = true read-noise variance times this.
    one_over_f : float
        Striping amplitude in units of the white sky sigma (0: none).
    cosmic_ray_rate : float
        Expected unflagged cosmic-ray events per pixel.
    bad_pixel_fraction : float
        Fraction of DO_NOT_USE pixels (NaN in SCI).
    zero_variance_fraction : float
        Fraction of unflagged pixels with exactly zero variance.
    exposure_time : float
        Seconds.
    observation, activity, dither : int
        1-based numbers that form the file name and ``meta.observation``.
    visit : int
        0-based visit index (recorded in the truth).
    start_mjd : float
        Exposure start (MJD UTC).
    mask_threshold : float
        Source-mask threshold on the noiseless source image, in units of the sky sigma.
    mask_dilate : int or None
        Dilation radius (pixels) of the source mask; None: 4 (SW) or 2 (LW).
    keep_source_image : bool
        Keep the noiseless source image in ``truth.source_image`` (and the artefact
        and noise images in ``truth.artefact_image``, ``truth.noise_image``).
    realism : str, dict, Realism or None
        NIRCam artefacts to add: a preset name of
        :data:`~jwst_ceers.simulate.artefacts.REALISM_PRESETS` (``"realistic"``: all),
        a dict of :class:`~jwst_ceers.simulate.artefacts.Realism` fields (optionally
        with ``"preset"``), or None (none). Bright stars are added by
        :func:`simulate_pointing`, not here.
    true_wcs, header_wcs : gwcs.wcs.WCS, optional
        Given together: the TRUE and HEADER WCS of the (sub)array instead of the SIAF
        ones (e.g. from :func:`jwst_ceers.simulate.real_geometry.real_exposure_wcs`);
        ``ra_ref, dec_ref, roll_ref`` and ``wcs_error`` are then ignored and recomputed
        at the detector's reference point.

    Returns
    -------
    model : stdatamodels.jwst.datamodels.ImageModel
        With the header (perturbed) WCS; not written to disk.
    truth : ExposureTruth
        ``truth.segmentation`` holds the source mask and ``truth.true_wcs`` the true gwcs.
    """
    from stdatamodels.jwst import datamodels
    from stdatamodels.jwst.datamodels import dqflags

    if filter_name not in FILTERS:
        raise CeersParameterError(f"filter_name {filter_name!r} unknown; known: {', '.join(FILTERS)}")
    filt = FILTERS[filter_name]
    detector = detector.upper()
    if detector not in filt.detectors:
        raise CeersParameterError(f"detector {detector} is not a {filt.channel} detector (filter {filter_name})")
    if rnoise_scale_error <= 0:
        raise CeersParameterError(f"rnoise_scale_error must be > 0, got {rnoise_scale_error}")
    if one_over_f < 0:
        raise CeersParameterError(f"one_over_f must be >= 0, got {one_over_f}")
    realism = realism_preset(realism)
    start, n = subarray_window(size if size is not None and size != FULL_SIZE else None)
    rng = np.random.default_rng(seed)
    # artefacts draw from their own stream, so switching one on leaves the rest unchanged
    artefact_rng = np.random.default_rng([int(seed) % 2**63, 1801])
    root = format_exposure_root(observation=observation, activity=activity, dither=dither, detector=detector)

    # --- WCS: true and header ---
    if (true_wcs is None) != (header_wcs is None):
        raise CeersParameterError("true_wcs and header_wcs must be given together")
    true_reference = hdr_reference = {}
    if true_wcs is not None:
        # the pointing keys must be those inside the gwcs (tweakwcs checks them)
        true_reference, hdr_reference = reference_pointing(true_wcs), reference_pointing(header_wcs)
        ra_ref, dec_ref, roll_ref = (true_reference[k] for k in ("ra_ref", "dec_ref", "roll_ref"))
        # header minus true at the array centre, on the sky
        centre = (subarray_window(size if size is not None and size != FULL_SIZE else None)[1] - 1) / 2.0
        (t_ra, t_dec), (h_ra, h_dec) = (w(centre, centre, with_bounding_box=False) for w in (true_wcs, header_wcs))
        dra = float(((h_ra - t_ra + 180) % 360 - 180) * np.cos(np.radians(t_dec)) * 3600.0)
        ddec, droll = float((h_dec - t_dec) * 3600.0), 0.0
        hdr_ra, hdr_dec, hdr_roll = (hdr_reference[k] for k in ("ra_ref", "dec_ref", "roll_ref"))
        hdr_wcs = header_wcs
    else:
        true_wcs = nircam_gwcs(detector, ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref, subarray=size)
        dra, ddec, droll = (float(v) for v in wcs_error)
        hdr_ra = (ra_ref + dra / 3600.0 / np.cos(np.radians(dec_ref))) % 360.0
        hdr_dec = dec_ref + ddec / 3600.0
        hdr_roll = (roll_ref + droll) % 360.0
        hdr_wcs = nircam_gwcs(detector, ra_ref=hdr_ra, dec_ref=hdr_dec, roll_ref=hdr_roll, subarray=size)
    true_info = nircam_wcsinfo(detector, ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref, subarray=size,
                               wcs=true_wcs)
    hdr_info = nircam_wcsinfo(detector, ra_ref=hdr_ra, dec_ref=hdr_dec, roll_ref=hdr_roll, subarray=size,
                              wcs=hdr_wcs)
    true_info.update(true_reference)
    hdr_info.update(hdr_reference)

    # --- sources ---
    scale = filt.pixel_scale
    src_ra = np.asarray(sources["ra"], float)
    src_dec = np.asarray(sources["dec"], float)
    # cheap pre-selection by angular distance from the array centre
    cra, cdec = true_info["crval1"], true_info["crval2"]
    dist = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(cdec)) * np.sin(np.radians(src_dec))
        + np.cos(np.radians(cdec)) * np.cos(np.radians(src_dec)) * np.cos(np.radians(src_ra - cra)), -1, 1))) * 3600
    r_eff_arcsec = np.asarray(sources["r_eff"], float)
    reach = n * scale * 0.75 + np.maximum(30.0 * r_eff_arcsec, 2.0)
    near = np.flatnonzero(dist < reach)
    x, y = _sky_to_pixel(true_wcs, src_ra[near], src_dec[near])
    sub = sources[near]
    flux = abmag_to_pixel_sum(source_mag(sub, filter_name), scale)
    is_star = np.asarray(sub["is_star"], bool)

    # --- sky level and noise (needed to size PSF stamps) ---
    if pedestal is None:
        pedestal = filt.sky_mjysr
    c = filt.mjysr_per_electron_rate
    rnoise_var = float((c * filt.read_noise_e / exposure_time) ** 2)
    sky_var = float(c / exposure_time * pedestal + rnoise_var + (_FLAT_ERROR * pedestal) ** 2)
    sky_sigma = np.sqrt(sky_var)

    # with the pupil PSF, point sources are drawn apart (spikes), galaxies keep the Gaussian
    drawn = ~is_star if realism.psf == "pupil" else np.ones(is_star.size, bool)
    source_image = render_sources(
        (n, n), x[drawn], y[drawn], flux[drawn],
        r_eff_pix=np.where(is_star, 0.0, r_eff_arcsec[near] / scale)[drawn],
        sersic_n=np.asarray(sub["sersic_n"], float)[drawn], axis_ratio=np.asarray(sub["axis_ratio"], float)[drawn],
        pa_deg=_pixel_angle(true_info, np.asarray(sub["pa"], float))[drawn],
        psf_fwhm_pix=filt.psf_fwhm / scale, dtype=np.float32)
    if realism.psf == "pupil" and np.any(~drawn):
        add_point_sources_psf(source_image, x[~drawn], y[~drawn], flux[~drawn],
                              detector_psf(filt, true_wcs, n), noise=sky_sigma,
                              wide=lambda: detector_psf(filt, true_wcs, n, wide=True))

    # --- sky ---
    gx, gy = (float(g) for g in gradient)
    u = ((np.arange(n) - (n - 1) / 2.0) / n).astype(np.float32)
    sky = np.float32(pedestal) + np.float32(gx) * u[None, :] + np.float32(gy) * u[:, None]

    # --- artefacts that are signal (photons or charge) ---
    flat_eps = flat_structure((n, n), rms=realism.flat_rms, rng=artefact_rng)
    artefact = flat_eps * (source_image + sky)
    wisp, wisp_factor = wisp_image((n, n), start=start, detector=detector, filter_name=filter_name, sky=pedestal,
                                   residual=realism.wisp_residual, rng=artefact_rng)
    artefact += wisp
    snow, snow_core, snow_list = snowballs((n, n), rate=realism.snowball_rate, exposure_time=exposure_time,
                                           sky_sigma=sky_sigma, rng=artefact_rng)
    artefact += snow
    ghosts, ghost_list = persistence_image((n, n), mean_count=realism.persistence_ghosts, sky_sigma=sky_sigma,
                                           rng=artefact_rng)
    artefact += ghosts
    signal = source_image + sky + artefact

    # --- variances (true) ---
    var_poisson = (c / exposure_time) * np.clip(signal, 0, None)
    var_flat = (_FLAT_ERROR * signal) ** 2
    true_var = var_poisson + rnoise_var + var_flat
    noise = rng.standard_normal((n, n), dtype=np.float32) * np.sqrt(true_var)

    row_sd = one_over_f * sky_sigma
    col_sd = _COLUMN_STRIPE_RATIO * one_over_f * sky_sigma
    if one_over_f > 0:
        amp = (start + np.arange(n)) // _AMP_WIDTH
        namp = amp.max() + 1
        rows = rng.normal(0.0, row_sd, (n, namp)).astype(np.float32)
        noise += rows[:, amp]
        noise += rng.normal(0.0, col_sd, n).astype(np.float32)[None, :]
    block7 = _block7_variance(sky_var, row_sd**2, col_sd**2, start, n)
    striping = STRIPING_MODELS[realism.striping]
    if realism.striping != "none":
        noise += striping_image((n, n), start=start, sky_sigma=sky_sigma, model=striping, rng=artefact_rng)
        block7 += striping_block7_variance(shape=(n, n), start=start, sky_sigma=sky_sigma, model=striping)
    data = signal + noise

    # --- cosmic rays (unflagged) ---
    n_cr = rng.poisson(cosmic_ray_rate * n * n)
    if n_cr:
        cx, cy = rng.integers(0, n, n_cr), rng.integers(0, n, n_cr)
        amp_cr = rng.uniform(20, 500, n_cr) * sky_sigma
        data[cy, cx] += amp_cr
        extra = rng.integers(0, 4, n_cr)  # 0-3 extra pixels along a short track
        direction = rng.integers(0, 4, n_cr)
        steps = np.array([[1, 0], [0, 1], [1, 1], [1, -1]])
        for k in range(1, 4):
            sel = extra >= k
            ex = np.clip(cx[sel] + k * steps[direction[sel], 0], 0, n - 1)
            ey = np.clip(cy[sel] + k * steps[direction[sel], 1], 0, n - 1)
            data[ey, ex] += amp_cr[sel] * rng.uniform(0.2, 0.8, sel.sum())

    # --- written variances ---
    w_rnoise = np.full((n, n), rnoise_var * rnoise_scale_error, dtype=np.float32)
    w_poisson = var_poisson.astype(np.float32)
    w_flat = var_flat.astype(np.float32)

    # --- pixel defects ---
    dq = np.zeros((n, n), dtype=np.uint32)
    n_bad = rng.binomial(n * n, bad_pixel_fraction) if bad_pixel_fraction > 0 else 0
    bad = rng.choice(n * n, n_bad, replace=False)
    kind = np.where(rng.uniform(size=n_bad) < 0.5, dqflags.pixel["HOT"], dqflags.pixel["DEAD"])
    dq.flat[bad] = dqflags.pixel["DO_NOT_USE"] | kind
    n_zero = rng.binomial(n * n, zero_variance_fraction) if zero_variance_fraction > 0 else 0
    good_idx = np.setdiff1d(rng.choice(n * n, min(n * n, 2 * n_zero + 1), replace=False), bad)[:n_zero]
    for arr in (w_rnoise, w_poisson, w_flat):
        arr.flat[good_idx] = 0.0
    err = np.sqrt(w_poisson + w_rnoise + w_flat)
    # snowball cores: found and flagged by the jump step (the rate is refitted, not lost)
    dq[snow_core] |= dqflags.pixel["JUMP_DET"]
    # saturated within the first two groups: no slope, NaN and DO_NOT_USE
    saturated = np.zeros((n, n), dtype=bool)
    if realism.saturation:
        saturated = signal > saturation_rate_limit(group_time=_FULL_FRAME_GROUP_TIME, mjysr_per_electron_rate=c)
        dq[saturated] |= dqflags.pixel["SATURATED"] | dqflags.pixel["DO_NOT_USE"]
    for arr in (data, err, w_rnoise, w_poisson, w_flat):
        arr.flat[bad] = np.nan
        arr[saturated] = np.nan

    # --- source mask ---
    if mask_dilate is None:
        mask_dilate = 4 if filt.channel == "SW" else 2
    seg = _segmentation(source_image, mask_threshold * sky_sigma, mask_dilate)

    # --- model ---
    # validate once at the end instead of on each of ~100 assignments (5x faster)
    model = datamodels.ImageModel(data=data.astype(np.float32), dq=dq, err=err.astype(np.float32),
                                  validate_on_assignment=False)
    model.var_poisson = w_poisson
    model.var_rnoise = w_rnoise
    model.var_flat = w_flat
    _fill_meta(model, filt=filt, detector=detector, size=size, start=start, n=n, root=root,
               observation=observation, activity=activity, dither=dither, exposure_time=exposure_time,
               start_mjd=start_mjd, wcs=hdr_wcs, wcsinfo=hdr_info)
    model.validate()
    model._validate_on_assignment = True

    truth = ExposureTruth(
        root=root, filter=filter_name, detector=detector, visit=int(visit), dither=int(dither) - 1,
        pedestal=float(pedestal), gradient=(gx, gy), true_wcs_file="",
        wcs_error=dict(dra_arcsec=dra, ddec_arcsec=ddec, droll_deg=droll),
        true_ra_ref=float(ra_ref), true_dec_ref=float(dec_ref), true_roll_ref=float(roll_ref),
        sky_variance=sky_var, block7_variance=float(block7), rnoise_scale_error=float(rnoise_scale_error),
        true_rnoise_variance=rnoise_var, one_over_f=float(one_over_f),
        n_cosmic_rays=int(n_cr), n_bad_pixels=int(n_bad), n_zero_variance=int(len(good_idx)),
        realism=realism.to_dict(), n_snowballs=int(len(snow_list)), n_persistence_ghosts=int(len(ghost_list)),
        n_saturated=int(saturated.sum()), wisp_factor=float(wisp_factor),
        segmentation=seg, true_wcs=(true_wcs, true_info),
        source_image=source_image if keep_source_image else None,
        artefact_image=artefact if keep_source_image else None,
        noise_image=noise if keep_source_image else None,
    )
    return model, truth


def detector_psf(filt, wcs, n, *, wide=False):
    """
    The pupil PSF of ``filt`` oriented as the detector of ``wcs`` sees it.

    The V2/V3 axes' directions in detector pixels come from the gwcs ``detector ->
    v2v3`` transform at the array centre; the rotation is rounded to 0.5 deg so one PSF
    serves each detector (cached in :func:`~jwst_ceers.simulate.psf.pupil_psf`); ``wide``: the
    far-field PSF of saturated stars (:func:`~jwst_ceers.simulate.psf.wide_psf`).
    """
    rotation, parity = v3_orientation(wcs, n)
    kind = wide_psf if wide else pupil_psf
    return kind(filt.pivot_um, filt.pixel_scale, rotation_deg=round(rotation * 2) / 2, parity=parity)


def v3_orientation(wcs, n):
    """(rotation_deg, parity): +V3 is at ``90 + rotation_deg`` from +x; parity -1 if V2 is mirrored."""
    to_v2v3 = wcs.get_transform("detector", "v2v3")
    c = (n - 1) / 2.0
    v2, v3 = to_v2v3(np.array([c, c + 1.0, c]), np.array([c, c, c + 1.0]))
    jac = np.array([[v2[1] - v2[0], v2[2] - v2[0]], [v3[1] - v3[0], v3[2] - v3[0]]])
    inv = np.linalg.inv(jac)
    d_v2, d_v3 = inv[:, 0], inv[:, 1]
    rotation = float(np.degrees(np.arctan2(d_v3[1], d_v3[0])) - 90.0)
    parity = 1 if d_v2[0] * d_v3[1] - d_v2[1] * d_v3[0] > 0 else -1
    return rotation, parity


def _fill_meta(model, *, filt, detector, size, start, n, root, observation, activity, dither, exposure_time,
               start_mjd, wcs, wcsinfo):
    """Everything the stock Image3 steps read from a NIRCam imaging cal file."""
    from astropy.time import Time

    meta = model.meta
    meta.filename = f"{root}_cal.fits"
    meta.model_type = "ImageModel"
    meta.telescope = "JWST"
    meta.instrument.name = "NIRCAM"
    meta.instrument.detector = detector
    meta.instrument.channel = "SHORT" if filt.channel == "SW" else "LONG"
    meta.instrument.module = detector[3]
    meta.instrument.filter = filt.name
    meta.instrument.pupil = "CLEAR"
    meta.exposure.type = "NRC_IMAGE"
    meta.exposure.readpatt = "MEDIUM8"
    meta.exposure.nints = 1
    meta.exposure.ngroups = 9
    meta.exposure.nframes = 8
    meta.exposure.groupgap = 2
    meta.exposure.frame_time = 10.73677 if size is None or size == FULL_SIZE else 10.73677 * (n / FULL_SIZE) ** 2
    meta.exposure.group_time = meta.exposure.frame_time * 10
    meta.exposure.exposure_time = exposure_time
    meta.exposure.effective_exposure_time = exposure_time
    meta.exposure.integration_time = exposure_time
    meta.exposure.duration = exposure_time + 30.0
    end_mjd = start_mjd + exposure_time / _DAY_S
    meta.exposure.start_time = start_mjd
    meta.exposure.mid_time = (start_mjd + end_mjd) / 2.0
    meta.exposure.end_time = end_mjd
    meta.exposure.measurement_time = exposure_time
    t0 = Time(start_mjd, format="mjd", scale="utc")
    meta.observation.date = t0.isot[:10]
    meta.observation.time = t0.isot[11:23]
    meta.observation.date_beg = t0.isot
    meta.observation.date_end = Time(end_mjd, format="mjd", scale="utc").isot
    meta.observation.program_number = PROGRAM
    meta.observation.observation_number = f"{observation:03d}"
    meta.observation.visit_number = "001"
    meta.observation.visit_group = "02"
    meta.observation.sequence_id = "1"
    meta.observation.activity_id = f"{activity:02d}"
    meta.observation.exposure_number = f"{dither:05d}"
    meta.observation.visit_id = f"{PROGRAM}{observation:03d}001"
    meta.observation.obs_id = f"V{PROGRAM}{observation:03d}001P0000000002{activity:02d}1"
    meta.program.pi_name = "Finkelstein, Steven"
    meta.program.category = "ERS"
    meta.target.catalog_name = "EGS"
    meta.target.ra = wcsinfo["ra_ref"]
    meta.target.dec = wcsinfo["dec_ref"]
    meta.pointing.ra_v1 = wcsinfo["ra_ref"]
    meta.pointing.dec_v1 = wcsinfo["dec_ref"]
    meta.pointing.pa_v3 = wcsinfo["roll_ref"]
    meta.velocity_aberration.scale_factor = 1.0
    # centred test cut-outs are not real NIRCam subarrays: GENERIC is the schema's name for those
    meta.subarray.name = "FULL" if n == FULL_SIZE else "GENERIC"
    meta.subarray.xstart = start + 1
    meta.subarray.ystart = start + 1
    meta.subarray.xsize = n
    meta.subarray.ysize = n
    meta.subarray.fastaxis = -1 if detector in ("NRCA1", "NRCA3", "NRCB2", "NRCB4", "NRCALONG") else 1
    meta.subarray.slowaxis = 2 if detector in ("NRCA1", "NRCA3", "NRCB2", "NRCB4", "NRCALONG") else -2
    meta.bunit_data = "MJy/sr"
    meta.bunit_err = "MJy/sr"
    meta.photometry.conversion_megajanskys = filt.photmjsr
    meta.photometry.conversion_microjanskys = filt.photmjsr * 1e12 * pixel_area_sr(filt.pixel_scale)
    meta.photometry.pixelarea_steradians = pixel_area_sr(filt.pixel_scale)
    meta.photometry.pixelarea_arcsecsq = filt.pixel_scale**2
    meta.asn.pool_name = "jw01345_simulated_pool.csv"
    meta.asn.table_name = f"jw{PROGRAM}-o{observation:03d}_simulated_image2_asn.json"
    meta.cal_step.assign_wcs = "COMPLETE"
    meta.cal_step.flat_field = "COMPLETE"
    meta.cal_step.photom = "COMPLETE"
    for key, value in wcsinfo.items():
        setattr(meta.wcsinfo, key, value)
    meta.wcs = wcs


# ---------------------------------------------------------------------------
# a pointing
# ---------------------------------------------------------------------------

# CEERS-like small dither offsets (ideal-frame arcsec); more dithers repeat with a shift
_DITHERS = np.array([[0.0, 0.0], [2.886, 3.034], [-1.462, 5.987], [4.349, -2.952], [-3.015, -2.881],
                     [1.437, 6.074]])


def _dither_offset(k):
    base = _DITHERS[k % len(_DITHERS)]
    return base + (k // len(_DITHERS)) * np.array([0.52, 0.37])


def _pair_filters(filters):
    sw = [f for f in filters if FILTERS[f].channel == "SW"]
    lw = [f for f in filters if FILTERS[f].channel == "LW"]
    pairs = []
    for i in range(max(len(sw), len(lw))):
        pairs.append([f for f in (sw[i] if i < len(sw) else None, lw[i] if i < len(lw) else None) if f])
    return pairs


def _uniform_range(rng, bounds, size=None):
    lo, hi = bounds
    return rng.uniform(lo, hi, size)


def simulate_pointing(out_dir, *, filters=("F150W", "F356W"), sw_detectors=("NRCA1", "NRCA2"),
                      lw_detectors=("NRCALONG",), n_dithers=3, n_visits=1, size=None, seed=0,
                      pointing_error_arcsec=(0.1, 0.3), detector_error_mas=(5.0, 30.0), roll_error_deg=0.0,
                      pedestal_range=None, gradient_amplitude=0.002, rnoise_scale_error=1.0, one_over_f=0.0,
                      cosmic_ray_rate=2e-5, bad_pixel_fraction=0.002, zero_variance_fraction=1e-4,
                      source_table=None, ra=214.9, dec=52.9, pa_v3=130.0, write_refcat=True,
                      refcat_mag_limit=26.0, mask_suffix="1fmask", n_large_galaxies=1,
                      source_density_scale=1.0, realism=None, real_geometry=False, real_wcs_dir=None):
    """
    Simulate and write a CEERS-like NIRCam pointing: every filter x detector x dither x visit.

    SW and LW filters are observed in pairs (the i-th SW filter with the i-th LW filter,
    simultaneously, one "activity" per pair), so file names never collide:
    ``jw01345{visit+1:03d}001_021{pair+1:02d}_{dither+1:05d}_{detector}_cal.fits``.

    Parameters
    ----------
    out_dir : str or Path
        Output directory (created).
    filters : sequence of str
        Filter names (keys of ``FILTERS``).
    sw_detectors, lw_detectors : sequence of str
        Detectors used for SW and LW filters.
    n_dithers, n_visits : int
        Dithers per visit, visits (each visit: its own pointing error and a ~5" shift).
    size : int or None
        None: full 2048^2 frames; int: centred square subarrays (fast tests).
    seed : int
        Everything (sources, errors, noise) is deterministic given the seed.
    pointing_error_arcsec : (float, float)
        Range of the per-visit header pointing error magnitude (random direction).
    detector_error_mas : (float, float)
        Range of the extra per-(visit, detector) header offset magnitude (mas).
    roll_error_deg : float
        Per-visit header roll error drawn uniformly in +-roll_error_deg.
    pedestal_range : (float, float) or None
        Per-exposure sky pedestal range (MJy/sr); None: 0.85-1.15 x the filter's sky.
    gradient_amplitude : float
        Gradient coefficients ``gx, gy`` are drawn uniformly in +-gradient_amplitude (MJy/sr).
    rnoise_scale_error : float
        Written VAR_RNOISE / true read-noise variance.
    one_over_f : float
        Striping amplitude in units of the white sky sigma.
    cosmic_ray_rate, bad_pixel_fraction, zero_variance_fraction : float
        See :func:`simulate_exposure`.
    source_table : astropy.table.Table, str, Path or None
        Sources; a path is read with :func:`load_source_table`; None draws
        :func:`make_source_population` over the footprint (with ``n_large_galaxies``).
    ra, dec : float
        Sky position of the NIRCam module-A centre for the first visit (deg).
    pa_v3 : float
        V3 position angle (deg).
    write_refcat : bool
        Write ``refcat.ecsv``: true positions of sources brighter than
        ``refcat_mag_limit`` in F160W plus astrometric noise (5 mas at mag <= 20
        rising to 15 mas at mag 26, per axis), as an HST-F160W-like absolute catalogue.
    mask_suffix : str
        Source masks are written as ``<root>_<mask_suffix>.fits``.
    n_large_galaxies : int
        Large bright galaxies added when the population is drawn.
    source_density_scale : float
        Multiplies the drawn population's number counts (default 1: ~4e5 deg^-2 to
        mag 28.5, i.e. ~130 sources per SW detector; use ~10-20 with small subarrays
        when a test needs many sources for alignment).
    realism : str, dict, Realism or None
        NIRCam artefacts (see :func:`simulate_exposure`); ``"realistic"`` switches on
        every effect. Its ``bright_stars`` (per full SW detector) are added to the
        source table around each SW detector (AB 13-18); with ``saturation``, sources
        brighter than F160W = 18 (saturated in HST too) are left out of ``refcat.ecsv``.
    real_geometry : bool
        TRUE WCSs from the real CEERS nircam1 solutions (real distortion, layout,
        dithers and filter offsets; :mod:`jwst_ceers.simulate.real_geometry`; dithers
        cycle over the 3 real ones, visits reuse them); HEADER WCS = truth + the visit's
        pointing error + the detector's error (as a V2/V3 shift). ``ra, dec, pa_v3``
        are then ignored: the field is where CEERS observed it. CEERS filters only.
    real_wcs_dir : str or Path, optional
        Directory of the real ``*_tweakreg.asdf`` files (default
        ``../shared/data/ceers_dr05/tweakreg_wcs`` beside the checkout).

    Returns
    -------
    SimulatedPointing
    """
    import asdf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in filters:
        if f not in FILTERS:
            raise CeersParameterError(f"filters: {f!r} unknown; known: {', '.join(FILTERS)}")
    for d in sw_detectors:
        if d.upper() not in SW_DETECTORS:
            raise CeersParameterError(f"sw_detectors: {d!r} is not a SW detector")
    for d in lw_detectors:
        if d.upper() not in LW_DETECTORS:
            raise CeersParameterError(f"lw_detectors: {d!r} is not a LW detector")
    if n_dithers < 1 or n_visits < 1:
        raise CeersParameterError("n_dithers and n_visits must be >= 1")
    realism = realism_preset(realism)
    if real_geometry:
        # the field of the real solutions: module-A centre of the first SW filter's first dither
        first_sw = next((f for f in filters if FILTERS[f].channel == "SW"), filters[0])
        anchor, _ = real_exposure_wcs("NRCA1" if FILTERS[first_sw].channel == "SW" else "NRCALONG", first_sw, 1,
                                      wcs_dir=real_wcs_dir)
        ra, dec = (float(v) for v in anchor.get_transform(anchor.available_frames[1], "world")(*module_centre_v2v3()))
        pa_v3 = reference_pointing(anchor)["roll_ref"]
    master = np.random.SeedSequence(seed)
    pointing_rng = np.random.default_rng(master.spawn(1)[0])

    # --- visit pointings (true) and header errors ---
    visits = []
    for v in range(n_visits):
        shift = np.array([0.0, 0.0]) if v == 0 else pointing_rng.uniform(-5, 5, 2)
        mag_err = _uniform_range(pointing_rng, pointing_error_arcsec)
        ang = pointing_rng.uniform(0, 2 * np.pi)
        droll = pointing_rng.uniform(-roll_error_deg, roll_error_deg) if roll_error_deg > 0 else 0.0
        det_err = {}
        for d in (*sw_detectors, *lw_detectors):
            m = _uniform_range(pointing_rng, detector_error_mas) / 1000.0
            a = pointing_rng.uniform(0, 2 * np.pi)
            det_err[d.upper()] = (m * np.cos(a), m * np.sin(a))
        visits.append(dict(shift=shift, err=(mag_err * np.cos(ang), mag_err * np.sin(ang)), droll=droll,
                           det_err=det_err))

    # --- sources ---
    if source_table is None:
        sources = make_source_population(ra=ra, dec=dec, width_arcsec=200.0 + 20 * n_dithers,
                                         height_arcsec=200.0 + 20 * n_dithers,
                                         seed=int(pointing_rng.integers(2**31)), n_large_galaxies=n_large_galaxies,
                                         density_scale=source_density_scale)
    elif isinstance(source_table, Table):
        sources = source_table
    else:
        sources = load_source_table(source_table)
    if realism.bright_stars > 0:
        star_rng = np.random.default_rng([int(seed), 1802])
        _, n_side = subarray_window(size if size is not None and size != FULL_SIZE else None)
        half_width = 0.5 * n_side * FILTERS["F150W"].pixel_scale
        for det in sw_detectors:
            det_ra, det_dec, _ = detector_pointing(det.upper(), ra=ra, dec=dec, pa_v3=pa_v3)
            sources = add_bright_stars(sources, ra=det_ra, dec=det_dec, half_width_arcsec=half_width,
                                       count=star_rng.poisson(realism.bright_stars * (n_side / FULL_SIZE) ** 2),
                                       rng=star_rng)
    sources_path = out_dir / "simulated_sources.ecsv"
    with atomic_output(sources_path) as tmp:
        sources.write(tmp, format="ascii.ecsv", overwrite=True)

    refcat_path = None
    if write_refcat:
        refcat_path = out_dir / "refcat.ecsv"
        mag160 = source_mag(sources, "F160W")
        keep = mag160 < refcat_mag_limit
        if realism.saturation:
            keep &= mag160 >= _REFCAT_SATURATION_MAG
        sig_mas = 5.0 + 10.0 * np.clip((mag160[keep] - 20.0) / 6.0, 0, 1)
        dec_k = np.asarray(sources["dec"], float)[keep]
        noise = pointing_rng.standard_normal((2, keep.sum())) * sig_mas / 3.6e6
        refcat = Table(dict(
            ra=np.asarray(sources["ra"], float)[keep] + noise[0] / np.cos(np.radians(dec_k)),
            dec=dec_k + noise[1], mag=mag160[keep]))
        refcat.meta["comment"] = "simulated HST-F160W-like absolute catalogue (5-15 mas noise per axis)"
        with atomic_output(refcat_path) as tmp:
            refcat.write(tmp, format="ascii.ecsv", overwrite=True)

    # --- exposures ---
    cal_files, mask_files, truth = [], [], {}
    pairs = _pair_filters(list(filters))
    v2_centre, v3_centre = module_centre_v2v3()
    for v, visit in enumerate(visits):
        for p, pair in enumerate(pairs):
            for k in range(n_dithers):
                off = visit["shift"] + _dither_offset(k)
                # dither: the field point (ra, dec) moves across the focal plane
                v2c, v3c = v2_centre - off[0], v3_centre + off[1]
                start_mjd = _MJD_START + v * 1.0 + p * 0.15 + k * (EXPOSURE_TIME + 120.0) / _DAY_S
                for filt_name in pair:
                    filt = FILTERS[filt_name]
                    dets = sw_detectors if filt.channel == "SW" else lw_detectors
                    for det in dets:
                        det = det.upper()
                        ra_ref, dec_ref, roll_ref = detector_pointing(det, ra=ra, dec=dec, pa_v3=pa_v3, v2=v2c,
                                                                      v3=v3c)
                        exp_rng = np.random.default_rng([seed, v, p, k, DETECTOR_INDEX[det], FILTER_INDEX[filt_name]])
                        ped = (filt.sky_mjysr * exp_rng.uniform(0.85, 1.15) if pedestal_range is None
                               else _uniform_range(exp_rng, pedestal_range))
                        grad = tuple(exp_rng.uniform(-gradient_amplitude, gradient_amplitude, 2))
                        derr = visit["det_err"][det]
                        wcs_error = (visit["err"][0] + derr[0], visit["err"][1] + derr[1], visit["droll"])
                        geometry = {}
                        if real_geometry:
                            geometry = dict(zip(("true_wcs", "header_wcs"), real_exposure_wcs(
                                det, filt_name, k + 1, size=size, error_arcsec=wcs_error[:2], wcs_dir=real_wcs_dir),
                                strict=True))
                        model, tr = simulate_exposure(
                            filter_name=filt_name, detector=det, ra_ref=ra_ref, dec_ref=dec_ref,
                            roll_ref=roll_ref, sources=sources, seed=exp_rng.integers(2**63), size=size,
                            wcs_error=wcs_error, pedestal=ped, gradient=grad,
                            rnoise_scale_error=rnoise_scale_error, one_over_f=one_over_f,
                            cosmic_ray_rate=cosmic_ray_rate, bad_pixel_fraction=bad_pixel_fraction,
                            zero_variance_fraction=zero_variance_fraction, observation=v + 1, activity=p + 1,
                            dither=k + 1, visit=v, start_mjd=start_mjd, realism=realism, **geometry)
                        cal_path = out_dir / f"{tr.root}_cal.fits"
                        write_model_atomic(model, cal_path)
                        model.close()
                        wcs_path = out_dir / f"{tr.root}_true_wcs.asdf"
                        true_wcs, true_info = tr.true_wcs
                        with atomic_output(wcs_path) as tmp:
                            asdf.AsdfFile({"wcs": true_wcs, "wcsinfo": true_info}).write_to(tmp)
                        mask_path = out_dir / f"{tr.root}_{mask_suffix}.fits"
                        _write_mask(tr.segmentation, path=mask_path, root=tr.root)
                        tr.cal_file, tr.mask_file, tr.true_wcs_file = str(cal_path), str(mask_path), str(wcs_path)
                        tr.segmentation = None
                        truth[tr.root] = tr
                        cal_files.append(cal_path)
                        mask_files.append(mask_path)
                        log.info("simulated %s", cal_path.name)

    truth_path = out_dir / TRUTH_FILENAME
    doc = dict(
        generator="jwst_ceers.simulate.simulate_pointing", seed=int(seed),
        parameters=dict(filters=list(filters), sw_detectors=list(sw_detectors), lw_detectors=list(lw_detectors),
                        n_dithers=n_dithers, n_visits=n_visits, size=size, ra=ra, dec=dec, pa_v3=pa_v3,
                        rnoise_scale_error=rnoise_scale_error, one_over_f=one_over_f, mask_suffix=mask_suffix,
                        realism=realism.to_dict(), real_geometry=bool(real_geometry)),
        sources_path=sources_path.name, refcat_path=refcat_path.name if refcat_path else None,
        exposures={root: t.to_dict() for root, t in truth.items()},
    )
    for t in doc["exposures"].values():
        for key in ("cal_file", "mask_file", "true_wcs_file"):
            t[key] = Path(t[key]).name
    write_text_atomic(json.dumps(doc, indent=1), truth_path)
    return SimulatedPointing(out_dir=out_dir, cal_files=cal_files, truth=truth, sources=sources,
                             sources_path=sources_path, refcat_path=refcat_path, mask_files=mask_files,
                             truth_path=truth_path)


DETECTOR_INDEX = {d: i for i, d in enumerate(SW_DETECTORS + LW_DETECTORS)}
FILTER_INDEX = {f: i for i, f in enumerate(FILTERS)}


def _write_mask(seg, *, path, root):
    from astropy.io import fits

    hdr = fits.Header()
    hdr["EXTNAME"] = "PRIMARY"
    hdr["ROOTNAME"] = root
    hdr["COMMENT"] = "Simulated CEERS-style source mask: segmentation map, 0 = sky"
    hdul = fits.HDUList([fits.PrimaryHDU(seg, header=hdr)])
    write_fits_atomic(hdul, path)


def load_truth(out_dir):
    """
    Read the truth written by :func:`simulate_pointing` in ``out_dir``.

    Returns
    -------
    SimulatedPointing
        Paths are absolute (inside ``out_dir``); ``sources`` is read from its ECSV.

    Raises
    ------
    CeersFileError
        If ``out_dir`` has no truth file.
    """
    out_dir = Path(out_dir)
    truth_path = out_dir / TRUTH_FILENAME
    if not truth_path.is_file():
        raise CeersFileError(f"{truth_path}: no simulation truth file (run simulate_pointing first)")
    try:
        doc = json.loads(truth_path.read_text())
    except (OSError, ValueError) as exc:
        raise CeersFileError(f"{truth_path}: cannot read simulation truth: {exc}") from exc
    truth = {}
    for root, t in doc["exposures"].items():
        for key in ("cal_file", "mask_file", "true_wcs_file"):
            t[key] = str(out_dir / t[key]) if t[key] else ""
        truth[root] = ExposureTruth.from_dict(t)
    sources_path = out_dir / doc["sources_path"]
    refcat_path = out_dir / doc["refcat_path"] if doc.get("refcat_path") else None
    return SimulatedPointing(
        out_dir=out_dir, cal_files=[Path(t.cal_file) for t in truth.values()], truth=truth,
        sources=Table.read(sources_path, format="ascii.ecsv"), sources_path=sources_path,
        refcat_path=refcat_path, mask_files=[Path(t.mask_file) for t in truth.values()], truth_path=truth_path)
