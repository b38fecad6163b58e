"""The faster / leaner MosaicBackground code gives the results of the straightforward code (issue 16).

Speed and memory are measured in benchmarks/bench_mosaic_bkg.py, not here: these tests
check that each optimisation keeps its results (bit for bit where the arithmetic is the
same, against injected truth for the galaxy models).
"""

import threading

import numpy as np
import pytest
from astropy.io import fits
from scipy.ndimage import gaussian_filter
from threadpoolctl import threadpool_info

from jwst_ceers.masking.fft_ops import FourierImage, block_mean
from jwst_ceers.mosaic_bkg.galaxy_models import single_threaded_blas, large_galaxy_models
from jwst_ceers.mosaic_bkg.mosaic_io import read_mosaic, write_mosaic_bkgsub
from jwst_ceers.mosaic_bkg.sersic import SersicComponent, evaluate_components


def _pairwise_block_mean(image, valid, factor):
    """Block means summed in the pairwise order of block_mean (x pairs, then y pairs), in float64 counts."""
    total = np.where(valid, image, np.float32(0)).astype(np.float32)
    count = valid.astype(np.float64)
    while factor > 1:
        ny, nx = total.shape
        total = np.pad(total, ((0, ny % 2), (0, nx % 2)))
        count = np.pad(count, ((0, ny % 2), (0, nx % 2)))
        total = total[:, 0::2] + total[:, 1::2]
        total = total[0::2] + total[1::2]
        count = count[:, 0::2] + count[:, 1::2]
        count = count[0::2] + count[1::2]
        factor //= 2
    mean = np.zeros_like(total)
    np.divide(total, count.astype(np.float32), out=mean, where=count > 0)
    return mean, count


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
def test_block_mean_integer_counts_give_the_pairwise_float_sums(factor):
    rng = np.random.default_rng(5)
    shape = (203, 331)  # odd sides: padded blocks at the edges
    image = rng.normal(0, 1, shape).astype(np.float32)
    valid = rng.random(shape) > 0.3
    valid[:64, :64] = True  # full blocks
    mean, fraction = block_mean(image, valid, factor=factor)
    expected_mean, expected_count = _pairwise_block_mean(image, valid, factor)
    assert mean.dtype == np.float32 and fraction.dtype == np.float32
    assert np.array_equal(mean, expected_mean)
    # counts up to factor**2 (1024 for 32: beyond uint8) stay exact
    assert np.array_equal(fraction * np.float32(factor * factor), expected_count.astype(np.float32))
    assert fraction.max() == 1.0


def test_fourier_smoothings_are_independent_arrays_equal_to_a_gaussian_filter():
    rng = np.random.default_rng(6)
    image = rng.normal(0, 1, (300, 257)).astype(np.float32)
    fourier = FourierImage(image, max_fwhm=12.0, workers=1)
    first = fourier.smoothed(12.0)
    second = fourier.smoothed(4.0)
    assert first.shape == second.shape == image.shape and first.dtype == np.float32
    expected = gaussian_filter(image.astype(np.float64), 12.0 / 2.3548200450309493, mode="constant", truncate=6)
    assert np.allclose(first, expected, atol=2e-6)
    before = second.copy()
    first[...] = 0  # views of separate transforms: writing one leaves the other
    assert np.array_equal(second, before)
    assert np.array_equal(fourier.smoothed(4.0), before)


def test_evaluate_components_into_out_equals_all_at_once():
    comps = [
        SersicComponent(y=40.3, x=70.2, intensity=2.0, r_eff=9.0, n=2.5, axis_ratio=0.6, theta=0.4, r_max=60.0),
        SersicComponent(y=90.0, x=20.5, intensity=1.0, r_eff=14.0, n=1.2, axis_ratio=0.9, theta=-1.0, r_max=80.0),
        SersicComponent(y=10.0, x=10.0, intensity=0.5, r_eff=5.0, n=4.0, axis_ratio=0.8, theta=0.0, r_max=30.0),
    ]
    for grid in ({"block": 8}, {"step": 1}):
        out = None
        for c in comps:
            out = evaluate_components([c], (130, 150), out=out, **grid)
        assert np.array_equal(out, evaluate_components(comps, (130, 150), **grid))
    with pytest.raises(ValueError, match="out must be float32"):
        evaluate_components(comps, (130, 150), out=np.zeros((3, 3), np.float32))


def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_blas_limit_is_counted_across_threads_and_restored():
    """
    As pointing_background uses it: entered in the calling thread around the fitting threads.

    A fitting thread leaving must not lift the limit while the caller is inside; the caller
    leaving restores it (with this OpenBLAS a limit set or restored from a worker thread
    after BLAS has run is not applied, so the caller is the one that sets and restores it).
    """
    original = _blas_threads()
    seen = []

    def fitting_thread():
        with single_threaded_blas():
            seen.append(_blas_threads())

    with single_threaded_blas():
        worker = threading.Thread(target=fitting_thread)
        worker.start()
        worker.join()
        seen.append(_blas_threads())  # the fitting thread has left; the caller is still inside
    assert all(n == 1 for counts in seen for n in counts)
    assert _blas_threads() == original


