"""CeersOutlierDetection: stock imaging outlier detection, same flags, less work."""

__all__ = ["CutoutStack", "detect_outliers_fast", "nanmedian_columns"]

from jwst_ceers.outlier.imaging import detect_outliers_fast
from jwst_ceers.outlier.median import CutoutStack, nanmedian_columns
