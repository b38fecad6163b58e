"""The whole CEERS-like Stage 3 chain on a small simulated pointing, with a quality report.

``run_demo`` simulates a pointing (SW + LW filters, several detectors and dithers,
known pointing errors, pedestals, gradients, bad and zero-variance pixels), then runs
what a user runs: ``jwst-ceers asn`` -> ``jwst-ceers grid`` -> ``Image3Ceers`` per
filter -> ``MosaicBackground`` across filters, and measures the products against the
simulation's truth.
"""

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import write_text_atomic
from jwst_ceers.demo.quality import err_holes, noise_ratio, robust_std, star_offsets_mas, wcs_separation_mas

__all__ = ["DemoReport", "run_demo"]

log = logging.getLogger(__name__)


@dataclass
class DemoReport:
    """Quality numbers of a demo run (all measured against the simulation's truth)."""

    out_dir: str
    exposures: list = field(default_factory=list)  # per exposure: astrometry, pedestal
    mosaics: list = field(default_factory=list)  # per filter: star astrometry, noise, holes, bkg
    timings: dict = field(default_factory=dict)

    def summary(self):
        """Human-readable report."""
        lines = [f"jwst-ceers demo: products in {self.out_dir}", ""]
        lines.append("Per exposure (vs truth)           WCS rms [mas]  pedestal error [sigma]  VAR_RNOISE factor")
        for row in self.exposures:
            lines.append(
                f"  {row['exposure']:<32s} {row['wcs_rms_mas']:8.2f}      {row['pedestal_error_sigma']:+8.3f}"
                f"              {row['rnoise_factor']:.3f}"
            )
        wcs = np.array([r["wcs_rms_mas"] for r in self.exposures])
        ped = np.array([r["pedestal_error_sigma"] for r in self.exposures])
        lines.append(
            f"  all exposures: WCS rms {np.sqrt(np.mean(wcs**2)):.2f} mas (max {wcs.max():.2f}); "
            f"|pedestal error| max {np.abs(ped).max():.3f} sigma"
        )
        lines.append("")
        lines.append("Per mosaic")
        for row in self.mosaics:
            lines.append(
                f"  {row['filter']}: star astrometry {row['star_rms_mas']:.2f} mas rms "
                f"({row['n_stars']} stars); noise ratio rms/ERR {row['noise_ratio']:.3f}; "
                f"ERR holes {row['err_holes']}; background residual mean "
                f"{row['bkg_residual_mean_sigma']:+.3f} sigma, rms of 32-px blocks "
                f"{row['bkg_residual_block_rms_sigma']:.3f} sigma"
            )
        lines.append("")
        lines.append("Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()))
        return "\n".join(lines)


def _progress(message):
    print(f"[jwst-ceers demo] {message}", flush=True)


def run_demo(out_dir, *, seed=2023, size=2048, progress=_progress):
    """
    Simulate a small CEERS-like pointing and reduce it end to end.

    Parameters
    ----------
    out_dir : str or Path
        Everything is written below this folder (created).
    seed : int, optional
        Simulation seed.
    size : int, optional
        Detector size in pixels: 2048 = full frames; smaller sizes are centred cut-outs
        (faster, but each SW cut-out then holds too few reference sources for 2 mas).
    progress : callable, optional
        Called with one line of text per stage.

    Returns
    -------
    DemoReport
    """
    # Synthetic data need no CRDS step parameters; real users keep their CRDS setup.
    os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
    from jwst_ceers.associations import write_associations
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground
    from jwst_ceers.mosaic_grid import pointing_grid, write_grid_parameter_file
    from jwst_ceers.pipeline.image3_ceers import Image3Ceers
    from jwst_ceers.simulate import simulate_pointing

    out = Path(out_dir)
    dirs = {name: out / name for name in ("sim", "asn", "exposures", "products", "wcs", "previews")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out_dir=str(out))
    clock = time.perf_counter()

    progress(f"1/5 simulating a CEERS-like pointing ({size}^2 detectors, F150W + F356W)")
    sim = simulate_pointing(
        dirs["sim"], filters=("F150W", "F356W"), sw_detectors=("NRCA1", "NRCA2"),
        lw_detectors=("NRCALONG",), n_dithers=3, size=size, seed=seed,
        # ~1.2e6 sources/deg^2 to AB 28.5, as deep NIRCam fields show, and a reference
        # catalog as deep as CEERS's HST F160W one (~180 sources/arcmin^2, to ~27.5)
        source_density_scale=3.0, refcat_mag_limit=27.5,
    )
    report.timings["simulate"] = time.perf_counter() - clock

    progress("2/5 associations per filter and one shared 0.03\"/px grid")
    associations = write_associations(sim.cal_files, dirs["asn"], by="program", product="demo")
    grid = pointing_grid(sim.cal_files, pixel_scale=0.03)
    grid_file = write_grid_parameter_file(grid, out / "grid_resample.asdf")
    progress(f"    {len(associations)} associations; grid {grid.output_shape} px -> {grid_file.name}")

    mosaics = []
    for number, asn in enumerate(associations, 1):
        band = asn.stem.rsplit("_", 1)[-1]
        progress(f"3/5 Image3Ceers {number}/{len(associations)}: {asn.name}")
        start = time.perf_counter()
        Image3Ceers.call(
            str(asn),
            output_dir=str(dirs["products"]),
            steps={
                "tweakreg": {
                    "abs_refcat": str(sim.refcat_path),
                    "wcs_dir": str(dirs["wcs"]),
                    "results_file": str(out / f"tweakreg_results_{band}.ecsv"),
                },
                "pedestal": {"save_results": True, "output_dir": str(dirs["exposures"])},
                "resample": {**grid.resample_parameters(), "save_results": True},
                "source_catalog": {"skip": True},
            },
        )
        report.timings[f"image3 {band}"] = time.perf_counter() - start
        mosaics.append(dirs["products"] / f"{asn.stem}_i2d.fits")

    progress("4/5 MosaicBackground across filters")
    start = time.perf_counter()
    MosaicBackground.call(
        [str(m) for m in mosaics], output_dir=str(dirs["products"]), pointing_name="demo",
        save_plots=True,
    )
    report.timings["mosaic background"] = time.perf_counter() - start

    progress("5/5 measuring against the truth")
    report.exposures = _exposure_quality(sim, dirs)
    report.mosaics = [_mosaic_quality(path, sim, dirs["products"]) for path in mosaics]
    _write_previews(mosaics, dirs)
    report.timings["total"] = time.perf_counter() - clock
    write_text_atomic(report.summary() + "\n", out / "quality_report.txt")
    write_text_atomic(json.dumps(asdict(report), indent=1) + "\n", out / "quality_report.json")
    return report


def _exposure_quality(sim, dirs):
    import asdf
    from stdatamodels.jwst import datamodels

    from jwst_ceers.tweakreg.saved_wcs import load_wcs_solution

    rows = []
    for root, truth in sorted(sim.truth.items()):
        fitted, _ = load_wcs_solution(dirs["wcs"] / f"{root}_tweakreg.asdf")
        with asdf.open(truth.true_wcs_file, lazy_load=False, memmap=False) as handle:
            true_wcs = handle.tree["wcs"]
        (product,) = dirs["exposures"].glob(f"{root}*_pedestal.fits")  # crf names may carry _a3001
        with datamodels.open(product) as model:
            shape = model.data.shape
            level = model.meta.background.level
            details = model.meta.instance.get("ceers_pedestal", {})
            factor = details.get("rnoise_scale", np.nan)
        rms, _ = wcs_separation_mas(fitted, true_wcs, shape)
        rows.append(
            {
                "exposure": root,
                "wcs_rms_mas": rms,
                "pedestal_error_sigma": (level - truth.pedestal) / np.sqrt(truth.sky_variance),
                "rnoise_factor": float(factor),
            }
        )
    return rows


def _mosaic_quality(i2d_path, sim, products):
    from astropy.io import fits
    from stdatamodels.jwst import datamodels

    with datamodels.open(i2d_path) as model:
        band = model.meta.instrument.filter
        data, err, wcs = np.array(model.data), np.array(model.err), model.meta.wcs
    stem = i2d_path.name.removesuffix("_i2d.fits")
    bkgsub = fits.getdata(products / f"{stem}_bkgsub.fits").astype(np.float64)
    tiermask = fits.getdata(products / f"{stem}_tiermask.fits")
    excluded = tiermask != 0

    sigma = float(np.nanmedian(err[~excluded & np.isfinite(err)]))
    # astrometry in the mosaic: isolated simulated stars, measured vs true position
    stars = sim.sources[np.asarray(sim.sources["is_star"], bool)]
    offsets = star_offsets_mas(bkgsub, wcs, stars["ra"], stars["dec"], sigma=sigma)

    use = ~excluded & np.isfinite(bkgsub)
    ny, nx = (s // 32 for s in bkgsub.shape)
    blocks = np.where(use, bkgsub, np.nan)[: ny * 32, : nx * 32].reshape(ny, 32, nx, 32)
    counts = np.sum(np.isfinite(blocks), axis=(1, 3))
    with np.errstate(all="ignore"):
        block_means = np.nansum(blocks, axis=(1, 3)) / counts
    block_means = block_means[counts > 256]  # blocks at least a quarter unmasked
    return {
        "filter": band,
        "n_stars": int(offsets.size),
        "star_rms_mas": float(np.sqrt(np.mean(offsets**2))) if offsets.size else float("nan"),
        "noise_ratio": noise_ratio(data, err, excluded),
        "err_holes": err_holes(data, err),
        "bkg_residual_mean_sigma": float(np.mean(bkgsub[use]) / sigma),
        "bkg_residual_block_rms_sigma": float(robust_std(block_means) / sigma),
    }


def _write_previews(mosaics, dirs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval
    from stdatamodels.jwst import datamodels

    for path in mosaics:
        with datamodels.open(path) as model:
            data = np.array(model.data)
            band = model.meta.instrument.filter
        norm = ImageNormalize(data, interval=ZScaleInterval(), stretch=AsinhStretch())
        fig, ax = plt.subplots(figsize=(7, 7))
        ax.imshow(data, origin="lower", cmap="gray", norm=norm)
        ax.set_title(f"{path.name} ({band})")
        ax.set_axis_off()
        target = dirs["previews"] / f"{path.stem}.png"
        fig.savefig(target, dpi=90, bbox_inches="tight")
        plt.close(fig)
