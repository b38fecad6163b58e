"""Property-based tests (hypothesis) of the array algorithms.

For finite input with enough good pixels the pedestal, the hole fill and the mosaic
background (fit and tiered masks) never return NaN, and they respond to adding a
constant as they should: the pedestal and the background shift by exactly that
constant, the source masks do not change; the hole fill step fills exactly the zeros.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwst_ceers.masking import MaskTier, tiered_source_mask
from jwst_ceers.mosaic_bkg.background_fit import fit_background
from jwst_ceers.pedestal import fit_pedestal
from jwst_ceers.varfill import fill_zero_variance

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(min_value=0, max_value=2**32 - 1)
levels = st.floats(min_value=-5.0, max_value=5.0, allow_nan=False, allow_infinity=False)
sigmas = st.floats(min_value=1e-3, max_value=2.0, allow_nan=False, allow_infinity=False)
shifts = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_infinity=False)


def _sky(seed, level, sigma, size, *, source_fraction=0.05):
    """Gaussian sky with a positive tail of faint 'sources' (a fraction of pixels)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(level, sigma, size)
    sources = rng.random(size) < source_fraction
    values[sources] += rng.exponential(3 * sigma, sources.sum())
    return values.astype(np.float32)


# ---------------------------------------------------------------- pedestal
@SETTINGS
@given(seed=seeds, level=levels, sigma=sigmas, n=st.integers(min_value=20, max_value=6000))
def test_pedestal_finite_for_finite_input(seed, level, sigma, n):
    values = _sky(seed, level, sigma, n)
    fit = fit_pedestal(values)
    assert np.isfinite(fit.level)
    assert np.isfinite(fit.sigma)
    # within the data range: never an extrapolated or default (0) value
    assert values.min() <= fit.level <= values.max()


@SETTINGS
@given(seed=seeds, sigma=sigmas, shift=shifts, n=st.sampled_from([500, 3000, 6000]))
def test_pedestal_shifts_by_the_added_constant(seed, sigma, shift, n):
    """Adding c to every pixel adds c to the pedestal (to float32 rounding of the data)."""
    values = _sky(seed, 0.0, sigma, n)
    shifted = (values.astype(np.float64) + shift).astype(np.float32)
    before = fit_pedestal(values)
    after = fit_pedestal(shifted)
    assert after.method == before.method
    # float32 rounding of (value + c) moves each value by up to ~6e-8 |value + c|
    tolerance = 1e-3 * sigma + 1e-6 * (abs(shift) + 1.0)
    assert abs((after.level - before.level) - shift) <= tolerance


def test_pedestal_nan_only_without_finite_pixels():
    fit = fit_pedestal(np.full(100, np.nan, dtype=np.float32))
    assert np.isnan(fit.level) and fit.message


# ---------------------------------------------------------------- hole fill
finite_variances = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e3, allow_nan=False, allow_infinity=False)),
    min_size=1,
    max_size=200,
)


@SETTINGS
@given(values=finite_variances)
def test_hole_fill_never_nan_and_fills_exactly_the_zeros(values):
    variance = np.array(values, dtype=np.float32)
    original = variance.copy()
    filled, nfilled = fill_zero_variance(variance)
    assert not np.isnan(filled).any()
    zeros = original == 0
    assert nfilled == zeros.sum()
    assert np.all(np.isposinf(filled[zeros]))
    assert np.array_equal(filled[~zeros], original[~zeros])
    assert np.array_equal(variance, original)  # input untouched
    assert filled.dtype == original.dtype


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds, arrays=st.lists(st.sampled_from(["var_rnoise", "var_poisson", "var_flat"]), min_size=1, max_size=3, unique=True))
def test_hole_fill_step_fills_exactly_the_zeros_of_the_chosen_arrays(seed, arrays):
    """
    VarianceHoleFill(arrays=...) sets to +inf exactly the zeros of the chosen arrays.

    Truth: the injected zero positions. The other variance arrays, SCI, ERR and DQ are
    bit-for-bit those of the input, and the caller's model is not modified.
    """
    from stdatamodels.jwst import datamodels

    from jwst_ceers import VarianceHoleFill

    rng = np.random.default_rng(seed)
    model = datamodels.ImageModel((16, 16))
    model.meta.filename = "prop_cal.fits"
    model.data = rng.normal(0.3, 0.01, (16, 16)).astype(np.float32)
    model.err = rng.uniform(0.01, 0.02, (16, 16)).astype(np.float32)
    zeros = {}
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        var = rng.uniform(1e-5, 1e-4, (16, 16)).astype(np.float32)
        zeros[name] = rng.random((16, 16)) < 0.1
        var[zeros[name]] = 0
        setattr(model, name, var)
    original = model.copy()
    # process() is what run() calls after stpipe's bookkeeping (logging set-up, ~1 s per call)
    out = VarianceHoleFill(arrays=arrays).process(model)
    assert out.meta.cal_step.ceers_varfill == "COMPLETE"
    for name in ("var_rnoise", "var_poisson", "var_flat"):
        got, before = getattr(out, name), getattr(original, name)
        if name in arrays:
            assert np.array_equal(np.isposinf(got), zeros[name])
            assert np.array_equal(got[~zeros[name]], before[~zeros[name]])
        else:
            assert np.array_equal(got, before)
        assert np.array_equal(getattr(model, name), before)  # caller's model untouched
    for name in ("data", "err", "dq"):
        assert np.array_equal(getattr(out, name), getattr(original, name))


