"""Sersic models of large bright galaxies (jwst_ceers.mosaic_bkg.galaxy_models)."""

import numpy as np
import pytest
from astropy.io import fits

from jwst_ceers.masking.fft_ops import block_mean
from jwst_ceers.mosaic_bkg.galaxy_models import fit_sersic_galaxy, large_galaxy_models
from jwst_ceers.mosaic_bkg.sersic import SersicComponent, components_from_header, evaluate_components, header_cards

SHAPE = (1024, 1024)
TRUE = SersicComponent(y=530.3, x=470.8, intensity=1.5, r_eff=40.0, n=3.5, axis_ratio=0.7, theta=0.5)


def _field(seed, *, background=True):
    """One large Sersic galaxy + a tilted, curved background + white noise (sigma 0.05)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(SHAPE, dtype=np.float32)
    sky = np.float32(0.02) * (xx / 1024) + np.float32(0.03) * ((yy - 400) / 1024) ** 2 if background else 0
    image = evaluate_components([TRUE], SHAPE) + sky + rng.normal(0, 0.05, SHAPE).astype(np.float32)
    return image.astype(np.float32), 0.05


def test_evaluate_grids_match_strided_and_block_arrays():
    image = np.zeros((101, 67), dtype=np.float32)
    c = [TRUE]
    assert evaluate_components(c, image.shape, step=4).shape == image[::4, ::4].shape
    assert evaluate_components(c, image.shape, block=8).shape == block_mean(image, np.ones(image.shape, bool), factor=8)[0].shape
    full = evaluate_components(c, image.shape)
    assert np.allclose(evaluate_components(c, image.shape, step=4), full[::4, ::4])
    assert evaluate_components([], image.shape).sum() == 0
    # the profile: I_e at r_eff along the major axis
    on_axis = TRUE.evaluate(TRUE.y + TRUE.r_eff * np.sin(TRUE.theta), TRUE.x + TRUE.r_eff * np.cos(TRUE.theta))
    assert on_axis == pytest.approx(TRUE.intensity, rel=1e-4)


def test_header_cards_round_trip():
    header = fits.Header()
    header.update(header_cards([TRUE, TRUE]))
    back = components_from_header(header)
    assert len(back) == 2 and header["NGALMOD"] == 2
    assert back[0].x == pytest.approx(TRUE.x, abs=0.01) and back[0].n == pytest.approx(TRUE.n, abs=1e-3)
    assert components_from_header(fits.Header()) == []


def test_fit_recovers_injected_galaxy_on_curved_background():
    image, sigma = _field(1)
    blocks, fraction = block_mean(image, np.ones(SHAPE, bool), factor=8)
    found = fit_sersic_galaxy(blocks, fraction >= 0.5, block=8, centre=(500.0, 500.0), radius=150.0, noise=sigma)
    assert len(found) == 1
    c = found[0]
    assert np.hypot(c.x - TRUE.x, c.y - TRUE.y) < 2
    assert c.r_eff == pytest.approx(TRUE.r_eff, rel=0.08)
    assert c.n == pytest.approx(TRUE.n, abs=0.3)
    assert c.axis_ratio == pytest.approx(TRUE.axis_ratio, abs=0.05)
    # the wing that matters for the background: within 0.03 sigma beyond 150 px
    yy, xx = np.indices(SHAPE)
    far = np.hypot(yy - TRUE.y, xx - TRUE.x) > 150
    error = evaluate_components(found, SHAPE) - evaluate_components([TRUE], SHAPE)
    assert np.max(np.abs(error[far])) < 0.03 * sigma


def test_large_galaxy_models_find_and_fit_and_ignore_empty_fields():
    image, sigma = _field(2)
    exclude = evaluate_components([TRUE], SHAPE) > 3 * sigma  # a mask of the core, as tiers give
    found = large_galaxy_models(image, exclude)
    assert len(found.components) == 1 and found.components[0].n == pytest.approx(TRUE.n, abs=0.3)
    assert found.unmodelled == []
    empty = np.random.default_rng(3).normal(0, sigma, SHAPE).astype(np.float32)
    nothing = large_galaxy_models(empty, np.zeros(SHAPE, bool))
    assert nothing.components == [] and nothing.unmodelled == []


def test_fit_background_subtracts_components_like_explicit_subtraction():
    from jwst_ceers.mosaic_bkg.background_fit import fit_background

    image, sigma = _field(4)
    exclude = evaluate_components([TRUE], SHAPE) > 3 * sigma
    model = evaluate_components([TRUE], SHAPE)
    with_components, _ = fit_background(image, exclude, box_size=128, components=[TRUE])
    explicit, _ = fit_background(image - model, exclude, box_size=128)
    # the box samples are 2 x 2 block means and the model is taken at the blocks' centres
    # (measured: at most 0.002 sigma from subtracting the full-resolution model first)
    assert np.allclose(with_components, explicit, atol=0.005 * sigma)
    # and it matters: without the model the wing biases the fit near the galaxy
    plain, _ = fit_background(image, exclude, box_size=128)
    assert np.max(np.abs(plain - explicit)) > 0.2 * sigma
