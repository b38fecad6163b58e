"""CatalogTweakReg: CEERS astrometric alignment (windowed-centroid catalogs, per-group absolute fits)."""

__all__ = ["find_sources", "load_reference_catalog", "align_group", "AlignmentImage", "FitParameters"]

from jwst_ceers.tweakreg.alignment import AlignmentImage, FitParameters, align_group
from jwst_ceers.tweakreg.reference_catalog import load_reference_catalog
from jwst_ceers.tweakreg.source_catalog import find_sources
