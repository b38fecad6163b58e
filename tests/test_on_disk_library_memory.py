"""Exposures read from an on-disk library are freed as a pass goes, not at its end.

48 full frames through Image3Ceers on disk peaked at 4.9 GB in pedestal and varfill:
the per-exposure steps' check of every member returned the model, map_exposures kept
all results until the pass ended, so every exposure's arrays stayed in memory.
"""

import gc
import json
import weakref

from jwst_ceers import VarianceHoleFill
from jwst_ceers import _step as exposure_step
from jwst_ceers.pipeline import memory_plan
from jwst_ceers.simulate import simulate_pointing


def _association(tmp_path, n_dithers):
    sim = simulate_pointing(
        tmp_path / "sim", filters=("F150W",), sw_detectors=("NRCA1",), lw_detectors=(), n_dithers=n_dithers,
        size=128, seed=3,
    )
    asn = tmp_path / "asn.json"
    asn.write_text(json.dumps({"asn_id": "a", "asn_pool": "p", "products": [{"name": "t", "members": [
        {"expname": str(p), "exptype": "science"} for p in sim.cal_files]}]}))
    return asn


def test_member_check_keeps_no_exposure_alive(tmp_path, monkeypatch):
    asn = _association(tmp_path, n_dithers=4)
    library = memory_plan.HeapTrimmingLibrary(str(asn), on_disk=True, temp_directory=str(tmp_path))
    borrowed = []
    original_borrow = library.borrow

    def borrow(index):
        model = original_borrow(index)
        borrowed.append(weakref.ref(model))
        return model

    monkeypatch.setattr(library, "borrow", borrow)
    alive_at_check = []
    original_check = exposure_step.check_image_model

    def check(model, **kwargs):
        gc.collect()
        # the models read before this one: none may still be referenced
        alive_at_check.append(sum(ref() is not None for ref in borrowed[:-1]))
        return original_check(model, **kwargs)

    monkeypatch.setattr(exposure_step, "check_image_model", check)
    VarianceHoleFill(threads=1).run(library)
    assert len(alive_at_check) >= 4
    assert max(alive_at_check) == 0, alive_at_check


def test_on_disk_library_collects_garbage_every_few_reads(tmp_path, monkeypatch):
    asn = _association(tmp_path, n_dithers=4)
    calls = []
    monkeypatch.setattr(memory_plan, "release_free_memory", lambda: calls.append(1) or True)
    every = memory_plan.HeapTrimmingLibrary.COLLECT_EVERY
    for on_disk, expected in ((True, 8 // every), (False, 0)):
        calls.clear()
        library = memory_plan.HeapTrimmingLibrary(str(asn), on_disk=on_disk, temp_directory=str(tmp_path))
        with library:
            for _ in range(2):
                for index in range(len(library)):
                    model = library.borrow(index)
                    library.shelve(model, index, modify=False)
        assert len(calls) == expected, (on_disk, calls)
