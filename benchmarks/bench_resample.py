"""Stock ResampleStep vs CutoutResample: wall, CPU, peak memory and equality of the products.

Run on demand::

    python benchmarks/bench_resample.py --asn /tmp/pl_bench48/sim/bench_f150w.json --exposures 48
    python benchmarks/bench_resample.py --exposures 24            # simulates 24 x 1024^2 first

Each step runs in its own subprocess, one after the other, on the same members and
the same grid (``pointing_grid`` of the members at 0.03"/px, or ``--grid``). Memory is
the process's peak (VmHWM) and its rise over the RSS just before the step (inputs
already in memory). Each run writes its arrays to ``--work`` (.npy), and the parent
compares them (bit-identical, else the largest difference in float32 ulps). The
machine may be loaded: CPU time is reported beside wall time, and the ratios are
within this run. ``--pixmap-stepsize 10`` adds a CutoutResample run with that
stepsize, compared with stepsize 1 (in units of the stepsize-1 ERR).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ARRAYS = ("data", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat")

RUNNER = r"""
import json, os, resource, sys, time
os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
import numpy as np
from jwst.datamodels import ModelLibrary
which, asn, out, pars = sys.argv[1:5]
pars = json.loads(pars)
if which == "stock":
    from jwst.resample import ResampleStep as Step
else:
    from jwst_ceers.resample.resample_step import CutoutResample as Step

