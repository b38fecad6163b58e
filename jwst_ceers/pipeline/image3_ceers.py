"""Image3Ceers: CEERS-style NIRCam Stage 3, stock jwst steps mixed with jwst_ceers steps.

Order (step names usable as ``--steps.<name>.<param>`` and in asdf ``steps:``)::

    tweakreg (CatalogTweakReg) -> skymatch (subtract=False) -> outlier_detection
    -> pedestal (PedestalSkySub) -> varfill (VarianceHoleFill) -> resample -> source_catalog

Moving-target associations use ``assign_mtwcs`` instead of ``tweakreg``, as stock
calwebb_image3 does.
"""

import logging
from pathlib import Path

from jwst.pipeline.calwebb_image3 import Image3Pipeline
from jwst.skymatch.skymatch_step import SkyMatchStep
from jwst.lib.exposure_types import is_moving_target
from stdatamodels.jwst import datamodels

from jwst_ceers._step import CeersStep, ParameterErrors
from jwst_ceers.inputs import check_input_files
from jwst_ceers.pedestal.pedestal_step import PedestalSkySub
from jwst_ceers.tweakreg.tweakreg_step import CatalogTweakReg
from jwst_ceers.varfill.varfill_step import VarianceHoleFill

__all__ = ["Image3Ceers", "SkyMatchRecordOnly"]

log = logging.getLogger(__name__)


class SkyMatchRecordOnly(SkyMatchStep):
    """
    Stock ``skymatch`` whose ``subtract`` defaults to False.

    CEERS runs skymatch only to record sky values in ``meta.background``; the sky
    is removed later, per exposure, by ``pedestal``. Users can still set
    ``--steps.skymatch.subtract=True``.
    """

    spec = """
    subtract = boolean(default=False)  # Subtract computed sky from image data (CEERS: False)
    """  # noqa: E501


class Image3Ceers(ParameterErrors, Image3Pipeline):
    """
    CEERS NIRCam Stage 3: align, match, flag outliers, remove pedestals, drizzle.

    Takes a Level-3 association of ONE filter (``jwst-ceers asn`` makes them) and
    writes ``<product>_i2d.fits``; with ``--steps.resample.*`` grid parameters (see
    ``jwst-ceers grid``) every filter of a pointing lands on the same pixel grid.
    """

    class_alias = "calwebb_image3_ceers"

    step_defs = {
        **Image3Pipeline.step_defs,
        "tweakreg": CatalogTweakReg,
        "skymatch": SkyMatchRecordOnly,
        "pedestal": PedestalSkySub,
        "varfill": VarianceHoleFill,
    }

    get_stpipe_loggers = staticmethod(CeersStep.get_stpipe_loggers)

    def _precache_references(self, input_file):
        """Prefetch reference files; offline, only source_catalog needs any, so skip it."""
        self._source_catalog_unavailable = None
        try:
            super()._precache_references(input_file)
        except (Exception, SystemExit) as exc:  # CRDS offline ends in SystemExit
            if self.source_catalog.skip:
                raise
            self._source_catalog_unavailable = f"{type(exc).__name__}: {exc}"

    def _load_input_as_library(self, input_data):
        """Stock loading, after checking the association and its member files (CeersFileError naming them)."""
        check_input_files(input_data)
        if isinstance(input_data, Path):
            input_data = str(input_data)
        return super()._load_input_as_library(input_data)

    def process(self, input_data):
        """
        Run the pipeline on a Level-3 association (file, dict, list or ModelLibrary).

        Parameters
        ----------
        input_data : str, dict, list, ModelLibrary or ImageModel
            The exposures of one filter.
        """
        log.info("Starting calwebb_image3_ceers ...")
        # Output names as stock calwebb_image3 (and CEERS) use them.
        self.skymatch.suffix = "match"
        self.outlier_detection.suffix = "crf"
        self.outlier_detection.mode = "imaging"
        self.resample.suffix = "i2d"
        # per-exposure products saved on request keep the exposure names (<root>_<suffix>)
        for step in (self.tweakreg, self.skymatch, self.pedestal, self.varfill):
            step.output_use_model = True
        for step in (self.outlier_detection, self.resample, self.source_catalog):
            step.save_results = step.save_results or self.save_results

        library = self._load_input_as_library(input_data)
        if self.output_file is None and "name" in library.asn["products"][0]:
            self.output_file = library.asn["products"][0]["name"]

        with library:
            moving = is_moving_target(library.read_metadata(0))
        if len(library) > 1:
            if moving:
                library = self.assign_mtwcs.run(library)
            else:
                library = self.tweakreg.run(library)
            library = self.skymatch.run(library)
            library = self.outlier_detection.run(library)
        else:
            log.info("Single exposure: tweakreg, skymatch and outlier_detection not run")
        library = self.pedestal.run(library)
        library = self.varfill.run(library)

        result = self.resample.run(library)
        del library
        if not (
            isinstance(result, datamodels.ImageModel)
            and result.meta.cal_step.resample == "COMPLETE"
        ):
            return
        reason = getattr(self, "_source_catalog_unavailable", None)
        if self.source_catalog.skip:
            return
        if reason is not None:
            log.warning(
                "source_catalog skipped: its reference files (apcorr, abvegaoffset) cannot be "
                "had from CRDS (%s). Give --steps.source_catalog.override_apcorr and "
                "override_abvegaoffset, or run with CRDS access.",
                reason,
            )
            return
        self.source_catalog.run(result)
