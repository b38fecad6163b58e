"""Imaging outlier detection as stock jwst does it, without stock's repeated full-grid work.

Stock ``jwst.outlier_detection.imaging.detect_outliers`` (resample_data=True) does, per
exposure group, a drizzle of its members onto the full output grid, masks pixels under
``maskpt`` x the clipped mean weight, stacks the groups and takes the NaN-median of
every grid pixel; then, per input, it blots the median back and flags outliers.
Measured on 48 x 1024^2 NIRCam inputs (6 groups, 35 Mpix grid): 56% of its time is
``calc_pixmap`` (the same input -> grid pixel map is computed twice per input, for the
drizzle and again for the blot) and 23% the median (over a stack of full grids, 20 of
its 35 Mpix covered by no group).

Here:

- each input's pixel map is computed once (same call as stock) and kept in a
  temporary file for the blot;
- groups are drizzled as stock does (full grid, same drizzle call, bit-identical: a
  drizzle onto a cut-out of the grid, with shifted pixel maps, differs by ~1e-10),
  then only the group's drizzled pixels are kept (`jwst_ceers.outlier.median.CutoutStack`,
  in memory or on disk as the library);
- the median is computed only where a group has data, bit-identical to
  ``np.nanmedian``;
- blot and flagging are stock's (``drizzle.resample.blot_image`` and
  ``jwst.outlier_detection.utils._flag_resampled_model_crs``).

The flagged pixels are those of stock (tests compare DQ arrays bit for bit).
"""

import logging
import tempfile
from contextlib import closing
from functools import partial
from pathlib import Path

import numpy as np
from drizzle.resample import Drizzle, blot_image
from jwst.outlier_detection import _fileio
from jwst.outlier_detection.utils import _flag_resampled_model_crs
from jwst.resample import resample as jwst_resample
from jwst.resample.resample_utils import resampled_wcs_from_models
from stcal.outlier_detection.utils import compute_weight_threshold
from stcal.resample.utils import build_driz_weight, calc_pixmap, resample_range
from stdatamodels.jwst import datamodels

from jwst_ceers.outlier.median import CutoutStack, finite_bounding_box

__all__ = ["PixmapStore", "detect_outliers_fast", "drizzle_group"]

log = logging.getLogger(__name__)


class PixmapStore:
    """
    Input -> output-grid pixel maps kept in temporary files between drizzle and blot.

    A 1024^2 input's map is 16 MB (float64 x, y); keeping 48 of them in memory would
    add 0.8 GB to the peak, re-computing them costs ~1 s each.

    Parameters
    ----------
    tempdir : str or Path, optional
        Parent folder of the temporary folder (default: the system's temporary folder).
    """

    def __init__(self, *, tempdir=None):
        self._dir = tempfile.TemporaryDirectory(prefix="ceers_pixmaps_", dir=tempdir)

    def _path(self, index):
        return Path(self._dir.name) / f"pixmap{index:05d}.npy"

    def put(self, index, pixmap):
        """Store the pixel map of library member ``index``."""
        np.save(self._path(index), pixmap, allow_pickle=False)

    def get(self, index):
        """The pixel map of library member ``index`` (None if never stored)."""
        path = self._path(index)
        return np.load(path, allow_pickle=False) if path.exists() else None

    def cleanup(self):
        """Remove the temporary files."""
        self._dir.cleanup()


def _grid_pixmap(model, output_wcs, *, pixmap_stepsize, pixmap_order):
    """Stock's pixel map call (stcal ``Resample.add_model`` and ``gwcs_blot`` make the same)."""
    return calc_pixmap(model.meta.wcs, output_wcs, model.data.shape, stepsize=pixmap_stepsize, order=pixmap_order)


