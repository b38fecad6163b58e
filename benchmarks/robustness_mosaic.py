"""Robustness of MosaicBackground across background families and source densities (issue 18).

Run on demand::

    python benchmarks/robustness_mosaic.py --quick     # 768^2, 5 seeds, ~10 min on 2 busy cores
    python benchmarks/robustness_mosaic.py --full      # 2048^2, 5 seeds, exact CEERS ring median
    python benchmarks/robustness_mosaic.py --quick --held-out   # families never tuned on

For every scenario (a background family of ``jwst_ceers.simulate.mosaics`` and a source
density, see ``SCENARIOS``) and seed, one two-filter pointing (F150W + F356W, one grid,
known truth) is simulated; MosaicBackground's algorithm runs on the arrays with the
step's default parameters (``algorithm_options``: the mapping the step itself uses), and
the CEERS reference algorithm (``ceers_reference_background.py``) on the same arrays.
Per scenario and filter it reports, in units of the pixel noise (mean over seeds and the
worst seed): residual rms over the footprint (estimated - true background), bias under
masked sources (mean residual over the merged mask), the merged mask's share of the
footprint and the time per pointing; then the goal of each cell and the WORST cell:

- rms <= 0.06 and below the CEERS reference's on the same mosaics;
- |bias| <= 0.03;
- masked fraction no larger than the CEERS reference's.

``--quick`` computes the reference's ring median on 4 x 4 block means
(``ring_block=4``: ~85% of its time, and only a detection pre-filter); ``--full`` uses
the exact full-resolution ring median. Other helpers' benchmarks import
:func:`run_scenarios`, :func:`format_table` and :func:`worst_cells`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: (background family, source density) pairs; family "gradient_bumps" is the simulator's
#: default, the others are ``jwst_ceers.simulate.mosaics.BACKGROUND_FAMILIES``.
SCENARIOS = (
    ("gradient_bumps", "field"),
    ("bumps", "field"),
    ("ripple", "field"),
    ("saddle", "sparse"),
    ("steps", "dense"),
    ("edge_glow", "field"),
    ("bumps", "cluster_core"),
)
FILTERS = ("F150W", "F356W")

GOAL_RMS = 0.06
GOAL_BIAS = 0.03

#: Held-out families: never tuned on, not in the simulator (``--held-out``). Each
#: replaces the simulated background of a pointing (data - truth + new, per filter).
HELD_OUT_SCENARIOS = (("heldout_poly_wave", "field"), ("heldout_poly_wave", "dense"),
                      ("heldout_plane_blobs", "field"), ("heldout_plane_blobs", "cluster_core"))


def _heldout_poly_wave(shape, rng, sigma):
    """Cubic polynomial of ~1.5 sigma peak-to-valley plus one 150-220 px sinusoid of 0.1-0.2 sigma."""
    ny, nx = shape
    y = (np.arange(ny, dtype=np.float32)[:, None] - ny / 2) / np.float32(max(shape))
    x = (np.arange(nx, dtype=np.float32)[None, :] - nx / 2) / np.float32(max(shape))
    terms = [x, y, x * x, x * y, y * y, x ** 3, x * x * y, x * y * y, y ** 3]
    surface = sum(np.float32(c) * t for c, t in zip(rng.normal(size=len(terms)), terms))
    surface = surface * np.float32(rng.uniform(1.0, 1.8) * sigma / max(float(np.ptp(surface)), 1e-12))
    angle = rng.uniform(0, np.pi)
    k = np.float32(2 * np.pi / rng.uniform(150.0, 220.0))
    wave = np.sin(k * (np.float32(np.cos(angle)) * x + np.float32(np.sin(angle)) * y) * np.float32(max(shape))
                  + np.float32(rng.uniform(0, 2 * np.pi)))
    return surface + np.float32(rng.uniform(0.1, 0.2) * sigma) * wave


def _heldout_plane_blobs(shape, rng, sigma):
    """Tilted plane of 1 sigma plus 2-4 elongated Gaussian blobs (sigma 60-250 px, +-0.5-1.5 sigma)."""
    ny, nx = shape
    y = np.arange(ny, dtype=np.float32)[:, None]
    x = np.arange(nx, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    out = np.float32(sigma / max(shape)) * (np.float32(np.cos(angle)) * x + np.float32(np.sin(angle)) * y)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx, width = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(60.0, 250.0)
        q, theta = rng.uniform(0.3, 1.0), rng.uniform(0, np.pi)
        u = ((x - cx) * np.float32(np.cos(theta)) + (y - cy) * np.float32(np.sin(theta))) / np.float32(width)
        v = ((y - cy) * np.float32(np.cos(theta)) - (x - cx) * np.float32(np.sin(theta))) / np.float32(width * q)
        out = out + np.float32(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5) * sigma) * np.exp(-0.5 * (u * u + v * v))
    return out


HELD_OUT_FAMILIES = {"heldout_poly_wave": _heldout_poly_wave, "heldout_plane_blobs": _heldout_plane_blobs}


def _simulate(family, density, seed, shape):
    """One two-filter pointing; a held-out family replaces the simulated background."""
    from jwst_ceers.simulate.mosaics import simulate_mosaics

    if family not in HELD_OUT_FAMILIES:
        return simulate_mosaics(None, shape=shape, seed=seed, filters=FILTERS, background_family=family,
                                density=density)
    sim = simulate_mosaics(None, shape=shape, seed=seed, filters=FILTERS, background_family="bumps", density=density)
    rng = np.random.default_rng(10_000 + seed)
    for filt in FILTERS:
        truth = sim.truth[filt]
        sigma = float(np.median(truth["noise_sigma"][~sim.coverage]))
        new = HELD_OUT_FAMILIES[family](shape, rng, sigma).astype(np.float32)
        sim.images[filt] = sim.images[filt] - truth["background"] + new
        truth["background"] = new
    return sim


def accuracy(background, truth, merged, good):
    """rms, bias under the merged mask and masked fraction (pixel-sigma units)."""
    resid = (background - truth["background"]) / truth["noise_sigma"]
    masked = merged & good
    return {
        "rms": float(np.sqrt(np.mean(resid[good] ** 2))),
        "bias": float(np.mean(resid[masked])) if masked.any() else float("nan"),
        "masked": float(masked.sum() / good.sum()),
    }


def _run_step(sim):
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground, algorithm_options
    from jwst_ceers.mosaic_bkg.pointing_background import pointing_background

    step = MosaicBackground()
    start = time.perf_counter()
    result = pointing_background(
        [sim.images[f] for f in FILTERS],
        nodata=[sim.coverage] * len(FILTERS),
        tiers=[step.tier_sets()["nircam"]] * len(FILTERS),
        noise=[sim.truth[f]["noise_sigma"] for f in FILTERS],
        **algorithm_options(step),
    )
    return result.backgrounds, result.merged_mask, time.perf_counter() - start


def _run_reference(sim, ring_block):
    sys.path.insert(0, str(HERE))
    from ceers_reference_background import reference_background

    start = time.perf_counter()
    result = reference_background([sim.images[f].astype(np.float64) for f in FILTERS], ring_block=ring_block)
    backgrounds = [b.astype(np.float32) for b in result["background"]]
    return backgrounds, result["merged_mask"], time.perf_counter() - start


def run_scenarios(*, shape=(768, 768), seeds=(1, 2, 3, 4, 5), scenarios=SCENARIOS, reference=True, ring_block=4,
                  progress=print, reference_cache=None):
    """
    Measure the step (and the CEERS reference) on every scenario and seed.

    Returns
    -------
    list of dict
        One row per scenario, seed and filter: ``family``, ``density``, ``seed``,
        ``filter``, ``step`` and ``ceers`` (dicts of rms, bias, masked, time; ``ceers``
        None without the reference). ``reference_cache``: rows of an earlier run on the
        same mosaics (same size, seeds and ``ring_block``), whose CEERS figures are reused
        instead of running the reference again (it is ~95% of the time).
    """
    import warnings

    cached = {}
    for row in reference_cache or ():
        if row.get("ceers") is not None and row.get("size") == list(shape) and row.get("ring_block") == ring_block:
            cached[(row["family"], row["density"], row["seed"], row["filter"])] = row["ceers"]
    rows = []
    for family, density in scenarios:
        for seed in seeds:
            sim = _simulate(family, density, seed, shape)
            good = ~sim.coverage
            backgrounds, merged, step_time = _run_step(sim)
            reuse = [cached.get((family, density, seed, f)) for f in FILTERS]
            if reference and all(reuse):
                ref_time = reuse[0]["time"]
            elif reference:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ref_backgrounds, ref_merged, ref_time = _run_reference(sim, ring_block)
            for index, filt in enumerate(FILTERS):
                row = {"family": family, "density": density, "seed": seed, "filter": filt, "size": list(shape),
                       "ring_block": ring_block,
                       "step": {**accuracy(backgrounds[index], sim.truth[filt], merged, good), "time": step_time},
                       "ceers": None}
                if reference and all(reuse):
                    row["ceers"] = reuse[index]
                elif reference:
                    row["ceers"] = {**accuracy(ref_backgrounds[index], sim.truth[filt], ref_merged, good),
                                    "time": ref_time}
                rows.append(row)
            if progress:
                last = rows[-len(FILTERS):]
                progress(f"  {family:14s} {density:12s} seed {seed}: " + "  ".join(
                    f"{r['filter']} rms {r['step']['rms']:.3f}"
                    + (f" (CEERS {r['ceers']['rms']:.3f})" if r["ceers"] else "")
                    + f" masked {100 * r['step']['masked']:.0f}%"
                    + (f" (CEERS {100 * r['ceers']['masked']:.0f}%)" if r["ceers"] else "") for r in last)
                    + f"  step {step_time:.1f} s" + (f", CEERS {ref_time:.1f} s" if reference else ""))
    return rows


def _cells(rows):
    """Rows grouped by (family, density, filter)."""
    cells = {}
    for row in rows:
        cells.setdefault((row["family"], row["density"], row["filter"]), []).append(row)
    return cells


def cell_summary(cell_rows):
    """Mean and worst (over seeds) of each figure of one cell, and its goal checks."""
    def stats(kind, key, worst=max):
        values = [r[kind][key] for r in cell_rows if r[kind] is not None]
        return (float(np.mean(values)), float(worst(values))) if values else (float("nan"), float("nan"))

    summary = {
        "rms": stats("step", "rms"),
        "bias": stats("step", "bias", worst=lambda v: max(v, key=abs)),
        "masked": stats("step", "masked"),
        "time": stats("step", "time"),
        "ceers_rms": stats("ceers", "rms"),
        "ceers_bias": stats("ceers", "bias", worst=lambda v: max(v, key=abs)),
        "ceers_masked": stats("ceers", "masked"),
        "ceers_time": stats("ceers", "time"),
    }
    # goals on the worst seed, and against CEERS seed by seed
    paired = [r for r in cell_rows if r["ceers"] is not None]
    summary["goal_rms"] = summary["rms"][1] <= GOAL_RMS
    summary["goal_bias"] = abs(summary["bias"][1]) <= GOAL_BIAS
    summary["below_ceers_rms"] = all(r["step"]["rms"] < r["ceers"]["rms"] for r in paired) if paired else None
    summary["masked_le_ceers"] = all(r["step"]["masked"] <= r["ceers"]["masked"] for r in paired) if paired else None
    return summary


def format_table(rows):
    """The robustness table (markdown) of :func:`run_scenarios` rows."""
    lines = [
        "| family | density | filter | rms (mean / worst) | CEERS rms | bias (mean / worst) | CEERS bias "
        "| masked | CEERS masked | step s | CEERS s | goals |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (family, density, filt), cell_rows in _cells(rows).items():
        s = cell_summary(cell_rows)
        misses = [name for name, ok in (("rms", s["goal_rms"]), ("bias", s["goal_bias"]),
                                        ("rms<CEERS", s["below_ceers_rms"]), ("mask<=CEERS", s["masked_le_ceers"]))
                  if ok is False]
        lines.append(
            f"| {family} | {density} | {filt} | {s['rms'][0]:.3f} / {s['rms'][1]:.3f} | {s['ceers_rms'][0]:.3f} "
            f"| {s['bias'][0]:+.3f} / {s['bias'][1]:+.3f} | {s['ceers_bias'][0]:+.3f} "
            f"| {100 * s['masked'][0]:.0f}% | {100 * s['ceers_masked'][0]:.0f}% "
            f"| {s['time'][0]:.1f} | {s['ceers_time'][0]:.1f} | {'ok' if not misses else 'MISS ' + ', '.join(misses)} |"
        )
    return "\n".join(lines)


def worst_cells(rows):
    """The worst cell of each figure: {figure: (value, family, density, filter[, CEERS value])}."""
    worst = {}
    for (family, density, filt), cell_rows in _cells(rows).items():
        s = cell_summary(cell_rows)
        where = (family, density, filt)
        candidates = {
            "rms (worst seed)": s["rms"][1],
            "|bias| (worst seed)": abs(s["bias"][1]),
            "masked fraction (mean)": s["masked"][0],
        }
        for key, value in candidates.items():
            if key not in worst or value > worst[key][0]:
                worst[key] = (value, *where)
        if s["ceers_rms"][0] == s["ceers_rms"][0]:  # reference was run
            ratio = s["rms"][0] / s["ceers_rms"][0]
            if "rms / CEERS rms (mean)" not in worst or ratio > worst["rms / CEERS rms (mean)"][0]:
                worst["rms / CEERS rms (mean)"] = (ratio, *where)
            excess = s["masked"][0] - s["ceers_masked"][0]
            if "masked - CEERS masked (mean)" not in worst or excess > worst["masked - CEERS masked (mean)"][0]:
                worst["masked - CEERS masked (mean)"] = (excess, *where)
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="768^2, 5 seeds, block ring median in the reference")
    mode.add_argument("--full", action="store_true", help="2048^2, 5 seeds, exact reference")
    parser.add_argument("--size", type=int, default=None, help="square mosaic size (overrides the mode's)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--scenario", action="append", default=None, help="family:density (repeatable)")
    parser.add_argument("--held-out", action="store_true",
                        help="the held-out families (HELD_OUT_SCENARIOS) instead of the simulator's")
    parser.add_argument("--no-reference", action="store_true", help="the step only")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--reference-cache", default=None,
                        help="JSON rows of an earlier run (--json) whose CEERS figures are reused")
    args = parser.parse_args(argv)
    size = args.size or (2048 if args.full else 768)
    ring_block = 1 if args.full else 4
    scenarios = [tuple(s.split(":")) for s in args.scenario] if args.scenario else (
        HELD_OUT_SCENARIOS if args.held_out else SCENARIOS)
    start = time.perf_counter()
    print(f"MosaicBackground robustness: {size}^2, seeds 1-{args.seeds}, filters {', '.join(FILTERS)}, "
          f"CEERS reference {'off' if args.no_reference else f'ring_block {ring_block}'}")
    cache = json.loads(Path(args.reference_cache).read_text()) if args.reference_cache else None
    rows = run_scenarios(shape=(size, size), seeds=range(1, args.seeds + 1), scenarios=scenarios,
                         reference=not args.no_reference, ring_block=ring_block, reference_cache=cache)
    print()
    print(format_table(rows))
    print()
    print("WORST cells:")
    for key, (value, family, density, filt) in worst_cells(rows).items():
        print(f"  {key:32s} {value:+.3f}  ({family}, {density}, {filt})")
    print(f"\n{len(rows) // len(FILTERS)} pointings in {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
