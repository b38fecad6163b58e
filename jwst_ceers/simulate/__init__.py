"""Realistic synthetic NIRCam Level-2 data (full documentation below is being written)."""

from jwst_ceers.simulate.exposures import (
    ExposureTruth,
    SimulatedPointing,
    load_truth,
    simulate_exposure,
    simulate_pointing,
)
from jwst_ceers.simulate.nircam_geometry import FILTERS, NircamFilter, nircam_gwcs, nircam_wcsinfo
from jwst_ceers.simulate.sources import (
    load_source_table,
    make_source_population,
    render_sources,
    source_mag,
)

__all__ = [
    "ExposureTruth",
    "FILTERS",
    "NircamFilter",
    "SimulatedPointing",
    "load_source_table",
    "load_truth",
    "make_source_population",
    "nircam_gwcs",
    "nircam_wcsinfo",
    "render_sources",
    "simulate_exposure",
    "simulate_pointing",
    "source_mag",
]
