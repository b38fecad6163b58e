"""The whole CEERS-like Stage 3 chain on a small simulated pointing, with a quality report.

``run_demo`` simulates a pointing (SW + LW filters, several detectors and dithers,
known pointing errors, pedestals, gradients, bad and zero-variance pixels), then runs
what a user runs: ``jwst-ceers asn`` -> ``jwst-ceers grid`` -> ``Image3Ceers`` per
filter (LW first, aligned to the reference catalogue and writing its aligned sources;
SW then aligned to those) -> ``MosaicBackground`` across filters, and measures the
products against the simulation's truth.
"""

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import write_text_atomic
from jwst_ceers.demo import DEFAULT_REALISM, DEFAULT_SIZE
from jwst_ceers.demo.console import Stage, call_step
from jwst_ceers.demo.quality import (
    err_holes,
    noise_ratio,
    robust_std,
    saturated_in_any,
    star_offsets_mas,
    wcs_separation_mas,
)

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
                f"({row['n_stars']} unsaturated stars); noise ratio rms/ERR {row['noise_ratio']:.3f}; "
                f"ERR holes {row['err_holes']}; background residual mean "
                f"{row['bkg_residual_mean_sigma']:+.3f} sigma, rms of 32-px blocks "
                f"{row['bkg_residual_block_rms_sigma']:.3f} sigma"
            )
        lines.append("")
        lines.append("Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()))
        return "\n".join(lines)


# The simulation: 2 SW detectors x 3 dithers in F150W, 1 LW detector x 3 dithers in F356W.
SW_DETECTORS, LW_DETECTORS, N_DITHERS = ("NRCA1", "NRCA2"), ("NRCALONG",), 3
# Image3Ceers.step_defs, in the order they run (one unit of the stage's progress bar each)
IMAGE3_STEPS = ("tweakreg", "skymatch", "outlier_detection", "pedestal", "varfill", "resample", "source_catalog")


def _simulated_exposure(record):
    """The exposure a ``simulate_pointing`` log record says was written, else None."""
    if record.name == "jwst_ceers.simulate.exposures" and record.msg == "simulated %s":
        return str(record.args[0]).removesuffix("_cal.fits")
    return None


def _image3_step_started(record):
    """The Image3Ceers step a stpipe ``Step ... running`` record starts, else None."""
    if record.name == "stpipe.step" and record.msg.startswith("Step %s running") and record.args:
        name = str(record.args[0])
        return name if name in IMAGE3_STEPS else None
    return None


def run_demo(out_dir, *, seed=2023, size=DEFAULT_SIZE, realism=DEFAULT_REALISM):
    """
    Simulate a small CEERS-like pointing and reduce it end to end.

    Each stage prints one line with a progress bar and its elapsed time on stderr
    (:class:`jwst_ceers.demo.console.Stage`); steps run with ``configure_log=False``, so
    log records go only where the caller's logging sends them (``jwst-ceers demo``:
    ``<out_dir>/demo.log``).

    Parameters
    ----------
    out_dir : str or Path
        Everything is written below this folder (created).
    seed : int, optional
        Simulation seed.
    size : int, optional
        Detector size in pixels: 2048 = full frames; smaller sizes are centred cut-outs
        (faster, but each SW cut-out then holds fewer reference sources: at 1024 the SW
        exposures align to ~3 mas instead of ~1.5 mas).
    realism : str, optional
        Simulator preset (:data:`jwst_ceers.simulate.REALISM_PRESETS`): by default every
        NIRCam artefact the simulator knows, at its CEERS level; ``"none"`` = plain.

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
    from jwst_ceers.simulate.nircam_geometry import FILTERS

    out = Path(out_dir)
    dirs = {name: out / name for name in ("sim", "asn", "exposures", "products", "wcs", "previews")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out_dir=str(out))
    clock = time.perf_counter()

    n_exposures = N_DITHERS * (len(SW_DETECTORS) + len(LW_DETECTORS))
    with Stage(f"1/5 simulate {n_exposures} exposures, {size}^2", n_exposures, count=_simulated_exposure) as stage:
        sim = simulate_pointing(
            dirs["sim"], filters=("F150W", "F356W"), sw_detectors=SW_DETECTORS,
            lw_detectors=LW_DETECTORS, n_dithers=N_DITHERS, size=size, seed=seed,
            # ~1.2e6 sources/deg^2 to AB 28.5, as deep NIRCam fields show, and a reference
            # catalog as deep as CEERS's HST F160W one (~180 sources/arcmin^2, to ~27.5)
            source_density_scale=3.0, refcat_mag_limit=27.5, realism=realism,
        )
    report.timings["simulate"] = stage.elapsed

    with Stage("2/5 associations, shared grid", 2) as stage:
        associations = write_associations(sim.cal_files, dirs["asn"], by="program", product="demo")
        stage.advance("associations")
        grid = pointing_grid(sim.cal_files, pixel_scale=0.03)
        grid_file = write_grid_parameter_file(grid, out / "grid_resample.asdf")
        stage.note = f"{len(associations)} asn; grid {grid.output_shape[1]}x{grid.output_shape[0]} px ({grid_file.name})"

    # LW first, aligned to the reference catalogue, writing its aligned sources; SW then aligns
    # to those (4x the area of one SW detector: the reference catalogue's noise averages down)
    def is_long_wavelength(asn):
        return FILTERS[asn.stem.rsplit("_", 1)[-1].upper()].channel == "LW"

    associations = sorted(associations, key=lambda asn: not is_long_wavelength(asn))
    lw_sources = None
    mosaics = []
    for asn in associations:
        band = asn.stem.rsplit("_", 1)[-1]
        if lw_sources is not None and not is_long_wavelength(asn):
            lw_sources = _covering_catalog(lw_sources, sim, band)
        tweakreg = {
            "abs_refcat": str(lw_sources or sim.refcat_path),
            "wcs_dir": str(dirs["wcs"]),
            "results_file": str(out / f"tweakreg_results_{band}.ecsv"),
        }
        if is_long_wavelength(asn) and lw_sources is None:
            lw_sources = out / f"aligned_sources_{band}.ecsv"
            tweakreg["aligned_catalog"] = str(lw_sources)
        with Stage(f"3/5 Image3Ceers {band.upper()}", len(IMAGE3_STEPS), count=_image3_step_started,
                   counts="started") as stage:
            call_step(
                Image3Ceers,
                str(asn),
                output_dir=str(dirs["products"]),
                steps={
                    "tweakreg": tweakreg,
                    "pedestal": {"save_results": True, "output_dir": str(dirs["exposures"])},
                    "resample": {**grid.resample_parameters(), "save_results": True},
                    "source_catalog": {"skip": True},
                },
            )
        report.timings[f"image3 {band}"] = stage.elapsed
        mosaics.append(dirs["products"] / f"{asn.stem}_i2d.fits")

    with Stage("4/5 MosaicBackground, all filters", 1) as stage:
        call_step(
            MosaicBackground,
            [str(m) for m in mosaics], output_dir=str(dirs["products"]), pointing_name="demo",
            save_plots=True,
        )
    report.timings["mosaic background"] = stage.elapsed

    with Stage("5/5 measure against the truth", 3) as stage:
        report.exposures = _exposure_quality(sim, dirs)
        stage.advance("exposures")
        report.mosaics = [_mosaic_quality(path, sim, dirs["products"], dirs["exposures"]) for path in mosaics]
        stage.advance("mosaics")
        _write_previews(mosaics, dirs)
        stage.note = f"previews in {dirs['previews']}"
    report.timings["total"] = time.perf_counter() - clock
    write_text_atomic(report.summary() + "\n", out / "quality_report.txt")
    write_text_atomic(json.dumps(asdict(report), indent=1) + "\n", out / "quality_report.json")
    return report


def _covering_catalog(catalog, sim, band):
    """
    ``catalog`` when it holds enough sources on every ``band`` exposure, else None.

    Small cut-outs of the LW and SW detectors need not overlap (at 512^2 the LW sources
    miss the SW cut-outs entirely): those SW exposures are then aligned to the reference
    catalogue, as without the LW catalogue, instead of being left unaligned.
    """
    from jwst_ceers.tweakreg.aligned_catalog import exposures_short_of_sources

    exposures = [t.cal_file for t in sim.truth.values() if t.filter.upper() == band.upper()]
    short = exposures_short_of_sources(catalog, exposures)
    if short:
        name, inside = short[0]
        log.warning(
            "%s: only %d of the LW aligned sources (%s) fall on it; %s is aligned to the reference catalogue",
            name, inside, Path(catalog).name, band.upper(),
        )
        return None
    return catalog


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


def _mosaic_quality(i2d_path, sim, products, exposures_dir):
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
    # astrometry in the mosaic: isolated, unsaturated simulated stars, measured vs true position
    stars = sim.sources[np.asarray(sim.sources["is_star"], bool)]
    roots = sorted(root for root, truth in sim.truth.items() if truth.filter.upper() == band.upper())
    exposures = [datamodels.open(p) for root in roots for p in sorted(exposures_dir.glob(f"{root}*_pedestal.fits"))]
    try:
        saturated = saturated_in_any(stars["ra"], stars["dec"], exposures)
    finally:
        for m in exposures:
            m.close()
    stars = stars[~saturated]
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
        "n_saturated_stars_left_out": int(np.count_nonzero(saturated)),
        "star_rms_mas": float(np.sqrt(np.mean(offsets**2))) if offsets.size else float("nan"),
        "noise_ratio": noise_ratio(data, err, excluded),
        "err_holes": err_holes(data, err),
        "bkg_residual_mean_sigma": float(np.mean(bkgsub[use]) / sigma),
        "bkg_residual_block_rms_sigma": float(robust_std(block_means) / sigma),
    }


def _write_previews(mosaics, dirs):
    # a Figure with its own Agg canvas: no process-wide backend change (pyplot users, notebooks)
    from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from stdatamodels.jwst import datamodels

    for path in mosaics:
        with datamodels.open(path) as model:
            data = np.array(model.data)
            band = model.meta.instrument.filter
        norm = ImageNormalize(data, interval=ZScaleInterval(), stretch=AsinhStretch())
        fig = Figure(figsize=(7, 7))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ax.imshow(data, origin="lower", cmap="gray", norm=norm)
        ax.set_title(f"{path.name} ({band})")
        ax.set_axis_off()
        target = dirs["previews"] / f"{path.stem}.png"
        fig.savefig(target, dpi=90, bbox_inches="tight")
