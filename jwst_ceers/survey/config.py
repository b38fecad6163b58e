"""The survey configuration file (TOML): read, validate, resolve input globs.

Every error names the configuration file and the key at fault, e.g.
``survey.toml: pointings[1].grid.pixel_scale: must be a number > 0, got -0.03``.

Layout (paths are relative to the configuration file's folder)::

    output_root = "products"            # required; one folder per pointing below it
    abs_refcat = "refcat.ecsv"          # optional absolute reference catalog
    mosaic_background = true            # run MosaicBackground per pointing (default true)
    align_sw_to_lw = true               # with an abs_refcat: align a pointing's LW filter (the one
                                        # with most exposures) to it first, then its SW filters to
                                        # the LW aligned sources (default true)
    memory_budget_gb = 16.0             # optional: memory one product may use, GB, passed to
                                        # Image3Ceers (default: the dask worker's memory limit;
                                        # 0: no limit); also bounds the grids' output_shape

    [image3]                            # optional, for every filter
    parameter_file = "image3.asdf"      # stpipe parameter file of Image3Ceers
    [image3.steps.tweakreg]             # step parameters (override the file)
    abs_tolerance = 0.1
    parameter_file = "tweakreg.asdf"    # optional parameter file of one step
    [image3.filters.F444W]              # optional, per filter (override the above)
    parameter_file = "image3_lw.asdf"
    [image3.filters.F444W.steps.pedestal]
    rescale_rnoise = false

    [mosaic_bkg]                        # optional MosaicBackground settings
    parameter_file = "mosaic_bkg.asdf"
    [mosaic_bkg.params]
    bkg_box_size = 64

    [[pointings]]
    name = "nircam1"
    inputs = ["cal/*_cal.fits"]         # globs; files are grouped by band (FILTER[-PUPIL])
    filters = ["F150W", "F356W"]        # optional: default all found
    hst_mosaics = ["hst/egs_f160w_*.fits"]   # optional, given to MosaicBackground
    edit_regions = ["regions/nircam1.reg"]   # optional, given to MosaicBackground
    abs_refcat = "refcat_nircam1.ecsv"  # optional, overrides the survey's abs_refcat
    [pointings.grid]                    # as resample's parameters (crpix 0-based)
    crval = [214.98, 52.98]
    crpix = [5299.5, 2399.5]
    rotation = -49.7
    pixel_scale = 0.03
    output_shape = [10600, 4800]        # (nx, ny)

    [engine]                            # advanced: replace the task functions
    image3_task = "jwst_ceers.survey.tasks:image3_ceers"
    mosaic_bkg_task = "jwst_ceers.survey.tasks:mosaic_background"
"""

import dataclasses
import glob
import math
import re
import tomllib
from pathlib import Path

import psutil

from jwst_ceers.associations import read_exposure_info
from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.survey.lock import check_writable_folder

__all__ = [
    "MOSAIC_BYTES_PER_PIXEL",
    "PointingConfig",
    "SurveyConfig",
    "check_step_parameters",
    "check_survey_outputs",
    "filter_of",
    "load_survey_config",
]

DEFAULT_IMAGE3_TASK = "jwst_ceers.survey.tasks:image3_ceers"
DEFAULT_MOSAIC_BKG_TASK = "jwst_ceers.survey.tasks:mosaic_background"

