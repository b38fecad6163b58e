"""The demo's quality measures: astrometry in the mosaic is measured on unsaturated stars only."""

from types import SimpleNamespace

import numpy as np
from stdatamodels.jwst.datamodels import dqflags

from jwst_ceers.demo.quality import saturated_in_any


class ShiftWCS:
    """Pixel = (RA, Dec) in arcsec minus an offset: enough for a pixel lookup."""

    def __init__(self, dx):
        self.dx = dx

    def world_to_pixel_values(self, ra, dec):
        return np.asarray(ra) * 3600.0 - self.dx, np.asarray(dec) * 3600.0


def exposure(dx, saturated_pixels):
    dq = np.zeros((50, 60), dtype=np.uint32)
    for x, y in saturated_pixels:
        dq[y, x] |= dqflags.pixel["SATURATED"]
    return SimpleNamespace(dq=dq, meta=SimpleNamespace(wcs=ShiftWCS(dx)))


def test_a_star_saturated_in_one_dither_is_left_out():
    ra = np.array([20.0, 40.0, 30.0, 500.0]) / 3600.0  # the last is off every exposure
    dec = np.array([10.0, 30.0, 25.0, 10.0]) / 3600.0
    first = exposure(0.0, [(40, 30)])  # star 1's core
    second = exposure(5.0, [(17, 10)])  # 2 px from star 0 in this dither
    third = exposure(0.0, [(35, 25)])  # 5 px from star 2: outside the 3 px box
    hit = saturated_in_any(ra, dec, [first, second, third])
    assert hit.tolist() == [True, True, False, False]
    # a generator of exposures (one open at a time) works the same
    assert saturated_in_any(ra, dec, (e for e in [first, second, third])).tolist() == hit.tolist()
    assert not saturated_in_any(ra, dec, []).any()