def drizzle_group(models, *, output_wcs, pixel_scale_ratio, weight_type, good_bits, pixfrac, kernel, fillval,
                  pixmap_stepsize=1, pixmap_order=1, pixmaps=None):
    """
    Drizzle models onto the full output grid exactly as stock ``ResampleImage.resample_group``.

    Same calls as stcal ``Resample.add_model`` without variance, context or error
    arrays: sky level subtracted when recorded but not subtracted, ``build_driz_weight``
    weights, the WCS bounding box as input range, intensity scale 1 (imaging).

    Parameters
    ----------
    models : iterable of (int, ImageModel)
        Library index and model of each member of the group (consumed one at a time:
        a library on disk then holds one exposure in memory, as stock).
    output_wcs : gwcs.WCS
        The output grid (its ``array_shape`` set).
    pixel_scale_ratio : float
        Output / input pixel scale.
    weight_type, good_bits, pixfrac, kernel, fillval
        As the step's parameters.
    pixmap_stepsize, pixmap_order : float, int
        Pixel map interpolation, as the step's parameters.
    pixmaps : PixmapStore, optional
        Where to keep each member's pixel map for the blot.

    Returns
    -------
    data, weight : ndarray
        float32 drizzled image (``fillval`` where nothing landed) and weight.
    """
    driz = Drizzle(kernel=kernel, fillval=fillval, out_shape=tuple(output_wcs.array_shape), disable_ctx=True)
    for index, model in models:
        pixmap = _grid_pixmap(model, output_wcs, pixmap_stepsize=pixmap_stepsize, pixmap_order=pixmap_order)
        model_dict = jwst_resample.input_jwst_model_to_dict(
            model, weight_type=weight_type, enable_var=False, compute_err=None
        )
        weight = build_driz_weight(
            model_dict, weight_type=weight_type, good_bits=good_bits, flag_name_map=datamodels.dqflags.pixel
        )
        data = model.data
        level = model.meta.background.level
        if not model.meta.background.subtracted and level is not None:
            data = data - level
        xmin, xmax, ymin, ymax = resample_range(data.shape, model.meta.wcs.bounding_box)
        driz.add_image(
            data, exptime=model.meta.exposure.exposure_time, pixmap=pixmap, pixel_scale_ratio=pixel_scale_ratio,
            iscale=1.0, weight_map=weight, wht_scale=1.0, pixfrac=pixfrac, in_units="cps",
            xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax,
        )
        if pixmaps is not None:
            pixmaps.put(index, pixmap)
        del pixmap, weight, data, model
    return driz.out_img, driz.out_wht


def _borrowed_one_at_a_time(library, indices):
    """Yield (index, model) of ``indices``, each shelved (unmodified) before the next is borrowed."""
    for index in indices:
        model = library.borrow(index)
        try:
            yield index, model
        finally:
            library.shelve(model, index, modify=False)
            del model


def _mask_low_weight(data, weight, maskpt):
    """Stock's masking: NaN where the weight is under ``maskpt`` x its clipped mean (in place)."""
    data[weight < compute_weight_threshold(weight, maskpt)] = np.nan
    return data


