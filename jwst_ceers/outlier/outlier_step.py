"""CeersOutlierDetection: stock ``outlier_detection`` with a faster imaging path.

Same class spec (parameters) as ``jwst.outlier_detection.outlier_detection_step.
OutlierDetectionStep``, so ``--steps.outlier_detection.*`` and asdf overrides keep
working. Imaging data with ``resample_data=True`` go through
`jwst_ceers.outlier.imaging.detect_outliers_fast` (the same flags as stock); every
other mode (spectroscopy, IFU, TSO, coronagraphy, ``resample_data=False``, fewer
than two inputs) runs stock's code unchanged.
"""

import logging

from jwst.datamodels import ModelLibrary
from jwst.outlier_detection.outlier_detection_step import OutlierDetectionStep

from jwst_ceers._step import CeersStep
from jwst_ceers.outlier.imaging import detect_outliers_fast

__all__ = ["CeersOutlierDetection"]

log = logging.getLogger(__name__)


class CeersOutlierDetection(OutlierDetectionStep):
    """
    Flag outliers as stock ``outlier_detection``; imaging without stock's repeated work.

    In imaging mode each input's pixel map is computed once (stock: twice), each
    drizzled exposure group keeps only the part of the grid it covers, and the median
    is taken only where a group has data. DQ flags are those of stock.
    """

    class_alias = "ceers_outlier_detection"

    get_stpipe_loggers = staticmethod(CeersStep.get_stpipe_loggers)

    def process(self, input_data):
        """
        Flag outliers in the input exposures (DQ modified, as stock).

        Parameters
        ----------
        input_data : str, dict, ModelContainer or ModelLibrary
            The association, as stock ``outlier_detection`` takes it.

        Returns
        -------
        ModelLibrary or ModelContainer
            As stock.
        """
        mode = self._guess_mode(input_data)
        if mode != "imaging" or not self.resample_data:
            return super().process(input_data)
        library = self.prepare_output(input_data, open_models=False)
        if not isinstance(library, ModelLibrary):
            library = ModelLibrary(library, on_disk=not self.in_memory)
        if len(library) < 2:
            return super().process(library)

        log.info("Outlier Detection mode: imaging (jwst_ceers fast path)")
        self._get_asn_id(input_data)
        snr1, snr2 = (float(v) for v in self.snr.split())
        scale1, scale2 = (float(v) for v in self.scale.split())
        library = detect_outliers_fast(
            library,
            save_intermediate_results=self.save_intermediate_results,
            good_bits=self.good_bits,
            maskpt=self.maskpt,
            snr1=snr1,
            snr2=snr2,
            scale1=scale1,
            scale2=scale2,
            backg=self.backg,
            weight_type=self.weight_type,
            pixfrac=self.pixfrac,
            kernel=self.kernel,
            fillval=self.fillval,
            make_output_path=self.make_output_path,
            pixmap_stepsize=self.pixmap_stepsize,
            pixmap_order=self.pixmap_order,
        )
        return library  # meta.cal_step.outlier_detection recorded while each image was open
