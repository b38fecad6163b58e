"""Image3Ceers memory: exposure groups for outlier_detection, one sky per detector, the budget."""

import logging

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_ceers.associations import write_associations
from jwst_ceers.pipeline.memory_plan import (
    BASE_BYTES,
    EXPOSURE_BYTES_PER_PIXEL,
    EXPOSURE_WORK_BYTES_PER_PIXEL,
    GB,
    choose_strategy,
    estimate_peak_memory,
)
from jwst_ceers.simulate import simulate_pointing

GRID = {"crval": [214.9, 52.9], "rotation": 0.0, "pixel_scale": 0.03}
DETECTORS = ("NRCA1", "NRCA2")
N_DITHERS = 3


@pytest.fixture(scope="module")
def two_detectors(tmp_path_factory):
    """Two SW detectors x three dithers (six files, three exposures), with association."""
    root = tmp_path_factory.mktemp("memory")
    sim = simulate_pointing(
        root / "sim", filters=("F150W",), sw_detectors=DETECTORS, lw_detectors=(),
        n_dithers=N_DITHERS, size=256, seed=5, source_density_scale=8.0, pedestal_range=(0.1, 0.3),
    )
    (asn,) = write_associations(sim.cal_files, root / "sim", by="program", product="m")
    return sim, asn


def run_image3(sim, asn, out, **kwargs):
    from jwst_ceers import Image3Ceers

    out.mkdir()
    steps = kwargs.pop("steps", {})
    Image3Ceers.call(
        str(asn), output_dir=str(out), save_results=True,
        steps={"tweakreg": {"abs_refcat": str(sim.refcat_path)}, "resample": GRID,
               "source_catalog": {"skip": True}, **steps},
        **kwargs,
    )
    return datamodels.open(out / "m_f150w_i2d.fits")


@pytest.fixture(scope="module")
def in_memory_run(two_detectors, tmp_path_factory):
    sim, asn = two_detectors
    out = tmp_path_factory.mktemp("in_memory") / "out"
    mosaic = run_image3(sim, asn, out, steps={"outlier_detection": {"save_intermediate_results": True}})
    return out, mosaic


def test_outlier_median_per_exposure_and_sky_per_detector(two_detectors, in_memory_run):
    sim, _ = two_detectors
    out, mosaic = in_memory_run
    # outlier_detection drizzled one image per exposure (both detectors), not one per file
    drizzled = sorted(out.glob("*_outlier_i2d.fits"))
    assert len(drizzled) == N_DITHERS, [p.name for p in drizzled]
    # resample counted each exposure's time once, not once per detector
    exptime = datamodels.open(sim.cal_files[0]).meta.exposure.exposure_time
    assert mosaic.meta.exposure.exposure_time == pytest.approx(N_DITHERS * exptime)
    assert mosaic.meta.resample.pointings == N_DITHERS

    # skymatch recorded each detector's own sky: the two detectors of an exposure differ
    # as their pedestals do (one sky per exposure would record the same level for both)
    crf = {p.name.split("_a")[0]: datamodels.open(p) for p in out.glob("*_crf.fits")}
    assert len(crf) == len(DETECTORS) * N_DITHERS
    distinct = 0
    for root, model in crf.items():
        other = root.replace("nrca1", "nrca2") if "nrca1" in root else root.replace("nrca2", "nrca1")
        truth_step = sim.truth[root].pedestal - sim.truth[other].pedestal
        recorded_step = model.meta.background.level - crf[other].meta.background.level
        assert recorded_step == pytest.approx(truth_step, abs=0.006), root  # sources bias each by ~0.003
        distinct += abs(truth_step) > 0.02
    assert distinct >= 2  # the simulation gives detectors clearly different pedestals
    # ...and only a few pixels (the injected cosmic rays' share) are flagged as outliers
    for root, model in crf.items():
        flagged = np.mean((model.dq & datamodels.dqflags.pixel["OUTLIER"]) != 0)
        assert flagged < 1e-3, (root, flagged)


