"""Base classes shared by the jwst_ceers steps.

`CeersStep` adds the ``jwst_ceers`` logger to those stpipe configures, so that
messages of this package reach ``strun`` output and ``cal_logs``.
`ExposureStep` runs an exposure-by-exposure algorithm on anything a user may
hand in: one model or file, a list, an association file or a ModelLibrary.
"""

import logging
import os
import re
from pathlib import Path

import numpy as np
from configobj import ConfigObjError
from jwst.stpipe import Step
from stpipe.exceptions import ValidationError as StpipeValidationError
from jwst.stpipe.utilities import record_step_status
from stdatamodels.jwst.datamodels import JwstDataModel

from jwst_ceers.atomic_io import (
    check_outputs_not_inputs,
    ensure_output_directory,
    protected_inputs,
    write_model_atomic,
)
from jwst_ceers.masking.tier_parameters import check_tier_values
from jwst_ceers.file_names import CEERS_STEP_SUFFIXES
from jwst_ceers.errors import CeersError, CeersFileError, CeersParameterError
from jwst_ceers.inputs import (
    check_complete_asdf,
    check_image_model,
    has_usable_pixels,
    input_file_paths,
    open_image_model,
    open_library,
)
from jwst_ceers.parallel_exposures import map_exposures

__all__ = [
    "ParameterErrors",
    "CeersStep",
    "ExposureStep",
    "check_output_locations",
    "make_saves_atomic",
    "predicted_output_paths",
    "save_model_atomically",
    "set_array_in_place",
]

log = logging.getLogger(__name__)


# Output suffixes of jwst_ceers steps are stripped like jwst's own known suffixes, so
# that chained outputs do not pile suffixes up.
_CEERS_SUFFIX_REGEX = re.compile(rf"^(?P<root>.+?)(?P<sep>[_-])(?:{'|'.join(CEERS_STEP_SUFFIXES)})$")


class ParameterErrors:
    """
    Mixin: stpipe's parameter and parameter-file errors become `CeersParameterError`.

    stpipe raises its own ``ValidationError`` (out-of-range value, unknown key) and
    configobj/asdf errors (malformed file); the message then names the step and the
    parameter file, and the type is the one jwst_ceers users catch for user errors.

    Before any work, ``run`` checks where the run will write (`check_output_locations`:
    ``output_dir`` and output-file parameters of the step and of a pipeline's steps
    exist or can be made, and are writable) and that no predicted output is one of the
    input files (`predicted_output_paths`); then it runs with the input files
    registered as protected (`jwst_ceers.atomic_io.protected_inputs`), so that no
    atomic write of the run (its steps, stock steps included) can replace one of them.
    Failures are `CeersFileError` naming the path.
    """

    #: ``{list parameter: (smallest, largest)}``: bounds of each VALUE of a list parameter,
    #: checked when the step is made (the spec's min/max bound the list's length)
    list_value_bounds = {}

    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
        except StpipeValidationError as exc:
            raise CeersParameterError(f"{_step_label(type(self))}: {exc}") from exc
        if self.list_value_bounds:
            check_tier_values(
                _step_label(type(self)),
                {name: getattr(self, name, None) for name in self.list_value_bounds},
                self.list_value_bounds,
            )

    def run(self, *args, **kwargs):
        """As stpipe's, after checking outputs (see the class docstring); inputs are never written."""
        check_output_locations(self)
        inputs = input_file_paths(args[0]) if args else []
        if args and isinstance(args[0], (str, Path)):
            self.set_primary_input(args[0])  # as stpipe's run does, so that output names can be predicted
        if not getattr(self, "step_defs", None):  # a pipeline predicts its steps' products itself
            outputs = predicted_output_paths(self, inputs)
            exposures = [path for path in inputs if Path(path).suffix.lower() not in (".json", ".yaml", ".yml")]
            outputs += [out for path in exposures for out in self.extra_output_paths(path)]
            check_outputs_not_inputs(outputs, inputs, what=f"{_step_label(type(self))} output")
        with protected_inputs(inputs):
            return super().run(*args, **kwargs)

    def extra_output_paths(self, input_path):
        """
        Files other than saved datamodels the step will write for ``input_path``.

        Checked against the inputs before any work; the default: none.
        """
        return []

    @classmethod
    def from_config_section(cls, config, parent=None, name=None, config_file=None):
        """As stpipe's, with invalid parameters reported as CeersParameterError."""
        try:
            return super().from_config_section(config, parent=parent, name=name, config_file=config_file)
        except StpipeValidationError as exc:
            where = f" (parameter file {config_file})" if config_file else ""
            raise CeersParameterError(f"{_step_label(cls)}{where}: {exc}") from exc

    @classmethod
    def build_config(cls, input, **kwargs):  # noqa: A002 (stpipe's signature)
        """As stpipe's, with unreadable parameter files reported as CeersParameterError."""
        config_file = kwargs.get("config_file")
        _check_parameter_file(cls, config_file)
        try:
            return super().build_config(input, **kwargs)
        except CeersError:
            raise
        except (ValueError, ConfigObjError, StpipeValidationError) as exc:
            raise CeersParameterError(
                f"{_step_label(cls)}: parameter file {config_file} cannot be used ({exc})"
            ) from exc


