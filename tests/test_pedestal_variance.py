"""The 7x7 sky variance behind VAR_RNOISE: smooth sky structure must not enter it, 1/f row offsets must."""

import numpy as np
import pytest
import scipy.ndimage

from jwst_ceers.pedestal.rnoise_scale import (
    ROW_OFFSET_SCALE,
    amplifier_index,
    block_difference_variance,
    block_sum_variance,
    row_offset_variance,
    sky_block_variance,
)

N = 1024


def _smooth_structure(rng, amplitude):
    """A flat-field / wisp-like structure: Gaussian bumps of ~150 px, +-amplitude (sigma units)."""
    y, x = np.mgrid[:N, :N]
    image = np.zeros((N, N))
    for sign in (1, -1, 1, -1):
        cx, cy = rng.uniform(0, N, 2)
        image += sign * amplitude * np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / 150.0**2)
    return image


def test_smooth_structure_does_not_enter_the_sky_variance():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 1.0, (N, N))
    image = (noise + _smooth_structure(rng, 0.5)).astype(np.float32)
    usable = np.ones((N, N), bool)
    for y0, x0 in rng.integers(0, N - 40, (150, 2)):  # masked sources
        usable[y0:y0 + 40, x0:x0 + 40] = False
    variance, npairs, _ = sky_block_variance(image, usable)
    assert npairs > 1000
    assert variance == pytest.approx(1.0, rel=0.03)
    # the plain block-sum statistic takes the structure for noise
    assert block_sum_variance(image, usable)[0] > 1.3


def test_row_and_column_offsets_count_in_full():
    """White row offsets per 512-column amplifier (0.3 sigma) and column offsets (0.15 sigma)."""
    rng = np.random.default_rng(2)
    first_column = 512  # a 1024-wide subarray over amplifiers 1 and 2
    amplifier = amplifier_index(N, first_column=first_column)
    np.testing.assert_array_equal(np.unique(amplifier), [1, 2])
    offsets = rng.normal(0.0, 0.3, (N, 2))
    columns = rng.normal(0.0, 0.15, N)
    image = (rng.normal(0.0, 1.0, (N, N)) + offsets[:, amplifier - 1] + columns[None, :]).astype(np.float32)
    usable = np.ones((N, N), bool)
    # var(7x7 sum) / 49 of this realisation: 1 + var(sum of 7 row offsets) + var(sum of 7 column offsets),
    # the row offsets' drift over > ROW_OFFSET_SCALE rows excluded (for white offsets it holds ~6% of
    # the 7-row sums' variance: the drift adds coherently over 7 rows)
    drift = scipy.ndimage.gaussian_filter1d(offsets, ROW_OFFSET_SCALE, axis=0, mode="reflect")
    row_share = np.mean([np.var(np.convolve((offsets - drift)[:, k], np.ones(7), "valid")) for k in range(2)])
    column_share = np.var(np.convolve(columns, np.ones(7), "valid"))
    expected = 1.0 + row_share + column_share
    variance, _, row_variance = sky_block_variance(image, usable, first_column=first_column)
    assert variance == pytest.approx(expected, rel=0.05)
    # the parts: block differences cancel the row offsets, the row means carry them
    white, _ = block_difference_variance(image, usable, amplifier=amplifier)
    assert white == pytest.approx(1.0 + column_share, rel=0.03)
    share, _ = row_offset_variance(image, usable, amplifier=amplifier, pixel_variance=1.0)
    assert share == pytest.approx(row_share, rel=0.1)
    assert row_variance == pytest.approx(share, rel=0.02)
    # with the amplifiers misplaced, pairs straddle a boundary and rows are mixed: the share is wrong
    assert abs(sky_block_variance(image, usable, first_column=256)[0] / expected - 1) > 0.05


def test_slow_row_drift_is_background():
    """A drift of the row offsets over hundreds of rows is removed by any background: it does not count."""
    rng = np.random.default_rng(3)
    drift = 0.5 * np.sin(np.arange(N) / 300.0)[:, None]
    image = (rng.normal(0.0, 1.0, (N, N)) + drift).astype(np.float32)
    variance, _, _ = sky_block_variance(image, np.ones((N, N), bool))
    assert variance == pytest.approx(1.0, rel=0.03)
    # counted as noise the drift would add 49 * var(drift) (~1.6 sigma^2 over these 1024 rows)
    assert block_sum_variance(image, np.ones((N, N), bool))[0] > 2.0


def test_too_few_pairs_is_nan():
    image = np.zeros((N, N), np.float32)
    usable = np.zeros((N, N), bool)
    usable[:20, :20] = True
    assert np.isnan(sky_block_variance(image, usable)[0])


def test_unremoved_striping_is_reported(caplog):
    """PedestalSkySub records the row offsets' share and warns when striping looks unremoved."""
    import logging

    from jwst_ceers.pedestal.pedestal_step import PedestalSkySub
    from jwst_ceers.simulate import realism_preset, simulate_exposure
    from jwst_ceers.simulate.nircam_geometry import detector_pointing
    from jwst_ceers.simulate.sources import make_source_population

    ra, dec, roll = detector_pointing("NRCA3", ra=214.9, dec=52.9, pa_v3=130.0)
    sources = make_source_population(ra=ra, dec=dec, width_arcsec=40, height_arcsec=40, seed=5)
    shares = {}
    for family in ("striping", "striping_unremoved"):
        model, _ = simulate_exposure(filter_name="F150W", detector="NRCA3", ra_ref=ra, dec_ref=dec, roll_ref=roll,
                                     sources=sources, seed=5, size=1024, realism=realism_preset(family))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="jwst_ceers"):
            result = PedestalSkySub(mask_suffix="").run(model)
        shares[family] = result.meta.ceers_pedestal.row_offset_fraction
        assert ("striping looks unremoved" in caplog.text) == (family == "striping_unremoved"), caplog.text
    assert 0.01 < shares["striping"] < 0.15 and shares["striping_unremoved"] > 0.5, shares
