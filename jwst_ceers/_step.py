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

from configobj import ConfigObjError
from jwst.stpipe import Step
from stpipe.exceptions import ValidationError as StpipeValidationError
from jwst.stpipe.utilities import record_step_status
from stdatamodels.jwst.datamodels import JwstDataModel

from jwst_ceers.atomic_io import ensure_output_directory, write_model_atomic
from jwst_ceers.errors import CeersError, CeersFileError, CeersParameterError
from jwst_ceers.inputs import check_image_model, has_usable_pixels, open_image_model, open_library
from jwst_ceers.parallel_exposures import map_exposures

__all__ = ["ParameterErrors", "CeersStep", "ExposureStep", "make_saves_atomic", "save_model_atomically"]

log = logging.getLogger(__name__)


# Output suffixes of jwst_ceers steps (the aliases without "ceers_"), stripped like
# jwst's own known suffixes so that chained outputs do not pile suffixes up.
CEERS_SUFFIXES = ("varfill", "pedestal", "mosaic_bkg", "bkgsub")
_CEERS_SUFFIX_REGEX = re.compile(rf"^(?P<root>.+?)(?P<sep>[_-])(?:{'|'.join(CEERS_SUFFIXES)})$")


class ParameterErrors:
    """
    Mixin: stpipe's parameter and parameter-file errors become `CeersParameterError`.

    stpipe raises its own ``ValidationError`` (out-of-range value, unknown key) and
    configobj/asdf errors (malformed file); the message then names the step and the
    parameter file, and the type is the one jwst_ceers users catch for user errors.
    An unusable ``output_dir`` (e.g. below a regular file) is a `CeersFileError`
    naming it, raised before any work is done.
    """

    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
        except StpipeValidationError as exc:
            raise CeersParameterError(f"{_step_label(type(self))}: {exc}") from exc

    def run(self, *args, **kwargs):
        """As stpipe's, after checking that ``output_dir`` is (or can be made) a directory."""
        if self.output_dir:
            ensure_output_directory(os.path.expandvars(os.path.expanduser(self.output_dir)), what="output_dir")
        return super().run(*args, **kwargs)

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
    if not output_file:
        output_file = step.output_file
    if not force and not step.save_results and not output_file:
        return None
    if step.output_use_model or (output_file is None and not step.search_output_file):
        output_file = model.meta.filename
        idx = None
    path = step.make_output_path(basepath=output_file, suffix=suffix, idx=idx, **components)
    write_model_atomic(model, path)
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

    def process(self, input_data):
        """Apply :meth:`process_exposure` to one model or to every model of a library."""
        output = self.prepare_output(input_data, open_models=False)
        if isinstance(output, (str, Path)) and Path(output).suffix.lower() != ".json":
            output = open_image_model(output)
        if isinstance(output, JwstDataModel):
            self._run_one(output)
            return output
        library = open_library(output, on_disk=not self.in_memory)
        if len(library) == 0:
            raise CeersParameterError(f"{self.class_alias}: the input holds no exposure")
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


def _borrow(library, index):
    """``library.borrow(index)``; a member that does not open as a jwst model is a CeersFileError."""
    try:
        return library.borrow(index)
    except CeersError:
        raise
    except Exception as exc:
        raise CeersFileError(f"{_member_name(library, index)}: cannot be read ({exc})") from exc


def _member_name(library, index):
    """File name of library member ``index`` (for messages)."""
    try:
        return library.asn["products"][0]["members"][index]["expname"]
    except (AttributeError, KeyError, IndexError, TypeError):
        return f"input member {index}"
