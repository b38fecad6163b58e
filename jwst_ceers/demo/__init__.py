"""The ``jwst-ceers demo`` chain and the quality measures it reports."""

__all__ = ["DEFAULT_REALISM", "DEFAULT_SIZE"]

# Detector cut-out size of the default demo (pixels): the whole chain in about 2 minutes
# on 2 cores; 2048 = full frames (about 4x longer). Kept here, import-free, so that
# ``jwst-ceers --help`` shows it without importing numpy.
DEFAULT_SIZE = 1024

# Simulator preset of the demo (a name in jwst_ceers.simulate.REALISM_PRESETS): every NIRCam
# artefact the simulator knows (1/f striping, spiked PSFs, saturated stars, snowballs, wisps,
# persistence, flat structure), at its CEERS level; "none" = the plain simulator.
DEFAULT_REALISM = "realistic"
