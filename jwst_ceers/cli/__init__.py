"""The ``jwst-ceers`` command: ``demo``, ``asn``, ``grid``, ``survey`` and ``import-ceers``.

Each sub-command lives in its own module that provides ``add_parser(subparsers)``
and ``run(args)``; modules are imported only when their command runs, so
``jwst-ceers --help`` stays fast.
"""

import argparse
import logging
import sys
from importlib import import_module

from jwst_ceers import __version__
from jwst_ceers.errors import CeersError

__all__ = ["main"]

# command name -> (module, one-line help)
COMMANDS = {
    "demo": ("jwst_ceers.cli.demo", "simulate a small CEERS-like pointing and run the chain on it"),
    "asn": ("jwst_ceers.cli.asn", "Level-3 associations per pointing/visit and filter"),
    "grid": ("jwst_ceers.cli.grid", "shared resample grid of a pointing, as an asdf parameter file"),
    "survey": ("jwst_ceers.cli.survey", "many pointings and filters on dask.distributed, restartable"),
    "import-ceers": (
        "jwst_ceers.cli.import_ceers",
        "CEERS alignment cfgs and mosaic_background.cfg as asdf parameter files (same meaning)",
    ),
}


def build_parser():
    """Return the argument parser of ``jwst-ceers``."""
    parser = argparse.ArgumentParser(
        prog="jwst-ceers", description="CEERS-style NIRCam Stage 3 reduction tools."
    )
    parser.add_argument("--version", action="version", version=f"jwst_ceers {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        import_module(module).add_parser(command_parser)
    return parser


def main(argv=None):
    """Run ``jwst-ceers``; user errors print one line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = import_module(COMMANDS[args.command][0])
    try:
        return module.run(args) or 0
    except CeersError as exc:
        print(f"jwst-ceers {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
