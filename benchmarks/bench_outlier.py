"""outlier_detection: stock OutlierDetectionStep vs CeersOutlierDetection, same inputs, same run.

Run on demand (inputs: 48 x 1024^2 F150W cal files and their association, e.g. from
``python benchmarks/bench_pointing.py --exposures 48 --size 1024 --simulate-only --keep DIR``)::

    python benchmarks/bench_outlier.py --asn DIR/sim/bench_f150w.json --work /tmp/bench_outlier
    python benchmarks/bench_outlier.py --asn ... --work ... --on-disk      # also in_memory=False

The inputs are first prepared as Image3Ceers hands them to outlier_detection: each file's
true WCS (``<root>_true_wcs.asdf`` next to it, when present: what tweakreg recovers) and
one sky level per image recorded by SkyMatchRecordOnly (not subtracted); they are
written to ``--work`` (never over the inputs). Then each step runs in its own
subprocess, on a library grouped by exposure as Image3Ceers builds it, with every
exposure already in memory (in memory) as in the pipeline: wall and CPU time of the
step, resident memory before it and its peak (sampled every 0.05 s with psutil), and the
outlier flags, compared pixel by pixel. The machine may be shared: compare the ratios of
one run, and the CPU times as well as the wall times.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PREPARE = r"""
import json, os, sys
os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
from pathlib import Path
import asdf
from jwst.datamodels import ModelLibrary
from stdatamodels.jwst import datamodels
from jwst_ceers.pipeline.image3_ceers import SkyMatchRecordOnly, exposure_grouped_association

asn_path, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
asn = exposure_grouped_association(str(asn_path))
models = []
for member in asn["products"][0]["members"]:
    path = Path(member["expname"])
    model = datamodels.open(path)
    true_wcs = path.with_name(path.name.replace("_cal.fits", "_true_wcs.asdf"))
    if true_wcs.is_file():
        with asdf.open(true_wcs) as af:
            model.meta.wcs = af["wcs"]
    models.append(model)
library = SkyMatchRecordOnly().run(ModelLibrary(models, on_disk=False))
with library:
    for index, model in enumerate(library):
        model.save(out / Path(model.meta.filename).name)
        library.shelve(model, index, modify=False)
for member in asn["products"][0]["members"]:
    member["expname"] = Path(member["expname"]).name
(out / "asn.json").write_text(json.dumps(asn, indent=1))
"""

RUNNER = r"""
import json, os, sys, threading, time
os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
import numpy as np, psutil
from jwst_ceers.pipeline.image3_ceers import exposure_grouped_association
from jwst_ceers.pipeline.memory_plan import HeapTrimmingLibrary, release_free_memory

which, asn, out, in_memory = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
if which == "stock":
    from jwst.outlier_detection.outlier_detection_step import OutlierDetectionStep as StepClass
else:
    from jwst_ceers.outlier.outlier_step import CeersOutlierDetection as StepClass
library = HeapTrimmingLibrary(exposure_grouped_association(asn), asn_exptypes=["science"], on_disk=not in_memory)
with library:  # as in the pipeline: the exposures are already read
    for index in range(len(library)):
        library.shelve(library.borrow(index), index, modify=False)
release_free_memory()
process = psutil.Process()
before = process.memory_info().rss
peak = [before]
stop = threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        stop.wait(0.05)

threading.Thread(target=sample, daemon=True).start()
step = StepClass(output_dir=out, in_memory=in_memory)
step.mode = "imaging"
wall, cpu = time.perf_counter(), time.process_time()
result = step.run(library)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
stop.set()
flags = {}
with result:
    for index, model in enumerate(result):
        flags[model.meta.filename] = np.packbits((model.dq & 16) != 0)
        result.shelve(model, index, modify=False)
np.savez_compressed(os.path.join(out, "outlier_flags.npz"), **flags)
print(json.dumps({"wall": wall, "cpu": cpu, "rss_before_gb": before / 2**30, "peak_gb": peak[0] / 2**30,
                  "step_peak_gb": (peak[0] - before) / 2**30,
                  "flagged": int(sum(np.unpackbits(f).sum() for f in flags.values()))}))
"""


def run(which, asn, out, *, in_memory):
    """One step run in its own subprocess; its measurements."""
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, which, str(asn), str(out), "1" if in_memory else "0"],
        capture_output=True, text=True,
    )
    if proc.returncode:
        sys.exit(f"{which} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def same_flags(a, b):
    """True if the two runs flagged exactly the same pixels."""
    import numpy as np

    fa, fb = np.load(a / "outlier_flags.npz"), np.load(b / "outlier_flags.npz")
    return set(fa.files) == set(fb.files) and all(np.array_equal(fa[k], fb[k]) for k in fa.files)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asn", required=True, help="Level-3 association of the cal files (read only)")
    parser.add_argument("--work", required=True, help="work folder (prepared inputs, outputs)")
    parser.add_argument("--on-disk", action="store_true", help="also run both with in_memory=False")
    args = parser.parse_args()
    work = Path(args.work)
    prepared = work / "prepared"
    if not (prepared / "asn.json").is_file():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", PREPARE, str(Path(args.asn).resolve()), str(prepared)], check=True)
        print(f"prepared inputs in {time.perf_counter() - start:.0f} s", flush=True)
    asn = prepared / "asn.json"
    n = len(json.loads(asn.read_text())["products"][0]["members"])
    modes = [True, False] if args.on_disk else [True]
    rows = []
    for in_memory in modes:
        where = "in memory" if in_memory else "on disk"
        measured = {}
        for which in ("stock", "ceers"):
            measured[which] = run(which, asn, work / f"{which}_{'mem' if in_memory else 'disk'}", in_memory=in_memory)
            print(json.dumps({"which": which, "where": where, **measured[which]}), flush=True)
        identical = same_flags(work / f"stock_{'mem' if in_memory else 'disk'}",
                               work / f"ceers_{'mem' if in_memory else 'disk'}")
        rows.append((where, measured, identical))
    print(f"\noutlier_detection on {n} exposures ({os.cpu_count()} cores)\n")
    print("| | stock | CeersOutlierDetection | ratio |")
    print("|---|---|---|---|")
    for where, m, identical in rows:
        s, c = m["stock"], m["ceers"]
        print(f"| {where}: wall | {s['wall']:.1f} s | {c['wall']:.1f} s | {c['wall'] / s['wall']:.2f} |")
        print(f"| {where}: CPU | {s['cpu']:.1f} s | {c['cpu']:.1f} s | {c['cpu'] / s['cpu']:.2f} |")
        print(f"| {where}: peak RSS of the process | {s['peak_gb']:.2f} GB | {c['peak_gb']:.2f} GB "
              f"| {c['peak_gb'] / s['peak_gb']:.2f} |")
        print(f"| {where}: step's peak over its input | {s['step_peak_gb']:.2f} GB | {c['step_peak_gb']:.2f} GB "
              f"| {c['step_peak_gb'] / max(s['step_peak_gb'], 1e-9):.2f} |")
        print(f"| {where}: pixels flagged | {s['flagged']} | {c['flagged']} | "
              f"{'identical pixels' if identical else 'DIFFERENT pixels'} |")


if __name__ == "__main__":
    main()
