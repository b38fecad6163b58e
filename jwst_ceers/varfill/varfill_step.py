"""The VarianceHoleFill step (alias ``ceers_varfill``)."""

import logging

from jwst_ceers._step import ExposureStep, set_array_in_place
from jwst_ceers.errors import CeersParameterError
from jwst_ceers.varfill.hole_fill import fill_zero_variance

__all__ = ["VarianceHoleFill"]

log = logging.getLogger(__name__)

VARIANCE_ARRAYS = ("var_rnoise", "var_poisson", "var_flat")


class VarianceHoleFill(ExposureStep):
    """
    Set variance pixels that are exactly zero to +inf, exposure by exposure.

    Stock ``resample`` with ``weight_type='ivm'`` weights each input pixel by
    1/VAR_RNOISE. Pixels with zero variance (bad pixels the calibration left
    unflagged) otherwise end up as outliers or leave ERR = 0 holes in the mosaic.
    Only the listed variance arrays change; SCI, ERR and DQ are untouched.
    """

    class_alias = "ceers_varfill"

    spec = """
    arrays = string_list(min=1, max=3, default=list('var_rnoise', 'var_poisson', 'var_flat'))  # Variance arrays to fill: any of var_rnoise, var_poisson, var_flat
    """  # noqa: E501

    def process_exposure(self, model):
        """Fill the zero-variance pixels of one exposure; see the class docstring."""
        unknown = sorted(set(self.arrays) - set(VARIANCE_ARRAYS))
        if unknown:
            raise CeersParameterError(
                f"ceers_varfill: arrays={list(self.arrays)} has unknown name(s) {unknown}; "
                f"allowed: {', '.join(VARIANCE_ARRAYS)}"
            )
        name = model.meta.filename or "model"
        for array_name in self.arrays:
            if not model.hasattr(array_name) or getattr(model, array_name) is None:
                log.warning("%s: has no %s array; nothing to fill there", name, array_name)
                continue
            filled, nfilled = fill_zero_variance(getattr(model, array_name))
            set_array_in_place(model, array_name, filled)
            log.info("%s: %s: %d zero-variance pixels set to +inf", name, array_name, nfilled)
        return "COMPLETE"
