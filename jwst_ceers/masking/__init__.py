"""
Tiered source masks shared by PedestalSkySub and MosaicBackground.

`tiered_source_mask` returns an integer bit mask (bit k = tier k, bit 0 left to the
caller's coverage mask); `MaskTier` describes one tier; `CEERS_NIRCAM_MOSAIC_TIERS` and
`CEERS_EXPOSURE_TIERS` are the shipped tier sets.
"""

from jwst_ceers.masking.background import coarse_background
from jwst_ceers.masking.fft_ops import dilate_disk, gaussian_smooth
from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked
from jwst_ceers.masking.tiers import (
    CEERS_EXPOSURE_TIERS,
    CEERS_HST_MOSAIC_TIERS,
    CEERS_NIRCAM_MOSAIC_TIERS,
    MaskTier,
    source_bits_to_bool,
    tier_mask_dtype,
    tiered_source_mask,
)

__all__ = [
    "MaskTier",
    "CEERS_NIRCAM_MOSAIC_TIERS",
    "CEERS_HST_MOSAIC_TIERS",
    "CEERS_EXPOSURE_TIERS",
    "tiered_source_mask",
    "tier_mask_dtype",
    "source_bits_to_bool",
    "coarse_background",
    "dilate_disk",
    "gaussian_smooth",
    "robust_location_scale",
    "sample_unmasked",
]
