"""CeersOutlierDetection: the same outlier flags as stock OutlierDetectionStep, found faster.

Small NIRCam-like dithered exposures (two SW detectors, three dithers, two visits: the
inputs overlap only partly), the true WCS, one sky level per image recorded but not
subtracted (as SkyMatchRecordOnly leaves them), and cosmic rays injected at known pixels.
"""

import json
import logging
import shutil
from pathlib import Path

import asdf
import numpy as np
import pytest
from jwst.datamodels import ModelLibrary
from jwst.outlier_detection.outlier_detection_step import OutlierDetectionStep
from stdatamodels.jwst import datamodels

from jwst_ceers.associations import write_associations
from jwst_ceers.outlier.median import CutoutStack, finite_bounding_box, nanmedian_columns
from jwst_ceers.outlier.outlier_step import CeersOutlierDetection
from jwst_ceers.simulate import simulate_pointing

OUTLIER = datamodels.dqflags.pixel["OUTLIER"]
DO_NOT_USE = datamodels.dqflags.pixel["DO_NOT_USE"]
N_RAYS = 25
ARRAYS = ("data", "dq", "err", "var_rnoise", "var_poisson", "var_flat")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """12 exposures of 192^2 with true WCS, sky levels and injected cosmic rays (their pixels)."""
    root = tmp_path_factory.mktemp("outlier_fast")
    sim = simulate_pointing(
        root / "sim", filters=("F150W",), sw_detectors=("NRCA1", "NRCA2"), lw_detectors=(),
        n_dithers=3, n_visits=2, size=192, seed=11, cosmic_ray_rate=0.0, source_density_scale=4.0,
        pedestal_range=(0.1, 0.3), write_refcat=False,
    )
    rng = np.random.default_rng(3)
    prepared_dir = root / "prepared"
    prepared_dir.mkdir()
    models = []
    for truth in sim.truth.values():
        model = datamodels.open(truth.cal_file)
        with asdf.open(truth.true_wcs_file) as af:
            model.meta.wcs = af["wcs"]
        good = np.isfinite(model.data)
        model.meta.background.level = float(np.median(model.data[good]))  # each image's own sky
        model.meta.background.subtracted = False
        model.meta.background.method = "local"
        models.append(model)
    rays = {}
    for model in models:
        ny, nx = model.data.shape
        y, x = rng.integers(8, ny - 8, N_RAYS), rng.integers(8, nx - 8, N_RAYS)
        model.data[y, x] += (200 * np.nanmedian(model.err)).astype(np.float32)
        rays[model.meta.filename] = (y, x, _covering_exposures(model, models, y, x) >= 1)
    for model in models:
        model.save(prepared_dir / model.meta.filename)
    (asn,) = write_associations(sorted(prepared_dir.glob("*_cal.fits")), prepared_dir, by="program", product="t")
    return asn, rays


def _covering_exposures(model, models, y, x):
    """How many OTHER exposures (visit + dither) see each pixel (y, x) of ``model``."""
    ra, dec = model.meta.wcs(x, y)
    exposures = [set() for _ in y]
    own = (model.meta.observation.visit_number, model.meta.observation.exposure_number)
    for other in models:
        exposure = (other.meta.observation.visit_number, other.meta.observation.exposure_number)
        if exposure == own:
            continue
        ox, oy = other.meta.wcs.invert(ra, dec)
        inside = (ox > 2) & (oy > 2) & (ox < other.data.shape[1] - 3) & (oy < other.data.shape[0] - 3)
        for k in np.flatnonzero(inside):
            exposures[k].add(exposure)
    return np.array([len(e) for e in exposures])


def _library(asn, *, on_disk):
    """The association as Image3Ceers reads it: members grouped by exposure."""
    from jwst_ceers.pipeline.image3_ceers import exposure_grouped_association

    return ModelLibrary(exposure_grouped_association(str(asn)), on_disk=on_disk)


def _run(step_class, asn, out_dir, *, on_disk, **parameters):
    out_dir.mkdir(parents=True, exist_ok=True)
    step = step_class(output_dir=str(out_dir), in_memory=not on_disk, **parameters)
    step.mode = "imaging"
    result = step.run(_library(asn, on_disk=on_disk))
    arrays = {}
    with result:
        for index, model in enumerate(result):
            arrays[model.meta.filename] = {name: np.array(getattr(model, name)) for name in ARRAYS}
            assert model.meta.cal_step.outlier_detection == "COMPLETE"
            result.shelve(model, index, modify=False)
    return arrays


@pytest.fixture(scope="module")
def stock_in_memory(prepared, tmp_path_factory):
    asn, _ = prepared
    return _run(OutlierDetectionStep, asn, tmp_path_factory.mktemp("stock"), on_disk=False)


