"""Quality measures of a reduction against the truth of a simulation.

Plain functions on WCS objects and arrays, used by the demo report, the tests
and the benchmarks.
"""

import numpy as np

__all__ = ["err_holes", "noise_ratio", "robust_std", "saturated_in_any", "star_offsets_mas", "wcs_separation_mas"]


def robust_std(values):
    """Standard deviation estimated from the median absolute deviation (1.4826 MAD)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def wcs_separation_mas(wcs, true_wcs, shape, *, step=64):
    """
    Angular separation between two WCSs over a detector, in milliarcseconds.

    Parameters
    ----------
    wcs, true_wcs : callable
        Objects mapping pixel (x, y) to sky (ra, dec) in degrees (gwcs ``WCS``).
    shape : tuple of int
        Detector shape (ny, nx); positions are sampled on a regular grid.
    step : int, optional
        Grid spacing in pixels.

    Returns
    -------
    rms : float
        Root-mean-square separation over the grid (mas).
    max : float
        Largest separation (mas).
    """
    ny, nx = shape
    y, x = np.mgrid[0 : ny : step, 0 : nx : step].astype(np.float64)
    x = x.ravel() + (nx - 1 - x.max()) / 2  # centre the grid on the detector
    y = y.ravel() + (ny - 1 - y.max()) / 2
    ra1, dec1 = wcs(x, y)
    ra2, dec2 = true_wcs(x, y)
    ra1, dec1, ra2, dec2 = (np.deg2rad(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2))
    # haversine: accurate for tiny angles
    hav = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    sep = 2 * np.arcsin(np.sqrt(hav))
    sep_mas = np.rad2deg(sep) * 3.6e6
    good = np.isfinite(sep_mas)
    return float(np.sqrt(np.mean(sep_mas[good] ** 2))), float(np.max(sep_mas[good]))


def noise_ratio(data, err, excluded):
    """
    Measured noise of source-free pixels divided by the typical ERR there.

    Parameters
    ----------
    data, err : ndarray
        Mosaic science and error arrays.
    excluded : ndarray of bool
        True where a pixel must not be used (sources, no coverage).

    Returns
    -------
    float
        ``robust_std(data) / median(err)`` over the usable pixels; 1 means ERR
        describes the pixel-to-pixel noise. Drizzle correlates neighbouring output
        pixels, which lowers the measured pixel rms below ERR for pixfrac 1.
    """
    use = ~excluded & np.isfinite(data) & np.isfinite(err) & (err > 0)
    return robust_std(data[use]) / float(np.median(err[use]))


def err_holes(data, err):
    """Number of pixels with finite data but an ERR that is zero or not finite."""
    finite = np.isfinite(data)
    return int(np.count_nonzero(finite & ~(np.isfinite(err) & (err > 0))))


def star_offsets_mas(data, wcs, ra, dec, *, sigma, pixel_scale=0.03, min_peak_sigma=50.0):
    """
    Distances (mas) between true star positions and their Gaussian-fit centroids in a mosaic.

    Parameters
    ----------
    data : ndarray
        Background-subtracted mosaic.
    wcs : gwcs.WCS
        Its WCS.
    ra, dec : array-like
        True star positions (deg).
    sigma : float
        Pixel noise; stars whose 11x11 box peaks below ``min_peak_sigma * sigma``,
        touches a NaN or lies within 8 pixels of an edge are left out.
    pixel_scale : float, optional
        Mosaic pixel scale (arcsec).
    min_peak_sigma : float, optional
        Brightness cut (see ``sigma``).

    Returns
    -------
    ndarray
        One finite distance per measured star.
    """
    from photutils.centroids import centroid_2dg

    x, y = wcs.world_to_pixel_values(np.asarray(ra), np.asarray(dec))
    offsets = []
    for xi, yi in zip(np.atleast_1d(x), np.atleast_1d(y), strict=True):
        if not (np.isfinite(xi) and np.isfinite(yi)):
            continue
        ix, iy = int(round(xi)), int(round(yi))
        if not (8 <= ix < data.shape[1] - 8 and 8 <= iy < data.shape[0] - 8):
            continue
        box = data[iy - 5 : iy + 6, ix - 5 : ix + 6]
        if not np.all(np.isfinite(box)) or box.max() < min_peak_sigma * sigma:
            continue
        cx, cy = centroid_2dg(box)  # a Gaussian fit: robust to drizzle's pixel phase
        offsets.append(np.hypot(cx + ix - 5 - xi, cy + iy - 5 - yi) * pixel_scale * 1000.0)
    offsets = np.array(offsets)
    return offsets[np.isfinite(offsets)]


def saturated_in_any(ra, dec, exposures, *, radius=3):
    """
    Which sky positions have a SATURATED pixel within ``radius`` pixels in any exposure.

    Drizzle fills a saturated (NaN) core from the dithers where it is not saturated,
    so such a star's centroid in the mosaic is biased by tens of mas: astrometry is
    measured on unsaturated stars, as in real data.

    Parameters
    ----------
    ra, dec : array-like
        Positions (deg).
    exposures : iterable of ImageModel
        Exposures with DQ and a WCS (their header WCS after alignment is close enough).
    radius : int, optional
        Half-size (pixels) of the box searched around each position.

    Returns
    -------
    ndarray of bool
    """
    from stdatamodels.jwst.datamodels import dqflags

    saturated_flag = dqflags.pixel["SATURATED"]
    ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
    hit = np.zeros(ra.size, dtype=bool)
    for model in exposures:
        ny, nx = model.dq.shape
        x, y = model.meta.wcs.world_to_pixel_values(ra, dec)
        for i in np.flatnonzero(np.isfinite(x) & np.isfinite(y) & ~hit):
            ix, iy = int(round(float(x[i]))), int(round(float(y[i])))
            y0, y1 = max(0, iy - radius), min(ny, iy + radius + 1)
            x0, x1 = max(0, ix - radius), min(nx, ix + radius + 1)
            if y0 < y1 and x0 < x1 and np.any(model.dq[y0:y1, x0:x1] & saturated_flag):
                hit[i] = True
    return hit
