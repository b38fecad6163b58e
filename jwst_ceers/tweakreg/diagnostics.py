"""Diagnostic plots: residual vectors to the reference catalog, before and after.

For one group, every source of every member image is placed on the sky with
the WCS before and after alignment and matched (nearest neighbour within a
tolerance) to the absolute reference catalog; the residual vectors are drawn
on a local tangent plane, magnified so that milli-arcsecond residuals show.
"""

import logging
from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import atomic_output

__all__ = ["match_residuals", "plot_residual_vectors", "tangent_plane"]

log = logging.getLogger(__name__)


def tangent_plane(ra, dec, ra0, dec0):
    """Gnomonic projection (arcsec) about ``ra0, dec0`` (all in deg)."""
    ra = np.deg2rad(ra)
    dec = np.deg2rad(dec)
    ra0 = np.deg2rad(ra0)
    dec0 = np.deg2rad(dec0)
    cosc = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cosc
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cosc
    return np.rad2deg(xi) * 3600.0, np.rad2deg(eta) * 3600.0


def match_residuals(ra, dec, ref_ra, ref_dec, *, tolerance=0.2, center=None):
    """
    Match sources to reference sources and return residual vectors.

    Parameters
    ----------
    ra, dec : array_like
        Source positions (deg).
    ref_ra, ref_dec : array_like
        Reference positions (deg).
    tolerance : float, optional
        Matching radius (arcsec).
    center : tuple of float, optional
        Tangent point (deg); default the mean source position.

    Returns
    -------
    x, y, dx, dy : ndarray
        Tangent-plane positions of matched sources and residuals
        (reference - source), all in arcsec.
    """
    from scipy.spatial import cKDTree

    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    if center is None:
        center = (float(np.mean(ra)), float(np.mean(dec)))
    x, y = tangent_plane(ra, dec, *center)
    rx, ry = tangent_plane(np.asarray(ref_ra, float), np.asarray(ref_dec, float), *center)
    if len(rx) == 0 or len(x) == 0:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    distance, index = cKDTree(np.column_stack([rx, ry])).query(np.column_stack([x, y]))
    matched = distance <= tolerance
    return x[matched], y[matched], rx[index[matched]] - x[matched], ry[index[matched]] - y[matched]


def plot_residual_vectors(path, before, after, *, title=""):
    """
    Save a two-panel PNG of residual vectors before and after alignment.

    Parameters
    ----------
    path : str or Path
        Output PNG (written atomically).
    before, after : tuple of ndarray
        ``(x, y, dx, dy)`` from `match_residuals` (arcsec).
    title : str, optional
        Figure title.
    """
    # matplotlib is imported only when a plot is asked for; a Figure with its own Agg
    # canvas leaves the process-wide backend (pyplot users, notebooks) alone
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 5.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, sharex=True, sharey=True)
    largest = max(
        [np.max(np.hypot(d[2], d[3])) if len(d[2]) else 0.0 for d in (before, after)] + [1e-3]
    )
    for ax, (x, y, dx, dy), label in zip(axes, (before, after), ("before", "after"), strict=True):
        if len(x):
            rms = 1000.0 * np.sqrt(np.mean(dx**2 + dy**2))
            ax.quiver(x, y, dx, dy, angles="xy", scale_units="xy", scale=largest / 8.0, width=0.003)
            ax.set_title(f"{label}: {len(x)} matches, rms {rms:.1f} mas")
        else:
            ax.set_title(f"{label}: no matches")
        ax.set_xlabel("xi [arcsec]")
        ax.set_aspect("equal")
    axes[0].set_ylabel("eta [arcsec]")
    figure.suptitle(f"{title}  (arrow of 8 arcsec = {1000 * largest:.0f} mas residual)")
    path = Path(path)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    return path
