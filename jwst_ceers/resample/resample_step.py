"""CutoutResample: stock ResampleStep whose variance drizzling follows each input's footprint."""

import logging

from jwst.datamodels import ImageModel, ModelContainer, ModelLibrary
from jwst.lib.pipe_utils import match_nans_and_flags
from jwst.resample.resample_step import ResampleStep
from stdatamodels import filetype

from jwst_ceers._step import CeersStep, ParameterErrors, save_model_atomically
from jwst_ceers.resample.cutout_resample import CutoutResampleImage

__all__ = ["CutoutResample"]

log = logging.getLogger(__name__)


class CutoutResample(ParameterErrors, ResampleStep):
    """
    jwst's ``ResampleStep`` (same spec, parameters and products), faster on big mosaics.

    Stock drizzles every input's three variance arrays onto full-size output arrays
    and weights them there, so its cost and transient memory grow with (mosaic size
    x number of inputs). Here that work runs on the output cut-out each input can
    reach (`jwst_ceers.resample.cutout_resample.CutoutResampleImage`); the products
    equal stock's (tests/test_resample_cutout.py). ``single=True`` (outlier
    detection's per-group drizzle) is stock's own code path.

    Inside Image3Ceers (step name ``resample``), parameter files that name
    ``jwst.resample.resample_step.ResampleStep`` for that step still configure it
    (stpipe does not check a pipeline step's ``class``), so the files users and
    ``jwst-ceers grid`` already write keep working. Products are written atomically;
    standalone ones are named ``<root>_resample.fits``.
    """

    class_alias = "ceers_resample"

    get_stpipe_loggers = staticmethod(CeersStep.get_stpipe_loggers)
    default_suffix = CeersStep.default_suffix  # standalone products: <name>_resample.fits

    def process(self, input_data):
        """
        Resample onto one grid, as stock ``ResampleStep.process`` (jwst 3.0).

        Parameters
        ----------
        input_data : str, ImageModel, dict, list or ModelLibrary
            One image, an association or a library of images.

        Returns
        -------
        ImageModel or ModelLibrary
            The mosaic (a library of per-group mosaics with ``single=True``).
        """
        if self.single:
            return super().process(input_data)
        input_model = self.prepare_output(input_data, open_models=False)
        blendheaders = self.blendheaders
        if isinstance(input_model, ModelLibrary):
            input_models = input_model
        elif isinstance(input_model, ImageModel) or (
            isinstance(input_model, str) and filetype.check(input_model) in ["fits", "asdf"]
        ):
            input_models = ModelLibrary([input_model], on_disk=not self.in_memory)
            blendheaders = False  # as stock: nothing to blend for one image
        elif isinstance(input_model, (str, dict, list, ModelContainer)):
            input_models = ModelLibrary(input_model, on_disk=not self.in_memory)
        else:
            raise TypeError(f"Input {input_data} is not a 2D image.")
        try:
            output = input_models.asn["products"][0]["name"]
        except KeyError:
            output = None

        with input_models:
            example = input_models.borrow(0)
            shape = example.data.shape
            input_models.shelve(example, 0, modify=False)
            if len(shape) != 2:
                raise RuntimeError(f"Input {example} is not a 2D image.")
            del example
            for model in input_models:  # consistent NaN and DO_NOT_USE values, as stock
                match_nans_and_flags(model)
                input_models.shelve(model)

        kwargs = self.get_drizpars()
        kwargs["blendheaders"] = blendheaders
        enable_var = bool(self.enable_err)
        resampler = CutoutResampleImage(
            input_models,
            output=output,
            enable_ctx=self.enable_ctx,
            enable_var=enable_var,
            report_var=self.report_var and enable_var,
            compute_err="from_var" if enable_var else None,
            **kwargs,
        )
        return resampler.resample_many_to_one()

    def save_model(self, model, suffix=None, idx=None, output_file=None, force=False, **components):
        """Save as stpipe does (same names), writing single models atomically."""
        if isinstance(model, ImageModel):
            return save_model_atomically(
                self, model, suffix=suffix, idx=idx, output_file=output_file, force=force, **components
            )
        return super().save_model(model, suffix=suffix, idx=idx, output_file=output_file, force=force, **components)
