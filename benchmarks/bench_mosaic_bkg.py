"""Benchmark of MosaicBackground (ceers_mosaic_bkg) against the CEERS reference algorithm.

Run on demand: ``python benchmarks/bench_mosaic_bkg.py [--sizes 2000 4000] [--full]``.
For each size it simulates one pointing (two NIRCam filters, same grid, known truth)
with ``jwst_ceers.simulate.mosaics``, then runs, each in a fresh subprocess (so that
the peak RSS is that run's own): the step on the i2d files, and the straightforward
reference implementation (``ceers_reference_background.py``) on the same mosaics. It
prints wall time, peak RSS, the speed ratio (per filter) and the accuracy of both
against the injected truth: residual (estimated - true background) rms over the
footprint, mean bias under masked sources, masked fraction and fraction of
true-source pixels (> 0.5 sigma) left unmasked, all in units of the pixel noise.
``--full`` adds the step on a 10600 x 4800 pointing (the reference there is optional,
``--full-reference``, ~20-40 min); ``--reference-filters 1`` halves the reference's
time (ratios are per filter); ``--no-reference`` measures the step alone.
``--large-galaxies N`` adds N large bright galaxies (mag 16-18.5) to every simulated
pointing, each of which the step models (issue 16: a realistic CEERS mosaic needs ~10-30).
The step's line gives wall and process CPU time (the machine may be shared: CPU time
is the steadier figure) and its peak RSS; both include the galaxy fits' worker
processes (their CPU; their summed unique memory, sampled, added to the step's peak: an upper bound).

Re-measure issue 16's goal (<= 12 s per filter, < 4 GB) with::

    python benchmarks/bench_mosaic_bkg.py --sizes --full --no-reference --large-galaxies 30
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child_step(out_dir, paths):
    import resource

    os.environ.setdefault("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    # once per process, not per mosaic (as the reference's imports): the modules the step
    # imports lazily and the datamodel schemas (~1 s), timed apart
    warm = time.perf_counter()
    import jwst_ceers.mosaic_bkg.mosaic_io
    import jwst_ceers.mosaic_bkg.pointing_background  # noqa: F401
    from stdatamodels.jwst.datamodels import ImageModel

    ImageModel((2, 2)).close()
    warm = time.perf_counter() - warm
    sys.path.insert(0, str(HERE))
    from child_processes import children_memory

    step = MosaicBackground(output_dir=str(out_dir))
    running, worker_peak = threading.Event(), [0]
    running.set()

    def sample_workers():
        while running.is_set():
            worker_peak[0] = max(worker_peak[0], children_memory())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample_workers, daemon=True)
    sampler.start()
    start, cpu = time.perf_counter(), time.process_time()
    outputs = step.run([str(p) for p in paths])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    running.clear()
    sampler.join()
    # plus the galaxy fits' worker processes (ended by now): their CPU and summed unique memory
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu += children.ru_utime + children.ru_stime
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + worker_peak[0]) / 1024**3
    return {"time": elapsed, "cpu_s": cpu, "warm_up_s": warm, "rss_gb": rss, "bkg": [str(p) for p in outputs["bkg"]],
            "merged": str(outputs["merged_mask"])}


def _child_reference(out_dir, paths):
    import resource

    import numpy as np
    from astropy.io import fits

    sys.path.insert(0, str(HERE))
    from ceers_reference_background import reference_background

    # timed end to end like the step (read the mosaics, write bkgsub, bkg and tier mask
    # per filter and the merged mask), in float32 / uint8 like the step, not CEERS's float64
    start = time.perf_counter()
    images = [fits.getdata(p, "SCI").astype(np.float64) for p in paths]
    read_s = time.perf_counter() - start
    result = reference_background(images)
    algorithm_s = time.perf_counter() - start - read_s
    bkg_paths = []
    for index, bkg in enumerate(result["background"]):
        path = Path(out_dir) / f"reference_{index}_bkg.fits"
        fits.writeto(path, bkg.astype(np.float32), overwrite=True)
        fits.writeto(Path(out_dir) / f"reference_{index}_bkgsub.fits", (images[index] - bkg).astype(np.float32), overwrite=True)
        fits.writeto(Path(out_dir) / f"reference_{index}_tiermask.fits", result["tiermask"][index].astype(np.uint8), overwrite=True)
        bkg_paths.append(str(path))
    merged = Path(out_dir) / "reference_merged_mask.fits"
    fits.writeto(merged, result["merged_mask"].astype(np.uint8), overwrite=True)
    elapsed = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"time": elapsed, "algorithm_s": algorithm_s, "rss_gb": rss, "bkg": bkg_paths, "merged": str(merged)}


def accuracy(bkg_paths, merged_path, truth_paths):
    """Per-filter accuracy numbers (pixel-sigma units) of background maps vs the truth."""
    import numpy as np
    from astropy.io import fits

    from jwst_ceers.simulate.mosaics import read_mosaic_truth

    from jwst_ceers.mosaic_bkg.sersic import components_from_header, evaluate_components

    merged = fits.getdata(merged_path).astype(bool)
    rows = []
    for bkg_path, truth_path in zip(bkg_paths, truth_paths, strict=True):
        truth = read_mosaic_truth(truth_path)
        good = ~truth["nodata"]
        sigma = truth["noise_sigma"]
        with fits.open(bkg_path) as hdul:
            background = hdul[0].data.astype(np.float32)
            components = components_from_header(hdul[0].header)
        resid = (background - truth["background"]) / sigma
        masked = merged & good
        source = (truth["sources"] > 0.5 * sigma) & good
        # light neither masked nor modelled (the step subtracts Sersic models of large
        # galaxies instead of masking their wings; the reference has no models)
        unmodelled = (truth["sources"] - evaluate_components(components, truth["sources"].shape) > 0.5 * sigma) & good
        rows.append(
            {
                "filter": truth["filter"],
                "rms": float(np.sqrt(np.mean(resid[good] ** 2))),
                "bias_masked": float(np.mean(resid[masked])) if masked.any() else float("nan"),
                "mean": float(np.mean(resid[good])),
                "masked_fraction": float(masked.sum() / good.sum()),
                "source_unmasked": float((source & ~merged).sum() / max(1, source.sum())),
                "source_unmasked_unmodelled": float((unmodelled & ~merged).sum() / max(1, source.sum())),
                "galaxy_models": len(components),
            }
        )
    return rows


def _run_child(kind, out_dir, paths):
    code = (
        "import json, sys; sys.path.insert(0, %r); import bench_mosaic_bkg as b; "
        "print('RESULT ' + json.dumps(b._child_%s(%r, %r)))" % (str(HERE), kind, str(out_dir), [str(p) for p in paths])
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def _print_accuracy(label, rows):
    for row in rows:
        print(
            f"  {label:9s} {row['filter']:6s} residual rms {row['rms']:.4f}  bias under masks {row['bias_masked']:+.4f}  "
            f"mean {row['mean']:+.4f}  masked {100 * row['masked_fraction']:.1f}%  "
            f"source px unmasked {100 * row['source_unmasked']:.1f}% "
            f"(neither masked nor modelled {100 * row['source_unmasked_unmodelled']:.1f}%, "
            f"{row['galaxy_models']} galaxy models)"
        )


def bench(shape, *, seed, reference=True, reference_filters=2, workdir, large_galaxies=0):
    from jwst_ceers.simulate.mosaics import simulate_mosaics

    sim_dir = Path(workdir) / f"sim_{shape[0]}x{shape[1]}"
    start = time.perf_counter()
    sim = simulate_mosaics(sim_dir, shape=shape, seed=seed, filters=("F150W", "F356W"),
                           n_large_galaxies=large_galaxies)
    filters = list(sim.paths)
    paths = [sim.paths[f] for f in filters]
    truths = [sim.truth_paths[f] for f in filters]
    del sim
    print(f"\n== {shape[1]} x {shape[0]} ({shape[0] * shape[1] / 1e6:.1f} Mpix), filters {filters}, "
          f"{large_galaxies} added large galaxies; simulated in {time.perf_counter() - start:.1f} s")
    step_dir = Path(workdir) / f"step_{shape[0]}"
    step_dir.mkdir(exist_ok=True)
    step = _run_child("step", step_dir, paths)
    print(f"  step      {step['time']:8.1f} s  ({step['time'] / len(paths):.1f} s per filter; process warm-up "
          f"{step['warm_up_s']:.1f} s not counted)  CPU {step['cpu_s']:.1f} s ({step['cpu_s'] / len(paths):.1f} s "
          f"per filter)  peak RSS {step['rss_gb']:.2f} GB")
    _print_accuracy("step", accuracy(step["bkg"], step["merged"], truths))
    megapixels = shape[0] * shape[1] / 1e6
    per_filter = step["time"] / len(paths)
    print(f"  step per filter vs the issue's CEERS measurement (~22 s per Mpix, 1235 s for 10600 x 4800): "
          f"{22.0 * megapixels / per_filter:.0f}x")
    if reference:
        ref_dir = Path(workdir) / f"ref_{shape[0]}"
        ref_dir.mkdir(exist_ok=True)
        nref = min(reference_filters, len(paths))
        ref = _run_child("reference", ref_dir, paths[:nref])
        ratio = (ref["time"] / nref) / (step["time"] / len(paths))
        print(f"  reference {ref['time']:8.1f} s  ({ref['time'] / nref:.1f} s per filter, {nref} filter(s); "
              f"{ref['algorithm_s']:.1f} s without reading and writing)  peak RSS {ref['rss_gb']:.2f} GB")
        print(f"  speed-up per filter: {ratio:.0f}x   memory ratio: {ref['rss_gb'] / step['rss_gb']:.1f}x")
        _print_accuracy("reference", accuracy(ref["bkg"], ref["merged"], truths[:nref]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 4000], help="square sizes to run")
    parser.add_argument("--full", action="store_true", help="also run the step on 10600 x 4800")
    parser.add_argument("--full-reference", action="store_true", help="and the reference there (slow)")
    parser.add_argument("--reference-filters", type=int, default=2, help="filters given to the reference")
    parser.add_argument("--no-reference", action="store_true", help="step only (e.g. after a change of the step)")
    parser.add_argument("--seed", type=int, default=2023)
    parser.add_argument("--large-galaxies", type=int, default=0,
                        help="large bright galaxies added to every simulated pointing (issue 16: 30)")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        for size in args.sizes:
            bench((size, size), seed=args.seed, reference=not args.no_reference,
                  reference_filters=args.reference_filters, workdir=workdir, large_galaxies=args.large_galaxies)
        if args.full:
            bench((4800, 10600), seed=args.seed, reference=args.full_reference,
                  reference_filters=args.reference_filters, workdir=workdir, large_galaxies=args.large_galaxies)


if __name__ == "__main__":
    main()
