"""Image3Ceers: CEERS-style NIRCam Stage 3, stock jwst steps mixed with jwst_ceers steps.

Order (step names usable as ``--steps.<name>.<param>`` and in asdf ``steps:``)::

    tweakreg (CatalogTweakReg) -> skymatch (subtract=False) -> outlier_detection
    -> pedestal (PedestalSkySub) -> varfill (VarianceHoleFill) -> resample -> source_catalog

Moving-target associations use ``assign_mtwcs`` instead of ``tweakreg``, as stock
calwebb_image3 does.
"""

import copy
import logging
from pathlib import Path

from jwst.pipeline.calwebb_image3 import Image3Pipeline
from jwst.datamodels import ModelLibrary
from jwst.skymatch.skymatch_step import SkyMatchStep
from jwst.lib.exposure_types import is_moving_target
from stdatamodels.jwst import datamodels

from jwst_ceers._step import CeersStep, ParameterErrors, make_saves_atomic
from jwst_ceers.errors import CeersFileError
from jwst_ceers.inputs import check_input_files, read_association
from jwst_ceers.outlier.outlier_step import CeersOutlierDetection
from jwst_ceers.pipeline import input_checks
from jwst_ceers.pedestal.pedestal_step import PedestalSkySub
from jwst_ceers.pipeline.memory_plan import HeapTrimmingLibrary, plan_image3_memory, release_free_memory
from jwst_ceers.resample.resample_step import CutoutResample
from jwst_ceers.tweakreg.tweakreg_step import CatalogTweakReg
from jwst_ceers.varfill.varfill_step import VarianceHoleFill

__all__ = ["Image3Ceers", "SkyMatchRecordOnly", "exposure_grouped_association"]

log = logging.getLogger(__name__)


class SkyMatchRecordOnly(SkyMatchStep):
    """
    Stock ``skymatch`` that only records each image's own sky level.

    CEERS runs skymatch only to record sky values in ``meta.background``; the sky
    is removed later, per exposure, by ``pedestal``. The recorded levels matter:
    ``outlier_detection`` subtracts them before building its median and adds them
    back to the blotted median. NIRCam detectors have different pedestals, so one
    level per exposure (``match``, or stock's one sky group per exposure) flagged
    20-78% of the sky pixels of some detectors as outliers in simulated data; each
    image's own ``local`` level flags ~0.01%.

    Every image (exposure and detector) is its own sky group here, whatever the
    library's groups: those stay stock (one per exposure, all its detectors), so
    that ``outlier_detection`` medians one drizzled image per exposure and
    ``resample`` counts each exposure's time once.
    Users can still set ``--steps.skymatch.subtract=True`` or another ``skymethod``.
    """

    spec = """
    skymethod = option('local', 'global', 'match', 'global+match', default='local')  # Sky computation method (CEERS: each image's own level)
    subtract = boolean(default=False)  # Subtract computed sky from image data (CEERS: False)
    """  # noqa: E501

    def process(self, input_models):
        """As stock skymatch, with one sky group per image (see the class docstring)."""
        library = self.prepare_output(input_models, open_models=False)
        if not isinstance(library, ModelLibrary):
            library = ModelLibrary(library, on_disk=not self.in_memory)
        stock_class = type(library)
        library.__class__ = _one_group_per_image_class(stock_class)
        try:
            return super().process(library)
        finally:
            library.__class__ = stock_class


def _one_group_per_image_class(library_class):
    """``library_class`` whose ``group_indices`` puts every member in its own group."""

    def group_indices(self):
        return {f"image{index:04d}": [index] for index in range(len(self))}

    return type(f"OneGroupPerImage{library_class.__name__}", (library_class,), {"group_indices": property(group_indices)})


