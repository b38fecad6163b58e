"""A full NIRCam pointing: stock calwebb_image3 vs Image3Ceers, then MosaicBackground.

Run on demand::

    python benchmarks/bench_pointing.py --exposures 24            # full 2048^2 frames (~15 min/pipeline)
    python benchmarks/bench_pointing.py --exposures 48 --size 1024 --keep /tmp/pointing48
    python benchmarks/bench_pointing.py --exposures 48 --keep /tmp/full48 --survey-workers 2

Simulates one pointing with ``jwst_ceers.simulate`` (F150W on the 8 SW detectors and
F356W on the 2 LW detectors, 3 dithers per visit; ``--exposures 48`` = two visits, as
CEERS's nircam1 F150W), at the demo's source density, with the ``realistic`` preset's
NIRCam artefacts by default (``--realism none`` for the plain simulator; a ``--keep``
folder that already holds a simulation reuses it). Both pipelines then reduce each
filter onto the same 0.03" grid, one after the other, each in its own subprocess:
wall and CPU time, peak RSS (sampled every 0.1 s with psutil, and the kernel's
VmHWM), per-step times and per-step peak RSS. The products are compared with
the truth: positions of unsaturated stars in the mosaic (mas rms), the sky left in the mosaic (clipped
median of the mosaic in units of its median ERR: pedestals removed = 0), pixels
flagged as outliers. Then MosaicBackground over the Image3Ceers mosaics of both
filters (time and peak RSS). ``--survey-workers N`` runs ``jwst-ceers survey --workers N``
on the pointing instead (every filter, then MosaicBackground) and reports the summed peak
RSS of all its processes (scheduler, nannies, workers; ``--filters-at-once``: with
``align_sw_to_lw = false``, so the filters are reduced at the same time). Timings are noisy on a shared machine: compare the
ratios of one run, and look at CPU time as well as wall time.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RUNNER = r"""
import json, logging, os, re, resource, sys, threading, time
os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
import psutil

which, asn, out, config = sys.argv[1:5]
config = json.loads(config)
process = psutil.Process()
peak = {"rss": 0, "step": None}
step_peaks, step_times, running = {}, {}, []
stop = threading.Event()

def sample():
    while not stop.is_set():
        rss = process.memory_info().rss
        peak["rss"] = max(peak["rss"], rss)
        if running:
            name = running[-1][0]
            step_peaks[name] = max(step_peaks.get(name, 0), rss)
        stop.wait(0.1)

class StepClock(logging.Handler):
    pattern = re.compile(r"^Step (\S+) (running|done)")
    def emit(self, record):
        match = self.pattern.match(record.getMessage())
        if not match:
            return
        name, what = match.groups()
        if what == "running":
            running.append((name, time.perf_counter()))
        elif running and running[-1][0] == name:
            _, start = running.pop()
            step_times[name] = step_times.get(name, 0.0) + time.perf_counter() - start

logging.getLogger("stpipe").addHandler(StepClock())
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
if which == "mosaic_bkg":
    from jwst_ceers import MosaicBackground
    MosaicBackground.call(config["mosaics"], output_dir=out, pointing_name="bench")
else:
    steps = {"tweakreg": {"abs_refcat": config["refcat"]}, "resample": config["grid"],
             "source_catalog": {"skip": True}}
    if which == "stock":
        from jwst.pipeline import Image3Pipeline as Pipeline
        steps["tweakreg"].update(abs_tolerance=0.1, abs_separation=0.3, abs_searchrad=1.0)
        kwargs = {}
    else:
        from jwst_ceers import Image3Ceers as Pipeline
        kwargs = {"memory_budget_gb": config["budget"]}
    Pipeline.call(asn, output_dir=out, save_results=True, steps=steps, **kwargs)
