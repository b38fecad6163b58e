"""Shared fixtures-in-functions of the tests/test_hostile_*.py files (issue 14).

Small simulated NIRCam exposures (256^2, two dithers of one detector in F150W and
F356W), written once per test module, plus helpers to hash inputs and to write
associations.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels


def digest(paths):
    """{path: sha256} of files (to prove inputs were not written)."""
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def simulate_small_pointing(directory, *, seed=5):
    """Two dithers x (NRCA1 F150W, NRCALONG F356W), 256^2; returns the SimulatedPointing."""
    from jwst_ceers.simulate import simulate_pointing

    return simulate_pointing(
        directory, filters=("F150W", "F356W"), sw_detectors=("NRCA1",), lw_detectors=("NRCALONG",),
        n_dithers=2, size=256, seed=seed,
    )


def f150w_files(sim):
    return [p for p in sim.cal_files if "nrca1" in p.name]


def write_asn(directory, members, *, product="t_f150w", name="asn.json"):
    """A Level-3 association of ``members`` (paths, written as given)."""
    asn = {
        "asn_type": "image3", "asn_id": "a3001", "asn_pool": "pool", "asn_rule": "candidate_Asn_Lv3Image",
        "products": [{"name": product, "members": [{"expname": str(m), "exptype": "science"} for m in members]}],
    }
    path = Path(directory) / name
    path.write_text(json.dumps(asn))
    return path


def modified_copy(source, target, change):
    """Save a copy of exposure ``source`` at ``target`` after ``change(model)``."""
    with datamodels.open(source) as model:
        change(model)
        model.save(target)
    return Path(target)


def run_image3(asn, out, refcat, **steps):
    """Image3Ceers on ``asn`` writing into ``out`` (source_catalog skipped); returns the i2d path."""
    from jwst_ceers import Image3Ceers

    parameters = {"tweakreg": {"abs_refcat": str(refcat)}, "source_catalog": {"skip": True}}
    for name, values in steps.items():
        parameters.setdefault(name, {}).update(values)
    Image3Ceers.call(str(asn), output_dir=str(out), save_results=True, steps=parameters)
    return Path(out) / "t_f150w_i2d.fits"


def finite_fraction(path):
    with datamodels.open(path) as model:
        return float(np.mean(np.isfinite(model.data) & (model.wht > 0)))
