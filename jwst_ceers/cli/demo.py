"""``jwst-ceers demo``: the whole chain offline on built-in synthetic data."""

__all__ = ["add_parser", "run"]


def add_parser(parser):
    """Arguments of ``jwst-ceers demo``."""
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=2023, help="simulation seed")
    parser.add_argument(
        "--size", type=int, default=2048,
        help="detector size, pixels: 2048 = full frames (default, ~4 min); 1024 = quick look, SW astrometry ~3 mas"
    )


def run(args):
    """Run the demo and print its quality report."""
    from jwst_ceers.demo.chain import run_demo

    report = run_demo(args.out, seed=args.seed, size=args.size)
    print(report.summary())
    return 0
