"""``jwst-ceers grid``: the resample grid shared by all filters of a pointing."""

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
        default="step",
        help="step: a ResampleStep file; pipeline: the values under steps: resample of Image3Ceers",
    )
    parser.add_argument("--pixfrac", type=float, default=1.0, help="drizzle pixfrac (default: %(default)s)")
    parser.add_argument(
        "--weight-type", choices=("ivm", "exptime"), default="ivm", help="drizzle weighting (default: %(default)s)"
    )
    parser.add_argument(
        "--suffix", nargs="+", default=["cal"], metavar="SUFFIX", help="file suffixes looked for in directories"
    )


def run(args):
    """Compute the grid, write the parameter file and print the grid."""
    from jwst_ceers.associations import find_exposure_files
    from jwst_ceers.errors import CeersParameterError
    from jwst_ceers.mosaic_grid import pointing_grid, write_grid_parameter_file

    if args.margin < 0:
        raise CeersParameterError(f"--margin={args.margin}: must be >= 0")
    exposures = find_exposure_files(args.inputs, suffixes=tuple(args.suffix)) if args.inputs else []
    extension = args.reference_ext
    if extension is not None and extension.isdigit():
        extension = int(extension)
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
    path = write_grid_parameter_file(
        grid, args.output, file_format=args.format, pixfrac=args.pixfrac, weight_type=args.weight_type
    )
    print(f"{path}")
    for key, value in grid.resample_parameters().items():
        print(f"  {key} = {value}")
    return 0
