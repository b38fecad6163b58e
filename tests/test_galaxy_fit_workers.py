"""Galaxy fits on worker processes give the results of the fits one after the other (issue 16)."""

import logging

import numpy as np
import pytest

from jwst_ceers.masking.fft_ops import block_mean
from jwst_ceers.mosaic_bkg import galaxy_models
from jwst_ceers.mosaic_bkg.fit_workers import FitWorkers, FitWorkersError
from jwst_ceers.mosaic_bkg.galaxy_models import fit_sersic_galaxy, large_galaxy_models, single_threaded_blas
from jwst_ceers.mosaic_bkg.sersic import SersicComponent, evaluate_components


def _field(seed, shape, galaxies):
    rng = np.random.default_rng(seed)
    image = evaluate_components(galaxies, shape) + rng.normal(0, 1.0, shape).astype(np.float32)
    for y, x in rng.uniform((0, 0), shape, (40, 2)):
        image[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] += np.float32(25)
    return image


# five large galaxies: two blended (the second is fitted on the first's residual), the
# others apart, so that some fits run ahead usefully and some must be made again
GALAXIES = [
    SersicComponent(500.0, 450.0, 100.0, 45.0, 1.5, 0.8, 0.3),
    SersicComponent(560.0, 700.0, 80.0, 55.0, 1.0, 0.7, -0.4),
    SersicComponent(1050.0, 1000.0, 90.0, 40.0, 2.0, 0.9, 0.0),
    SersicComponent(300.0, 2600.0, 80.0, 55.0, 1.0, 0.8, 1.0),
    SersicComponent(1500.0, 2200.0, 80.0, 40.0, 1.2, 0.75, 0.6),
]
SHAPE = (2000, 3000)


def test_worker_fit_equals_fit_here_and_sends_its_log_records():
    image = _field(31, (1024, 1024), [SersicComponent(505.0, 515.0, 30.0, 50.0, 1.0, 0.8, 0.4)])
    blocks, fraction = block_mean(image, np.isfinite(image), factor=8)
    options = {"block": 8, "centre": (505.0, 515.0), "radius": 150.0, "noise": 1.0}
    with single_threaded_blas():
        here = fit_sersic_galaxy(blocks, fraction >= 0.5, **options)
    # a star-like region whose fit is rejected (a warning is logged)
    noise = np.random.default_rng(4).normal(0, 1.0, (1024, 1024)).astype(np.float32)
    noise_blocks, noise_fraction = block_mean(noise, np.ones(noise.shape, bool), factor=8)
    with FitWorkers(2) as workers:
        assert workers.count == 2
        there, records = workers.submit(blocks, fraction >= 0.5, options).result(timeout=120)
        rejected, warnings = workers.submit(noise_blocks, noise_fraction >= 0.5, dict(options, flat_is_credible=False,
                                                                                     region_nsigma=0.5)).result(120)
    assert len(here) == 1 and there == here  # dataclass equality: every float bit for bit
    assert rejected == []
    assert any(level == logging.WARNING and "not modelled" in message for _, level, message in warnings)


def test_large_galaxy_models_with_workers_equal_one_after_the_other(caplog):
    image = _field(32, SHAPE, GALAXIES)
    exclude = image > 3.0
    with single_threaded_blas():
        serial = large_galaxy_models(image, exclude)
        calls = []
        fit_here = galaxy_models._OrderedFits._fit_here
        with FitWorkers(2) as workers, caplog.at_level(logging.INFO, logger="jwst_ceers"):
            original = galaxy_models._OrderedFits._fit_here
            galaxy_models._OrderedFits._fit_here = lambda self, options: calls.append(options) or original(self, options)
            try:
                parallel = large_galaxy_models(image, exclude, workers=workers)
            finally:
                galaxy_models._OrderedFits._fit_here = fit_here
    assert len(serial.components) >= 4
    assert parallel.components == serial.components and parallel.unmodelled == serial.unmodelled
    # most fits ran on the workers; the one started before the model of its neighbour
    # 670 px away ended was made again here (without that check the results differ)
    assert 1 <= len(calls) < len(serial.components) + len(serial.unmodelled)
    assert sum("large galaxy model" in r.getMessage() for r in caplog.records) == len(serial.components)


def test_a_dead_worker_falls_back_to_fitting_here(caplog):
    image = _field(33, SHAPE, GALAXIES)
    exclude = image > 3.0
    with single_threaded_blas():
        serial = large_galaxy_models(image, exclude)
        with FitWorkers(1) as workers:
            workers.start()
            for process in workers._processes:
                process.kill()
                process.wait()
            with caplog.at_level(logging.WARNING, logger="jwst_ceers"):
                fallback = large_galaxy_models(image, exclude, workers=workers)
    assert fallback.components == serial.components
    assert any("fitting in this process" in r.getMessage() for r in caplog.records)


def test_no_workers():
    with FitWorkers(0) as workers:
        assert workers.count == 0
        with pytest.raises(FitWorkersError):
            workers.submit(np.zeros((4, 4), np.float32), np.ones((4, 4), bool), {})


def test_workers_start_only_for_fits():
    # a field without large galaxies: no worker process is started
    image = np.random.default_rng(34).normal(0, 1.0, (768, 768)).astype(np.float32)
    with FitWorkers(2) as workers:
        found = large_galaxy_models(image, image > 3.0, workers=workers)
        assert found.components == [] and workers._processes == []


def test_workers_start_inside_a_dask_worker_process():
    # the survey runs MosaicBackground in daemonic dask worker processes, which may not
    # have multiprocessing children; the fit workers are plain subprocesses
    from dask.distributed import Client, LocalCluster

    def fit_in_worker():
        import multiprocessing

        image = _field(35, (1024, 1024), [SersicComponent(505.0, 515.0, 30.0, 50.0, 1.0, 0.8, 0.4)])
        blocks, fraction = block_mean(image, np.ones(image.shape, bool), factor=8)
        options = {"block": 8, "centre": (505.0, 515.0), "radius": 150.0, "noise": 1.0}
        with FitWorkers(1) as workers:
            there, _ = workers.submit(blocks, fraction >= 0.5, options).result(timeout=120)
            started = workers.count
        with single_threaded_blas():
            here = fit_sersic_galaxy(blocks, fraction >= 0.5, **options)
        return multiprocessing.current_process().daemon, started, there == here and len(here) == 1

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert client.submit(fit_in_worker).result(timeout=300) == (True, 1, True)
