"""MosaicBackground (alias ``ceers_mosaic_bkg``): tiered masks merged across filters,
DS9 hand edits and a fast 2-D background for the mosaics of one pointing."""

from jwst_ceers.mosaic_bkg.pointing_background import PointingBackground, pointing_background

__all__ = ["PointingBackground", "pointing_background"]
