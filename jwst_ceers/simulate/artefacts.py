"""
NIRCam detector and optics artefacts for the simulator, each optional, with a named preset.

:class:`Realism` says which effects an exposure gets; :data:`REALISM_PRESETS` names
sets of them (``"none"``: the simulator as before; ``"realistic"``: every effect at
the level a CEERS-reduced ``*_cal.fits`` shows; one preset per effect family, at a
strength meant to stress the steps on small test frames). The numbers below come from
published NIRCam characterisation, quoted from memory (this code was written offline)
and kept at plausible levels; each function's docstring says where they come from.

Every image function returns a NEW float32 array in MJy/sr (or a fraction, for the
flat) on the written (sub)array, whose full-frame pixel ``(start, start)`` is pixel
``(0, 0)``.
"""

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from jwst_ceers.errors import CeersParameterError

__all__ = [
    "Realism",
    "REALISM_PRESETS",
    "realism_preset",
    "AMPLIFIER_WIDTH",
    "StripingModel",
    "STRIPING_MODELS",
    "power_law_sequence",
    "striping_image",
    "striping_block7_variance",
    "snowballs",
    "wisp_image",
    "WISP_DETECTORS",
    "persistence_image",
    "flat_structure",
    "saturation_rate_limit",
]

AMPLIFIER_WIDTH = 512
FULL_SIZE = 2048


@dataclass(frozen=True)
class StripingModel:
    """
    Row-correlated (1/f) noise of the four 512-column amplifiers after ramp fitting.

    Each amplifier's rows carry an offset (constant along the row within the amplifier)
    whose sequence down the rows has a power spectrum ``P(f) ~ f**-alpha``; a
    ``common_fraction`` of its variance is shared by all four amplifiers (the SIDECAR
    ASIC's common-mode noise), the rest is independent per amplifier. Columns get
    independent white offsets of ``col_rms``. Amplitudes are in units of the white sky
    sigma of one pixel. The image's mean over the array is removed: a constant offset is
    indistinguishable from (and counted in) the sky pedestal.

    Attributes
    ----------
    row_rms, col_rms : float
    alpha : float
    common_fraction : float
    """

    row_rms: float
    col_rms: float
    alpha: float
    common_fraction: float


#: Striping levels. ``unremoved``: as in CEERS rate files before their striping removal
#: (1/f noise of the H2RG + SIDECAR, Schlawin et al. 2020, AJ 160, 231; Rauscher et al.
#: 2015, PASP 127, 1144 for the row-offset and common-mode structure; rows of a deep
#: MEDIUM8 exposure differ by ~0.3-0.5 of the pixel sigma, Bagley et al. 2023, ApJL 946,
#: L12, Fig. 2). ``residual``: after CEERS-style removal (median of each amplifier row
#: and of each column over unmasked pixels subtracted, Bagley et al. 2023 sec. 3.2): the
#: estimate of a row median from ~250 unmasked pixels has sigma ~ sqrt(pi/2)/sqrt(250)
#: ~ 0.08 of the pixel sigma, nearly white down the rows; column medians over ~2000 rows
#: leave ~0.03.
STRIPING_MODELS = {
    "none": StripingModel(0.0, 0.0, 0.0, 0.0),
    "residual": StripingModel(row_rms=0.08, col_rms=0.03, alpha=0.3, common_fraction=0.3),
    "unremoved": StripingModel(row_rms=0.40, col_rms=0.10, alpha=1.0, common_fraction=0.6),
}