def _assert_identical(stock, fast):
    assert stock.keys() == fast.keys()
    for name in stock:
        for array in ARRAYS:
            np.testing.assert_array_equal(fast[name][array], stock[name][array], err_msg=f"{name} {array}")


@pytest.mark.parametrize("on_disk", [False, True], ids=["in_memory", "on_disk"])
def test_same_flags_and_arrays_as_stock(prepared, stock_in_memory, tmp_path, on_disk):
    asn, rays = prepared
    fast = _run(CeersOutlierDetection, asn, tmp_path, on_disk=on_disk)
    _assert_identical(stock_in_memory, fast)
    # the injected cosmic rays are flagged (where another exposure covers them)
    # the injected cosmic rays that another exposure sees are flagged
    found = total = 0
    for name, (y, x, seen) in rays.items():
        flagged = (fast[name]["dq"][y, x] & (OUTLIER | DO_NOT_USE)) == (OUTLIER | DO_NOT_USE)
        found += np.count_nonzero(flagged & seen)
        total += np.count_nonzero(seen)
        assert np.isnan(fast[name]["data"][y, x][flagged]).all()
    assert total > 100
    assert found >= 0.95 * total, (found, total)


def test_non_default_parameters_same_as_stock(prepared, tmp_path):
    """Parameters reach the fast path as they reach stock's (a numeric fill value too)."""
    asn, _ = prepared
    parameters = {"fillval": "0", "maskpt": 0.5, "snr": "4.0 3.0", "scale": "1.0 0.5", "pixfrac": 0.8,
                  "weight_type": "exptime", "good_bits": "~DO_NOT_USE+JUMP_DET"}
    stock = _run(OutlierDetectionStep, asn, tmp_path / "stock", on_disk=False, **parameters)
    fast = _run(CeersOutlierDetection, asn, tmp_path / "fast", on_disk=False, **parameters)
    _assert_identical(stock, fast)


def test_save_intermediate_results_writes_what_stock_writes(prepared, tmp_path):
    asn, _ = prepared
    stock = _run(OutlierDetectionStep, asn, tmp_path / "stock", on_disk=False, save_intermediate_results=True)
    fast = _run(CeersOutlierDetection, asn, tmp_path / "fast", on_disk=False, save_intermediate_results=True)
    _assert_identical(stock, fast)
    stock_files = sorted(p.name for p in (tmp_path / "stock").iterdir())
    fast_files = sorted(p.name for p in (tmp_path / "fast").iterdir())
    assert fast_files == stock_files
    assert any(n.endswith("_median.fits") for n in fast_files)
    assert sum(n.endswith("_blot.fits") for n in fast_files) == len(stock)
    assert sum(n.endswith("_outlier_i2d.fits") for n in fast_files) == 6  # 2 visits x 3 dithers
    for name in fast_files:
        with datamodels.open(tmp_path / "stock" / name) as a, datamodels.open(tmp_path / "fast" / name) as b:
            np.testing.assert_array_equal(b.data, a.data, err_msg=name)


def test_other_modes_run_stock(prepared, tmp_path, caplog):
    """resample_data=False is stock's code (no fast-path message), with stock's result."""
    asn, _ = prepared
    stock = _run(OutlierDetectionStep, asn, tmp_path / "stock", on_disk=False, resample_data=False)
    with caplog.at_level(logging.INFO, logger="jwst_ceers"):
        fast = _run(CeersOutlierDetection, asn, tmp_path / "fast", on_disk=False, resample_data=False)
    assert not any("fast path" in r.getMessage() for r in caplog.records)
    _assert_identical(stock, fast)


def test_same_parameters_as_stock():
    assert CeersOutlierDetection.spec == OutlierDetectionStep.spec
    assert CeersOutlierDetection.class_alias == "ceers_outlier_detection"


def test_nanmedian_columns_is_numpy_nanmedian():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 6, 9):
        stack = (rng.normal(size=(n, 5000)) * rng.choice([1e-3, 1.0, 1e4], (n, 5000))).astype(np.float32)
        stack[rng.random(stack.shape) < 0.4] = np.nan
        stack[:, :300] = np.round(stack[:, :300])  # ties
        with _no_warning():
            expected = np.nanmedian(stack, axis=0)
        np.testing.assert_array_equal(nanmedian_columns(stack), expected)  # NaN where numpy gives NaN


class _no_warning:
    def __enter__(self):
        import warnings

        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)