TRUE_GALAXIES = [
    SersicComponent(y=350.4, x=330.7, intensity=1.5, r_eff=40.0, n=3.5, axis_ratio=0.7, theta=0.5),
    SersicComponent(y=1150.2, x=1120.9, intensity=1.5, r_eff=38.0, n=3.0, axis_ratio=0.8, theta=-0.7),
    SersicComponent(y=320.0, x=1160.0, intensity=1.8, r_eff=42.0, n=3.5, axis_ratio=0.75, theta=1.2),
]


def _galaxies_field(seed, shape=(1500, 1500), sigma=0.05):
    rng = np.random.default_rng(seed)
    truth = evaluate_components(TRUE_GALAXIES, shape)
    image = truth + rng.normal(0, sigma, shape).astype(np.float32)
    return image.astype(np.float32), truth > 3 * sigma  # a mask of the cores, as tiers give


def _match(found, truth):
    return min(found, key=lambda c: np.hypot(c.x - truth.x, c.y - truth.y))


def test_several_galaxies_fitted_concurrently_equal_serial_and_recover_the_truth():
    fields = [_galaxies_field(1), _galaxies_field(2)]
    serial = [large_galaxy_models(image, exclude) for image, exclude in fields]
    results = [None, None]

    def fit(index):
        results[index] = large_galaxy_models(*fields[index])

    threads = [threading.Thread(target=fit, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for one, other in zip(serial, results, strict=True):
        assert one.components == other.components  # bit for bit: one BLAS thread in both
        assert len(one.components) == len(TRUE_GALAXIES)
        for truth in TRUE_GALAXIES:
            c = _match(one.components, truth)
            assert np.hypot(c.x - truth.x, c.y - truth.y) < 2
            assert c.r_eff == pytest.approx(truth.r_eff, rel=0.1)
            assert c.n == pytest.approx(truth.n, abs=0.35)


def test_detection_ceiling_clips_as_the_out_of_place_formula():
    """tiered_source_mask(ceiling_nsigma=10) masks as the tiers on the data clipped by the whole-image formula."""
    from jwst_ceers.masking import CEERS_NIRCAM_MOSAIC_TIERS, tiered_source_mask
    from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked

    rng = np.random.default_rng(7)
    shape = (1200, 1300)  # > 300 000 pixels: the scale is measured on a subsample
    data = rng.normal(0, 1, shape).astype(np.float32)
    data[100:110, 200:210] = 500.0
    data[5, 5] = np.nan
    nodata = ~np.isfinite(data)
    nodata[:, :40] = True
    noise = (1 + 0.5 * rng.random(shape)).astype(np.float32)
    noise[7, 9] = np.nan
    background = rng.normal(0, 0.1, shape).astype(np.float32)
    step = int(np.sqrt(data.size / 300_000))
    with np.errstate(all="ignore"):
        residual = (data - background) / noise
        _, scale = robust_location_scale(sample_unmasked(residual[::step, ::step], nodata[::step, ::step]))
        ceiling = np.float32(10.0 * scale) * noise + background
        clipped = np.where(data > ceiling, ceiling, data)
    assert np.nanmax(clipped) < 500.0
    options = dict(coverage=nodata, tiers=CEERS_NIRCAM_MOSAIC_TIERS, noise=noise, background=background)
    fused = tiered_source_mask(data, ceiling_nsigma=10.0, **options)
    assert np.array_equal(fused, tiered_source_mask(clipped, **options))
    assert not np.array_equal(fused, tiered_source_mask(data, **options))  # the clipping matters here
    assert np.isnan(data[5, 5]) and data[100, 200] == 500.0  # the input is not modified


def test_jwst_mosaic_model_is_not_held_and_its_arrays_are_written_back(tmp_path):
    from jwst_ceers.simulate.mosaics import simulate_mosaics

    sim = simulate_mosaics(tmp_path / "in", shape=(256, 300), seed=3, filters=("F150W",), mag_limit=26)
    path = sim.paths["F150W"]
    before = path.read_bytes()
    mosaic = read_mosaic(path)
    assert mosaic.model is None and mosaic.reopen == str(path)  # ERR/WHT not held through the run
    bkgsub = mosaic.data - np.float32(1.0)
    out = write_mosaic_bkgsub(tmp_path / "out_bkgsub.fits", bkgsub, mosaic)
    assert path.read_bytes() == before
    with fits.open(out) as written, fits.open(path) as original:
        assert np.array_equal(written["SCI"].data, bkgsub, equal_nan=True)
        for name in ("ERR", "WHT"):
            assert np.array_equal(written[name].data, original[name].data, equal_nan=True)