@dataclass(frozen=True)
class Realism:
    """
    Which NIRCam artefacts a simulated exposure gets (all off by default).

    Rates are per full 2048^2 frame and scale with the (sub)array area.

    Attributes
    ----------
    striping : str
        Key of :data:`STRIPING_MODELS` ('none', 'residual', 'unremoved').
    psf : str
        'gaussian' (the filter's Gaussian PSF) or 'pupil': point sources drawn with the
        JWST pupil PSF and its diffraction spikes (:mod:`jwst_ceers.simulate.psf`).
    bright_stars : float
        Mean number of bright stars (AB 13-18 at 1.5 um; F150W saturates below ~16) per full SW detector,
        added to the source table of a pointing (mean ~0.3 at the high galactic latitude
        of EGS: ~1000 stars deg^-2 to J = 19).
    saturation : bool
        Pixels reaching the full well within the first two groups are NaN, flagged
        SATURATED + DO_NOT_USE (halos and spikes stay unflagged).
    snowball_rate : float
        Snowballs per full frame per 1000 s (JDox "NIRCam Snowballs": ~1-2 per detector
        per 1000 s).
    wisp_residual : float
        Largest |residual / full wisp| left after CEERS's wisp-template subtraction
        (Bagley et al. 2023 sec. 3.3); 0 = no wisps. Only A3, A4, B3, B4 get wisps.
    persistence_ghosts : float
        Mean persistence ghosts of earlier bright sources per full frame.
    flat_rms : float
        Fractional rms of the large-scale flat-field residual (multiplies all signal).
    """

    striping: str = "none"
    psf: str = "gaussian"
    bright_stars: float = 0.0
    saturation: bool = False
    snowball_rate: float = 0.0
    wisp_residual: float = 0.0
    persistence_ghosts: float = 0.0
    flat_rms: float = 0.0

    def __post_init__(self):
        if self.striping not in STRIPING_MODELS:
            raise CeersParameterError(f"realism.striping {self.striping!r}: expected one of {', '.join(STRIPING_MODELS)}")
        if self.psf not in ("gaussian", "pupil"):
            raise CeersParameterError(f"realism.psf {self.psf!r}: expected 'gaussian' or 'pupil'")
        for name in ("bright_stars", "snowball_rate", "wisp_residual", "persistence_ghosts", "flat_rms"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise CeersParameterError(f"realism.{name} must be finite and >= 0, got {value}")

    def to_dict(self):
        """JSON-serialisable dict."""
        return asdict(self)

    @property
    def any(self):
        """True when at least one effect is on."""
        return self != Realism()


_REALISTIC = Realism(striping="residual", psf="pupil", bright_stars=0.3, saturation=True, snowball_rate=1.5,
                     wisp_residual=0.25, persistence_ghosts=3.0, flat_rms=0.003)

#: Named presets: ``none``, ``realistic`` (every effect at its CEERS level) and one per
#: effect family, stronger than real so that small (512^2-1024^2) test frames see them.
REALISM_PRESETS = {
    "none": Realism(),
    "realistic": _REALISTIC,
    "striping": Realism(striping="residual"),
    "striping_unremoved": Realism(striping="unremoved"),
    "spikes": Realism(psf="pupil"),
    "saturated_stars": Realism(psf="pupil", bright_stars=8.0, saturation=True),
    "snowballs": Realism(snowball_rate=40.0),
    "wisps": Realism(wisp_residual=0.25),
    "persistence": Realism(persistence_ghosts=60.0),
    "flat": Realism(flat_rms=0.005),
}



def _stamp_window(x, y, reach, shape):
    """Rows/columns ``(y0, y1, x0, x1)`` within ``reach`` px of ``(x, y)``, clipped to ``shape``; None if empty."""
    ny, nx = shape
    x0, x1 = max(0, int(x) - reach), min(nx, int(x) + reach + 1)
    y0, y1 = max(0, int(y) - reach), min(ny, int(y) + reach + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1

def realism_preset(realism):
    """
    A :class:`Realism` from a preset name, a dict of fields, a Realism or None ('none').

    A dict may start from a preset: ``{"preset": "realistic", "striping": "unremoved"}``.
    """
    if realism is None:
        return REALISM_PRESETS["none"]
    if isinstance(realism, Realism):
        return realism
    if isinstance(realism, str):
        if realism not in REALISM_PRESETS:
            raise CeersParameterError(f"realism {realism!r} unknown; presets: {', '.join(REALISM_PRESETS)}")
        return REALISM_PRESETS[realism]
    if isinstance(realism, dict):
        fields = dict(realism)
        base = realism_preset(fields.pop("preset", "none"))
        try:
            return replace(base, **fields)
        except TypeError as exc:
            raise CeersParameterError(f"realism: {exc}") from exc
    raise CeersParameterError(f"realism must be a preset name, dict or Realism, got {type(realism).__name__}")


# ---------------------------------------------------------------------------
# 1/f striping
# ---------------------------------------------------------------------------

def _power_law_filter(n, alpha):
    """|H(f)| over the full FFT frequencies of an n-sequence, normalised to unit output variance."""
    f = np.abs(np.fft.fftfreq(n))
    f[0] = 1.0 / n  # the mean gets the power of the lowest frequency
    h = f ** (-alpha / 2.0)
    return h / np.sqrt(np.mean(h**2))


def power_law_sequence(n, alpha, rng, size=1):
    """``size`` independent length-``n`` sequences of unit expected variance with PSD ~ f**-alpha."""
    h = _power_law_filter(n, alpha)
    white = rng.standard_normal((size, n))
    return np.fft.ifft(np.fft.fft(white, axis=1) * h, axis=1).real


def _row_autocorrelation(n, alpha, lags):
    """Expected autocorrelation of :func:`power_law_sequence` at ``lags`` (circular)."""
    h2 = _power_law_filter(n, alpha) ** 2
    acf = np.fft.ifft(h2).real
    return acf[np.abs(np.asarray(lags))]


def striping_image(shape, *, start, sky_sigma, model, rng):
    """
    Row-correlated 1/f striping of the four amplifiers (see :class:`StripingModel`).

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)``.
    start : int
        Full-frame column of pixel 0 (amplifier boundaries at multiples of 512).
    sky_sigma : float
        White sky sigma per pixel (MJy/sr); the model's rms are in these units.
    model : StripingModel
    rng : numpy.random.Generator

    Returns
    -------
    ndarray (float32)
    """
    ny, nx = shape
    amp = (start + np.arange(nx)) // AMPLIFIER_WIDTH
    amp -= amp.min()
    namp = int(amp.max()) + 1
    image = np.zeros(shape, dtype=np.float32)
    if model.row_rms > 0:
        common = power_law_sequence(ny, model.alpha, rng)[0]
        own = power_law_sequence(ny, model.alpha, rng, size=namp)
        rows = np.sqrt(model.common_fraction) * common[:, None] + np.sqrt(1 - model.common_fraction) * own.T
        image += (model.row_rms * sky_sigma * rows[:, amp]).astype(np.float32)
    if model.col_rms > 0:
        image += (model.col_rms * sky_sigma * rng.standard_normal(nx)).astype(np.float32)[None, :]
    # a constant offset over the array cannot be told from the sky: it is counted in the pedestal
    image -= np.float32(image.mean())
    return image


def striping_block7_variance(*, shape, start, sky_sigma, model, block=7):
    """
    Expected variance of ``block`` x ``block`` block MEANS of :func:`striping_image`.

    Averaged over the blocks tiling the array from pixel (0, 0) (blocks straddling an
    amplifier boundary have less of the per-amplifier variance).
    """
    ny, nx = shape
    nb = nx // block
    cols = start + np.arange(nb * block).reshape(nb, block)
    counts = [np.unique(c // AMPLIFIER_WIDTH, return_counts=True)[1] for c in cols]
    sum_sq = np.mean([np.sum(c**2) for c in counts])
    lags = np.arange(-(block - 1), block)
    rho = _row_autocorrelation(ny, model.alpha, lags) if model.row_rms > 0 else np.zeros(lags.size)
    s_rho = float(np.sum((block - np.abs(lags)) * rho))
    row_var = (model.row_rms * sky_sigma) ** 2
    row_term = row_var * s_rho * (model.common_fraction * block**2 + (1 - model.common_fraction) * sum_sq)
    col_term = (model.col_rms * sky_sigma) ** 2 * block * block**2
    return float((row_term + col_term) / block**4)


# ---------------------------------------------------------------------------
# snowballs
# ---------------------------------------------------------------------------

def snowballs(shape, *, rate, exposure_time, sky_sigma, rng):
    """
    Snowballs: large cosmic-ray events with a flagged core and an unflagged halo.

    Following JDox "NIRCam Snowballs and Shower artifacts" and the jump step's snowball
    flagging used by CEERS (Bagley et al. 2023): the core (radius 3-12 px) saturates in
    one group; the jump step finds it and flags it JUMP_DET (the rate is refitted from
    the other groups, leaving a positive residual of 0-2 sky sigma in the core); the
    charge that spread into the surrounding pixels (to ~2.5 core radii) stays below the
    jump threshold and is left unflagged as a halo of 1-4 sky sigma at the core's edge,
    falling off exponentially (scale 0.4 core radius).

    Parameters
    ----------
    shape : (int, int)
    rate : float
        Snowballs per full 2048^2 frame per 1000 s.
    exposure_time : float
        Seconds.
    sky_sigma : float
        White sky sigma per pixel (MJy/sr).
    rng : numpy.random.Generator

    Returns
    -------
    image : ndarray (float32)
        Added signal (core residual + halo).
    core : ndarray of bool
        Core pixels (to flag JUMP_DET).
    centres : ndarray (k, 3)
        ``x, y, core radius`` of each snowball.
    """
    ny, nx = shape
    n = rng.poisson(rate * exposure_time / 1000.0 * ny * nx / FULL_SIZE**2)
    image = np.zeros(shape, dtype=np.float32)
    core = np.zeros(shape, dtype=bool)
    centres = np.column_stack([rng.uniform(0, nx, n), rng.uniform(0, ny, n), rng.uniform(3.0, 12.0, n)])
    for (x, y, rc), halo_amp, core_amp in zip(centres, rng.uniform(1, 4, n), rng.uniform(0, 2, n), strict=True):
        reach = int(np.ceil(2.5 * rc)) + 1
        window = _stamp_window(x, y, reach, (ny, nx))
        if window is None:
            continue
        y0, y1, x0, x1 = window
        yy, xx = np.mgrid[y0:y1, x0:x1]
        r = np.hypot(xx - x, yy - y)
        inside = r <= rc
        halo = np.where((r > rc) & (r <= 2.5 * rc), halo_amp * np.exp(-(r - rc) / (0.4 * rc)), 0.0)
        image[y0:y1, x0:x1] += (sky_sigma * (halo + core_amp * inside)).astype(np.float32)
        core[y0:y1, x0:x1] |= inside
    return image, core, centres


# ---------------------------------------------------------------------------
# wisps
# ---------------------------------------------------------------------------

#: Detectors with wisps (JDox "NIRCam Claws and Wisps": A3 and B4 strongest, A4 and B3
#: fainter) and their relative strength.
WISP_DETECTORS = {"NRCA3": 1.0, "NRCB4": 1.0, "NRCA4": 0.5, "NRCB3": 0.5}
# wisp strength by filter (strongest at F150W/F200W, weak in F090W; none in LW)
_WISP_FILTER = {"F070W": 0.3, "F090W": 0.4, "F115W": 0.7, "F150W": 1.0, "F200W": 1.0}
# peak of a full (unsubtracted) wisp relative to the sky (Robberto 2023, JWST-STScI
# technical report on the wisps: a few % to ~10% of the zodiacal background)
WISP_PEAK_OF_SKY = 0.08
# components (full-frame x, y, sigma_major, sigma_minor, angle deg, weight): an arc of
# diffuse light a few hundred pixels across, fixed on the detector (module B mirrored)
_WISP_COMPONENTS = ((700.0, 900.0, 260.0, 90.0, 35.0, 1.0), (1000.0, 1250.0, 220.0, 70.0, 15.0, 0.8),
                    (1350.0, 1450.0, 180.0, 60.0, -10.0, 0.6), (550.0, 600.0, 150.0, 60.0, 60.0, 0.5))


def wisp_image(shape, *, start, detector, filter_name, sky, residual, rng):
    """
    Residual wisp (scattered light fixed on A3/A4/B3/B4) after template subtraction.

    The full wisp peaks at ``WISP_PEAK_OF_SKY`` x sky x detector and filter strength;
    what is left after CEERS's scaled-template subtraction is that times a factor drawn
    uniformly in ``[-residual, residual]`` (over- or under-subtraction).

    Returns
    -------
    image : ndarray (float32)
        Zero on detectors or filters without wisps.
    factor : float
        The residual factor drawn (0 without wisp).
    """
    strength = WISP_DETECTORS.get(detector.upper(), 0.0) * _WISP_FILTER.get(filter_name.upper(), 0.0)
    if strength == 0 or residual <= 0:
        return np.zeros(shape, dtype=np.float32), 0.0
    factor = float(rng.uniform(-residual, residual))
    ny, nx = shape
    y = (start + np.arange(ny))[:, None].astype(float)
    x = (start + np.arange(nx))[None, :].astype(float)
    if detector.upper().startswith("NRCB"):
        x = FULL_SIZE - 1 - x
    total = np.zeros(shape)
    for cx, cy, smaj, smin, angle, weight in _WISP_COMPONENTS:
        a = np.radians(angle)
        u = (x - cx) * np.cos(a) + (y - cy) * np.sin(a)
        v = -(x - cx) * np.sin(a) + (y - cy) * np.cos(a)
        total = total + weight * np.exp(-0.5 * ((u / smaj) ** 2 + (v / smin) ** 2))
    peak = WISP_PEAK_OF_SKY * sky * strength
    return (factor * peak * total).astype(np.float32), factor


# ---------------------------------------------------------------------------
# persistence
# ---------------------------------------------------------------------------

def persistence_image(shape, *, mean_count, sky_sigma, rng):
    """
    Persistence ghosts of bright sources seen in the previous exposure (unflagged).

    NIRCam persistence is low (JDox "NIRCam Persistence": ~0.05-0.1% of a saturating
    signal in the following ~1000 s; Leisenring et al. 2016, SPIE 9915); a star
    saturated at ~1e5 e- then leaves ~0.5-5 sky sigma in a deep exposure's rate, in a
    compact blob the size of its saturated core (FWHM 2-6 px).

    Returns
    -------
    image : ndarray (float32)
    ghosts : ndarray (k, 3)
        ``x, y, peak`` (MJy/sr) of each ghost.
    """
    ny, nx = shape
    n = rng.poisson(mean_count * ny * nx / FULL_SIZE**2)
    image = np.zeros(shape, dtype=np.float32)
    ghosts = np.column_stack([rng.uniform(0, nx, n), rng.uniform(0, ny, n), rng.uniform(0.5, 5.0, n) * sky_sigma])
    for (x, y, peak), fwhm in zip(ghosts, rng.uniform(2.0, 6.0, n), strict=True):
        s = fwhm / 2.3548
        reach = int(np.ceil(4 * s)) + 1
        window = _stamp_window(x, y, reach, (ny, nx))
        if window is None:
            continue
        y0, y1, x0, x1 = window
        yy, xx = np.mgrid[y0:y1, x0:x1]
        image[y0:y1, x0:x1] += (peak * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / s**2)).astype(np.float32)
    return image, ghosts


# ---------------------------------------------------------------------------
# flat field
# ---------------------------------------------------------------------------

def flat_structure(shape, *, rms, rng, scale=150.0):
    """
    Large-scale flat-field residual: a smooth zero-mean random field of fractional ``rms``.

    A Gaussian random field smoothed over ``scale`` px (sigma), scaled to ``rms`` and
    with zero mean over the array, so the sky level (pedestal) is unchanged on average.
    NIRCam's CRDS flats are good to a few 0.1% on large scales (JDox "NIRCam Flat
    Fields"; sky-flat residuals ~0.2-0.5%), the pixel-to-pixel part is in VAR_FLAT.

    Returns
    -------
    ndarray (float32)
        ``epsilon``; the simulator multiplies sky and sources by ``1 + epsilon``.
    """
    if rms <= 0:
        return np.zeros(shape, dtype=np.float32)
    step = max(1, int(scale // 8))
    coarse_shape = tuple(int(np.ceil(s / step)) + 1 for s in shape)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), scale / step, mode="wrap")
    field = ndimage.zoom(coarse, step, order=1)[: shape[0], : shape[1]]
    field -= field.mean()
    sd = field.std()
    return (rms * field / sd).astype(np.float32) if sd > 0 else np.zeros(shape, dtype=np.float32)


# ---------------------------------------------------------------------------
# saturation
# ---------------------------------------------------------------------------

#: Full well used for saturation (electrons; NIRCam saturation ~60-65 ke- in the CRDS
#: saturation reference files, JDox "NIRCam Detector Performance").
FULL_WELL_E = 62000.0


def saturation_rate_limit(*, group_time, mjysr_per_electron_rate, groups=2):
    """Signal (MJy/sr) above which a pixel reaches the full well within ``groups`` groups."""
    return FULL_WELL_E / (groups * group_time) * mjysr_per_electron_rate