def test_budget_keeps_exposures_on_disk_same_mosaic(two_detectors, in_memory_run, tmp_path, caplog):
    sim, asn = two_detectors
    _, in_memory = in_memory_run
    with caplog.at_level(logging.INFO, logger="jwst_ceers"):
        on_disk = run_image3(sim, asn, tmp_path / "on_disk", memory_budget_gb=0.01)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("jwst_ceers.pipeline")]
    estimate = [m for m in messages if "estimated peak" in m and "exposure group" in m]
    assert estimate and f"{len(DETECTORS) * N_DITHERS} exposures in {N_DITHERS} exposure group(s)" in estimate[0]
    assert any("on disk between steps" in m and "exceeds memory_budget_gb=0.01" in m for m in messages), messages
    np.testing.assert_array_equal(on_disk.data, in_memory.data)
    np.testing.assert_array_equal(on_disk.wht, in_memory.wht)


def test_estimate_matches_the_issue_measurements():
    """24 x 2048^2 onto a 10446 x 4708 grid: stock 5.95 GB (issue 16)."""
    pixels = [2048 * 2048] * 24
    mosaic = 10446 * 4708
    per_exposure = estimate_peak_memory(exposure_pixels=pixels, n_exposure_groups=3, mosaic_pixels=mosaic)
    per_file = estimate_peak_memory(exposure_pixels=pixels, n_exposure_groups=24, mosaic_pixels=mosaic)
    assert per_exposure.in_memory_gb == pytest.approx(5.95, rel=0.15)
    # CeersOutlierDetection keeps each group's drizzled pixels, not a full grid per group
    # (stock with one median group per file: 10.23 GB in issue 16)
    assert per_file.in_memory_gb < 1.1 * per_exposure.in_memory_gb
    assert per_exposure.on_disk_gb < 0.7 * per_exposure.in_memory_gb
    # 48 exposures (two visits) stay under 8 GB only on disk
    big = estimate_peak_memory(exposure_pixels=pixels * 2, n_exposure_groups=6, mosaic_pixels=mosaic, threads=2)
    assert big.in_memory_gb > 8 > big.on_disk_gb


def test_on_disk_estimate_matches_the_full_frame_measurement():
    """48 x 2048^2 onto 10469 x 4824, on disk: Image3Ceers 3.37 GB (bench_pointing, issue 16); stock 8.22 GB in memory."""
    pixels = [2048 * 2048] * 48
    estimate = estimate_peak_memory(exposure_pixels=pixels, n_exposure_groups=6, mosaic_pixels=10469 * 4824, threads=2)
    assert estimate.on_disk_gb == pytest.approx(3.37, rel=0.1)
    assert estimate.in_memory_gb == pytest.approx(8.22, rel=0.15)
    small = estimate_peak_memory(exposure_pixels=[1024 * 1024] * 48, n_exposure_groups=6, mosaic_pixels=35_000_000,
                                 threads=2)
    assert small.on_disk_gb == pytest.approx(2.58, rel=0.1)


def test_choose_strategy():
    estimate = estimate_peak_memory(exposure_pixels=[2048**2] * 24, n_exposure_groups=3, mosaic_pixels=49_000_000)
    assert choose_strategy(estimate, budget_gb=0).in_memory
    assert choose_strategy(estimate, budget_gb=64).in_memory
    tight = choose_strategy(estimate, budget_gb=estimate.in_memory_gb - 0.1)
    assert not tight.in_memory and tight.peak_gb == estimate.on_disk_gb
    assert "exceeds memory_budget_gb" in tight.reason
    assert not choose_strategy(estimate, budget_gb=0, in_memory_requested=False).in_memory
    # one exposure: no median stack, and the budget is in 2^30-byte GB
    single = estimate_peak_memory(exposure_pixels=[1000], n_exposure_groups=1, mosaic_pixels=0)
    per_pixel = EXPOSURE_BYTES_PER_PIXEL + EXPOSURE_WORK_BYTES_PER_PIXEL
    expected = (BASE_BYTES + 1000 * per_pixel) / GB
    assert single.in_memory_gb == pytest.approx(expected, rel=1e-6)
