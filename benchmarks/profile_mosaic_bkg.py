"""Where MosaicBackground's time and memory go, stage by stage, on given mosaics.

Run on demand::

    python benchmarks/profile_mosaic_bkg.py OUT_DIR MOSAIC_i2d.fits [MOSAIC_i2d.fits ...]

(e.g. the mosaics ``bench_mosaic_bkg.py --workdir DIR --sizes --full --no-reference
--large-galaxies 30`` leaves under DIR, or any pointing). The step runs once with its
defaults; every stage function is wrapped to sum its wall and thread CPU time (the
mosaics run on threads: stages of different mosaics overlap, and FFT worker threads
are not in "thread CPU"; galaxy fits running ahead on worker processes are reported
apart), and the process RSS is sampled every 50 ms. It prints the total wall,
process CPU and peak RSS (and the fit workers' CPU and summed RSS), a per-stage table
(calls, summed wall, summed thread CPU, largest sampled RSS while the stage ran), and the RSS at each stage's start
and end (where the peak happens). Measured on a shared machine, compare CPU times
or runs made one after the other.
"""

import argparse
import os
import resource
import sys
import threading
import time
from collections import defaultdict

os.environ.setdefault("STPIPE_DISABLE_CRDS_STEPPARS", "true")

#: (module, function) pairs timed as stages, in pipeline order.
STAGES = (
    ("jwst_ceers.mosaic_bkg.mosaic_bkg_step", "read_mosaic"),
    ("jwst_ceers.mosaic_bkg.pointing_background", "_mask_one"),
    ("jwst_ceers.mosaic_bkg.pointing_background", "ring_median_background"),
    ("jwst_ceers.mosaic_bkg.pointing_background", "tiered_source_mask"),
    ("jwst_ceers.mosaic_bkg.pointing_background", "merge_source_masks"),
    ("jwst_ceers.mosaic_bkg.pointing_background", "large_galaxy_models"),
    ("jwst_ceers.mosaic_bkg.galaxy_models", "find_large_bright_sources"),
    ("jwst_ceers.mosaic_bkg.galaxy_models", "fit_sersic_galaxy"),
    ("jwst_ceers.mosaic_bkg.pointing_background", "_remask_around_models"),
    ("jwst_ceers.mosaic_bkg.pointing_background", "fit_background"),
)


def _wrap(owner, name, label, totals, events, origin):
    function = getattr(owner, name)

    def timed(*args, **kwargs):
        start, cpu = time.perf_counter(), time.thread_time()
        events.append((start - origin, f"start {label}"))
        try:
            return function(*args, **kwargs)
        finally:
            end = time.perf_counter()
            events.append((end - origin, f"end {label}"))
            entry = totals[label]
            entry[0] += 1
            entry[1] += end - start
            entry[2] += time.thread_time() - cpu

    setattr(owner, name, timed)


def _stage_peak(label, events, samples):
    """Largest sampled process RSS (GB) while any call of the stage ran (NaN: none sampled)."""
    spans, open_calls = [], []
    for when, what in events:
        if what == f"start {label}":
            open_calls.append(when)
        elif what == f"end {label}" and open_calls:
            spans.append((open_calls.pop(0), when))
    inside = [rss for t, rss in samples if any(start <= t <= end for start, end in spans)]
    return max(inside) / 1024**3 if inside else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("mosaics", nargs="+")
    args = parser.parse_args(argv)
    import psutil
    from child_processes import children_memory
    from stdatamodels.jwst.datamodels import ImageModel

    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    ImageModel((2, 2)).close()  # schemas loaded before the clock starts
    # earlier runs' unwritten pages flushed: their writeback throttled this run's writes
    # (the 1.6 GB bkgsub of a full pointing: 1.3 s after a sync, up to 4.7 s without)
    os.sync()
    totals, events, samples = defaultdict(lambda: [0, 0.0, 0.0]), [], []
    origin = time.perf_counter()
    for module_name, name in STAGES:
        __import__(module_name)
        _wrap(sys.modules[module_name], name, name, totals, events, origin)
    _wrap(MosaicBackground, "_write", "write outputs", totals, events, origin)
    process, running, worker_peak = psutil.Process(), threading.Event(), [0]
    running.set()

    def sample():
        while running.is_set():
            samples.append((time.perf_counter() - origin, process.memory_info().rss))
            worker_peak[0] = max(worker_peak[0], children_memory(process))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    os.makedirs(args.out_dir, exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    MosaicBackground(output_dir=args.out_dir).run(args.mosaics)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    running.clear()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    # the galaxy fits' worker processes (ended by now): their CPU, and their summed RSS
    # (sampled: their ru_maxrss counts the caller's pages before exec)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{len(args.mosaics)} mosaic(s): wall {wall:.1f} s, process CPU {cpu:.1f} s (+ fit workers "
          f"{children.ru_utime + children.ru_stime:.1f} s), peak RSS {peak:.2f} GB (+ fit workers "
          f"{worker_peak[0] / 1024**3:.2f} GB); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'stage':28s} {'calls':>5s} {'wall s':>8s} {'thread CPU s':>13s} {'peak RSS GB':>12s}")
    for label, (calls, stage_wall, stage_cpu) in totals.items():
        print(f"{label:28s} {calls:5d} {stage_wall:8.2f} {stage_cpu:13.2f} {_stage_peak(label, events, samples):12.2f}")
    print("RSS at stage boundaries (GB):")
    for when, what in events:
        if "fit_sersic_galaxy" in what:
            continue
        before = [rss for t, rss in samples if t <= when]
        print(f"  {when:7.1f} s  {what:36s} {before[-1] / 1024**3 if before else float('nan'):.2f}")


if __name__ == "__main__":
    main()
