"""Steps registered with stpipe through the ``stpipe.steps`` entry point.

This module must stay import-light: stpipe loads it for every ``strun`` call,
and if it raises, stpipe only warns and every alias below silently vanishes.
"""

__all__ = ["STEPS", "get_steps"]

# (fully qualified class path, unique prefixed alias, is_pipeline)
STEPS = (
    ("jwst_ceers.tweakreg.tweakreg_step.CatalogTweakReg", "ceers_tweakreg", False),
    ("jwst_ceers.pedestal.pedestal_step.PedestalSkySub", "ceers_pedestal", False),
    ("jwst_ceers.varfill.varfill_step.VarianceHoleFill", "ceers_varfill", False),
    ("jwst_ceers.outlier.outlier_step.CeersOutlierDetection", "ceers_outlier_detection", False),
    ("jwst_ceers.mosaic_bkg.mosaic_bkg_step.MosaicBackground", "ceers_mosaic_bkg", False),
    ("jwst_ceers.resample.resample_step.CutoutResample", "ceers_resample", False),
    ("jwst_ceers.pipeline.image3_ceers.Image3Ceers", "calwebb_image3_ceers", True),
)


def get_steps():
    """
    Return the steps and pipelines this package provides.

    Returns
    -------
    list of tuple
        ``(class path, alias, is_pipeline)`` for each step, as stpipe expects.
    """
    return list(STEPS)
