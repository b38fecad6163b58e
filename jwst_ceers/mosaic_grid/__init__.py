"""The output grid shared by every filter of a pointing, and resample parameter files."""

__all__ = [
    "OutputGrid",
    "grid_from_reference_header",
    "grid_from_footprints",
    "sky_to_grid_pixels",
    "default_rotation",
    "exposure_footprint",
    "exposure_rotation_keywords",
    "read_reference_header",
    "pointing_grid",
    "grid_parameter_tree",
    "write_grid_parameter_file",
    "read_grid_parameter_file",
    "read_grid_source",
    "snap_grid_to_footprints",
]

from jwst_ceers.mosaic_grid.output_grid import (
    OutputGrid,
    default_rotation,
    grid_from_footprints,
    grid_from_reference_header,
    sky_to_grid_pixels,
)
from jwst_ceers.mosaic_grid.from_files import (
    exposure_footprint,
    exposure_rotation_keywords,
    pointing_grid,
    read_grid_source,
    read_reference_header,
    snap_grid_to_footprints,
)
from jwst_ceers.mosaic_grid.parameter_file import (
    grid_parameter_tree,
    read_grid_parameter_file,
    write_grid_parameter_file,
)
