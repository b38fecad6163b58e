"""Sersic models of large bright galaxies, subtracted before the background fit.

The faint wings of a mag ~16-17 galaxy stay above a few hundredths of the pixel noise
out to hundreds of pixels, far past any mask (measured on the calibrated simulation:
a mag-16, r_eff 1.4", n 3.7 galaxy is still 0.4 sigma in F356W 500 px from its
centre). A background fitted to the pixels around its mask follows that light and the
surface filling the mask's hole carries it inwards: the background is over-estimated
under and around the galaxy by up to ~0.4 sigma. No mask size or box size separates the
two, because the background's own bumps have the same scales. What separates them is
the shape of the galaxy's profile, which its bright inner part fixes: as done for the
bright galaxies of deep cluster fields, the galaxy is fitted with an elliptical Sersic
profile plus a local polynomial background on block means (neighbours and compact
sources excluded as positive residuals), and the model is subtracted from the data
that the masks around it, the mask growth and the background fit see. The model only
steers the background estimate; it is not removed from the outputs.

Everything here is a plain function on arrays; the fit runs on 8 x 8 block means
(a few thousand values per galaxy), so it costs well under a second per galaxy.
"""

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, uniform_filter
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from jwst_ceers.masking.background import coarse_background
from jwst_ceers.masking.fft_ops import block_means
from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked
from jwst_ceers.mosaic_bkg.fit_workers import FitWorkersError
from jwst_ceers.mosaic_bkg.large_sources import BRIGHT_NSIGMA, find_large_bright_sources, search_inputs
from jwst_ceers.mosaic_bkg.sersic import (
    SersicComponent,
    block_ranges,
    evaluate_components,
    isophote_radius,
    sersic_b,
    truncation_radius,
)

__all__ = [
    "LargeGalaxies",
    "fit_sersic_galaxy",
    "large_galaxy_models",
    "single_threaded_blas",
    "typical_noise",
]

log = logging.getLogger(__name__)

#: The least-squares fits run with a single-threaded BLAS: LAPACK/BLAS results depend on
#: the thread count in the last bits, and a survey's products made on dask workers (1 BLAS
#: thread) must equal a serial run's bitwise. The limit is process-wide (threadpoolctl),
#: so it is counted: set by the first fit that starts, restored when the last one ends,
#: and fits of several mosaics run at once (a plain lock serialised them).
_BLAS_LIMIT_LOCK = threading.Lock()
_blas_limit = {"users": 0, "limiter": None}