def rss():
    with open("/proc/self/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in status if line.startswith(("VmRSS", "VmHWM"))}

library = ModelLibrary(asn, on_disk=False)  # members read before the clock starts, as inside Image3
with library:
    for index, model in enumerate(library):
        library.shelve(model, index, modify=False)
before = rss()["VmRSS"]
step = Step(**pars)
wall0, cpu0 = time.perf_counter(), time.process_time()
result = step.run(library)
wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
peak = rss()["VmHWM"]
for name in %r:
    np.save(os.path.join(out, name + ".npy"), getattr(result, name))
meta = {k: str(result.meta.instance.get("exposure", {}).get(k)) for k in
        ("exposure_time", "start_time", "end_time", "duration", "measurement_time")}
meta["pointings"] = result.meta.resample.pointings
print(json.dumps({"wall": wall, "cpu": cpu, "peak_gb": peak / 2**30, "rise_gb": (peak - before) / 2**30,
                  "before_gb": before / 2**30, "meta": meta}))
""" % (ARRAYS,)


def run(which, asn, out, pars):
    out.mkdir(parents=True, exist_ok=True)
    if pars.get("output_dir"):
        Path(pars["output_dir"]).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, STPIPE_DISABLE_CRDS_STEPPARS="true")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, which, str(asn), str(out), json.dumps(pars)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode:
        sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(stock_dir, new_dir):
    """Per array: 'identical' or the number of differing pixels and the largest difference in ulps."""
    lines = {}
    for name in ARRAYS:
        a = np.load(stock_dir / f"{name}.npy", mmap_mode="r")
        b = np.load(new_dir / f"{name}.npy", mmap_mode="r")
        if a.shape != b.shape:
            lines[name] = f"shapes differ {a.shape} {b.shape}"
            continue
        differ = ~((a == b) | (np.isnan(a) & np.isnan(b))) if a.dtype.kind == "f" else a != b
        n = int(differ.sum())
        if n == 0:
            lines[name] = "identical"
        else:
            x, y = np.asarray(a[differ], np.float32), np.asarray(b[differ], np.float32)
            finite = np.isfinite(x) & np.isfinite(y)
            ulps = np.abs(x[finite].view(np.int32).astype(np.int64) - y[finite].view(np.int32).astype(np.int64))
            lines[name] = (f"{n} pixels differ (of {a.size}); max {int(ulps.max()) if ulps.size else 'n/a'} ulp, "
                           f"{int((~finite).sum())} NaN/inf mismatches")
    return lines


def stepsize_error(ref_dir, new_dir):
    """Largest |data difference| / ERR of stepsize 1 over pixels where both are finite."""
    a, b = np.load(ref_dir / "data.npy", mmap_mode="r"), np.load(new_dir / "data.npy", mmap_mode="r")
    err = np.load(ref_dir / "err.npy", mmap_mode="r")
    use = np.isfinite(a) & np.isfinite(b) & (err > 0)
    ratio = np.abs(np.asarray(a[use], float) - b[use]) / err[use]
    return float(ratio.max()), float(np.percentile(ratio, 99.9))


def simulated_asn(work, n_exposures, size):
    """A simulated F150W association of ``n_exposures`` (8 SW detectors x dithers)."""
    from jwst_ceers.simulate import simulate_pointing

    detectors = ("NRCA1", "NRCA2", "NRCA3", "NRCA4", "NRCB1", "NRCB2", "NRCB3", "NRCB4")
    dithers = max(1, -(-n_exposures // len(detectors)))
    sim = simulate_pointing(work / "sim", filters=("F150W",), sw_detectors=detectors, lw_detectors=(),
                            n_dithers=dithers, size=size, seed=3, write_refcat=False)
    members = [{"expname": str(Path(path).resolve()), "exptype": "science"} for path in sim.cal_files]
    asn = {"asn_type": "image3", "asn_id": "bench", "asn_pool": "bench",
           "products": [{"name": "bench_resample", "members": members}]}
    path = work / "sim" / "bench_asn.json"
    path.write_text(json.dumps(asn))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asn", help="Level-3 association of cal files (read only); default: simulate")
    parser.add_argument("--exposures", type=int, default=48, help="use the first N members")
    parser.add_argument("--size", type=int, default=1024, help="simulated detector size")
    parser.add_argument("--grid", help="JSON of resample grid parameters (default: pointing_grid at 0.03\")")
    parser.add_argument("--weight-type", default="ivm", choices=("ivm", "exptime"))
    parser.add_argument("--pixmap-stepsize", type=float, default=0, help="also run CutoutResample with this")
    parser.add_argument("--skip-stock", action="store_true", help="only the new step (no comparison)")
    parser.add_argument("--save", action="store_true",
                        help="the steps also write their i2d (in the step, as inside Image3): peaks include the save")
    parser.add_argument("--work", help="directory for arrays and the subset association (default: temporary)")
    args = parser.parse_args()

    from jwst_ceers.inputs import read_association
    from jwst_ceers.mosaic_grid import pointing_grid

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_resample_"))
    work.mkdir(parents=True, exist_ok=True)
    source = Path(args.asn) if args.asn else simulated_asn(work, args.exposures, args.size)
    asn = dict(read_association(source))
    members = asn["products"][0]["members"][: args.exposures]
    for member in members:
        member["expname"] = str((source.parent / member["expname"]).resolve())
    asn["products"][0]["members"] = members
    subset = work / "bench_resample_asn.json"
    subset.write_text(json.dumps(asn))
    grid = json.loads(args.grid) if args.grid else pointing_grid(
        [m["expname"] for m in members], pixel_scale=0.03).resample_parameters()
    pars = {**grid, "weight_type": args.weight_type}
    if args.save:
        pars.update(save_results=True, output_dir=str(work / "i2d"), suffix="i2d")
    print(f"{len(members)} exposures -> grid {grid.get('output_shape')} ({args.weight_type}); work {work}", flush=True)

    rows = {}
    if not args.skip_stock:
        rows["stock ResampleStep"] = run("stock", subset, work / "stock", pars)
    rows["CutoutResample"] = run("cutout", subset, work / "cutout", pars)
    if args.pixmap_stepsize:
        rows[f"CutoutResample stepsize {args.pixmap_stepsize:g}"] = run(
            "cutout", subset, work / "stepsize", {**pars, "pixmap_stepsize": args.pixmap_stepsize, "pixmap_order": 3})

    mosaic_pixels = int(np.load(work / "cutout" / "data.npy", mmap_mode="r").size)
    print(f"{'':34s} {'wall s':>8s} {'CPU s':>8s} {'peak GB':>8s} {'rise GB':>8s} {'rise B/mosaic px':>17s}")
    for name, row in rows.items():
        print(f"{name:34s} {row['wall']:8.1f} {row['cpu']:8.1f} {row['peak_gb']:8.2f} {row['rise_gb']:8.2f} "
              f"{row['rise_gb'] * 2**30 / mosaic_pixels:17.1f}")
    if not args.skip_stock:
        stock, new = rows["stock ResampleStep"], rows["CutoutResample"]
        print(f"ratio new/stock: wall {new['wall'] / stock['wall']:.2f}, CPU {new['cpu'] / stock['cpu']:.2f}, "
              f"peak {new['peak_gb'] / stock['peak_gb']:.2f}, rise {new['rise_gb'] / stock['rise_gb']:.2f}")
        print("metadata equal:", stock["meta"] == new["meta"], stock["meta"])
        for name, line in compare(work / "stock", work / "cutout").items():
            print(f"  {name:12s} {line}")
    if args.pixmap_stepsize:
        worst, p999 = stepsize_error(work / "cutout", work / "stepsize")
        print(f"stepsize {args.pixmap_stepsize:g} (order 3) vs 1: max |d data| = {worst:.3g} ERR, 99.9%: {p999:.3g} ERR")


if __name__ == "__main__":
    main()
