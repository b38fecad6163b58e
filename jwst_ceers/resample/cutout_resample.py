"""jwst's ResampleImage with each input's variance work done on its output cut-out."""

import logging

import numpy as np
from drizzle.resample import Drizzle
from jwst.resample.resample import ResampleImage
from stcal.resample.utils import get_tmeasure, is_imaging_wcs

from jwst_ceers.resample.mosaic_rows import error_from_variances, finish_variance_in_place
from jwst_ceers.resample.variance_cutout import (
    CUTOUT_KERNELS,
    accumulate_variance,
    kernel_reach,
    output_cutout,
    pixmap_step,
    variance_weight,
)

__all__ = ["CutoutResampleImage"]

log = logging.getLogger(__name__)

#: ``compute_err`` while `CutoutResampleImage.finalize` runs when ERR comes from the
#: variances: truthy (jwst then stores ERR) but not "from_var" (stcal then skips its
#: whole-array ERR, already computed by blocks in ``finalize_resample_variance``).
_ERR_FROM_VARIANCE_BLOCKS = "from_var, by row blocks"


class CutoutResampleImage(ResampleImage):
    """
    `jwst.resample.resample.ResampleImage` whose variance resampling works on cut-outs.

    Same arguments and products as stock. For every input, the variance arrays are
    drizzled onto the output cut-out its pixel map can reach
    (`jwst_ceers.resample.variance_cutout.output_cutout`) and added into the
    cut-out views of the running sums with stock's arithmetic; outside that cut-out
    stock adds nothing (its drizzled variance is NaN there). Inputs that stock's
    method handles differently (the ``turbo`` kernel, a missing or mis-shaped
    variance array) go through stock's full-grid method.

    The mosaic's variances and ERR are finished by blocks of rows, in place
    (`jwst_ceers.resample.mosaic_rows`): same values, without stcal's whole-array
    temporaries.
    """

    def finalize(self):
        """As stock; ERR from the variances is computed by row blocks (same values)."""
        if not (self._enable_var and self._compute_err == "from_var"):
            super().finalize()
            return
        self._compute_err = _ERR_FROM_VARIANCE_BLOCKS
        try:
            super().finalize()
        finally:
            self._compute_err = "from_var"

    def finalize_resample_variance(self, output_model):
        """As stcal's, in place by row blocks; also ERR when it comes from the variances."""
        if self.pixel_scale_ratio is None:
            scaling = 1.0
        elif is_imaging_wcs(self.output_wcs):
            scaling = 1.0 / self.pixel_scale_ratio**2
        else:
            scaling = self.pixel_scale_ratio
        for name in self.variance_array_names:
            sums = self._variance_info.pop(name)
            variance = finish_variance_in_place(sums["wsum"], sums["wt"], scaling)
            output_model[name] = variance.astype(self.output_array_types[name], copy=False)
            del sums
        del self._variance_info
        self._finalized = True
        if self._compute_err == _ERR_FROM_VARIANCE_BLOCKS:
            names = self.variance_array_names if self.error_from_variances is None else self.error_from_variances
            output_model["err"] = error_from_variances([output_model[name] for name in names])

    def resample_variance_arrays(self, model, pixmap, pixel_scale_ratio, iscale, weight_map, xmin, xmax, ymin, ymax):
        """As stcal's ``Resample.resample_variance_arrays``, on the input's output cut-out."""
        names = self.variance_array_names
        if self.kernel not in CUTOUT_KERNELS or not all(self._check_var_array(model, name) for name in names):
            super().resample_variance_arrays(
                model, pixmap, pixel_scale_ratio, iscale, weight_map, xmin, xmax, ymin, ymax
            )
            return
        input_pixel = pixmap_step(pixmap)
        if not np.isfinite(input_pixel):  # no two adjacent mapped pixels sampled: stock decides
            super().resample_variance_arrays(
                model, pixmap, pixel_scale_ratio, iscale, weight_map, xmin, xmax, ymin, ymax
            )
            return
        reach = kernel_reach(
            self.kernel, pixfrac=self.pixfrac, pixel_scale_ratio=pixel_scale_ratio, input_pixel=input_pixel
        ) + input_pixel
        cutout = output_cutout(
            pixmap, xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax, out_shape=self.output_array_shape, reach=reach
        )
        if cutout is None:  # the input reaches no output pixel: stock adds nothing
            return
        rows, cols = cutout
        shifted = pixmap - np.array([cols.start, rows.start], dtype=pixmap.dtype)
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        log.debug("Variance cut-out [%d:%d, %d:%d] of %s", rows.start, rows.stop, cols.start, cols.stop,
                  self.output_array_shape)
        variances = {}
        for name in names:
            driz = Drizzle(out_shape=shape, kernel=self.kernel, fillval=np.nan, disable_ctx=True)
            driz.add_image(
                data=np.sqrt(model[name]),
                exptime=model["exposure_time"],
                pixmap=shifted,
                iscale=iscale,
                pixel_scale_ratio=pixel_scale_ratio,
                weight_map=weight_map,
                wht_scale=1.0,
                pixfrac=self.pixfrac,
                in_units="cps",
                xmin=xmin,
                xmax=xmax,
                ymin=ymin,
                ymax=ymax,
            )
            variances[name] = driz.out_img**2
            del driz
        del shifted
        if self.weight_type.startswith("ivm"):
            weight = variance_weight(self.weight_type, rnoise_variance=variances["var_rnoise"])
        else:
            weight = variance_weight(self.weight_type, exposure_time=get_tmeasure(model)[0], shape=shape)
        for name in names:
            info = self._variance_info[name]
            accumulate_variance(info["wsum"][rows, cols], info["wt"][rows, cols], variances[name], weight)