@contextmanager
def single_threaded_blas():
    """
    BLAS limited to one thread while any fit (of any thread) is inside this context.

    Enter it in the thread that starts the fitting threads as well, around them (as
    `pointing_background` does): with this OpenBLAS a limit set or restored from a worker
    thread after BLAS has run is not applied (threadpoolctl still reports 2 threads), so
    the calling thread must be the first in and the last out.
    """
    with _BLAS_LIMIT_LOCK:
        if _blas_limit["users"] == 0:
            _blas_limit["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _blas_limit["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LIMIT_LOCK:
            _blas_limit["users"] -= 1
            if _blas_limit["users"] == 0:
                _blas_limit["limiter"].restore_original_limits()
                _blas_limit["limiter"] = None

#: Relative change of the cost (and of the parameters) at which a fit stops. scipy's
#: default, 1e-8, is a change of chi^2 ~1e-4 over the 10^4 blocks of a large galaxy:
#: fits went on long after nothing measurable changed (34 fits of a realistic pointing:
#: 7.8 -> 4.7 s CPU at 1e-7; robustness_mosaic --quick: mean rms unchanged, worst cell
#: 0.200 -> 0.199, held-out worst 0.547 -> 0.408; simulated 10600 x 4800 pair F356W
#: 0.062 -> 0.053). At 1e-6 the worst cell (bumps/cluster_core seed 2 F356W) went to 0.44.
_FIT_TOLERANCE = 1e-7

#: Sersic parameters (y, x, log I_e, log r_eff, n, e1, e2) at the head of the least-squares vector.
_NPAR = 7
_MAX_INDEX = 8.0

def _shape_from_ellipticity(e1, e2):
    e = min(float(np.hypot(e1, e2)), 0.95)
    return (1.0 - e) / (1.0 + e), 0.5 * float(np.arctan2(e2, e1))


def _model_values(params, rows, cols):
    """Sersic profile of the least-squares parameters (y, x, log I_e, log r_eff, n, e1, e2)."""
    y, x, log_i, log_r, n, e1, e2 = params
    q, theta = _shape_from_ellipticity(e1, e2)
    dy, dx = rows - y, cols - x
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = (dy * np.cos(theta) - dx * np.sin(theta)) / q
    r = np.sqrt(u * u + v * v) / np.exp(log_r)
    b = float(sersic_b(n))
    return np.exp(log_i - b * (r ** (1.0 / n) - 1.0))


def _model_and_jacobian(params, rows, cols):
    """
    Sersic profile of the least-squares parameters and its analytic Jacobian.

    Returns the model (as :func:`_model_values`) and its derivatives with respect to
    (y, x, log I_e, log r_eff, n, e1, e2), shape ``(rows.size, 7)``. With
    ``m = exp(log I_e - b_n (w - 1))``, ``w = (rho / r_eff)^(1/n)`` and ``rho`` the
    elliptical radius, every derivative is ``m`` times that of the exponent; the
    geometric ones go through ``rho^2 = u^2 + v^2`` (u, v: major / minor-axis
    offsets, v divided by the axis ratio). At ``e = 0`` (the fit's start) the
    direction of ``e1`` is taken (``q`` is not differentiable there); beyond the
    clipping of ``e`` at 0.95 the axis ratio does not change.
    """
    y, x, log_i, log_r, n, e1, e2 = (float(p) for p in params)
    e_raw = float(np.hypot(e1, e2))
    q, theta = _shape_from_ellipticity(e1, e2)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    dy, dx = rows - y, cols - x
    u = dx * cos_t + dy * sin_t
    v = (dy * cos_t - dx * sin_t) / q
    rho2 = np.maximum(u * u + v * v, 1e-300)
    log_scaled = 0.5 * np.log(rho2) - log_r  # log(rho / r_eff)
    w = np.exp(log_scaled / n)
    b = float(sersic_b(n))
    step = 1e-6 * max(1.0, n)
    b_slope = float(sersic_b(n + step) - sersic_b(n - step)) / (2.0 * step)
    model = np.exp(log_i - b * (w - 1.0))
    jac = np.empty((rows.size, _NPAR))
    bw_n = b * w / n
    # d(exponent)/d(rho^2) = -(b w / n) / (2 rho^2)
    g = -0.5 * bw_n / rho2
    jac[:, 0] = g * (-2.0 * u * sin_t - 2.0 * v * cos_t / q)  # du/dy = -sin, dv/dy = -cos/q
    jac[:, 1] = g * (-2.0 * u * cos_t + 2.0 * v * sin_t / q)  # du/dx = -cos, dv/dx = sin/q
    jac[:, 2] = 1.0
    jac[:, 3] = bw_n
    jac[:, 4] = -b_slope * (w - 1.0) + bw_n * log_scaled / n
    # e1, e2 act through q (via e = |(e1, e2)|, clipped at 0.95) and theta = atan2(e2, e1) / 2
    d_rho2_dq = -2.0 * v * v / q
    d_rho2_dtheta = 2.0 * u * v * (q - 1.0 / q)
    if e_raw > 0:
        de_de1, de_de2 = e1 / e_raw, e2 / e_raw
        dtheta_de1, dtheta_de2 = -0.5 * e2 / e_raw**2, 0.5 * e1 / e_raw**2
    else:
        de_de1, de_de2, dtheta_de1, dtheta_de2 = 1.0, 0.0, 0.0, 0.0
        # theta is undefined at e = 0; along e1 (theta 0) the second derivative term is
        # the limit 2 u v (q - 1/q) / (2 e) -> -4 u v
        d_rho2_dtheta = -4.0 * u * v
        dtheta_de2 = 1.0
    dq_de = -2.0 / (1.0 + e_raw) ** 2 if e_raw < 0.95 else 0.0
    jac[:, 5] = g * (d_rho2_dq * dq_de * de_de1 + d_rho2_dtheta * dtheta_de1)
    jac[:, 6] = g * (d_rho2_dq * dq_de * de_de2 + d_rho2_dtheta * dtheta_de2)
    jac *= model[:, None]
    return model, jac


def _polynomial_terms(rows, cols, centre, scale, order):
    ys, xs = (rows - centre[0]) / scale, (cols - centre[1]) / scale
    terms = [np.ones_like(ys)]
    if order >= 1:
        terms += [xs, ys]
    if order >= 2:
        terms += [xs * xs, xs * ys, ys * ys]
    return np.stack(terms, axis=1)


def _component_bounds(y, x, radius, shift):
    lower = [y - shift, x - shift, -60.0, np.log(1.0), 0.3, -0.9, -0.9]
    upper = [y + shift, x + shift, 60.0, np.log(max(2.0, 5.0 * radius)), _MAX_INDEX, 0.9, 0.9]
    return lower, upper


def fit_sersic_galaxy(
    blocks,
    usable,
    *,
    block,
    centre,
    radius,
    noise,
    fit_radius_factor=2.5,
    core_radius=32.0,
    background_order=2,
    neighbour_passes=2,
    excess_nsigma=2.0,
    max_overshoot=2.0,
    flat_is_credible=True,
    region_nsigma=BRIGHT_NSIGMA,
    min_extent=0.25,
):
    """
    Fit a large galaxy with an elliptical Sersic profile on block means.

    The fit uses the blocks within ``fit_radius_factor * radius`` of the galaxy and
    outside ``core_radius`` of its centre (the PSF-blurred cusp), with a robust loss
    and a polynomial background over that disc. Neighbours and compact sources are
    the positive residuals of the fit: they are excluded (with a 2-block margin) and
    the fit is repeated.

    Parameters
    ----------
    blocks : ndarray
        Block means of the mosaic (``block`` x ``block`` pixels).
    usable : ndarray of bool
        Blocks with enough data.
    block : int
        Block size (pixels).
    centre : (float, float)
        Approximate (y, x) of the galaxy, pixels.
    radius : float
        Approximate extent (pixels): equivalent radius of its bright region.
    noise : float
        Pixel noise sigma (data units).
    fit_radius_factor : float
        Fit disc radius in units of ``radius``.
    core_radius : float
        Blocks closer than this (pixels) to the centre are not fitted.
    background_order : int
        Order (0-2) of the local polynomial background.
    neighbour_passes : int
        Times the blocks with positive residuals are excluded and the fit repeated.
    excess_nsigma : float
        Threshold of those residuals (3x3-block mean, in its noise).
    max_overshoot : float
        Acceptance: largest ratio of the model to the data (minus the fitted
        background) allowed in the ring just inside ``core_radius``, which the fit does
        not see. A galaxy's profile continues inwards; a background bump, or a compact
        galaxy on one, fitted outside its core predicts far more light there than the
        data hold (measured: 74 vs 28 sigma at 12-32 px on a held-out blob), and
        subtracting such a model biases the background around it.
    flat_is_credible : bool
        Accept a fit whose index ends at its lower bound (0.3, a flat-topped
        profile). In a cluster core such a model of a bright elongated galaxy helps
        (robustness bumps/cluster_core seed 2: F150W rms 0.16 with it, 0.34
        without); fitted to a faint candidate it is a background bump (seed 5 F356W
        rms 0.15 without, 0.21 with).
    region_nsigma : float
        Threshold (pixel sigma) of the search that found the galaxy's bright region.
    min_extent : float
        Acceptance: the model's isophote at ``region_nsigma`` must have an equivalent
        radius of at least this times ``radius``, i.e. the model must account for the
        bright region it was found in. A fit that collapsed (I_e -> 0, or a needle a few
        px wide fitted to noise) or a flat halo fitted to a bright star's spikes does
        not: measured, the credible fits of 29 + 44 galaxies (a realistic 48-exposure
        pointing, a simulated one) gave 0.45-1.2, and 8 collapsed or star fits 0.0.

    Returns
    -------
    list of SersicComponent
        The galaxy; empty when the fit failed or is not credible (a parameter at its
        bound, or no convergence).
    """
    blocks = np.asarray(blocks, dtype=np.float32)
    usable = np.asarray(usable, dtype=bool)
    fit_radius = float(fit_radius_factor * radius)
    # everything below happens in a window around the galaxy: the cost of a fit does
    # not depend on the size of the mosaic
    y0, y1, x0, x1 = _fit_window(blocks.shape, block=block, centre=centre, radius=radius,
                                 fit_radius_factor=fit_radius_factor)
    if y1 <= y0 or x1 <= x0:
        return []
    blocks, usable = blocks[y0:y1, x0:x1], usable[y0:y1, x0:x1]
    rows = (np.arange(y0, y1, dtype=float) + 0.5) * block - 0.5
    cols = (np.arange(x0, x1, dtype=float) + 0.5) * block - 0.5
    rows2d, cols2d = np.meshgrid(rows, cols, indexing="ij")
    distance = np.hypot(rows2d - centre[0], cols2d - centre[1])
    # the centre: brightest 3x3-smoothed block within half the radius
    smoothed = uniform_filter(np.where(usable, blocks, np.float32(0)), size=3)
    near = usable & (distance < 0.5 * radius)
    if not near.any():
        return []
    peak = np.argmax(np.where(near, smoothed, -np.inf))
    yc, xc = float(rows2d.flat[peak]), float(cols2d.flat[peak])
    distance = np.hypot(rows2d - yc, cols2d - xc)
    in_disc = usable & (distance < fit_radius) & (distance > core_radius)
    if in_disc.sum() < 50:
        return []
    sigma = float(noise) / block * 1.6  # block-mean noise (drizzle correlation ~1.6x)
    background0 = float(np.median(blocks[in_disc & (distance > 0.8 * fit_radius)])) if np.any(
        in_disc & (distance > 0.8 * fit_radius)) else 0.0
    ring = in_disc & (distance > 0.3 * radius) & (distance < 0.4 * radius)
    level = float(np.median(blocks[ring])) - background0 if ring.any() else sigma
    start_galaxy = [yc, xc, np.log(max(level, 0.1 * sigma)), np.log(max(2.0, 0.35 * radius)), 2.5, 0.0, 0.0]
    lower_galaxy, upper_galaxy = _component_bounds(yc, xc, radius, 2.5 * block)

    def run_fit(galaxy, keep):
        y, x, d = rows2d[keep], cols2d[keep], blocks[keep].astype(float)
        poly = _polynomial_terms(y, x, (yc, xc), fit_radius, background_order)
        start = np.concatenate([galaxy, [background0], np.zeros(poly.shape[1] - 1)])
        lower = np.concatenate([lower_galaxy, np.full(poly.shape[1], -np.inf)])
        upper = np.concatenate([upper_galaxy, np.full(poly.shape[1], np.inf)])

        def residual(p):
            return (_model_values(p[:_NPAR], y, x) + poly @ p[_NPAR:] - d) / sigma

        def jacobian(p):
            # analytic: one model evaluation instead of the 13 of a finite-difference
            # Jacobian (the fits were half Jacobian; 0.25 s -> ~0.08 s CPU per galaxy)
            jac = np.empty((d.size, p.size))
            jac[:, :_NPAR] = _model_and_jacobian(p[:_NPAR], y, x)[1]
            jac[:, _NPAR:] = poly
            jac /= sigma
            return jac

        return least_squares(residual, np.clip(start, lower, upper), jac=jacobian, bounds=(lower, upper),
                             loss="soft_l1", f_scale=2.0, x_scale="jac", max_nfev=200 * len(start),
                             ftol=_FIT_TOLERANCE, xtol=_FIT_TOLERANCE)

    try:
        solution = run_fit(start_galaxy, in_disc)
        for _ in range(int(neighbour_passes)):
            # positive residuals (neighbours, compact sources) leave the fit, with a margin
            model = _model_values(solution.x[:_NPAR], rows2d, cols2d)
            poly_all = _polynomial_terms(rows2d.ravel(), cols2d.ravel(), (yc, xc), fit_radius, background_order)
            excess = np.where(in_disc, blocks - model - (poly_all @ solution.x[_NPAR:]).reshape(blocks.shape), 0.0)
            bright = (uniform_filter(excess, size=3) > excess_nsigma * sigma / 3.0) | (excess > 3.0 * sigma)
            keep = in_disc & ~binary_dilation(bright, iterations=2)
            if keep.sum() < 50:
                raise ValueError("too few blocks left after excluding neighbours")
            solution = run_fit(solution.x[:_NPAR], keep)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
        log.warning("large galaxy at (x, y) = (%.0f, %.0f): Sersic fit failed (%s); not modelled", xc, yc, exc)
        return []
    y, x, log_i, log_r, n, e1, e2 = solution.x[:_NPAR]
    at_bound = (n >= _MAX_INDEX - 1e-3) or (log_r >= upper_galaxy[3] - 1e-3) or (log_r <= lower_galaxy[3] + 1e-3)
    if not flat_is_credible:
        at_bound = at_bound or n <= lower_galaxy[4] + 1e-3
    if at_bound or not solution.success:
        log.warning(
            "large galaxy at (x, y) = (%.0f, %.0f): Sersic fit not credible (n %.2f, r_eff %.1f px); not modelled",
            xc, yc, n, np.exp(log_r),
        )
        return []
    inner = max(1.5 * block, 0.375 * core_radius)
    overshoot = _model_overshoot(solution.x, blocks, usable, rows2d, cols2d, (yc, xc), fit_radius, background_order,
                                 sigma, inner=inner, outer=core_radius)
    if overshoot is not None and overshoot > max_overshoot:
        log.warning(
            "large galaxy at (x, y) = (%.0f, %.0f): Sersic model exceeds the data %.1fx at %.0f-%.0f px "
            "(n %.2f, r_eff %.1f px); not modelled", xc, yc, overshoot, inner, core_radius, n, np.exp(log_r),
        )
        return []
    q, theta = _shape_from_ellipticity(e1, e2)
    intensity, r_eff = float(np.exp(log_i)), float(np.exp(log_r))
    extent = isophote_radius(intensity, r_eff, float(n), region_nsigma * float(noise)) * np.sqrt(q)
    if extent < min_extent * radius:
        log.warning(
            "large galaxy at (x, y) = (%.0f, %.0f): Sersic model (n %.2f, r_eff %.1f px, I_e %.2g sigma) reaches "
            "%.1f sigma over an equivalent radius of %.0f px, not the %.0f px of the bright region found there; "
            "not modelled", xc, yc, n, r_eff, intensity / float(noise), region_nsigma, extent, radius,
        )
        return []
    r_max = truncation_radius(intensity, r_eff, float(n), 1e-3 * float(noise))
    return [SersicComponent(float(y), float(x), intensity, r_eff, float(n), float(q), float(theta), r_max)]


def _fit_window(shape, *, block, centre, radius, fit_radius_factor):
    """
    Block index ranges ``(y0, y1, x0, x1)`` that :func:`fit_sersic_galaxy` reads: the
    fit disc around the brightest block within half the radius, plus the 3x3 filter
    and dilation margins.
    """
    reach = int(np.ceil((float(fit_radius_factor * radius) + 0.5 * radius) / block)) + 4
    cy, cx = int(round((centre[0] + 0.5) / block - 0.5)), int(round((centre[1] + 0.5) / block - 0.5))
    return max(0, cy - reach), min(shape[0], cy + reach + 1), max(0, cx - reach), min(shape[1], cx + reach + 1)


def _may_reach(component, window, *, block, shape):
    """Whether ``evaluate_components([component], shape, block=block)`` writes a block of ``window``."""
    y0, y1, x0, x1 = window
    return any(r0 < y1 and y0 < r1 and c0 < x1 and x0 < c1
               for (r0, r1), (c0, c1) in block_ranges(component, shape, block=block))


def _model_overshoot(params, blocks, usable, rows2d, cols2d, centre, fit_radius, background_order, sigma, *, inner,
                     outer):
    """Median model over median data (minus the fitted background) in a ring inside the fitted core."""
    y, x = params[0], params[1]
    distance = np.hypot(rows2d - y, cols2d - x)
    ring = usable & (distance >= inner) & (distance < outer)
    if ring.sum() < 4:
        return None
    poly = _polynomial_terms(rows2d[ring], cols2d[ring], centre, fit_radius, background_order)
    data = float(np.median(blocks[ring] - poly @ params[_NPAR:]))
    model = float(np.median(_model_values(params[:_NPAR], rows2d[ring], cols2d[ring])))
    # the data's noise and the PSF's blur of the ring are allowed for
    data = max(data, 0.0) + 3.0 * sigma / np.sqrt(ring.sum())
    return model / data


@dataclass
class LargeGalaxies:
    """
    Result of :func:`large_galaxy_models`.

    Attributes
    ----------
    components : list of SersicComponent
        The fitted models.
    unmodelled : list of (float, float, float)
        ``(y, x, radius)`` of the large bright galaxies whose fit failed or was not
        credible (the background fit uses larger boxes around them instead).
    pixel_noise : float
        The mosaic's pixel noise sigma the fits used (NaN when nothing was fitted).
    """

    components: list
    unmodelled: list
    pixel_noise: float = float("nan")


def typical_noise(data, exclude):
    """
    Typical pixel noise sigma of a mosaic, measured on its data.

    Robust scale of the pixels not in ``exclude`` (sources, no data) about a coarse
    background (every 4th pixel, 128-pixel boxes). Measured rather than taken from a
    noise map, whose absolute scale is not always known (an HST WHT map may hold
    exposure times rather than inverse variances).
    """
    sub = np.asarray(data, dtype=np.float32)[::4, ::4]
    bad = np.asarray(exclude, dtype=bool)[::4, ::4] | ~np.isfinite(sub)
    background = coarse_background(sub, exclude=bad, box=32)
    if background is None:
        return float("nan")
    _, scale = robust_location_scale(sample_unmasked(sub - background, bad))
    return float(scale)


def large_galaxy_models(
    data,
    exclude,
    *,
    nodata=None,
    block=8,
    box_size=128,
    fit_radius_factor=2.5,
    search_rounds=3,
    faint_nsigma=0.5,
    workers=None,
    threads=1,
):
    """
    Sersic models of the large bright galaxies of a mosaic.

    Large bright galaxies are found by
    :func:`~jwst_ceers.mosaic_bkg.large_sources.find_large_bright_sources`; each is
    fitted by :func:`fit_sersic_galaxy` on ``block`` x ``block`` block means (the
    models of the galaxies fitted before it subtracted). The block means are computed
    once for both.

    Parameters
    ----------
    data : ndarray
        2-D mosaic.
    exclude : ndarray of bool
        Masked pixels (sources, no data), for the search.
    nodata : ndarray of bool, optional
        Pixels without data (default: non-finite pixels).
    block : int
        Block size (a power of two).
    box_size : int
        Background box of the search (pixels).
    fit_radius_factor :
        See :func:`fit_sersic_galaxy`.
    search_rounds : int
        Searches for large bright galaxies, each on the mosaic minus the models found
        so far (a galaxy blended with a brighter one is found once that is modelled).
    faint_nsigma : float or None
        Threshold (pixel sigma) of one last search for fainter large galaxies, on the
        mosaic minus all models. Such a galaxy is kept only when its fit is credible;
        a failed fit is dropped (not listed in ``unmodelled``), because at this level
        groups of moderately bright galaxies and background bumps are found too, and
        the larger background boxes used around unmodelled galaxies would then flatten
        real structure. None: no such search.
    workers : FitWorkers, optional
        Worker processes that run fits ahead of their turn (the same results, see
        :class:`_OrderedFits`); None: all fits in this process.
    threads : int
        Threads for the full-resolution block means.

    Returns
    -------
    LargeGalaxies
    """
    data = np.asarray(data)
    valid = np.isfinite(data)
    if nodata is not None:
        valid &= ~np.asarray(nodata, dtype=bool)
    blocks, fraction = block_means(data, valid, factors=[block], threads=threads)[block]
    # the searches' full-resolution inputs, once for all of them
    prepared = search_inputs(data, exclude, nodata=~valid, block=block, blocks=(blocks, fraction))
    sources = find_large_bright_sources(data, exclude, box_size=box_size, prepared=prepared)
    if workers is not None and len(sources) > 1:
        workers.start()  # while the noise is measured
    if not sources and faint_nsigma is None:
        return LargeGalaxies([], [])
    pixel_noise = typical_noise(data, np.asarray(exclude, dtype=bool) | ~valid)
    if not (np.isfinite(pixel_noise) and pixel_noise > 0):
        return LargeGalaxies([], list(sources), pixel_noise)
    usable = fraction >= 0.5
    components, unmodelled = [], []
    fits = _OrderedFits(blocks, usable, block=block, shape=data.shape, workers=workers, options={
        "block": block, "noise": pixel_noise, "fit_radius_factor": fit_radius_factor,
    })
    for _ in range(int(search_rounds)):
        for (y, x, radius), found in fits.run(sorted(sources, key=lambda s: -s[2])):
            if not found:
                unmodelled.append((y, x, radius))
            for c in found:
                log.info(
                    "large galaxy model: (x, y) = (%.0f, %.0f), r_eff %.1f px, n %.2f, q %.2f, I_e %.3g sigma",
                    c.x, c.y, c.r_eff, c.n, c.axis_ratio, c.intensity / pixel_noise,
                )
            components.extend(found)
        if not components:
            break
        # a large galaxy blended with a brighter one shares its bright region: it is
        # found only once that one's model is subtracted (a mag-17.6, n 4 galaxy 100 px
        # from a mag-17.4 one left +0.37 sigma under the masks, bumps/cluster_core seed 2)
        sources = _new_sources(data, exclude, prepared, components, unmodelled, box_size=box_size)
        if not sources:
            break
    if faint_nsigma is not None:
        # the wings of a galaxy below the bright threshold still bias the background
        # (a mag-19.7, n 3.9, r_eff 61 px galaxy: +0.15 sigma under the masks, steps/dense
        # seed 4 F356W); they are modelled when the fit is credible, otherwise left alone
        candidates = _new_sources(
            data, exclude, prepared, components, unmodelled, box_size=box_size, bright_nsigma=faint_nsigma,
        )
        # a flat-topped "galaxy" this faint is a background bump
        faint = {"flat_is_credible": False, "region_nsigma": faint_nsigma}
        for _, found in fits.run(sorted(candidates, key=lambda s: -s[2]), **faint):
            for c in found:
                log.info(
                    "faint large galaxy model: (x, y) = (%.0f, %.0f), r_eff %.1f px, n %.2f, q %.2f, I_e %.3g sigma",
                    c.x, c.y, c.r_eff, c.n, c.axis_ratio, c.intensity / pixel_noise,
                )
            components.extend(found)
    return LargeGalaxies(components, unmodelled, pixel_noise)


class _OrderedFits:
    """
    Galaxy fits one after the other, each on the block means minus the models of the
    fits before it, optionally run ahead on worker processes with the same results.

    With ``workers`` (a :class:`~jwst_ceers.mosaic_bkg.fit_workers.FitWorkers`), the
    next fits start on the workers before the earlier ones end, on the block means
    minus the models known when they start. Their results are taken in order; a result
    is used only if no model that ended after its start writes a block of its fit
    window (:func:`_may_reach`): the blocks it read are then exactly those of the fit
    one after the other. Otherwise, or when a worker fails, the fit is made again here,
    on the blocks of all earlier models. The log records of a fit are emitted when its
    result is used, in order.
    """

    def __init__(self, blocks, usable, *, block, shape, workers, options):
        self.blocks, self.usable, self.block, self.shape = blocks, usable, block, shape
        self.workers = workers if workers is not None and workers.count > 0 else None
        self.options = options
        # block means minus the models fitted so far, updated by each new model only (the
        # cost per galaxy does not grow with the number of galaxies before it)
        self.models = None
        self.reached = []  # the models' components, in the order they were added

    def _current(self):
        return self.blocks if self.models is None else self.blocks - self.models

    def _fit_here(self, options):
        with single_threaded_blas():
            return fit_sersic_galaxy(self._current(), self.usable, **options)

    def _submit(self, options):
        try:
            return self.workers.submit(self._current(), self.usable, options), len(self.reached)
        except FitWorkersError:
            return None, len(self.reached)

    def run(self, requests, **fit_options):
        """Yield ``((y, x, radius), found)`` for ``requests`` in order, as if fitted one after the other."""
        requests = list(requests)
        options = [dict(self.options, centre=(y, x), radius=radius, **fit_options) for y, x, radius in requests]
        ahead = {}
        for index, request in enumerate(requests):
            if self.workers is not None:
                # this fit and the next ones (one more than the workers: none waits idle)
                for later in range(index, min(len(requests), index + self.workers.count + 1)):
                    if later not in ahead:
                        ahead[later] = self._submit(options[later])
            found = None
            future, known = ahead.pop(index, (None, 0))
            if future is not None:
                try:
                    found, records = future.result()
                except FitWorkersError as exc:
                    if self.workers is not None:
                        log.warning("galaxy fits: %s; fitting in this process", exc)
                    self.workers = None
                else:
                    window = _fit_window(self.blocks.shape, block=self.block, centre=options[index]["centre"],
                                         radius=options[index]["radius"],
                                         fit_radius_factor=options[index]["fit_radius_factor"])
                    if any(_may_reach(c, window, block=self.block, shape=self.shape) for c in self.reached[known:]):
                        found = None  # started without a model that reaches its window
                    else:
                        for name, level, message in records:
                            logging.getLogger(name).log(level, "%s", message)
            if found is None:
                found = self._fit_here(options[index])
            if found:
                self.models = evaluate_components(found, self.shape, block=self.block, out=self.models)
                self.reached.extend(found)
            yield request, found


def _new_sources(data, exclude, prepared, components, unmodelled, *, box_size, **search):
    """Large bright sources of the mosaic minus ``components``, away from those known already."""
    known = [(c.y, c.x) for c in components] + [(y, x) for y, x, _ in unmodelled]
    return [
        (y, x, radius) for y, x, radius in find_large_bright_sources(
            data, exclude, box_size=box_size, components=components, prepared=prepared, **search,
        )
        if all(np.hypot(y - ky, x - kx) > 0.5 * radius for ky, kx in known)
    ]