def _step_label(cls):
    return getattr(cls, "class_alias", None) or cls.__name__


def _check_parameter_file(cls, config_file):
    """A truncated ASDF parameter file is a CeersParameterError saying so (not a YAML/INI parse error)."""
    if not config_file or not Path(config_file).is_file():
        return
    try:
        with open(config_file, "rb") as handle:
            is_asdf = handle.read(5) == b"#ASDF"
        if is_asdf:
            check_complete_asdf(Path(config_file), what="parameter file")
    except (CeersFileError, OSError) as exc:
        raise CeersParameterError(f"{_step_label(cls)}: parameter file {config_file} cannot be used: {exc}") from exc


# Step parameters naming a file the step writes (its folder is checked before work)
OUTPUT_FILE_PARAMETERS = ("results_file",)


def _expand(path):
    return os.path.expandvars(os.path.expanduser(str(path)))


def check_output_locations(step):
    """
    Check, before any work, every place ``step`` (and a pipeline's steps) will write.

    ``output_dir`` must be (or be made) a writable directory; so must the folder of
    each output-file parameter (``results_file``) and ``wcs_dir`` when solutions are
    written (not with ``use_saved_wcs``). Missing folders are created.

    Raises
    ------
    CeersFileError
        Naming the parameter and path.
    """
    steps = [step]
    for name in getattr(step, "step_defs", {}) or {}:
        sub = getattr(step, name, None)
        if sub is not None and not getattr(sub, "skip", False):
            steps.append(sub)
    for one in steps:
        label = _step_label(type(one))
        if getattr(one, "output_dir", None):
            ensure_output_directory(_expand(one.output_dir), what=f"{label}: output_dir")
        for parameter in OUTPUT_FILE_PARAMETERS:
            value = getattr(one, parameter, None)
            if value:
                path = Path(_expand(value))
                if path.is_dir():
                    raise CeersFileError(f"{label}: {parameter} {path} is a directory, not a file name")
                ensure_output_directory(path.parent if str(path.parent) else Path("."), what=f"{label}: {parameter} folder")
        if getattr(one, "wcs_dir", None) and not getattr(one, "use_saved_wcs", False):
            ensure_output_directory(_expand(one.wcs_dir), what=f"{label}: wcs_dir")


def predicted_output_paths(step, input_paths):
    """
    The datamodel files ``step`` will save for these input files (stpipe's naming rules).

    A single file gives one model; several files (or an association's members) give a
    library, saved model by model. Empty when the step saves nothing.

    Parameters
    ----------
    step : stpipe Step
    input_paths : sequence of Path
        From `jwst_ceers.inputs.input_file_paths`; association files are skipped.

    Returns
    -------
    list of str
    """
    if not (step.save_results or step.output_file):
        return []
    models = [Path(p) for p in input_paths if Path(p).suffix.lower() not in (".json", ".yaml", ".yml")]
    suffix = step.suffix or step.default_suffix()
    return [
        _output_path(step, model_filename=path.name, suffix=suffix, idx=None if len(models) == 1 else index)
        for index, path in enumerate(models)
    ]


