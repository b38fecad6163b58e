"""CutoutResample gives stock ResampleStep's products: same arrays (to float32 rounding), same metadata.

Truth is stock jwst's ResampleStep run on the same inputs in the same process. Inputs
carry the awkward variance pixels Image3Ceers produces or meets: zero (unfilled),
+inf (VarianceHoleFill), NaN, and exposures partly off the output grid.
"""

import asdf
import numpy as np
import pytest
from jwst.resample import ResampleStep
from stdatamodels.jwst import datamodels

from jwst_ceers.resample import cutout_resample
from jwst_ceers.resample.mosaic_rows import error_from_variances, finish_variance_in_place
from jwst_ceers.resample.resample_step import CutoutResample
from jwst_ceers.resample.variance_cutout import kernel_reach, output_cutout, pixmap_step
from jwst_ceers.simulate import simulate_pointing

ARRAYS = ("data", "wht", "con", "err", "var_rnoise", "var_poisson", "var_flat")
GRID = {"pixel_scale": 0.05, "rotation": 0.0}
#: Largest difference allowed, in float32 units in the last place. Drizzle on a cut-out
#: sees pixel coordinates shifted by an integer; the square kernel's overlap areas
#: then round differently in a handful of pixels (measured: <= 3 ulp in <= 5 of 1.6 Mpix here; <= 6 ulp in <= 183 of 34 Mpix on 24 x 1024^2).
MAX_ULP = 8
MAX_DIFFERING_FRACTION = 1e-5


@pytest.fixture(scope="module")
def exposures(tmp_path_factory):
    """Two detectors x three dithers of 256^2, with zero, +inf and NaN variance pixels."""
    root = tmp_path_factory.mktemp("resample_cutout")
    sim = simulate_pointing(
        root / "sim", filters=("F150W",), sw_detectors=("NRCA1", "NRCA2"), lw_detectors=(),
        n_dithers=3, size=256, seed=5, zero_variance_fraction=3e-3, write_refcat=False,
    )
    rng = np.random.default_rng(7)
    models = []
    for path in sim.cal_files:
        model = datamodels.open(path)
        flat = model.var_rnoise.reshape(-1)
        zeros = np.flatnonzero(flat == 0)
        flat[zeros[::2]] = np.inf  # half the holes filled as VarianceHoleFill does, half left at 0
        picks = rng.choice(flat.size, 40, replace=False)
        flat[picks[:10]] = np.nan
        model.var_poisson.reshape(-1)[picks[10:20]] = np.nan
        model.var_flat.reshape(-1)[picks[20:30]] = 0.0
        model.var_poisson.reshape(-1)[picks[30:]] = np.inf
        models.append(model)
    assert sum(int(np.isposinf(m.var_rnoise).sum()) for m in models) > 100
    assert sum(int((m.var_rnoise == 0).sum()) for m in models) > 100
    return models


def run_both(models, **parameters):
    stock = ResampleStep(**parameters).run([m.copy() for m in models])
    new = CutoutResample(**parameters).run([m.copy() for m in models])
    return stock, new


def assert_same_products(stock, new, arrays=ARRAYS, skip_meta=()):
    for name in arrays:
        a, b = getattr(stock, name), getattr(new, name)
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if a.dtype.kind != "f":
            np.testing.assert_array_equal(a, b, err_msg=name)
            continue
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=name)
        finite = np.isfinite(a)
        np.testing.assert_array_max_ulp(a[finite], b[finite], maxulp=MAX_ULP)
        assert np.count_nonzero(a[finite] != b[finite]) <= MAX_DIFFERING_FRACTION * a.size, name
    for path in (
        "exposure.exposure_time", "exposure.start_time", "exposure.end_time", "exposure.duration",
        "exposure.measurement_time", "exposure.effective_exposure_time", "exposure.elapsed_exposure_time",
        "resample.pointings", "resample.pixfrac", "resample.kernel", "resample.weight_type",
        "resample.pixel_scale_ratio", "photometry.pixelarea_steradians", "wcsinfo.s_region",
        "wcsinfo.crpix1", "wcsinfo.crval1", "cal_step.resample", "bunit_data", "filename",
    ):
        if path not in skip_meta:
            assert _get(stock, path) == _get(new, path), path
    assert stock.meta.wcs.array_shape == new.meta.wcs.array_shape


def _get(model, dotted):
    value = model.meta
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"weight_type": "exptime"},
        {"pixfrac": 0.5},
        {"kernel": "point"},
        {"kernel": "gaussian"},
        {"kernel": "lanczos3"},
        {"kernel": "turbo"},  # stock's full-grid path (see CUTOUT_KERNELS)
        {"pixfrac": 0.5, "weight_type": "exptime", "kernel": "square"},
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()) or "defaults",
)
def test_same_products_as_stock(exposures, parameters):
    stock, new = run_both(exposures, **GRID, **parameters)
    assert_same_products(stock, new)
    assert np.isfinite(new.err).sum() > 50_000  # the comparison covered real pixels


def test_inputs_partly_off_the_grid(exposures):
    """A grid smaller than the footprint: inputs cross its edges (and some miss it)."""
    ra, dec = exposures[0].meta.wcs(128.0, 128.0)
    grid = {**GRID, "crval": [float(ra), float(dec)], "crpix": [150.0, 120.0], "output_shape": [300, 240]}
    stock, new = run_both(exposures, **grid)
    assert_same_products(stock, new)
    covered = np.isfinite(new.data)
    assert 0.2 < covered.mean() < 1.0  # the grid is partly covered: inputs were clipped at its edges


