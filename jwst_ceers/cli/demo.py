"""``jwst-ceers demo``: the whole chain offline on built-in synthetic data."""

import sys
from pathlib import Path

from jwst_ceers.demo import DEFAULT_REALISM, DEFAULT_SIZE

__all__ = ["add_parser", "run"]


def add_parser(parser):
    """Arguments of ``jwst-ceers demo``."""
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=2023, help="simulation seed")
    parser.add_argument(
        "--size", type=int, default=DEFAULT_SIZE,
        help=f"detector cut-out size, pixels (default {DEFAULT_SIZE}: about 2 min on 2 cores, SW astrometry "
        "~3 mas); 2048 = full frames (about 4x longer, SW astrometry ~1.5 mas)",
    )
    parser.add_argument(
        "--realism", default=DEFAULT_REALISM,
        help=f"simulator preset (default {DEFAULT_REALISM}: every NIRCam artefact the simulator knows; "
        "none = plain; one per effect: striping, striping_unremoved, spikes, saturated_stars, snowballs, "
        "wisps, persistence, flat)",
    )


def run(args):
    """Run the demo: one line per stage on the terminal, the full log in ``<out>/demo.log``, then the report."""
    # function-local: keeps `jwst-ceers --help` from importing numpy, tqdm and stpipe
    from jwst_ceers.demo.chain import run_demo
    from jwst_ceers.demo.console import demo_logging
    from jwst_ceers.simulate import realism_preset

    realism_preset(args.realism)  # an unknown preset is a user error before any work
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "demo.log"
    print(f"jwst-ceers demo: {args.size}^2 detectors, {args.realism} simulation; full log in {log_file}",
          file=sys.stderr, flush=True)
    with demo_logging(log_file, verbose=args.verbose) as demo_log:
        report = run_demo(out, seed=args.seed, size=args.size, realism=args.realism)
    print(demo_log.summary(), file=sys.stderr, flush=True)
    print(file=sys.stderr, flush=True)
    print(report.summary(), flush=True)
    return 0