# ---------------------------------------------------------------- mosaic background
def _mosaic(seed, level, sigma, shape=(96, 96), *, gradient=0.0, n_sources=6):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    image = level + gradient * sigma * (xx / nx - 0.5) + rng.normal(0, sigma, shape)
    for _ in range(n_sources):
        y0, x0 = rng.uniform(0, ny), rng.uniform(0, nx)
        image += 20 * sigma * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * 2.0**2))
    return image.astype(np.float32)


@SETTINGS
@given(
    seed=seeds,
    level=levels,
    sigma=sigmas,
    masked_fraction=st.floats(min_value=0.0, max_value=0.6),
    gradient=st.floats(min_value=-5.0, max_value=5.0),
)
def test_background_fit_finite_with_enough_good_pixels(seed, level, sigma, masked_fraction, gradient):
    data = _mosaic(seed, level, sigma, gradient=gradient)
    rng = np.random.default_rng(seed + 1)
    exclude = rng.random(data.shape) < masked_fraction
    data[exclude & (rng.random(data.shape) < 0.5)] = np.nan  # masked pixels may be NaN
    background, _ = fit_background(data, exclude, box_size=16, filter_size=3)
    assert background.shape == data.shape
    assert np.isfinite(background).all()
    good = ~exclude & np.isfinite(data)
    assert data[good].min() - sigma <= np.median(background) <= data[good].max() + sigma


@SETTINGS
@given(seed=seeds, sigma=sigmas, shift=shifts)
def test_background_fit_shifts_by_the_added_constant(seed, sigma, shift):
    data = _mosaic(seed, 0.0, sigma)
    exclude = np.zeros(data.shape, bool)
    exclude[:10, :10] = True
    shifted = (data.astype(np.float64) + shift).astype(np.float32)
    before, _ = fit_background(data, exclude, box_size=16, filter_size=3)
    after, _ = fit_background(shifted, exclude, box_size=16, filter_size=3)
    tolerance = 1e-3 * sigma + 2e-6 * (abs(shift) + 1.0)
    assert np.max(np.abs((after - before) - np.float32(shift))) <= tolerance


TIERS = (MaskTier(4.0, 3.0, 5, 3.0), MaskTier(2.0, 4.0, 3, 1.0))


@SETTINGS
@given(seed=seeds, level=levels, sigma=sigmas)
def test_tiered_masks_have_no_nan_and_mask_injected_sources(seed, level, sigma):
    data = _mosaic(seed, level, sigma, n_sources=0)
    data[40:47, 40:47] += 30 * sigma  # one bright source
    coverage = np.zeros(data.shape, bool)
    coverage[:, :8] = True
    data[coverage] = np.nan
    bits = tiered_source_mask(data, coverage=coverage, tiers=TIERS, coarse=False, workers=1)
    assert bits.shape == data.shape
    assert np.all(bits[43, 43] != 0)  # the source centre is masked
    assert not np.any(bits[coverage] & ~np.uint64(1).astype(bits.dtype))  # coverage never gets source bits
    masked = bits != 0
    assert masked[~coverage].mean() < 0.5  # a sky image is mostly unmasked


@SETTINGS
@given(seed=seeds, level=levels, sigma=sigmas, shift=shifts)
def test_tiered_masks_unchanged_by_an_added_constant(seed, level, sigma, shift):
    """Detection is relative to the measured background: a constant changes (almost) nothing."""
    data = _mosaic(seed, level, sigma)
    shifted = (data.astype(np.float64) + shift).astype(np.float32)
    coverage = np.zeros(data.shape, bool)
    a = tiered_source_mask(data, coverage=coverage, tiers=TIERS, coarse=False, workers=1) != 0
    b = tiered_source_mask(shifted, coverage=coverage, tiers=TIERS, coarse=False, workers=1) != 0
    # float32 rounding of (value + c) can move a pixel sitting exactly on a threshold
    assert np.count_nonzero(a != b) <= max(3, 0.002 * a.size)