def test_without_error_arrays(exposures):
    stock, new = run_both(exposures, **GRID, enable_err=False)
    assert new.err is None or new.err.size == 0 or not np.any(new.err)
    assert_same_products(stock, new, arrays=("data", "wht", "con"))
    stock, new = run_both(exposures, **GRID, report_var=False)
    assert_same_products(stock, new, arrays=("data", "wht", "con", "err"))


def test_variance_drizzled_on_cutouts_only(exposures, monkeypatch):
    """The variance drizzles are cut-out sized (stock allocates full-grid ones per input)."""
    shapes = []

    class RecordingDrizzle(cutout_resample.Drizzle):
        def __init__(self, *args, out_shape=None, **kwargs):
            shapes.append(tuple(out_shape))
            super().__init__(*args, out_shape=out_shape, **kwargs)

    monkeypatch.setattr(cutout_resample, "Drizzle", RecordingDrizzle)
    mosaic = CutoutResample(**GRID).run([m.copy() for m in exposures])
    assert len(shapes) == 3 * len(exposures)
    grid_pixels = mosaic.data.size
    assert max(ny * nx for ny, nx in shapes) < 0.1 * grid_pixels


def test_cutout_holds_the_kernel_and_misses_nothing():
    """output_cutout: clipped to the grid, padded by the reach, None without mapped pixels."""
    ny, nx = 40, 50
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    pixmap = np.dstack([xx * 1.5 + 100.0, yy * 1.5 + 20.0])  # input pixels 1.5 output pixels wide
    assert pixmap_step(pixmap) == pytest.approx(1.5)
    reach = kernel_reach("square", pixfrac=1.0, pixel_scale_ratio=1 / 1.5, input_pixel=1.5)
    rows, cols = output_cutout(pixmap, xmin=0, xmax=nx - 1, ymin=0, ymax=ny - 1, out_shape=(500, 500), reach=reach)
    assert rows.start <= 20 - reach and rows.stop >= 20 + 1.5 * (ny - 1) + reach + 1
    assert cols.start <= 100 - reach and cols.stop >= 100 + 1.5 * (nx - 1) + reach + 1
    rows, cols = output_cutout(pixmap, xmin=0, xmax=nx - 1, ymin=0, ymax=ny - 1, out_shape=(50, 120), reach=reach)
    assert (rows.stop, cols.stop) == (50, 120)  # clipped to the grid
    assert output_cutout(np.full((4, 4, 2), np.nan), xmin=0, xmax=3, ymin=0, ymax=3, out_shape=(9, 9), reach=1) is None
    far = pixmap + 1000.0
    assert output_cutout(far, xmin=0, xmax=nx - 1, ymin=0, ymax=ny - 1, out_shape=(500, 500), reach=reach) is None
    with pytest.raises(ValueError, match="turbo"):
        kernel_reach("turbo", pixfrac=1.0, pixel_scale_ratio=1.0, input_pixel=1.0)


def test_row_blocks_equal_whole_array_arithmetic():
    """stcal's whole-array expressions and the row-block ones agree bit for bit."""
    rng = np.random.default_rng(3)
    shape = (37, 23)
    variances = [rng.lognormal(-9, 1, shape).astype(np.float32) for _ in range(3)]
    for k, variance in enumerate(variances):
        variance[rng.random(shape) < 0.2 + 0.1 * k] = np.nan
    variances[0][:3] = np.nan
    variances[1][:3] = np.nan
    variances[2][:3] = np.nan  # all NaN: ERR NaN (nansum alone would give 0)
    expected = np.sqrt(np.nansum(variances, axis=0))
    expected[np.all(np.isnan(variances), axis=0)] = np.nan
    got = error_from_variances(variances, rows_per_block=5)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32

    wsum = rng.lognormal(0, 1, shape).astype(np.float32)
    wt = rng.lognormal(0, 1, shape).astype(np.float32)
    wt[0, :4] = 0
    scaling = 1.0 / np.float64(0.97) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (wsum * scaling / wt / wt).astype(np.float32)
    np.testing.assert_array_equal(finish_variance_in_place(wsum, wt, scaling, rows_per_block=4), expected)


def test_image3_ceers_uses_it_and_asdf_overrides_apply(tmp_path):
    """Image3Ceers' resample is CutoutResample; asdf files naming stock ResampleStep still configure it."""
    from jwst_ceers import Image3Ceers

    assert isinstance(Image3Ceers().resample, CutoutResample)
    path = tmp_path / "image3.asdf"
    asdf.AsdfFile({
        "class": "jwst_ceers.Image3Ceers", "name": "calwebb_image3_ceers", "parameters": {},
        "steps": [{"class": "jwst.resample.resample_step.ResampleStep", "name": "resample",
                   "parameters": {"pixfrac": 0.7, "kernel": "gaussian", "pixel_scale": 0.04}}],
    }).write_to(path)
    pipeline = Image3Ceers.from_config_file(str(path))
    assert isinstance(pipeline.resample, CutoutResample)
    assert (pipeline.resample.pixfrac, pipeline.resample.kernel, pipeline.resample.pixel_scale) == (0.7, "gaussian", 0.04)
    # same spec as stock: every stock parameter, nothing else
    assert set(CutoutResample.load_spec_file()) == set(ResampleStep.load_spec_file())


def test_standalone_saves_atomically_with_its_suffix(exposures, tmp_path):
    """Step.call on one file writes <root>_resample.fits (no temporary left), stock's data inside."""
    path = tmp_path / "jw01345001001_02101_00001_nrca1_cal.fits"
    exposures[0].save(path)
    result = CutoutResample.call(str(path), output_dir=str(tmp_path / "out"), save_results=True, **GRID)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["jw01345001001_02101_00001_nrca1_resample.fits"]
    stock = ResampleStep.call(str(path), **GRID)
    assert_same_products(stock, result, skip_meta=("filename",))  # only the saved one has a file name
