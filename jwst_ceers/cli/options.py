"""Options shared by several ``jwst-ceers`` commands."""

from jwst_ceers.associations.product_suffixes import RECOGNISED_SUFFIXES

__all__ = ["add_suffix_option"]


def add_suffix_option(parser):
    """``--suffix``: which ``*_<suffix>.fits`` files a directory input contributes."""
    parser.add_argument(
        "--suffix",
        nargs="+",
        default=None,
        metavar="SUFFIX",
        help=f"file suffixes looked for in directories (default: whichever one of {', '.join(RECOGNISED_SUFFIXES)} "
        "a directory holds)",
    )
