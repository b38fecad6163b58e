"""PedestalSkySub: per-exposure sky pedestal and VAR_RNOISE rescaling (alias ``ceers_pedestal``)."""

from jwst_ceers.pedestal.exposure_sky import ExposureSky, measure_exposure_sky
from jwst_ceers.pedestal.mask_files import exposure_root, find_mask_file, read_mask_file
from jwst_ceers.pedestal.rnoise_scale import block_sum_variance, rnoise_scale_factor
from jwst_ceers.pedestal.sky_pedestal import PedestalFit, fit_pedestal
from jwst_ceers.pedestal.sky_plane import SkyPlane, fit_sky_plane

__all__ = [
    "ExposureSky",
    "measure_exposure_sky",
    "exposure_root",
    "find_mask_file",
    "read_mask_file",
    "block_sum_variance",
    "rnoise_scale_factor",
    "PedestalFit",
    "fit_pedestal",
    "SkyPlane",
    "fit_sky_plane",
]