def _output_path(step, *, model_filename, suffix=None, idx=None, output_file=None, **components):
    """Where stpipe's ``save_model`` puts a model named ``model_filename`` (None: not saved)."""
    if not output_file:
        output_file = step.output_file
    if step.output_use_model or (output_file is None and not step.search_output_file):
        output_file = model_filename
        idx = None
    if output_file is None and step.search_output_file:  # as make_output_path would choose
        output_file = step.search_attr("output_file") or step.default_output_file()
    if output_file and str(output_file).lower().endswith(".gz"):
        # x_cal.fits.gz gives x_<suffix>.fits (products are written uncompressed)
        output_file = str(output_file)[:-3]
    return step.make_output_path(basepath=output_file, suffix=suffix, idx=idx, **components)


class CeersStep(ParameterErrors, Step):
    """A jwst step whose ``jwst_ceers`` log messages are configured by stpipe."""

    @staticmethod
    def get_stpipe_loggers():
        """Loggers stpipe configures: jwst's own plus ``jwst_ceers``."""
        return (*Step.get_stpipe_loggers(), "jwst_ceers")

    def default_suffix(self):
        """Output suffix: the class alias without its ``ceers_`` prefix."""
        alias = getattr(self, "class_alias", None)
        return alias.removeprefix("ceers_") if alias else super().default_suffix()

    def save_model(self, model, suffix=None, idx=None, output_file=None, force=False, **components):
        """
        Save like stpipe (same names and conditions), but write single models atomically.

        A product is written to a temporary file beside its final name and renamed
        when complete, so an interrupted or failed write (disk full) never leaves a
        half-written ``*_<suffix>.fits`` that a re-run would trust.
        """
        if not isinstance(model, JwstDataModel):  # libraries/containers: stpipe calls us per model
            return super().save_model(model, suffix=suffix, idx=idx, output_file=output_file, force=force, **components)
        return save_model_atomically(self, model, suffix=suffix, idx=idx, output_file=output_file, force=force, **components)

    def remove_suffix(self, name):
        """Remove a jwst or jwst_ceers suffix from ``name``; return (root, separator)."""
        match = _CEERS_SUFFIX_REGEX.match(name)
        if match:
            return super().remove_suffix(match.group("root"))[0], match.group("sep")
        return super().remove_suffix(name)


def save_model_atomically(step, model, *, suffix=None, idx=None, output_file=None, force=False, **components):
    """
    Save one datamodel as ``step`` would (stpipe's naming rules), atomically.

    Returns the path written, or None when the step is not asked to save.
    """
    if not force and not step.save_results and not (output_file or step.output_file):
        return None
    path = _output_path(
        step, model_filename=model.meta.filename, suffix=suffix, idx=idx, output_file=output_file, **components
    )
    write_model_atomic(model, path)  # refuses a protected input path
    log.info("Saved model in %s", path)
    return str(path)


def make_saves_atomic(step):
    """
    Make a stock jwst step instance write its datamodel products atomically.

    Binds a ``save_model`` on the instance (the class, and so its CRDS parameter
    lookups, stay stock): single models go through :func:`save_model_atomically`,
    everything else through the step's own ``save_model``, which calls back here
    for each model of a library.
    """
    stock_save_model = step.save_model

    def save_model(model, suffix=None, idx=None, output_file=None, force=False, **components):
        if isinstance(model, JwstDataModel):
            return save_model_atomically(
                step, model, suffix=suffix, idx=idx, output_file=output_file, force=force, **components
            )
        return stock_save_model(model, suffix=suffix, idx=idx, output_file=output_file, force=force, **components)

    step.save_model = save_model
    return step