class Image3Ceers(ParameterErrors, Image3Pipeline):
    """
    CEERS NIRCam Stage 3: align, match, flag outliers, remove pedestals, drizzle.

    Takes a Level-3 association of ONE filter (``jwst-ceers asn`` makes them) and
    writes ``<product>_i2d.fits``; with ``--steps.resample.*`` grid parameters (see
    ``jwst-ceers grid``) every filter of a pointing lands on the same pixel grid.
    """

    class_alias = "calwebb_image3_ceers"

    spec = """
    memory_budget_gb = float(min=0, max=4096, default=0)  # Peak memory to stay within (GB = 2^30 bytes): exposures are kept on disk between steps when the in-memory estimate exceeds it; 0 = no limit (in_memory decides)
    """  # noqa: E501

    step_defs = {
        **Image3Pipeline.step_defs,
        "tweakreg": CatalogTweakReg,
        "skymatch": SkyMatchRecordOnly,
        "outlier_detection": CeersOutlierDetection,
        "pedestal": PedestalSkySub,
        "varfill": VarianceHoleFill,
        "resample": CutoutResample,
    }

    get_stpipe_loggers = staticmethod(CeersStep.get_stpipe_loggers)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # stock steps' products (crf, i2d, ...) are written atomically too
        for name in self.step_defs:
            step = getattr(self, name)
            if not isinstance(step, CeersStep):
                make_saves_atomic(step)

    def _load_input_as_library(self, input_data, *, on_disk=None):
        """
        Load the association as a library grouped by exposure, as stock calwebb_image3.

        Members' own ``group_id`` entries are dropped (``jwst-ceers asn
        --group-by-detector`` writes per-detector ones for tweakreg, which groups by
        its own ``group_by``), so that the library groups the detectors of one
        exposure together: ``outlier_detection`` medians one drizzled image per
        exposure and ``resample`` counts each exposure's time once. ``skymatch``
        still records one sky per image (`SkyMatchRecordOnly`). ``on_disk``
        (default ``not in_memory``) comes from the memory plan.
        Association and member files are checked first (CeersFileError naming them).
        """
        check_input_files(input_data)
        if isinstance(input_data, Path):
            input_data = str(input_data)
        if isinstance(input_data, str) and Path(input_data).suffix.lower() == ".json":
            input_data = exposure_grouped_association(input_data)
        elif isinstance(input_data, dict):
            input_data = exposure_grouped_association(input_data)
        if on_disk is None:
            on_disk = not self.in_memory
        if isinstance(input_data, (dict, list, tuple)):
            # on disk, freed heap goes back after each exposure (else the process grows with them)
            return HeapTrimmingLibrary(input_data, asn_exptypes=["science"], on_disk=on_disk)
        return super()._load_input_as_library(input_data)

    def _memory_plan(self, input_data):
        """Estimate the peak memory from the input (logged) and choose in memory / on disk."""
        check_input_files(input_data)
        if isinstance(input_data, Path):
            input_data = str(input_data)
        if isinstance(input_data, str) and Path(input_data).suffix.lower() == ".json":
            input_data = exposure_grouped_association(input_data)
        threads = max(getattr(step, "threads", 1) for step in (self.tweakreg, self.pedestal, self.varfill))
        return plan_image3_memory(
            input_data, budget_gb=self.memory_budget_gb, in_memory=self.in_memory, threads=threads,
            resample=self.resample,
        )

    def _precache_references(self, input_file):
        """Prefetch reference files; offline, only source_catalog needs any, so skip it."""
        self._source_catalog_unavailable = None
        try:
            super()._precache_references(input_file)
        except (Exception, SystemExit) as exc:  # CRDS offline ends in SystemExit
            if self.source_catalog.skip:
                raise
            self._source_catalog_unavailable = f"{type(exc).__name__}: {exc}"

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

        plan = self._memory_plan(input_data)
        library = self._load_input_as_library(input_data, on_disk=not plan.in_memory)
        if self.output_file is None and "name" in library.asn["products"][0]:
            self.output_file = library.asn["products"][0]["name"]

        input_checks.check_members(self, library)  # one band, no duplicate, arrays, outputs; before any work
        with library:
            moving = is_moving_target(library.read_metadata(0))
        if len(library) > 1:
            if moving:
                library = self.assign_mtwcs.run(library)
            else:
                library = self.tweakreg.run(library)
            release_free_memory()
            library = self.skymatch.run(library)
            outliers_before = input_checks.count_outlier_flags(library)
            library = self.outlier_detection.run(library)
            input_checks.report_outlier_flagging(library, outliers_before)
        else:
            log.info("Single exposure: tweakreg, skymatch and outlier_detection not run")
        library = self.pedestal.run(library)
        library = self.varfill.run(library)

        release_free_memory()  # what the per-exposure threads freed, before the mosaic's arrays
        result = self.resample.run(library)
        del library
        if isinstance(result, datamodels.ImageModel):
            input_checks.check_mosaic_not_empty(self.resample, result, self.output_file)
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


def exposure_grouped_association(asn):
    """
    Return a copy of a Level-3 association whose members carry no ``group_id``.

    `~jwst.datamodels.ModelLibrary` then groups the members by exposure from
    their observation keywords (program ... exposure number), as stock
    calwebb_image3 does.

    Parameters
    ----------
    asn : str, Path or dict
        Association file or dictionary. Relative member names of a file are made
        absolute (relative to the file's folder) so the copy can be used anywhere.

    Returns
    -------
    dict
        The association; ``table_name`` is kept or set to the file name.
    """
    if isinstance(asn, dict):
        data, base = copy.deepcopy(asn), Path(".")
    else:
        path = Path(asn)
        data = dict(read_association(path))  # the one association reader (CeersFileError naming the file)
        data.setdefault("table_name", path.name)
        base = path.parent
    try:
        members = data["products"][0]["members"]
    except (KeyError, IndexError, TypeError) as exc:
        raise CeersFileError(f"{asn}: association has no products/members ({exc})") from exc
    for member in members:
        expname = Path(member["expname"])
        if not expname.is_absolute():
            member["expname"] = str((base / expname).resolve())
        member.pop("group_id", None)
    return data
