"""A Sersic model is kept only when it accounts for the bright region it was fitted to.

On a realistic 48-exposure pointing, fits to bright stars' spikes and halos and fits
that collapsed (I_e ~ 1e-12 sigma, or a needle a few px wide and 1e17 sigma bright) were
accepted as galaxy models. The fit now checks that the model's isophote at the search
threshold is at least a quarter of the bright region's size.
"""

import numpy as np
import pytest

from jwst_ceers.masking.fft_ops import block_mean
from jwst_ceers.mosaic_bkg.galaxy_models import fit_sersic_galaxy
from jwst_ceers.mosaic_bkg.sersic import SersicComponent, evaluate_components, isophote_radius, sersic_b

SHAPE = (1024, 1024)


def _blocks(image):
    blocks, fraction = block_mean(image, np.isfinite(image), factor=8)
    return blocks, fraction >= 0.5


@pytest.mark.parametrize("seed", range(5))
def test_no_model_of_pure_noise(seed):
    # the faint search's setting (flat profiles not credible); seed 4 gave a needle of
    # I_e 1.5e17 sigma, r_eff 4 px, axis ratio 0.09 before
    image = np.random.default_rng(seed).normal(0, 1.0, SHAPE).astype(np.float32)
    found = fit_sersic_galaxy(*_blocks(image), block=8, centre=(512.0, 512.0), radius=150.0, noise=1.0,
                              flat_is_credible=False, region_nsigma=0.5)
    assert found == []


@pytest.mark.parametrize("seed", range(3))
def test_no_model_of_diffraction_spikes(seed):
    # a star's spikes (1/r^2 lines at 0, 60, 90, 120 deg) with its core saturated (no
    # data): before, a flat halo of ~3 sigma and r_eff ~90 px was kept as a galaxy
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 1.0, SHAPE).astype(np.float32)
    yy, xx = np.indices(SHAPE, dtype=np.float32)
    r = np.hypot(xx - 512, yy - 512) + 5
    for angle in np.deg2rad([0, 60, 90, 120]):
        across = np.abs((xx - 512) * np.sin(angle) - (yy - 512) * np.cos(angle))
        image += (3e4 / r**2 * (across < 4)).astype(np.float32)
    image[r < 25] = np.nan
    found = fit_sersic_galaxy(*_blocks(image), block=8, centre=(512.0, 512.0), radius=150.0, noise=1.0)
    assert found == []


def test_real_galaxy_is_kept():
    rng = np.random.default_rng(7)
    truth = SersicComponent(y=505.0, x=515.0, intensity=30.0, r_eff=50.0, n=1.0, axis_ratio=0.8, theta=0.4)
    image = evaluate_components([truth], SHAPE) + rng.normal(0, 1.0, SHAPE).astype(np.float32)
    found = fit_sersic_galaxy(*_blocks(image), block=8, centre=(505.0, 515.0), radius=150.0, noise=1.0)
    assert len(found) == 1
    assert found[0].r_eff == pytest.approx(50.0, rel=0.15) and found[0].n == pytest.approx(1.0, abs=0.25)


@pytest.mark.parametrize("n", [0.5, 1.0, 4.0])
def test_isophote_radius_is_where_the_profile_equals_the_level(n):
    intensity, r_eff = 20.0, 30.0
    radius = isophote_radius(intensity, r_eff, n, 1.0)
    assert intensity * np.exp(-sersic_b(n) * ((radius / r_eff) ** (1 / n) - 1)) == pytest.approx(1.0, rel=1e-9)
    # fainter than the level even at the centre: no isophote
    assert isophote_radius(0.1 * np.exp(-sersic_b(n)), r_eff, n, 0.2) == 0.0