def detect_outliers_fast(
    input_models,
    *,
    save_intermediate_results,
    good_bits,
    maskpt,
    snr1,
    snr2,
    scale1,
    scale2,
    backg,
    weight_type,
    pixfrac,
    kernel,
    fillval,
    make_output_path,
    pixmap_stepsize=1,
    pixmap_order=1,
    tempdir=None,
):
    """
    Flag outliers in imaging data (resample_data=True) as stock, with less work.

    Parameters are those of ``jwst.outlier_detection.imaging.detect_outliers``
    (``input_models`` must be a ModelLibrary of two or more members); ``tempdir``
    is the parent folder of the temporary pixel maps and on-disk cut-outs.

    Returns
    -------
    ModelLibrary
        ``input_models``, with outliers flagged in DQ (DO_NOT_USE | OUTLIER) and NaN
        in the data, error and variance arrays, as stock, and
        ``meta.cal_step.outlier_detection = "COMPLETE"``.
    """
    in_memory = not input_models.on_disk
    indices_by_group = list(input_models.group_indices.values())
    output_wcs, _, _, pixel_scale_ratio = resampled_wcs_from_models(input_models)  # as stock ResampleImage
    grid_shape = tuple(output_wcs.array_shape)
    log.info("Outlier detection grid %s, %d exposure group(s)", grid_shape, len(indices_by_group))

    stock_resample = None
    if save_intermediate_results:
        # the saved drizzled group models are stock's own (same metadata as stock's products)
        stock_resample = jwst_resample.ResampleImage(
            input_models, blendheaders=False, weight_type=weight_type, pixfrac=pixfrac, kernel=kernel,
            fillval=fillval, good_bits=good_bits, enable_ctx=False, enable_var=False, compute_err=None,
            pixmap_order=pixmap_order, pixmap_stepsize=pixmap_stepsize,
        )
        median_model = datamodels.ImageModel(None)

    pixmaps = PixmapStore(tempdir=tempdir)
    try:
        stack = CutoutStack(grid_shape, len(indices_by_group), in_memory=in_memory, tempdir=tempdir)
        try:
            for group_number, indices in enumerate(indices_by_group):
                if stock_resample is not None:
                    drizzled = stock_resample.resample_group(indices)
                    _fileio.save_drizzled(drizzled, make_output_path)
                    if group_number == 0:
                        median_model.update(drizzled)
                        median_model.meta.wcs = output_wcs
                    data, weight = drizzled.data, drizzled.wht
                    del drizzled
                else:
                    with input_models, closing(_borrowed_one_at_a_time(input_models, indices)) as members:
                        data, weight = drizzle_group(
                            members, output_wcs=output_wcs, pixel_scale_ratio=pixel_scale_ratio,
                            weight_type=weight_type, good_bits=good_bits, pixfrac=pixfrac, kernel=kernel,
                            fillval=fillval, pixmap_stepsize=pixmap_stepsize, pixmap_order=pixmap_order,
                            pixmaps=pixmaps,
                        )
                data = _mask_low_weight(data, weight, maskpt)
                del weight
                # every pixel outside the box is NaN (a numeric fillval that survived the
                # weight mask lies inside it), so the median sees what stock's stack holds
                stack.add(data, finite_bounding_box(data))
                del data
            median_data = stack.median()
        finally:
            stack.cleanup()

        if save_intermediate_results:
            median_model.data = median_data
            _fileio.save_median(median_model, _partial_without_asn(make_output_path))

        with input_models:
            for index, image in enumerate(input_models):
                pixmap = pixmaps.get(index)
                if pixmap is None:  # drizzled by stock (save_intermediate_results)
                    pixmap = _grid_pixmap(image, output_wcs, pixmap_stepsize=pixmap_stepsize,
                                          pixmap_order=pixmap_order)
                blot = _blot(median_data, pixmap, image.data.shape)
                del pixmap
                if save_intermediate_results:
                    _fileio.save_blot(image, blot, None, make_output_path)
                _flag_resampled_model_crs(image, blot, None, snr1, snr2, scale1, scale2, backg)
                del blot
                # the step status stock records in a pass of its own (on disk: one more
                # read and write of every exposure), recorded while the image is open
                image.meta.cal_step.outlier_detection = "COMPLETE"
                input_models.shelve(image, index, modify=True)
    finally:
        pixmaps.cleanup()
    return input_models


def _blot(median_data, pixmap, shape):
    """Stock ``gwcs_blot`` on a pixel map already computed (NaN fill, linear interpolation)."""
    log.info("Blotting %s <-- %s", shape, median_data.shape)
    blot = np.full(shape, np.nan, dtype=np.float32)
    pixmap[np.isnan(pixmap)] = -1  # as stock: tblot cannot take NaN in the pixel map
    blot_image(data=median_data, pixmap=pixmap, out_img=blot, fillval=np.nan, iscale=1.0, interp="linear")
    return blot


def _partial_without_asn(make_output_path):
    """Stock saves the median with ``asn_id=None`` (the drizzled models carry it)."""
    return partial(make_output_path, asn_id=None)
