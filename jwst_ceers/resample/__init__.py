"""Stock jwst resample with each input's variance work confined to the output it can touch.

`CutoutResample` (``ceers_resample``; the ``resample`` step of Image3Ceers) has the
parameters and products of jwst's ``ResampleStep``. Stock drizzles the three
variance arrays of every input onto full-size output arrays and weights them there;
here that work happens on the output cut-out the input's pixel map can reach
(`jwst_ceers.resample.variance_cutout`), so its cost follows the input, not the mosaic.
"""
