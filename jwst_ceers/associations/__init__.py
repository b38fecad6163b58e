"""Level-3 associations per (pointing or visit, filter), built from cal-file headers."""

__all__ = [
    "ExposureInfo",
    "AssociationGroup",
    "find_exposure_files",
    "read_exposure_info",
    "group_exposures",
    "build_association",
    "drop_duplicate_exposures",
    "write_associations",
]

from jwst_ceers.associations.level3 import (
    AssociationGroup,
    ExposureInfo,
    build_association,
    drop_duplicate_exposures,
    find_exposure_files,
    group_exposures,
    read_exposure_info,
    write_associations,
)
