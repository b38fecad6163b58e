"""Realistic synthetic NIRCam Level-2 data (work in progress; see the module docstrings)."""

from jwst_ceers.simulate.sources import (
    load_source_table,
    make_source_population,
    render_sources,
    source_mag,
)

__all__ = ["load_source_table", "make_source_population", "render_sources", "source_mag"]
