"""``jwst-ceers grid``: the resample grid shared by all filters of a pointing.

Three ways: from the exposures' footprints (``--pixel-scale``, ``--rotation``,
``--crval``); from a reference mosaic's lattice (``--reference``); or exactly the
grid of an existing product (``--from``: a stock/CEERS Image3 parameter file, an
i2d or an HST mosaic), optionally cropped to the exposures on that lattice
(``--snap``).
"""

from jwst_ceers.cli.options import add_suffix_option

__all__ = ["add_parser", "run"]


def add_parser(parser):
    """Add the ``grid`` arguments to ``parser``."""
    parser.add_argument(
        "inputs",
        nargs="*",
        help="the pointing's exposures: directories (*_cal.fits), glob patterns or files "
        "(optional with --reference: the grid then covers the whole reference mosaic)",
    )
    parser.add_argument("-o", "--output", default="resample_grid.asdf", help="parameter file to write")
    parser.add_argument(
        "--from",
        dest="from_file",
        default=None,
        metavar="FILE",
        help="take exactly the grid of FILE: an asdf parameter file (stock or CEERS Image3Pipeline, "
        "Image3Ceers, ResampleStep), a jwst i2d or an HST mosaic; written as a calwebb_image3_ceers "
        "parameter file unless --format step",
    )
    parser.add_argument(
        "--snap",
        action="store_true",
        help="with --from and exposures: cover the exposures on FILE's pixel lattice (same crval, rotation "
        "and scale; crpix moved by whole pixels), so that the mosaic shares its pixels with FILE's",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="MOSAIC",
        help="reference FITS mosaic (e.g. HST) whose tangent point, rotation and pixel lattice are shared",
    )
    parser.add_argument(
        "--reference-ext", default=None, help="HDU of the reference holding the WCS (default: first image HDU)"
    )
    parser.add_argument(
        "--pixel-scale",
        type=float,
        default=None,
        help="output pixel scale in arcsec (with --reference: an integer multiple/divisor of its scale)",
    )
    parser.add_argument(
        "--rotation", type=float, default=None, help="PA of the output +y axis in deg (default: the exposures')"
    )
    parser.add_argument(
        "--crval", type=float, nargs=2, default=None, metavar=("RA", "DEC"), help="tangent point in deg"
    )
    parser.add_argument(
        "--crval-step", type=float, default=1e-4, help="rounding step (deg) of the default tangent point"
    )
    parser.add_argument("--margin", type=int, default=10, help="extra pixels around the footprints")
    parser.add_argument(
        "--format",
        choices=("step", "pipeline"),
        default=None,
        help="step: a ResampleStep file; pipeline: the values under steps: resample of Image3Ceers "
        "(default: pipeline with --from, else step)",
    )
    parser.add_argument(
        "--pixfrac", type=float, default=None, help="drizzle pixfrac (default: --from FILE's, else 1.0)"
    )
    parser.add_argument(
        "--weight-type",
        choices=("ivm", "exptime"),
        default=None,
        help="drizzle weighting (default: --from FILE's, else ivm)",
    )
    add_suffix_option(parser)


def _check_options(args):
    """Refuse option combinations that would not give the grid asked for."""
    from jwst_ceers.errors import CeersParameterError

    if args.margin < 0:
        raise CeersParameterError(f"--margin={args.margin}: must be >= 0")
    if args.snap and not args.from_file:
        raise CeersParameterError("--snap: give the lattice with --from FILE (or use --reference MOSAIC)")
    if args.from_file:
        if args.reference:
            raise CeersParameterError("--from and --reference: give one grid source")
        if args.rotation is not None or args.crval is not None:
            raise CeersParameterError("--rotation/--crval: taken from the --from file; do not give them")
        if args.inputs and not args.snap:
            raise CeersParameterError(
                f"--from {args.from_file} with exposures: add --snap to cover them on its lattice, "
                "or give no exposures to keep its grid exactly"
            )
        if args.pixel_scale is not None and not args.snap:
            raise CeersParameterError("--pixel-scale with --from: only with --snap (the grid is kept exactly)")


def _from_file_grid(args, exposures, extension):
    """The grid of ``--from`` (snapped to the exposures with ``--snap``) and its drizzle choices."""
    from jwst_ceers.mosaic_grid import exposure_footprint, read_grid_source, snap_grid_to_footprints
    from jwst_ceers.mosaic_grid.parameter_file import read_drizzle_parameters

    grid = read_grid_source(args.from_file, extension=extension)
    drizzle = read_drizzle_parameters(args.from_file) if args.from_file.lower().endswith(".asdf") else {}
    if args.snap:
        footprints = [exposure_footprint(p) for p in exposures]
        grid = snap_grid_to_footprints(
            grid, footprints, margin=args.margin, pixel_scale=args.pixel_scale, source=args.from_file
        )
    return grid, drizzle


def run(args):
    """Compute the grid, write the parameter file and print the grid."""
    from jwst_ceers.associations import find_exposure_files
    from jwst_ceers.atomic_io import check_outputs_not_inputs
    from jwst_ceers.mosaic_grid import pointing_grid, write_grid_parameter_file

    _check_options(args)
    suffixes = tuple(args.suffix) if args.suffix else None
    exposures = find_exposure_files(args.inputs, suffixes=suffixes) if args.inputs else []
    extension = args.reference_ext
    if extension is not None and extension.isdigit():
        extension = int(extension)
    sources = [p for p in (args.from_file, args.reference) if p]
    check_outputs_not_inputs([args.output], sources + list(exposures), what="grid parameter file")
    drizzle = {}
    if args.from_file:
        grid, drizzle = _from_file_grid(args, exposures, extension)
    else:
        grid = pointing_grid(
            exposures,
            reference=args.reference,
            reference_extension=extension,
            pixel_scale=args.pixel_scale,
            rotation=args.rotation,
            crval=args.crval,
            crval_step=args.crval_step,
            margin=args.margin,
        )
    file_format = args.format or ("pipeline" if args.from_file else "step")
    pixfrac = args.pixfrac if args.pixfrac is not None else drizzle.get("pixfrac", 1.0)
    weight_type = args.weight_type or drizzle.get("weight_type", "ivm")
    path = write_grid_parameter_file(
        grid, args.output, file_format=file_format, pixfrac=pixfrac, weight_type=weight_type
    )
    print(f"{path}")
    for key, value in grid.resample_parameters().items():
        print(f"  {key} = {value}")
    return 0
