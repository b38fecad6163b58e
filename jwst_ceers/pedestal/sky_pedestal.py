"""
The sky pedestal of one exposure: a Gaussian fitted to the histogram of its sky pixels.

The histogram's bin width and range come from the data (robust sigma of the clipped
sky), not from fixed MJy/sr values, so the fit works for any filter, unit or depth.
The Gaussian is fitted to an ASYMMETRIC core: the negative side of the peak to
``fit_lower`` sigma and the positive side only to ``fit_upper`` sigma, because faint
undetected sources only ever add flux (they skew the histogram to the positive side).
When the fit is impossible or implausible a robust location is used instead, and the
result says so (``method``) — the pedestal is never silently 0.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import curve_fit

from jwst_ceers.masking.robust import robust_location_scale

__all__ = ["PedestalFit", "fit_pedestal", "biweight_location"]

log = logging.getLogger(__name__)

# minimum number of sky pixels for a histogram fit (fewer: robust fallback)
MIN_FIT_PIXELS = 2000
# maximum rms deviation (beyond Poisson noise) of the fitted core histogram from the
# Gaussian, relative to its peak (simulated skies: < 1%; a bimodal histogram: > 10%)
MAX_MISFIT = 0.05


@dataclass
class PedestalFit:
    """
    Result of :func:`fit_pedestal`.

    Attributes
    ----------
    level : float
        The pedestal (NaN only if there was no finite value at all).
    method : str
        'gaussian_fit', or the fallback used: 'biweight_location' (fit failed or was
        implausible) or 'median' (too few pixels for anything else).
    sigma : float
        Gaussian sigma of the fit (robust sigma for fallbacks).
    npix : int
        Number of sky pixels used (after clipping).
    bin_width : float
        Histogram bin width (NaN for fallbacks without histogram).
    message : str
        Why a fallback was used ('' for a good fit).
    edges, counts : ndarray
        The fitted histogram (for plots); empty when no histogram was made.
    amplitude : float
        Fitted Gaussian peak height (counts per bin).
    """

    level: float
    method: str
    sigma: float
    npix: int
    bin_width: float = float("nan")
    message: str = ""
    edges: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    counts: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    amplitude: float = float("nan")


def _gaussian(x, amplitude, mean, sigma):
    return amplitude * np.exp(-0.5 * ((x - mean) / sigma) ** 2)


def biweight_location(values, *, c=6.0, iterations=5):
    """Tukey biweight location (iterated from the median; MAD scale)."""
    values = np.asarray(values, dtype=np.float64)
    location = np.median(values)
    for _ in range(iterations):
        mad = np.median(np.abs(values - location))
        if mad == 0:
            break
        u = (values - location) / (c * mad)
        inside = np.abs(u) < 1
        weight = (1 - u[inside] ** 2) ** 2
        location = location + np.sum(weight * (values[inside] - location)) / np.sum(weight)
    return float(location)


def fit_pedestal(values, *, clip_sigma=3.0, fit_lower=2.0, fit_upper=1.0, bins_per_sigma=10.0):
    """
    Pedestal of a set of sky pixel values from a Gaussian fit to their histogram.

    Steps: iterative ``clip_sigma`` clipping (median / MAD) gives a first location m and
    sigma s; a histogram with bin width ``s / bins_per_sigma`` (wider if there are too
    few pixels per bin) over m +- ``clip_sigma`` s is built; a Gaussian is fitted to the
    bins from ``fit_lower`` s below to ``fit_upper`` s above the peak (the core, mostly
    its negative side, which faint unmasked sources barely affect), re-centred once on
    the fitted mean.

    Parameters
    ----------
    values : array-like
        Sky pixel values (sources, bad pixels and NaNs already removed; NaNs ignored).
    clip_sigma : float, optional
        Clipping threshold and histogram half-range, in robust sigma.
    fit_lower, fit_upper : float, optional
        Extent of the fitted core below and above the peak, in robust sigma (2 and 1
        were chosen on simulated deep fields, see ``benchmarks/bench_pedestal.py``).
    bins_per_sigma : float, optional
        Target number of bins per sigma.

    Returns
    -------
    PedestalFit
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return PedestalFit(float("nan"), "none", float("nan"), 0, message="no finite sky pixel")
    # the first location/scale only set the histogram range: a regular subsample will do
    location, scale = robust_location_scale(values[:: max(1, values.size // 500_000)], clip=clip_sigma)
    if values.size < MIN_FIT_PIXELS or not scale > 0:
        why = f"only {values.size} sky pixels" if values.size < MIN_FIT_PIXELS else "zero scatter"
        level = float(np.median(values)) if values.size < 20 or not scale > 0 else biweight_location(values)
        method = "median" if values.size < 20 or not scale > 0 else "biweight_location"
        return PedestalFit(level, method, float(scale), int(values.size), message=why)
    clipped = values[np.abs(values - location) <= clip_sigma * scale]
    # bins: s / bins_per_sigma, but at least ~200 pixels per bin at the peak
    peak_density = clipped.size / (np.sqrt(2 * np.pi) * scale)
    bin_width = max(scale / bins_per_sigma, 200.0 / peak_density)
    # rounded before ceil: 2*clip*scale/width is an integer in exact arithmetic for the default
    # width, and float noise must not flip the bin count (the pedestal must shift exactly with
    # the data when a constant is added)
    nbins = max(8, int(np.ceil(round(2 * clip_sigma * scale / bin_width, 6))))
    counts, edges = np.histogram(clipped, bins=nbins, range=(location - clip_sigma * scale,
                                                            location + clip_sigma * scale))
    centres = 0.5 * (edges[1:] + edges[:-1])
    params = None
    message = ""
    centre = location
    try:
        for _ in range(2):
            core = (centres >= centre - fit_lower * scale) & (centres <= centre + fit_upper * scale) & (counts > 0)
            if core.sum() < 5:
                raise RuntimeError(f"only {core.sum()} non-empty bins in the fitted core")
            guess = (float(counts[core].max()), centre, scale)
            params, _ = curve_fit(
                _gaussian, centres[core], counts[core], p0=guess, sigma=np.sqrt(counts[core]), maxfev=2000
            )
            centre = float(params[1])
        amplitude, mean, sigma = (float(p) for p in params)
        sigma = abs(sigma)
        # shape check: rms deviation of the core histogram from the fit beyond Poisson noise,
        # relative to the peak
        model = _gaussian(centres[core], *params)
        excess = np.mean((counts[core] - model) ** 2) - np.mean(np.clip(model, 0, None))
        misfit = float(np.sqrt(max(excess, 0.0)) / amplitude)
        if not (np.isfinite(mean) and abs(mean - location) < scale and 0.5 * scale < sigma < 2.0 * scale):
            message = (
                f"implausible Gaussian fit (mean {mean:.4g}, sigma {sigma:.4g}; "
                f"robust location {location:.4g}, sigma {scale:.4g})"
            )
            params = None
        elif misfit > MAX_MISFIT:
            message = f"histogram is not Gaussian (rms misfit {misfit:.3f} of the peak > {MAX_MISFIT})"
            params = None
    except (RuntimeError, ValueError) as exc:
        message = f"Gaussian fit failed: {exc}"
        params = None
    if params is None:
        return PedestalFit(
            biweight_location(clipped), "biweight_location", float(scale), int(clipped.size),
            bin_width=float(bin_width), message=message, edges=edges, counts=counts,
        )
    return PedestalFit(
        mean, "gaussian_fit", sigma, int(clipped.size), bin_width=float(bin_width),
        edges=edges, counts=counts, amplitude=amplitude,
    )
