"""CEERS's own configuration files converted to jwst_ceers parameter files.

`convert_ceers_cfg` reads a CEERS alignment cfg (INI, one section per visit) or
``mosaic_background.cfg`` and returns the asdf parameter files with the same meaning,
plus one note per key that has no equivalent (and why). `tier_nsigma` holds the
conversion of CEERS's unsmoothed-noise tier thresholds.
"""

from jwst_ceers.ceers_import.ceers_cfg import (
    ImportedFile,
    KeyNote,
    convert_ceers_cfg,
    read_ceers_cfg,
    write_imported,
)
from jwst_ceers.ceers_import.tier_nsigma import (
    measured_smoothing_gain,
    smoothed_nsigma,
    tier_threshold,
    white_noise_smoothing_gain,
)

__all__ = [
    "ImportedFile",
    "KeyNote",
    "convert_ceers_cfg",
    "read_ceers_cfg",
    "write_imported",
    "measured_smoothing_gain",
    "smoothed_nsigma",
    "tier_threshold",
    "white_noise_smoothing_gain",
]