_TOP_KEYS = {
    "output_root",
    "abs_refcat",
    "mosaic_background",
    "align_sw_to_lw",
    "memory_budget_gb",
    "image3",
    "mosaic_bkg",
    "pointings",
    "engine",
}
# An i2d holds SCI, ERR, WHT, CON (int32), VAR_POISSON, VAR_RNOISE and VAR_FLAT: 7 x 4 bytes
# per output pixel, all in memory while resample makes it (a lower bound of its peak).
MOSAIC_BYTES_PER_PIXEL = 28
_POINTING_KEYS = {"name", "inputs", "filters", "grid", "hst_mosaics", "edit_regions", "abs_refcat"}
_GRID_KEYS = {"crval", "crpix", "rotation", "pixel_scale", "pixel_scale_ratio", "output_shape"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_DOTTED = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")


@dataclasses.dataclass(frozen=True)
class PointingConfig:
    """One pointing (or mosaic tile) of the survey."""

    name: str
    members_by_filter: dict  # filter -> tuple of absolute file names (sorted)
    grid: dict
    hst_mosaics: tuple = ()
    edit_regions: tuple = ()
    abs_refcat: Path | None = None  # overrides the survey's abs_refcat
    long_wavelength_filters: frozenset = frozenset()  # filters whose exposures are all on LW (*LONG) detectors


@dataclasses.dataclass(frozen=True)
class SurveyConfig:
    """A validated survey configuration (all paths absolute)."""

    path: Path
    output_root: Path
    abs_refcat: Path | None
    mosaic_background: bool
    image3_parameter_file: Path | None
    image3_steps: dict
    image3_filters: dict  # filter -> {"parameter_file": Path | None, "steps": dict}
    mosaic_bkg_parameter_file: Path | None
    mosaic_bkg_params: dict
    image3_task: str
    mosaic_bkg_task: str
    pointings: tuple
    memory_budget_gb: float | None = None  # None: the worker's memory limit; 0: no limit
    align_sw_to_lw: bool = True  # SW filters aligned to the LW aligned sources of their pointing


class _Checker:
    """Raises errors that name the configuration file and the key."""

    def __init__(self, path):
        self.path = Path(path)
        self.base = self.path.parent.absolute()

    def param(self, key, message):
        return CeersParameterError(f"{self.path}: {key}: {message}")

    def file(self, key, message):
        return CeersFileError(f"{self.path}: {key}: {message}")

    def table(self, value, key, allowed=None):
        if not isinstance(value, dict):
            raise self.param(key, f"must be a table, got {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise self.param(
                    f"{key}.{unknown[0]}" if key else unknown[0],
                    f"unknown key (allowed: {', '.join(sorted(allowed))})",
                )
        return value

    def string(self, value, key):
        if not isinstance(value, str) or not value.strip():
            raise self.param(key, f"must be a non-empty string, got {value!r}")
        return value

    def boolean(self, value, key):
        if not isinstance(value, bool):
            raise self.param(key, f"must be true or false, got {value!r}")
        return value

    def string_list(self, value, key):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.param(key, f"must be a non-empty list of strings, got {value!r}")
        return value

    def existing_file(self, value, key):
        path = self.base / Path(self.string(value, key)).expanduser()
        if not path.is_file():
            raise self.file(key, f"file not found: {path}")
        return path

    def globbed_files(self, patterns, key):
        files = []
        for pattern in self.string_list(patterns, key):
            full = str(self.base / Path(pattern).expanduser())
            matched = sorted(p for p in glob.glob(full, recursive=True) if Path(p).is_file())
            if not matched:
                raise self.file(key, f"no file matches {pattern!r} (looked for {full})")
            files.extend(Path(p).absolute() for p in matched)
        return tuple(dict.fromkeys(files))  # keep order, drop duplicates

    def number(self, value, key, *, positive=False):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.param(key, f"must be a finite number, got {value!r}")
        if positive and value <= 0:
            raise self.param(key, f"must be a number > 0, got {value!r}")
        return float(value)

    def pair(self, value, key, *, integer=False):
        if not isinstance(value, list) or len(value) != 2:
            raise self.param(key, f"must be a list of 2 numbers, got {value!r}")
        if integer:
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
                raise self.param(key, f"must be 2 positive integers (nx, ny), got {value!r}")
            return [int(v) for v in value]
        return [self.number(v, f"{key}[{i}]") for i, v in enumerate(value)]

    def dotted(self, value, key):
        if not _DOTTED.match(self.string(value, key)):
            raise self.param(key, f"must be a dotted name 'module:function', got {value!r}")
        return value

    def json_table(self, value, key):
        """A table of plain parameter values (TOML dates are not parameters)."""
        self.table(value, key)

        def check(item, where):
            if isinstance(item, dict):
                for k, v in item.items():
                    check(v, f"{where}.{k}")
            elif isinstance(item, list):
                for i, v in enumerate(item):
                    check(v, f"{where}[{i}]")
            elif isinstance(item, float) and not math.isfinite(item):
                raise self.param(where, f"must be finite, got {item!r}")
            elif not isinstance(item, (str, int, float, bool)):
                raise self.param(where, f"unsupported value {item!r}")

        check(value, key)
        return value


def filter_of(path):
    """
    Return the band of an exposure, upper case (``F150W``, ``F150W2-F162M``).

    The band is the one ``jwst-ceers asn`` groups by
    (:attr:`jwst_ceers.associations.ExposureInfo.band`): FILTER, plus PUPIL when
    the pupil wheel carries a filter.

    Raises
    ------
    CeersFileError
        If the file cannot be read or lacks PROGRAM/OBSERVTN/VISIT/FILTER.
    """
    return read_exposure_info(path).band.upper()


def _steps_table(check, value, key):
    """Per-step parameters; a step's ``parameter_file`` becomes an absolute path."""
    check.json_table(value, key)
    steps = {}
    for step, pars in value.items():
        pars = dict(check.table(pars, f"{key}.{step}"))
        if "parameter_file" in pars:
            pars["parameter_file"] = str(check.existing_file(pars["parameter_file"], f"{key}.{step}.parameter_file"))
        steps[step] = pars
    return steps


def _grid(check, value, key, memory_budget_gb):
    check.table(value, key, _GRID_KEYS)
    grid = {}
    for name, item in value.items():
        where = f"{key}.{name}"
        if name in ("crval", "crpix"):
            grid[name] = check.pair(item, where)
        elif name == "output_shape":
            grid[name] = check.pair(item, where, integer=True)
        elif name in ("pixel_scale", "pixel_scale_ratio"):
            grid[name] = check.number(item, where, positive=True)
        else:
            grid[name] = check.number(item, where)
    if "crval" in grid and not (-90 <= grid["crval"][1] <= 90):
        raise check.param(f"{key}.crval", f"declination must be in [-90, 90], got {grid['crval'][1]}")
    if "output_shape" in grid:
        _check_mosaic_fits(check, grid["output_shape"], f"{key}.output_shape", memory_budget_gb)
    return grid


def _check_mosaic_fits(check, shape, key, memory_budget_gb):
    """Refuse an output_shape whose mosaic arrays alone exceed the memory a product may use."""
    needed_gb = shape[0] * shape[1] * MOSAIC_BYTES_PER_PIXEL / 1e9
    if memory_budget_gb:
        limit_gb, source = memory_budget_gb, "memory_budget_gb"
    else:
        limit_gb = psutil.virtual_memory().total / 1e9
        source = "the memory of this machine; set memory_budget_gb to that of the machines that run the products"
    if needed_gb > limit_gb:
        raise check.param(
            key,
            f"{shape[0]} x {shape[1]} pixels: the mosaic arrays alone need {needed_gb:.3g} GB "
            f"({MOSAIC_BYTES_PER_PIXEL} bytes per pixel), more than {limit_gb:.3g} GB ({source})",
        )


def _pointing(check, value, key, memory_budget_gb):
    check.table(value, key, _POINTING_KEYS)
    for required in ("name", "inputs"):
        if required not in value:
            raise check.param(f"{key}.{required}", "missing (required)")
    name = check.string(value["name"], f"{key}.name")
    if not _NAME.match(name):
        raise check.param(f"{key}.name", f"must be a plain folder name (letters, digits, _.+-), got {name!r}")
    files = check.globbed_files(value["inputs"], f"{key}.inputs")
    by_filter, long_wavelength = {}, {}
    for path in files:
        info = read_exposure_info(path)
        band = info.band.upper()
        by_filter.setdefault(band, []).append(path)
        long_wavelength[band] = long_wavelength.get(band, True) and info.detector.upper().endswith("LONG")
    if "filters" in value:
        wanted = [f.upper() for f in check.string_list(value["filters"], f"{key}.filters")]
        missing = [f for f in wanted if f not in by_filter]
        if missing:
            raise check.param(
                f"{key}.filters",
                f"{', '.join(missing)} not among the inputs' filters ({', '.join(sorted(by_filter))})",
            )
        by_filter = {f: by_filter[f] for f in wanted}
    grid = _grid(check, value.get("grid", {}), f"{key}.grid", memory_budget_gb)
    hst = check.globbed_files(value["hst_mosaics"], f"{key}.hst_mosaics") if "hst_mosaics" in value else ()
    regions = check.globbed_files(value["edit_regions"], f"{key}.edit_regions") if "edit_regions" in value else ()
    refcat = check.existing_file(value["abs_refcat"], f"{key}.abs_refcat") if "abs_refcat" in value else None
    return PointingConfig(
        name=name,
        members_by_filter={f: tuple(sorted(p)) for f, p in sorted(by_filter.items())},
        grid=grid,
        hst_mosaics=hst,
        edit_regions=regions,
        abs_refcat=refcat,
        long_wavelength_filters=frozenset(f for f in by_filter if long_wavelength[f]),
    )


def _check_inputs_outside_outputs(check, output_root, pointings, shared_files):
    """Refuse inputs that live in a pointing's output folder: a product could be written onto them."""
    folders = {(output_root / p.name).resolve(): i for i, p in enumerate(pointings)}
    for i, pointing in enumerate(pointings):
        files = [f for members in pointing.members_by_filter.values() for f in members]
        files += [*pointing.hst_mosaics, *pointing.edit_regions, *([pointing.abs_refcat] if pointing.abs_refcat else [])]
        for path in [*files, *shared_files]:
            folder = Path(path).resolve().parent
            if folder in folders:
                raise check.param(
                    f"pointings[{i}]" if path in files else "inputs",
                    f"input {path} is in the output folder of pointings[{folders[folder]}] ({folder}); "
                    "products written there could overwrite it: move it or choose another output_root",
                )


def load_survey_config(path, *, check_steps=True):
    """
    Read and validate a survey configuration file.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    check_steps : bool
        Also check the step parameters' names and values against the steps
        (:func:`check_step_parameters`; imports jwst when the default task
        functions are used).

    Returns
    -------
    SurveyConfig

    Raises
    ------
    CeersFileError
        The file (or a file it names) is missing or unreadable, or a glob matches nothing.
    CeersParameterError
        A key is unknown, missing or has a bad value.
    """
    path = Path(path)
    check = _Checker(path)
    try:
        # "utf-8-sig": a byte-order mark (some Windows editors write one) is not TOML
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except IsADirectoryError as exc:
        raise CeersFileError(f"{path}: is a directory, not a survey configuration file") from exc
    except OSError as exc:
        raise CeersFileError(f"{path}: cannot read survey configuration: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CeersParameterError(f"{path}: not valid TOML: {exc}") from exc
    check.table(raw, "", _TOP_KEYS)
    if "output_root" not in raw:
        raise check.param("output_root", "missing (required)")
    output_root = check.base / Path(check.string(raw["output_root"], "output_root")).expanduser()
    abs_refcat = check.existing_file(raw["abs_refcat"], "abs_refcat") if "abs_refcat" in raw else None
    mosaic_background = check.boolean(raw.get("mosaic_background", True), "mosaic_background")
    align_sw_to_lw = check.boolean(raw.get("align_sw_to_lw", True), "align_sw_to_lw")
    memory_budget_gb = None
    if "memory_budget_gb" in raw:
        memory_budget_gb = check.number(raw["memory_budget_gb"], "memory_budget_gb")
        if memory_budget_gb < 0:
            raise check.param("memory_budget_gb", f"must be >= 0 (0: no limit), got {memory_budget_gb!r}")

    image3 = check.table(raw.get("image3", {}), "image3", {"parameter_file", "steps", "filters"})
    image3_file = (
        check.existing_file(image3["parameter_file"], "image3.parameter_file") if "parameter_file" in image3 else None
    )
    image3_steps = _steps_table(check, image3.get("steps", {}), "image3.steps")
    image3_filters = {}
    for filt, settings in check.table(image3.get("filters", {}), "image3.filters").items():
        where = f"image3.filters.{filt}"
        check.table(settings, where, {"parameter_file", "steps"})
        image3_filters[filt.upper()] = {
            "parameter_file": check.existing_file(settings["parameter_file"], f"{where}.parameter_file")
            if "parameter_file" in settings
            else None,
            "steps": _steps_table(check, settings.get("steps", {}), f"{where}.steps"),
        }

    bkg = check.table(raw.get("mosaic_bkg", {}), "mosaic_bkg", {"parameter_file", "params"})
    bkg_file = (
        check.existing_file(bkg["parameter_file"], "mosaic_bkg.parameter_file") if "parameter_file" in bkg else None
    )
    bkg_params = check.json_table(bkg.get("params", {}), "mosaic_bkg.params")

    engine = check.table(raw.get("engine", {}), "engine", {"image3_task", "mosaic_bkg_task"})
    image3_task = check.dotted(engine.get("image3_task", DEFAULT_IMAGE3_TASK), "engine.image3_task")
    bkg_task = check.dotted(engine.get("mosaic_bkg_task", DEFAULT_MOSAIC_BKG_TASK), "engine.mosaic_bkg_task")

    if "pointings" not in raw:
        raise check.param("pointings", "missing (required): add at least one [[pointings]] table")
    if not isinstance(raw["pointings"], list) or not raw["pointings"]:
        raise check.param("pointings", "must be a non-empty array of tables ([[pointings]])")
    pointings = [
        _pointing(check, item, f"pointings[{i}]", memory_budget_gb) for i, item in enumerate(raw["pointings"])
    ]
    seen = {}
    for i, pointing in enumerate(pointings):
        if pointing.name in seen:
            raise check.param(f"pointings[{i}].name", f"{pointing.name!r} already used by pointings[{seen[pointing.name]}]")
        seen[pointing.name] = i
    shared_files = [f for f in (abs_refcat, image3_file, bkg_file) if f is not None]
    _check_inputs_outside_outputs(check, output_root, pointings, shared_files)
    unknown_filters = sorted(set(image3_filters) - {f for p in pointings for f in p.members_by_filter})
    if unknown_filters:
        raise check.param(f"image3.filters.{unknown_filters[0]}", "no pointing has exposures in this filter")

    config = SurveyConfig(
        path=path.absolute(),
        output_root=output_root,
        abs_refcat=abs_refcat,
        mosaic_background=mosaic_background,
        image3_parameter_file=image3_file,
        image3_steps=image3_steps,
        image3_filters=image3_filters,
        mosaic_bkg_parameter_file=bkg_file,
        mosaic_bkg_params=bkg_params,
        image3_task=image3_task,
        mosaic_bkg_task=bkg_task,
        pointings=tuple(pointings),
        memory_budget_gb=memory_budget_gb,
        align_sw_to_lw=align_sw_to_lw,
    )
    if check_steps:
        check_step_parameters(config)
    return config


def check_survey_outputs(config):
    """
    Check, before any work, that ``output_root`` is (or can be made) a writable folder.

    Raises
    ------
    CeersFileError
        Naming the configuration file and output_root.
    """
    try:
        check_writable_folder(config.output_root, what="output_root")
    except CeersFileError as exc:
        raise CeersFileError(f"{config.path}: output_root: {exc}") from exc


def _unknown(names, known, where, path, what):
    for name in names:
        if name not in known:
            raise CeersParameterError(
                f"{path}: {where}.{name}: unknown {what} (known: {', '.join(sorted(known))})"
            )


def _check_values(params, spec, where, path):
    """Validate parameter values against a step's spec (types, ranges) without making the step."""
    from stpipe import config_parser  # with jwst, only when the default steps are checked

    try:
        config_parser.config_from_dict(params, spec=spec, allow_missing=True)
    except config_parser.ValidationError as exc:
        raise CeersParameterError(f"{path}: {where}: {exc}") from exc


def check_step_parameters(config):
    """
    Check the step and parameter names and values of the configuration against the steps' specs.

    Only for the default task functions (``Image3Ceers``, ``MosaicBackground``), and
    only the values given in the configuration (parameter files are checked when
    their step runs). Imports jwst.

    Raises
    ------
    CeersParameterError
        Naming the configuration file and the key, e.g.
        ``image3.steps.tweakreg.serchrad: unknown parameter``.
    """
    if config.image3_task == DEFAULT_IMAGE3_TASK:
        from jwst_ceers.pipeline.image3_ceers import Image3Ceers

        step_specs = Image3Ceers.load_spec_file()["steps"]
        tables = [("image3.steps", config.image3_steps)]
        tables += [(f"image3.filters.{f}.steps", v["steps"]) for f, v in config.image3_filters.items()]
        for where, steps in tables:
            _unknown(steps, step_specs, where, config.path, "step of Image3Ceers")
            for step, params in steps.items():
                known = {*step_specs[step], "parameter_file"}
                _unknown(params, known, f"{where}.{step}", config.path, f"parameter of step {step}")
            values = {step: {k: v for k, v in p.items() if k != "parameter_file"} for step, p in steps.items()}
            _check_values({"steps": values}, Image3Ceers.load_spec_file(), where.removesuffix(".steps"), config.path)
    if config.mosaic_background and config.mosaic_bkg_task == DEFAULT_MOSAIC_BKG_TASK:
        from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground, check_bkg_box_size

        known = MosaicBackground.load_spec_file()
        _unknown(config.mosaic_bkg_params, known, "mosaic_bkg.params", config.path, "parameter of MosaicBackground")
        _check_values(config.mosaic_bkg_params, known, "mosaic_bkg.params", config.path)
        if "bkg_box_size" in config.mosaic_bkg_params:
            try:
                check_bkg_box_size(config.mosaic_bkg_params["bkg_box_size"])
            except CeersParameterError as exc:
                raise CeersParameterError(f"{config.path}: mosaic_bkg.params.bkg_box_size: {exc}") from exc