class ExposureStep(CeersStep):
    """
    A step that treats every exposure independently.

    Subclasses implement :meth:`process_exposure`, which modifies the (already
    copied) model in place and returns the status to record in
    ``meta.cal_step.<class_alias>`` ("COMPLETE" or "SKIPPED").
    """

    spec = """
    in_memory = boolean(default=True)  # Keep all exposures in memory (False: ModelLibrary on disk)
    threads = integer(min=1, max=64, default=2)  # Exposures processed at once (threads); results do not depend on it
    """  # noqa: E501

    def check_parameters(self):
        """Check parameters that need no data (called once, before any exposure is read)."""

    def process(self, input_data):
        """Apply :meth:`process_exposure` to one model or to every model of a library."""
        self.check_parameters()
        output = self.prepare_output(input_data, open_models=False)
        if isinstance(output, (str, Path)) and Path(output).suffix.lower() != ".json":
            output = open_image_model(output)
        if isinstance(output, JwstDataModel):
            self._run_one(output)
            return output
        library = open_library(output, on_disk=not self.in_memory)
        if len(library) == 0:
            raise CeersParameterError(f"{self.class_alias}: the input holds no exposure")
        # every member is validated before the first one is processed
        map_exposures(
            library, lambda model, index: _check_member(library, model, index),
            modify=False, borrow=lambda index: _borrow(library, index),
        )
        map_exposures(
            library, lambda model, index: self._run_one(model), threads=self.threads,
            borrow=lambda index: _borrow(library, index),
        )
        return library

    def _run_one(self, model):
        status = "FAILED"
        try:
            check_image_model(model)
            if has_usable_pixels(model):
                status = self.process_exposure(model)
            else:
                log.warning(
                    "%s: no usable pixel (all NaN or DO_NOT_USE); %s SKIPPED",
                    model.meta.filename or "model", self.class_alias,
                )
                status = "SKIPPED"
        finally:
            record_step_status(model, self.class_alias, status=status)

    def process_exposure(self, model):
        """
        Process one exposure in place.

        Parameters
        ----------
        model : `~stdatamodels.jwst.datamodels.ImageModel`
            The exposure; already a copy when the step runs standalone.

        Returns
        -------
        str
            "COMPLETE" or "SKIPPED".
        """
        raise NotImplementedError


def set_array_in_place(model, name, values):
    """
    Put ``values`` into ``model.<name>``, writing into the array the model already holds.

    Assigning a new array (``model.data = ...``) leaves the old one referenced by the
    opened file until the model is closed: for a library of 48 full frames that is
    one extra full-size array per exposure and step (measured +0.72 GB over pedestal
    and varfill on 48 x 1024^2). Arrays read from FITS are big-endian (``>f4``):
    values of the same kind and size in the other byte order are written into them
    too (numpy swaps the bytes). Values of another shape, kind or item size, or a
    read-only array, are assigned as usual.
    """
    current = getattr(model, name, None)
    values = np.asarray(values)
    if (
        isinstance(current, np.ndarray)
        and current.shape == values.shape
        and current.dtype.newbyteorder("=") == values.dtype.newbyteorder("=")
        and current.flags.writeable
    ):
        current[...] = values
    else:
        setattr(model, name, values)


def _check_member(library, model, index):
    """
    Check member ``index`` (errors name its file); returns None.

    Not the model: map_exposures keeps every result until the pass ends, and a
    returned model kept all exposures in memory through the check of an on-disk
    library (48 full frames: 4.9 GB in pedestal and varfill instead of ~1 GB).
    """
    check_image_model(model, what=_member_name(library, index))


def _borrow(library, index):
    """Borrow member ``index``; a member that does not open is a CeersFileError naming it."""
    try:
        return library.borrow(index)
    except CeersError:
        raise
    except Exception as exc:  # a member that does not open as a jwst model
        raise CeersFileError(f"{_member_name(library, index)}: cannot be read ({exc})") from exc


def _member_name(library, index):
    """File name of library member ``index`` (for messages)."""
    try:
        return library.asn["products"][0]["members"][index]["expname"]
    except (AttributeError, KeyError, IndexError, TypeError):
        return f"input member {index}"