@pytest.mark.parametrize("in_memory", [True, False])
def test_cutout_stack_median_equals_full_stack_median(in_memory, tmp_path):
    rng = np.random.default_rng(1)
    shape = (57, 83)
    full = np.full((4, *shape), np.nan, dtype=np.float32)
    stack = CutoutStack(shape, 4, in_memory=in_memory, tempdir=tmp_path)
    boxes = [(0, 0, 30, 40), (10, 20, 57, 83), (5, 60, 20, 83), (40, 0, 57, 10)]
    for k, (y0, x0, y1, x1) in enumerate(boxes):
        image = np.full(shape, np.nan, dtype=np.float32)
        image[y0:y1, x0:x1] = rng.normal(size=(y1 - y0, x1 - x0))
        image[y0 + 1, x0 + 1] = np.nan  # holes inside a box
        full[k] = image
        box = finite_bounding_box(image)
        assert (box.y0, box.x0, box.y1, box.x1) == (y0, x0, y1, x1)
        stack.add(image, box)
    stack.add(np.full(shape, np.nan, dtype=np.float32), finite_bounding_box(np.full(shape, np.nan)))
    got = stack.median(rows_per_band=7)
    stack.cleanup()
    with _no_warning():
        expected = np.nanmedian(full, axis=0)
    np.testing.assert_array_equal(got, expected)
    assert not list(tmp_path.iterdir())  # temporary files removed


def test_image3_ceers_uses_it_and_flags_injected_cosmic_rays(tmp_path, caplog):
    from jwst_ceers import Image3Ceers

    assert Image3Ceers.step_defs["outlier_detection"] is CeersOutlierDetection
    sim = simulate_pointing(
        tmp_path / "sim", filters=("F150W",), sw_detectors=("NRCA1", "NRCA2"), lw_detectors=(),
        n_dithers=3, size=192, seed=4, cosmic_ray_rate=0.0, source_density_scale=6.0,
    )
    rng = np.random.default_rng(9)
    rays = {}
    for truth in sim.truth.values():
        with datamodels.open(truth.cal_file) as model:
            y, x = rng.integers(8, 184, 3 * N_RAYS), rng.integers(8, 184, 3 * N_RAYS)
            model.data[y, x] += (300 * np.nanmedian(model.err)).astype(np.float32)
            model.save(truth.cal_file)
        rays[truth.root] = (y, x)
    (asn,) = write_associations(sim.cal_files, tmp_path / "sim", by="program", product="m")
    out = tmp_path / "out"
    out.mkdir()
    with caplog.at_level(logging.INFO, logger="jwst_ceers"):
        Image3Ceers.call(
            str(asn), output_dir=str(out), save_results=True,
            steps={"tweakreg": {"abs_refcat": str(sim.refcat_path)},
                   "resample": {"crval": [214.9, 52.9], "rotation": 0.0, "pixel_scale": 0.03},
                   "source_catalog": {"skip": True}},
        )
    assert any("fast path" in r.getMessage() for r in caplog.records)
    found = total = 0
    crf_files = {p.name.split("_a")[0]: p for p in out.glob("*_crf.fits")}
    assert crf_files.keys() == rays.keys()
    crf = {root: datamodels.open(path) for root, path in crf_files.items()}
    found = total = 0
    for root, (y, x) in rays.items():
        model = crf[root]
        seen = _covering_exposures(model, list(crf.values()), y, x) >= 1
        found += np.count_nonzero(seen & ((model.dq[y, x] & OUTLIER) != 0))
        total += np.count_nonzero(seen)
        elsewhere = (model.dq & OUTLIER) != 0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                elsewhere[y + dy, x + dx] = False
        assert np.mean(elsewhere) < 1e-3  # little else
    assert total > 50
    assert found >= 0.95 * total, (found, total)


def test_call_on_association_file_writes_stock_crf(prepared, tmp_path):
    """Standalone (Step.call on the association file, as strun): the crf files stock writes."""
    asn, _ = prepared
    for step_class, folder in ((OutlierDetectionStep, "stock"), (CeersOutlierDetection, "fast")):
        (tmp_path / folder).mkdir()
        step_class.call(str(asn), output_dir=str(tmp_path / folder), save_results=True, suffix="crf")
    stock_files = sorted(p.name for p in (tmp_path / "stock").glob("*_crf.fits"))
    assert len(stock_files) == 12
    assert sorted(p.name for p in (tmp_path / "fast").glob("*_crf.fits")) == stock_files
    for name in stock_files:
        with datamodels.open(tmp_path / "stock" / name) as a, datamodels.open(tmp_path / "fast" / name) as b:
            np.testing.assert_array_equal(b.dq, a.dq, err_msg=name)
            assert b.meta.cal_step.outlier_detection == "COMPLETE"
