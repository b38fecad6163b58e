"""``jwst-ceers import-ceers``: CEERS's cfg files as jwst_ceers parameter files.

Alignment cfgs (``f115w.cfg`` ..., one section per visit) become
``ceers_tweakreg_<name>.asdf``; ``mosaic_background.cfg`` becomes
``ceers_mosaic_bkg.asdf`` plus ``ceers_mosaic_bkg_filter_tiers.asdf`` (every HST
filter's own tiers). Every key is printed with what it became; keys without an exact
equivalent are listed again at the end, with the reason.
"""

__all__ = ["add_parser", "run"]


def add_parser(parser):
    """Add the ``import-ceers`` arguments to ``parser``."""
    parser.add_argument(
        "cfg_files", nargs="+", metavar="FILE.cfg", help="CEERS alignment cfgs and/or mosaic_background.cfg"
    )
    parser.add_argument("-o", "--output-dir", default=".", help="where the parameter files go (created)")
    parser.add_argument(
        "--noise-from",
        nargs="+",
        default=[],
        metavar="MOSAIC",
        help="mosaics (i2d or HST, with a FILTER keyword) on which each filter's noise correlation is measured "
        "to convert tier_nsigma exactly (default: white noise, which over-states drizzled mosaics' thresholds)",
    )


def _noise_mosaics(paths):
    """``{FILTER: path}`` of the ``--noise-from`` mosaics."""
    from jwst_ceers.errors import CeersParameterError
    from jwst_ceers.mosaic_bkg.mosaic_io import read_mosaic

    mosaics = {}
    for path in paths:
        mosaic = read_mosaic(path)
        if mosaic.hdul is not None:
            mosaic.hdul.close()
        if mosaic.model is not None:
            mosaic.model.close()
        if mosaic.filter.upper() in mosaics:
            raise CeersParameterError(
                f"--noise-from: {mosaics[mosaic.filter.upper()]} and {path} are both {mosaic.filter}"
            )
        mosaics[mosaic.filter.upper()] = path
    return mosaics


def run(args):
    """Convert, write, and print every key's fate."""
    from jwst_ceers.ceers_import import convert_ceers_cfg, write_imported

    noise = _noise_mosaics(args.noise_from) if args.noise_from else {}
    converted = []
    for cfg in args.cfg_files:
        converted.extend(convert_ceers_cfg(cfg, noise_mosaics=noise))
    paths = write_imported(converted, args.output_dir, inputs=list(args.cfg_files) + list(args.noise_from))
    notes = [note for imported in converted for note in imported.notes]
    for path in paths:
        print(path)
    print("\nkeys:")
    for note in notes:
        print(f"  {note.line()}")
    inexact = [note for note in notes if not note.exact]
    print(f"\nno equivalent ({len(inexact)}):")
    for note in inexact:
        print(f"  {note.line()}")
    return 0
