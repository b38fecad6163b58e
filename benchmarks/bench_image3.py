"""Image3Ceers vs stock calwebb_image3: time and peak memory, same association and grid.

Run on demand: ``python benchmarks/bench_image3.py [--size 2048] [--keep DIR]``.
Each pipeline runs in its own subprocess (peak RSS from the OS); both get the same
association, the same local absolute reference catalog and the same output grid,
with source_catalog skipped (offline). Prints times, peak memory and the ratios.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNNER = r"""
import json, os, resource, sys, time
os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
which, asn, refcat, out, grid = sys.argv[1:6]
grid = json.loads(grid)
steps = {"tweakreg": {"abs_refcat": refcat}, "resample": grid, "source_catalog": {"skip": True}}
if which == "stock":
    from jwst.pipeline import Image3Pipeline as P
    steps["tweakreg"].update(abs_tolerance=0.1, abs_separation=0.3, abs_searchrad=1.0)
else:
    from jwst_ceers import Image3Ceers as P
start = time.perf_counter()
P.call(asn, output_dir=out, save_results=True, steps=steps)
seconds = time.perf_counter() - start
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux
print(json.dumps({"seconds": seconds, "peak_gb": peak_gb}))
"""


def run(which, asn, refcat, out, grid):
    env = dict(os.environ, STPIPE_DISABLE_CRDS_STEPPARS="true")
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, which, str(asn), str(refcat), str(out), json.dumps(grid)],
        capture_output=True, text=True, env=env,
    )
    if proc.returncode:
        sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    return measured["seconds"], measured["peak_gb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="detector size (2048 = full frame)")
    parser.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    parser.add_argument("--realism", default="realistic", help="simulator preset ('none' = plain simulator)")
    args = parser.parse_args()

    from jwst_ceers.associations import write_associations
    from jwst_ceers.mosaic_grid import pointing_grid
    from jwst_ceers.simulate import simulate_pointing

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_image3_"))
    start = time.perf_counter()
    sim = simulate_pointing(
        work / "sim", filters=("F150W",), sw_detectors=("NRCA1", "NRCA2"), lw_detectors=(),
        n_dithers=3, size=None if args.size == 2048 else args.size, seed=7,
        source_density_scale=3.0, refcat_mag_limit=27.5, realism=args.realism,
    )
    (asn,) = write_associations(sim.cal_files, work / "sim", by="program", product="bench")
    grid = pointing_grid(sim.cal_files, pixel_scale=0.03).resample_parameters()
    print(f"simulated {len(sim.cal_files)} exposures of {args.size}^2 in {time.perf_counter() - start:.0f} s")

    results = {}
    for which in ("stock", "ceers"):
        out = work / which
        out.mkdir(exist_ok=True)
        results[which] = run(which, asn, sim.refcat_path, out, grid)
        print(f"{which:>6}: {results[which][0]:7.1f} s, peak RSS {results[which][1]:.2f} GB")
    t_ratio = results["ceers"][0] / results["stock"][0]
    print(f"time ratio Image3Ceers / calwebb_image3 = {t_ratio:.2f} (goal <= 1.2)")
    m_ratio = results["ceers"][1] / results["stock"][1]
    print(f"peak memory ratio Image3Ceers / calwebb_image3 = {m_ratio:.2f}")


if __name__ == "__main__":
    main()
