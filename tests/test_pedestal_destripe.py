"""The 1/f row offsets are taken out of the working copy on which the sky plane and the pedestal are measured."""

import numpy as np

from jwst_ceers.pedestal.exposure_sky import measure_exposure_sky
from jwst_ceers.pedestal.rnoise_scale import subtract_row_offsets


def _striped(rng, *, shape=(1024, 1024), row_rms=0.5, first_column=0):
    """White noise (sigma 1) + independent row offsets per 512-column amplifier, and the offsets image."""
    ny, nx = shape
    amplifier = (first_column + np.arange(nx)) // 512
    offsets = row_rms * rng.standard_normal((ny, amplifier.max() + 1))
    stripes = offsets[:, amplifier - amplifier.min()]
    return rng.standard_normal(shape).astype(np.float32), stripes.astype(np.float32)


def test_row_offsets_removed_smooth_structure_and_level_kept():
    rng = np.random.default_rng(1)
    noise, stripes = _striped(rng)
    y = np.arange(1024)[:, None]
    drift = np.float32(0.8) * np.sin(2 * np.pi * y / 1024.0).astype(np.float32)  # smooth: must stay
    data = 10.0 + noise + stripes + drift
    usable = np.ones(data.shape, bool)
    usable[300:400, 200:300] = False  # a masked source
    data[300:400, 200:300] += 50.0
    cleaned = subtract_row_offsets(data, usable, scale=64.0)
    assert cleaned is not data and np.all(data[300:400, 200:300] > 40)  # the input is not changed
    left = (cleaned - 10.0 - noise - drift)[usable]
    # stripes of 0.5 sigma: what is left is their drift over > 64 rows, the noise of the row means and the
    # 7% of the sine drift's amplitude that a 64-row Gaussian takes (measured: 0.17 of the stripes' rms)
    assert np.std(left) < 0.25 * np.std(stripes[usable])
    # the smooth structure and the level stay
    # (within ~32 rows of the edges the reflected drift is not smooth: up to 0.25 there)
    rows = np.nanmean(np.where(usable, cleaned - noise, np.nan), axis=1)
    error = rows[32:-32] - 10.0 - drift[32:-32, 0]
    assert np.sqrt(np.mean(error**2)) < 0.08 and np.abs(error).max() < 0.25
    assert abs(np.mean(cleaned[usable] - data[usable])) < 0.01


def test_amplifier_boundaries_follow_first_column():
    rng = np.random.default_rng(2)
    noise, stripes = _striped(rng, shape=(512, 600), first_column=300)
    data = noise + stripes
    cleaned = subtract_row_offsets(data, np.ones(data.shape, bool), first_column=300, scale=64.0)
    assert np.std(cleaned - noise) < 0.15 * np.std(stripes)
    # with the wrong boundaries the offsets of the 212 + 388 columns are mixed
    wrong = subtract_row_offsets(data, np.ones(data.shape, bool), first_column=0, scale=64.0)
    assert np.std(wrong - noise) > 2 * np.std(cleaned - noise)


def test_pedestal_of_strongly_striped_exposure():
    """Unremoved stripes (0.5 sigma, white from row to row) no longer pull the lower-envelope plane down."""
    errors = []
    for seed in range(3):
        rng = np.random.default_rng(10 + seed)
        noise, stripes = _striped(rng)
        data = 5.0 + noise + stripes
        sky = measure_exposure_sky(data, np.zeros(data.shape, bool), source_mask=np.zeros(data.shape, bool))
        errors.append(sky.pedestal.level - 5.0 - float(np.mean(stripes)))
    # measured: -0.02 to -0.03 sigma (the offsets' drift over > 64 rows is left); before: -0.034 to -0.064
    # (blocks on positive stripes rejected)
    assert max(abs(e) for e in errors) < 0.04, errors
