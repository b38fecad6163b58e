"""Per-exposure work on several threads gives bitwise the serial results."""

import threading

import numpy as np
import pytest
from jwst.datamodels import ModelLibrary
from stdatamodels.jwst import datamodels

from jwst_ceers.parallel_exposures import map_exposures
from jwst_ceers.simulate import simulate_pointing


@pytest.fixture(scope="module")
def four_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("threads")
    sim = simulate_pointing(
        root / "sim", filters=("F150W",), sw_detectors=("NRCA1", "NRCA2"), lw_detectors=(),
        n_dithers=2, size=512, seed=21, source_density_scale=8.0, refcat_mag_limit=27.5,
    )
    return sim


def library_state(library):
    state = []
    with library:
        for index, model in enumerate(library):
            y, x = np.mgrid[0:512:31, 0:512:31]
            state.append({
                "data": model.data.copy(),
                "var_rnoise": model.var_rnoise.copy(),
                "pedestal": dict(model.meta.ceers_pedestal.instance) if model.meta.hasattr("ceers_pedestal") else None,
                "sky": np.array(model.meta.wcs(x, y)),
                "status": (model.meta.cal_step.ceers_pedestal, model.meta.cal_step.ceers_tweakreg),
            })
            library.shelve(model, index, modify=False)
    return state


def assert_same(serial, threaded):
    assert len(serial) == len(threaded)
    for one, other in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(one["data"], other["data"])
        np.testing.assert_array_equal(one["var_rnoise"], other["var_rnoise"])
        np.testing.assert_array_equal(one["sky"], other["sky"])
        assert one["pedestal"] == other["pedestal"]
        assert one["status"] == other["status"]


def test_tweakreg_then_pedestal_threads_identical(four_files, tmp_path):
    from jwst_ceers import CatalogTweakReg, PedestalSkySub

    sim = four_files
    cal = [str(p) for p in sim.cal_files]
    states, tables = {}, {}
    for threads in (1, 3):
        results = tmp_path / f"fits_{threads}.ecsv"
        aligned = CatalogTweakReg(
            abs_refcat=str(sim.refcat_path), threads=threads, results_file=str(results),
        ).run(cal)
        states[threads] = library_state(PedestalSkySub(threads=threads).run(aligned))
        tables[threads] = results.read_text()
    assert [s["status"] for s in states[1]] == [("COMPLETE", "COMPLETE")] * len(cal)
    assert_same(states[1], states[3])
    assert tables[1] == tables[3]


def _library(n):
    models = []
    for i in range(n):
        model = datamodels.ImageModel((4, 4))
        model.data[:] = i
        model.meta.filename = f"m{i}.fits"
        models.append(model)
    return ModelLibrary(models)


def test_map_exposures_results_in_order_and_bounded():
    library = _library(7)
    running, peak, lock = [0], [0], threading.Lock()

    def work(model, index):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        value = float(model.data.sum()) + index
        model.data += 1
        with lock:
            running[0] -= 1
        return value

    results = map_exposures(library, work, threads=3)
    assert results == [16.0 * i + i for i in range(7)]
    assert 1 <= peak[0] <= 3
    with library:  # every model was shelved (modified)
        for index, model in enumerate(library):
            assert model.data[0, 0] == index + 1
            library.shelve(model, index, modify=False)


@pytest.mark.parametrize("threads", [1, 3])
def test_map_exposures_error_of_lowest_index_after_shelving(threads):
    library = _library(6)
    started = []

    def work(model, index):
        started.append(index)
        if index in (1, 2):
            raise ValueError(f"bad exposure {index}")
        return index

    with pytest.raises(ValueError, match="bad exposure 1"):
        map_exposures(library, work, threads=threads)
    if threads == 1:
        assert started == [0, 1]  # nothing is started after a failure
    with library:  # nothing left borrowed
        for index, model in enumerate(library):
            library.shelve(model, index, modify=False)
