"""``jwst-ceers asn``: one Level-3 association per (pointing or visit, filter)."""

from jwst_ceers.cli.options import add_suffix_option

__all__ = ["add_parser", "run"]


def add_parser(parser):
    """Add the ``asn`` arguments to ``parser``."""
    parser.add_argument(
        "inputs",
        nargs="+",
        help="directories (searched for *_cal, *_crf, *_tweakreg or *_match.fits: the one kind present), "
        "glob patterns or files",
    )
    parser.add_argument("-o", "--output-dir", default=".", help="where the associations go (created)")
    parser.add_argument(
        "--by",
        choices=("pointing", "visit", "program"),
        default="pointing",
        help="pointing = program+observation; visit = program+observation+visit; program = all given "
        "files of a program (inputs already one pointing); always also by filter (default: %(default)s)",
    )
    parser.add_argument(
        "--product", default=None, help="product name prefix (default: jw<program>[-o<obs>[-v<visit>]])"
    )
    parser.add_argument(
        "--filters", nargs="+", default=None, metavar="FILTER", help="only these filters (default: all)"
    )
    parser.add_argument(
        "--group-by-detector",
        action="store_true",
        help="give members a group_id per visit+detector (tweakreg aligns each detector's dithers together)",
    )
    parser.add_argument(
        "--catalog-suffix",
        default=None,
        metavar="SUFFIX",
        help="add tweakreg_catalog <root>_<SUFFIX>.ecsv for members that have one",
    )
    add_suffix_option(parser)


def run(args):
    """Write the associations and print their names, one per line."""
    from jwst_ceers.associations import write_associations

    written = write_associations(
        args.inputs,
        args.output_dir,
        by=args.by,
        product=args.product,
        filters=args.filters,
        group_by_detector=args.group_by_detector,
        catalog_suffix=args.catalog_suffix,
        suffixes=tuple(args.suffix) if args.suffix else None,
    )
    for path in written:
        print(path)
    return 0
