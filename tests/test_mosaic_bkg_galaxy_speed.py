"""The faster galaxy-model code of MosaicBackground gives the results of the plain code (issue 16).

Speed is measured in benchmarks/profile_mosaic_bkg.py and bench_mosaic_bkg.py; these
tests check the optimised pieces against straightforward or injected truth: the
analytic Jacobian of the Sersic fit against finite differences, the banded evaluation
of the models against the full grid, the shared inputs of the repeated searches
against a fresh search, and the faint search's rejection of flat-topped fits.
"""

import numpy as np
import pytest
from scipy.optimize._numdiff import approx_derivative

from jwst_ceers.masking.fft_ops import block_mean, block_means
from jwst_ceers.mosaic_bkg.galaxy_models import (
    _model_and_jacobian,
    _model_values,
    fit_sersic_galaxy,
)
from jwst_ceers.mosaic_bkg.large_sources import find_large_bright_sources, search_inputs
from jwst_ceers.mosaic_bkg.sersic import SersicComponent, evaluate_components, sersic_b


@pytest.mark.parametrize(
    "params",
    [
        (200.3, 190.1, 0.5, np.log(30.0), 2.3, 0.2, -0.3),
        (210.0, 205.0, -1.0, np.log(80.0), 4.1, -0.5, 0.1),
        (195.0, 201.0, 0.0, np.log(12.0), 0.7, 0.0, 0.4),
        (200.0, 200.0, 0.0, np.log(20.0), 1.0, 0.96, 0.1),  # e clipped at 0.95: q fixed
    ],
)
def test_analytic_jacobian_matches_finite_differences(params):
    rng = np.random.default_rng(11)
    rows, cols = rng.uniform(0, 400, 600), rng.uniform(0, 400, 600)
    params = np.array(params, dtype=float)
    model, jac = _model_and_jacobian(params, rows, cols)
    assert np.allclose(model, _model_values(params, rows, cols), rtol=1e-12, atol=0)
    numeric = approx_derivative(lambda p: _model_values(p, rows, cols), params, method="3-point")
    scale = np.abs(numeric).max(axis=0)
    assert np.all(np.abs(jac - numeric).max(axis=0) <= 1e-5 * scale)


def _brute_force(components, rows, cols):
    out = np.zeros((rows.size, cols.size), dtype=np.float32)
    for c in components:
        out += c.evaluate(rows[:, None], cols[None, :])
    return out


def test_banded_evaluation_equals_the_full_grid():
    rng = np.random.default_rng(12)
    components = [
        SersicComponent(
            y=float(rng.uniform(-60, 660)), x=float(rng.uniform(-60, 860)), intensity=float(rng.uniform(0.1, 3)),
            r_eff=float(rng.uniform(4, 40)), n=float(rng.uniform(0.5, 6)), axis_ratio=float(rng.uniform(0.08, 1)),
            theta=float(rng.uniform(-np.pi, np.pi)), r_max=float(rng.uniform(15, 500)),
        )
        for _ in range(40)
    ]
    shape = (600, 800)
    grids = {
        "full": (np.arange(600, dtype=np.float32), np.arange(800, dtype=np.float32), {}),
        "strided": (np.arange(5, 605, 3, dtype=np.float32), np.arange(7, 807, 3, dtype=np.float32),
                    {"step": 3, "origin": (5, 7)}),
        "blocks": ((np.arange(75, dtype=np.float32) + 0.5) * 8 - 0.5, (np.arange(100, dtype=np.float32) + 0.5) * 8 - 0.5,
                   {"block": 8}),
    }
    for rows, cols, grid in grids.values():
        banded = evaluate_components(components, shape, **grid)
        full = _brute_force(components, rows, cols)
        assert np.array_equal(banded, full)  # same values, same order of summation
        assert np.count_nonzero(full) > 0.2 * full.size


def test_evaluate_equals_the_float64_profile():
    c = SersicComponent(y=300.4, x=250.2, intensity=2.5, r_eff=35.0, n=3.2, axis_ratio=0.55, theta=0.8, r_max=400.0)
    rows, cols = np.indices((600, 500), dtype=np.float64)
    dy, dx = rows - c.y, cols - c.x
    u = dx * np.cos(c.theta) + dy * np.sin(c.theta)
    v = (dy * np.cos(c.theta) - dx * np.sin(c.theta)) / c.axis_ratio
    radius = np.hypot(u, v)
    b = float(sersic_b(c.n))
    expected = c.intensity * np.exp(-b * ((radius / c.r_eff) ** (1 / c.n) - 1))
    expected[radius > c.r_max] = 0
    values = c.evaluate(rows.astype(np.float32), cols.astype(np.float32))
    assert values.dtype == np.float32
    inside = radius < c.r_max - 1  # away from the truncation edge (float32 radius)
    assert np.allclose(values[inside], expected[inside], rtol=2e-5, atol=0)
    assert np.all(values[radius > c.r_max + 1] == 0)


