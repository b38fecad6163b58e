"""Base classes shared by the jwst_ceers steps.

`CeersStep` adds the ``jwst_ceers`` logger to those stpipe configures, so that
messages of this package reach ``strun`` output and ``cal_logs``.
`ExposureStep` runs an exposure-by-exposure algorithm on anything a user may
hand in: one model or file, a list, an association file or a ModelLibrary.
"""

import logging
import re
from pathlib import Path

from jwst.datamodels import ModelLibrary
from jwst.stpipe import Step
from jwst.stpipe.utilities import record_step_status
from stdatamodels.jwst.datamodels import JwstDataModel

from jwst_ceers.inputs import open_image_model

__all__ = ["CeersStep", "ExposureStep"]

log = logging.getLogger(__name__)


# Output suffixes of jwst_ceers steps (the aliases without "ceers_"), stripped like
# jwst's own known suffixes so that chained outputs do not pile suffixes up.
CEERS_SUFFIXES = ("varfill", "pedestal", "mosaic_bkg", "bkgsub")
_CEERS_SUFFIX_REGEX = re.compile(rf"^(?P<root>.+?)(?P<sep>[_-])(?:{'|'.join(CEERS_SUFFIXES)})$")


class CeersStep(Step):
    """A jwst step whose ``jwst_ceers`` log messages are configured by stpipe."""

    @staticmethod
    def get_stpipe_loggers():
        """Loggers stpipe configures: jwst's own plus ``jwst_ceers``."""
        return (*Step.get_stpipe_loggers(), "jwst_ceers")

    def default_suffix(self):
        """Output suffix: the class alias without its ``ceers_`` prefix."""
        alias = getattr(self, "class_alias", None)
        return alias.removeprefix("ceers_") if alias else super().default_suffix()

    def remove_suffix(self, name):
        """Remove a jwst or jwst_ceers suffix from ``name``; return (root, separator)."""
        match = _CEERS_SUFFIX_REGEX.match(name)
        if match:
            return super().remove_suffix(match.group("root"))[0], match.group("sep")
        return super().remove_suffix(name)


class ExposureStep(CeersStep):
    """
    A step that treats every exposure independently.

    Subclasses implement :meth:`process_exposure`, which modifies the (already
    copied) model in place and returns the status to record in
    ``meta.cal_step.<class_alias>`` ("COMPLETE" or "SKIPPED").
    """

    spec = """
    in_memory = boolean(default=True)  # Keep all exposures in memory (False: ModelLibrary on disk)
    """  # noqa: E501

    def process(self, input_data):
        """Apply :meth:`process_exposure` to one model or to every model of a library."""
        output = self.prepare_output(input_data, open_models=False)
        if isinstance(output, (str, Path)) and Path(output).suffix.lower() != ".json":
            output = open_image_model(output)
        if isinstance(output, JwstDataModel):
            self._run_one(output)
            return output
        library = (
            output
            if isinstance(output, ModelLibrary)
            else ModelLibrary(output, on_disk=not self.in_memory)
        )
        with library:
            for index in range(len(library)):
                model = library.borrow(index)
                try:
                    self._run_one(model)
                finally:
                    library.shelve(model, index)
        return library

    def _run_one(self, model):
        status = "FAILED"
        try:
            status = self.process_exposure(model)
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