wall = time.perf_counter() - start
stop.set()
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM: this process's own peak (ru_maxrss also counts the parent's RSS at fork time)
with open("/proc/self/status") as status:
    hwm = [int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM")]
print(json.dumps({
    "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
    "peak_gb": max([peak["rss"], *hwm]) / 2**30,
    "sampled_peak_gb": peak["rss"] / 2**30,
    "step_times": step_times, "step_peak_gb": {k: v / 2**30 for k, v in step_peaks.items()},
}))
"""


def run(which, asn, out, config):
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, STPIPE_DISABLE_CRDS_STEPPARS="true")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, which, str(asn), str(out), json.dumps(config)],
        capture_output=True, text=True, env=env,
    )
    (out / f"{which}.log").write_text(proc.stderr)
    if proc.returncode:
        sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mosaic_quality(i2d, crf_dir, sim, *, pixel_scale):
    """Star astrometry, sky left in the mosaic (in sigma) and the outlier-flag fraction."""
    from astropy.stats import sigma_clipped_stats
    from stdatamodels.jwst import datamodels

    from jwst_ceers.demo.quality import saturated_in_any, star_offsets_mas

    def exposures():  # one at a time: 48 full frames do not fit in memory at once
        for path in sorted(Path(crf_dir).glob("*_crf.fits")):
            with datamodels.open(path) as model:
                yield model

    with datamodels.open(i2d) as model:
        data, err, wcs = np.array(model.data, dtype=float), np.array(model.err), model.meta.wcs
    good = np.isfinite(data) & np.isfinite(err) & (err > 0)
    _, sky, _ = sigma_clipped_stats(data[good], sigma=3.0, maxiters=10)
    stars = sim.sources[np.asarray(sim.sources["is_star"], bool)]
    stars = stars[~saturated_in_any(stars["ra"], stars["dec"], exposures())]  # astrometry on unsaturated stars
    offsets = star_offsets_mas(
        data - sky, wcs, stars["ra"], stars["dec"], sigma=float(np.median(err[good])), pixel_scale=pixel_scale,
    )
    flagged = total = 0
    outlier = datamodels.dqflags.pixel["OUTLIER"]
    for path in sorted(Path(crf_dir).glob("*_crf.fits")):
        with datamodels.open(path) as model:
            flagged += int(np.count_nonzero(model.dq & outlier))
            total += model.dq.size
    return {
        "n_stars": int(offsets.size),
        "star_rms_mas": float(np.sqrt(np.mean(offsets**2))) if offsets.size else float("nan"),
        # the rms follows a few mis-centred stars (blends, mosaic edges: 3 of 71 at 68-812 mas on full
        # frames, the others <= 2.3 mas); the median and 90th percentile say how well the WCS did
        "star_median_mas": float(np.median(offsets)) if offsets.size else float("nan"),
        "star_p90_mas": float(np.percentile(offsets, 90)) if offsets.size else float("nan"),
        "sky_left_sigma": float(sky / np.median(err[good])),
        "outlier_percent": 100.0 * flagged / total if total else float("nan"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, choices=(24, 48), default=24, help="SW exposures of F150W")
    parser.add_argument("--size", type=int, default=2048, help="detector size (2048 = full frames)")
    parser.add_argument("--filters", nargs="+", default=["F150W", "F356W"], help="filters (SW then LW)")
    parser.add_argument("--budget", type=float, default=8.0,
                        help="Image3Ceers memory_budget_gb (0 = none); with --survey-workers the config's")
    parser.add_argument("--skip-stock", action="store_true", help="run only Image3Ceers")
    parser.add_argument("--simulate-only", action="store_true", help="stop after simulating (use with --keep)")
    parser.add_argument("--survey-workers", type=int, default=0,
                        help="instead of the pipelines: `jwst-ceers survey --workers N` on the pointing "
                        "(all filters, then MosaicBackground), measuring the summed RSS of all its processes")
    parser.add_argument("--filters-at-once", action="store_true",
                        help="with --survey-workers: align_sw_to_lw = false, so the filters run at the same time "
                        "(the most memory two workers need on one pointing)")
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    parser.add_argument("--realism", default="realistic",
                        help="simulator preset (jwst_ceers.simulate.REALISM_PRESETS; 'none' = plain)")
    args = parser.parse_args()

    from jwst_ceers.associations import write_associations
    from jwst_ceers.mosaic_grid import pointing_grid
    from jwst_ceers.simulate import load_truth, simulate_pointing
    from jwst_ceers.simulate.nircam_geometry import LW_DETECTORS, SW_DETECTORS

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_pointing_"))
    start = time.perf_counter()
    if (work / "sim" / "simulation_truth.json").is_file():  # --keep DIR of an earlier run: same data
        sim = load_truth(work / "sim")
    else:
        sim = simulate_pointing(
            work / "sim", filters=tuple(args.filters), sw_detectors=SW_DETECTORS, lw_detectors=LW_DETECTORS,
            n_dithers=3, n_visits=args.exposures // 24, size=None if args.size == 2048 else args.size, seed=7,
            source_density_scale=3.0, refcat_mag_limit=27.5,  # the demo's density and reference depth
            realism=args.realism,
        )
    associations = write_associations(sim.cal_files, work / "sim", by="program", product="bench")
    pixel_scale = 0.03
    grid = pointing_grid(sim.cal_files, pixel_scale=pixel_scale).resample_parameters()
    print(
        f"simulated {len(sim.cal_files)} exposures of {args.size}^2 ({len(sim.sources)} sources) in "
        f"{time.perf_counter() - start:.0f} s; grid {grid['output_shape']}", flush=True,
    )
    if args.simulate_only:
        return
    if args.survey_workers:
        survey_memory(work, sim, grid, workers=args.survey_workers, filters=args.filters, budget=args.budget,
                      align_sw_to_lw=not args.filters_at_once)
        return
    config = {"refcat": str(sim.refcat_path), "grid": grid, "budget": args.budget}

    rows, ceers_mosaics = [], []
    for asn in associations:
        band = asn.stem.rsplit("_", 1)[-1].upper()
        n = len(json.loads(asn.read_text())["products"][0]["members"])
        for which in ("ceers",) if args.skip_stock else ("stock", "ceers"):
            out = work / which / band
            measured = run(which, asn, out, config)
            (i2d,) = out.glob("*_i2d.fits")
            measured.update(mosaic_quality(i2d, out, sim, pixel_scale=pixel_scale))
            measured.update(filter=band, pipeline=which, exposures=n)
            rows.append(measured)
            if which == "ceers":
                ceers_mosaics.append(str(i2d))
            print(json.dumps(measured), flush=True)

    bkg = run("mosaic_bkg", "-", work / "mosaic_bkg", {"mosaics": ceers_mosaics})
    print(json.dumps({"mosaic_bkg": bkg}), flush=True)
    (work / "bench_pointing.json").write_text(json.dumps({"rows": rows, "mosaic_bkg": bkg}, indent=1))
    print_table(rows, bkg, args)


def survey_memory(work, sim, grid, *, workers, filters, budget, align_sw_to_lw=True):
    """
    Run ``jwst-ceers survey --workers N`` on the simulated pointing; print its summed peak RSS.

    ``align_sw_to_lw=False``: the pointing's filters run at once (no SW-after-LW
    dependency), the largest memory two workers can need on one pointing.
    """
    import psutil

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from child_processes import forked_not_started

    out = work / f"survey_{workers}w"
    config = work / f"survey_{workers}w.toml"
    crval, crpix = grid["crval"], grid["crpix"]
    config.write_text(
        f'output_root = "{out}"\nabs_refcat = "{sim.refcat_path}"\nmemory_budget_gb = {budget!r}\n'
        f'align_sw_to_lw = {str(bool(align_sw_to_lw)).lower()}\n\n'
        f'[[pointings]]\nname = "bench"\n'
        f'inputs = ["{work / "sim"}/*_cal.fits"]\nfilters = {json.dumps(list(filters))}\n[pointings.grid]\n'
        f"crval = [{crval[0]!r}, {crval[1]!r}]\ncrpix = [{crpix[0]!r}, {crpix[1]!r}]\n"
        f"rotation = {grid['rotation']!r}\npixel_scale = {grid['pixel_scale']!r}\n"
        f"output_shape = [{grid['output_shape'][0]}, {grid['output_shape'][1]}]\n"
    )
    jwst_ceers_command = str(Path(sys.executable).parent / "jwst-ceers")
    command = [jwst_ceers_command, "survey", str(config), "--workers", str(workers), "--force"]
    start = time.perf_counter()
    proc = psutil.Popen(command, env=dict(os.environ, STPIPE_DISABLE_CRDS_STEPPARS="true"))
    peak_total, peak_each = 0, {}
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            rss = {}
            for p in tree:
                if p is not proc and forked_not_started(p):
                    continue  # e.g. a galaxy-fit worker being started: its parent's pages
                try:
                    rss[p.pid] = p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            break
        peak_total = max(peak_total, sum(rss.values()))
        for pid, value in rss.items():
            peak_each[pid] = max(peak_each.get(pid, 0), value)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    each = sorted((v / 2**30 for v in peak_each.values()), reverse=True)[: workers + 2]
    result = {"workers": workers, "exit": proc.returncode, "wall": wall, "peak_total_gb": peak_total / 2**30,
              "largest_process_peaks_gb": each, "memory_total_gb": psutil.virtual_memory().total / 2**30}
    (work / f"survey_{workers}w.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    print(f"jwst-ceers survey --workers {workers} on {len(sim.cal_files)} exposures ({', '.join(filters)}): "
          f"exit {proc.returncode}, {wall:.0f} s wall, summed peak RSS {peak_total / 2**30:.2f} GB "
          f"(largest processes: {', '.join(f'{v:.2f}' for v in each)} GB)")


def print_table(rows, bkg, args):
    steps = ("tweakreg", "skymatch", "outlier_detection", "pedestal", "varfill", "resample")
    print(f"\n{args.exposures}-exposure pointing at {args.size}^2, memory_budget_gb={args.budget:g}\n")
    print("| filter | pipeline | exposures | wall s | CPU s | peak RSS GB | " + " | ".join(steps)
          + " | stars rms / median / p90 mas (n) | sky left sigma | outliers % |")
    print("|---" * (9 + len(steps)) + "|")
    for r in rows:
        times = " | ".join(f"{r['step_times'][s]:.0f}" if s in r["step_times"] else "-" for s in steps)
        print(
            f"| {r['filter']} | {r['pipeline']} | {r['exposures']} | {r['wall']:.0f} | {r['cpu']:.0f} | "
            f"{r['peak_gb']:.2f} | {times} | {r['star_rms_mas']:.1f} / {r.get('star_median_mas', np.nan):.1f} / "
            f"{r.get('star_p90_mas', np.nan):.1f} ({r['n_stars']}) | "
            f"{r['sky_left_sigma']:+.2f} | {r['outlier_percent']:.3f} |"
        )
    by_key = {(r["filter"], r["pipeline"]): r for r in rows}
    for band in dict.fromkeys(r["filter"] for r in rows):
        if (band, "stock") in by_key:
            stock, ceers = by_key[(band, "stock")], by_key[(band, "ceers")]
            print(
                f"{band}: Image3Ceers / stock: wall {ceers['wall'] / stock['wall']:.2f}, "
                f"CPU {ceers['cpu'] / stock['cpu']:.2f}, peak RSS {ceers['peak_gb'] / stock['peak_gb']:.2f}"
            )
    print(f"MosaicBackground ({len(args.filters)} filters): {bkg['wall']:.1f} s wall, {bkg['cpu']:.1f} s CPU, "
          f"peak RSS {bkg['peak_gb']:.2f} GB")


if __name__ == "__main__":
    main()