def test_repeated_searches_with_shared_inputs_equal_fresh_searches():
    rng = np.random.default_rng(13)
    shape = (1024, 1024)
    galaxies = [
        SersicComponent(y=300.0, x=320.0, intensity=1.2, r_eff=45.0, n=2.5, axis_ratio=0.8, theta=0.3),
        SersicComponent(y=700.0, x=690.0, intensity=1.5, r_eff=50.0, n=2.0, axis_ratio=0.7, theta=-0.6),
    ]
    image = evaluate_components(galaxies, shape) + rng.normal(0, 0.05, shape).astype(np.float32)
    nodata = np.zeros(shape, dtype=bool)
    nodata[:, :40] = True
    image[nodata] = np.nan
    exclude = (evaluate_components(galaxies, shape) > 0.15) | nodata
    prepared = search_inputs(image, exclude, nodata=nodata, block=8)
    for components in ([], galaxies[:1]):
        fresh = find_large_bright_sources(image, exclude, nodata=nodata, components=components)
        shared = find_large_bright_sources(image, exclude, components=components, prepared=prepared)
        assert shared == fresh
    assert len(find_large_bright_sources(image, exclude, prepared=prepared)) == 2
    assert len(find_large_bright_sources(image, exclude, components=galaxies[:1], prepared=prepared)) == 1


def test_flat_topped_fit_is_dropped_where_asked():
    # a flat-topped bump (index 0.15, below the fit's bound 0.3): the fit ends at the
    # bound; the faint search drops such fits (a background bump there: robustness
    # bumps/cluster_core seed 5), the bright search keeps them (seed 2)
    rng = np.random.default_rng(14)
    shape = (1024, 1024)
    bump = SersicComponent(y=510.0, x=500.0, intensity=0.15, r_eff=150.0, n=0.15, axis_ratio=0.8, theta=0.2)
    image = evaluate_components([bump], shape) + rng.normal(0, 0.05, shape).astype(np.float32)
    blocks, fraction = block_mean(image, np.ones(shape, bool), factor=8)
    options = {"block": 8, "centre": (510.0, 500.0), "radius": 140.0, "noise": 0.05}
    kept = fit_sersic_galaxy(blocks, fraction >= 0.5, **options)
    assert len(kept) == 1 and kept[0].n == pytest.approx(0.3, abs=1e-3)
    assert fit_sersic_galaxy(blocks, fraction >= 0.5, flat_is_credible=False, **options) == []


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("factors", [(2, 8), (1, 2, 8), (2, 16, 32), (4,)])
def test_block_means_of_several_factors_equal_separate_block_means(factors, dtype, threads):
    rng = np.random.default_rng(15)
    shape = (2003, 331)  # odd sides: padded blocks at the edges; several row chunks
    image = rng.normal(0, 1, shape).astype(dtype)
    image[rng.random(shape) < 0.01] = np.nan  # invalid pixels: zeroed before the sums
    valid = (rng.random(shape) > 0.3) & np.isfinite(image)
    pyramid = block_means(image, valid, factors=factors, threads=threads)
    assert sorted(pyramid) == sorted(factors)
    for factor in factors:
        mean, fraction = block_mean(image, valid, factor=factor)
        assert np.array_equal(pyramid[factor][0], mean) and np.array_equal(pyramid[factor][1], fraction)
        assert pyramid[factor][0].dtype == np.float32


def test_tiered_mask_with_the_block_pyramid_equals_per_factor_block_means(monkeypatch):
    import jwst_ceers.masking.tiers as tiers

    rng = np.random.default_rng(16)
    shape = (700, 900)
    image = rng.normal(0, 1, shape).astype(np.float32)
    yy, xx = np.indices(shape)
    for y, x, size in rng.uniform((0, 0, 2), (700, 900, 30), (25, 3)):
        image += (20 * np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / size**2)).astype(np.float32)
    coverage = np.zeros(shape, dtype=bool)
    coverage[:, :50] = True
    bits = tiers.tiered_source_mask(image, coverage=coverage, workers=1)

    def separate(work, valid, *, factors, **options):  # options: zero_outside_valid, threads
        return {f: block_mean(work, valid, factor=f) for f in factors}

    monkeypatch.setattr(tiers, "block_means", separate)
    assert np.array_equal(tiers.tiered_source_mask(image, coverage=coverage, workers=1), bits)
    assert np.count_nonzero(bits) > 0.05 * bits.size


def test_remasking_mosaics_at_once_equals_one_after_the_other():
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground, algorithm_options
    from jwst_ceers.mosaic_bkg.pointing_background import pointing_background
    from jwst_ceers.simulate.mosaics import simulate_mosaics

    # bumps / cluster_core seed 2 (robustness_mosaic): models in both mosaics, remasked
    sim = simulate_mosaics(None, shape=(512, 512), seed=2, filters=("F150W", "F356W"), background_family="bumps",
                           density="cluster_core")
    step = MosaicBackground()
    options = algorithm_options(step)
    results = []
    for threads in (1, 2):
        options.update(threads=threads, parallel_mosaics=threads)
        results.append(pointing_background(
            [sim.images[f] for f in ("F150W", "F356W")], nodata=[sim.coverage] * 2,
            tiers=[step.tier_sets()["nircam"]] * 2, noise=[sim.truth[f]["noise_sigma"] for f in ("F150W", "F356W")],
            **options,
        ))
    serial, parallel = results
    assert any(serial.galaxy_models)
    assert np.array_equal(serial.merged_mask, parallel.merged_mask)
    for one, other in zip(serial.tiermasks + serial.backgrounds, parallel.tiermasks + parallel.backgrounds):
        assert np.array_equal(one, other)
