"""Optional products of PedestalSkySub: background-subtracted image and histogram plot."""

from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import atomic_output, write_fits_atomic

__all__ = ["write_exposure_bkgsub", "write_histogram_plot"]


def write_exposure_bkgsub(path, *, data, background, pedestal, tier_bits, source_mask, bad, header_cards):
    """
    Write ``data - pedestal - background`` (SCI), the sky model (BKG) and the mask (MASK).

    MASK bit 0 = no data (DQ/NaN); bits 1.. = internal mask tiers, or bit 1 = given mask.
    """
    from astropy.io import fits

    mask = np.zeros(data.shape, dtype=np.uint8)
    if tier_bits is not None:
        mask |= tier_bits.astype(np.uint8)
    mask[source_mask & (mask == 0)] |= np.uint8(2)
    mask |= bad.astype(np.uint8)
    primary = fits.PrimaryHDU()
    for key, value, comment in header_cards:
        primary.header[key] = (value, comment)
    sky_model = (background + np.float32(pedestal)).astype(np.float32)
    hdul = fits.HDUList([
        primary,
        fits.ImageHDU((data - sky_model).astype(np.float32), name="SCI"),
        fits.ImageHDU(sky_model, name="BKG"),
        fits.ImageHDU(mask, name="MASK"),
    ])
    return write_fits_atomic(hdul, Path(path))


def write_histogram_plot(path, *, fit, title):
    """PNG of the sky histogram with the fitted Gaussian and the pedestal (matplotlib Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if fit.counts.size:
        centres = 0.5 * (fit.edges[1:] + fit.edges[:-1])
        axes.stairs(fit.counts, fit.edges, color="0.3", label="sky pixels")
        if np.isfinite(fit.amplitude):
            model = fit.amplitude * np.exp(-0.5 * ((centres - fit.level) / fit.sigma) ** 2)
            axes.plot(centres, model, color="C3", label=f"Gaussian fit, sigma {fit.sigma:.4g}")
    axes.axvline(fit.level, color="C0", ls="--", label=f"pedestal {fit.level:.5g} ({fit.method})")
    axes.set_xlabel("pixel value")
    axes.set_ylabel("pixels per bin")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png")
    return path
