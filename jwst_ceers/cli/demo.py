"""``jwst-ceers demo``: the whole chain offline on built-in synthetic data."""

__all__ = ["add_parser", "run"]


def add_parser(parser):
    """Arguments of ``jwst-ceers demo``."""
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=2023, help="simulation seed")
    parser.add_argument(
        "--size", type=int, default=1024, help="detector subarray size, pixels (2048 = full frames)"
    )


def run(args):
    """Run the demo and print its quality report."""
    from jwst_ceers.demo.chain import run_demo

    report = run_demo(args.out, seed=args.seed, size=args.size)
    print(report.summary())
    return 0
