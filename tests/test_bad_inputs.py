"""Reliability: bad inputs, input immutability, atomic outputs and idempotent re-runs.

Every bad-input case ends in ONE of two documented outcomes, and each test says which:

- ``raises(...)``: a `jwst_ceers.CeersError` subclass whose message names the file or
  parameter and the problem (never a bare traceback from numpy/astropy);
- ``skipped(...)``: the exposure gets ``meta.cal_step.<alias> == "SKIPPED"`` and a warning
  is logged; the rest of the run goes on.

CLI commands exit with status 2 and print one ``jwst-ceers <cmd>: error: ...`` line.
An autouse fixture hashes every input file before and after each test: no input is ever
modified and no stray file (temporary or output) appears beside the inputs.
"""

import errno
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels

from jwst_ceers.errors import CeersDataError, CeersError, CeersFileError, CeersParameterError

REFCAT_ECSV_EMPTY = """# %ECSV 1.0
# ---
# datatype:
# - {name: ra, datatype: float64}
# - {name: dec, datatype: float64}
ra dec
"""


# ====================================================================== fixtures
def _tree_digest(path):
    """{file: sha256} of a file or of every file below a directory."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


class InputGuard:
    """Remembers the content of input files/directories and checks it is unchanged."""

    def __init__(self):
        self.before = {}

    def track(self, *paths):
        for path in paths:
            self.before[str(path)] = _tree_digest(path)
        return paths

    def check(self):
        for path, digest in self.before.items():
            after = _tree_digest(path)
            assert sorted(after) == sorted(digest), f"files appeared/disappeared under input {path}"
            changed = [f for f in digest if after[f] != digest[f]]
            assert not changed, f"input files modified: {changed}"


_SHARED_INPUTS = []


@pytest.fixture(autouse=True)
def guard():
    """Hash the shared inputs (and whatever a test tracks) before and after every test."""
    g = InputGuard()
    g.track(*_SHARED_INPUTS)
    yield g
    g.check()


@pytest.fixture(scope="module")
def pointing(tmp_path_factory):
    """One F150W detector, two dithers of 256x256, their association and reference catalog."""
    from jwst_ceers.associations import write_associations
    from jwst_ceers.simulate import simulate_pointing

    root = tmp_path_factory.mktemp("bad_inputs_pointing")
    sim = simulate_pointing(
        root / "sim", filters=("F150W",), sw_detectors=("NRCA1",), lw_detectors=(),
        n_dithers=2, size=256, seed=5, source_density_scale=8.0,
    )
    (asn,) = write_associations(sim.cal_files, root / "sim", by="program", product="t")
    _SHARED_INPUTS.append(root / "sim")
    return {"sim": sim, "cal": [str(p) for p in sim.cal_files], "asn": Path(asn), "refcat": str(sim.refcat_path)}


@pytest.fixture(scope="module")
def tiny_pointing(tmp_path_factory):
    """Two dithers of a 32x32 subarray (SUB32)."""
    from jwst_ceers.simulate import simulate_pointing

    root = tmp_path_factory.mktemp("bad_inputs_tiny")
    sim = simulate_pointing(
        root / "sim", filters=("F150W",), sw_detectors=("NRCA1",), lw_detectors=(),
        n_dithers=2, size=32, seed=6,
    )
    _SHARED_INPUTS.append(root / "sim")
    return sim


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory):
    """Two NIRCam i2d mosaics and one HST-like drz mosaic of 256x256 on one grid."""
    from jwst_ceers.simulate.mosaics import simulate_mosaics

    root = tmp_path_factory.mktemp("bad_inputs_mosaics")
    sim = simulate_mosaics(
        root / "in", shape=(256, 256), seed=4, filters=("F150W", "F356W"), hst_filters=("F160W",),
        n_large_galaxies=0,
    )
    _SHARED_INPUTS.append(root / "in")
    return [str(sim.paths[f]) for f in ("F150W", "F356W", "F160W")]


def raises(error_type, *words):
    """pytest.raises for a jwst_ceers error whose message contains every word (case-insensitive)."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(error_type)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self.ctx.__exit__(*exc)
            if not suppressed:  # another exception type: let it propagate
                return False
            assert issubclass(error_type, CeersError)
            message = str(self.info.value).lower()
            for word in words:
                assert str(word).lower() in message, f"{word!r} not in error message: {self.info.value}"
            return suppressed

    return _Check()


def statuses(result, alias):
    """meta.cal_step.<alias> of a model or of every model of a ModelLibrary."""
    from jwst.datamodels import ModelLibrary

    if isinstance(result, ModelLibrary):
        out = []
        with result:
            for index, model in enumerate(result):
                out.append(model.meta.cal_step.instance.get(alias))
                result.shelve(model, index, modify=False)
        return out
    return [result.meta.cal_step.instance.get(alias)]


def skipped(result, alias, caplog, *, expected=None):
    """Assert the documented SKIPPED outcome: status SKIPPED (where expected) and a warning."""
    found = statuses(result, alias)
    expected = expected or ["SKIPPED"] * len(found)
    assert found == expected
    assert any(r.levelno >= logging.WARNING for r in caplog.records), "SKIPPED without a warning"


def corrupt_copy(source, target, mutate):
    """Open ``source``, apply ``mutate(model)``, save as ``target``; return the path."""
    with datamodels.open(source) as model:
        mutate(model)
        model.save(target)
    return str(target)


def make_asn(directory, members, name="asn.json"):
    asn = {
        "asn_type": "image3", "asn_rule": "DMS_Level3_Base", "asn_id": "a3001", "asn_pool": "none",
        "program": "01345", "target": "t", "version_id": None, "code_version": "3.0.0",
        "degraded_status": "", "constraints": "",
        "products": [{"name": "t_f150w", "members": [{"expname": str(m), "exptype": "science"} for m in members]}],
    }
    path = Path(directory) / name
    path.write_text(json.dumps(asn))
    return path


# =========================================== exposure steps (ExposureStep inputs)
def test_varfill_missing_file(tmp_path):
    from jwst_ceers import VarianceHoleFill

    with raises(CeersFileError, "nope_cal.fits", "does not exist"):
        VarianceHoleFill().run(str(tmp_path / "nope_cal.fits"))


def test_varfill_file_is_not_fits(tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    bad = tmp_path / "garbage_cal.fits"
    bad.write_bytes(b"this is not a FITS file\n" * 50)
    guard.track(bad)
    with raises(CeersFileError, "garbage_cal.fits", "not a fits"):
        VarianceHoleFill().run(str(bad))


def test_varfill_truncated_fits(pointing, tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    bad = tmp_path / "truncated_cal.fits"
    bad.write_bytes(Path(pointing["cal"][0]).read_bytes()[:20000])
    guard.track(bad)
    with raises(CeersFileError, "truncated_cal.fits"):
        VarianceHoleFill().run(str(bad))


def test_varfill_not_an_image_model_file(tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    cube = datamodels.CubeModel((2, 8, 8))
    cube.save(tmp_path / "cube_cal.fits")
    guard.track(tmp_path / "cube_cal.fits")
    with raises(CeersFileError, "cube_cal.fits", "ImageModel", "CubeModel"):
        VarianceHoleFill().run(str(tmp_path / "cube_cal.fits"))


def test_varfill_not_an_image_model_in_memory():
    from jwst_ceers import VarianceHoleFill

    cube = datamodels.CubeModel((2, 8, 8))
    cube.meta.filename = "cube_cal.fits"
    with raises(CeersDataError, "cube_cal.fits", "not 2-D"):
        VarianceHoleFill().run(cube)


def test_varfill_association_member_missing(pointing, tmp_path):
    from jwst_ceers import VarianceHoleFill

    asn = make_asn(tmp_path, [pointing["cal"][0], tmp_path / "missing_cal.fits"])
    with raises(CeersFileError, "missing_cal.fits", "asn.json", "does not exist"):
        VarianceHoleFill().run(str(asn))


def test_varfill_association_member_unreadable(pointing, tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    (tmp_path / "bad_cal.fits").write_text("garbage")
    asn = make_asn(tmp_path, [pointing["cal"][0], tmp_path / "bad_cal.fits"])
    guard.track(tmp_path)
    with raises(CeersFileError, "bad_cal.fits", "not a fits"):
        VarianceHoleFill(in_memory=False).run(str(asn))


def test_association_not_json(tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    bad = tmp_path / "broken_asn.json"
    bad.write_text('{"products": [')
    guard.track(bad)
    with raises(CeersFileError, "broken_asn.json", "json"):
        VarianceHoleFill().run(str(bad))


def test_association_without_members(tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    bad = tmp_path / "empty_asn.json"
    bad.write_text(json.dumps({"products": [{"name": "x", "members": []}]}))
    guard.track(bad)
    with raises(CeersFileError, "empty_asn.json", "no science member"):
        VarianceHoleFill().run(str(bad))


def test_varfill_empty_input_list():
    from jwst_ceers import VarianceHoleFill

    with raises(CeersParameterError, "ceers_varfill", "no exposure"):
        VarianceHoleFill().run([])


def test_varfill_parameter_list_too_long():
    from jwst_ceers import VarianceHoleFill

    with raises(CeersParameterError, "ceers_varfill", "arrays", "too long"):
        VarianceHoleFill(arrays=["var_rnoise"] * 4)


def test_varfill_wrong_units(pointing):
    from jwst_ceers import VarianceHoleFill

    model = datamodels.open(pointing["cal"][0])
    model.meta.bunit_data = "DN/s"
    with raises(CeersDataError, Path(pointing["cal"][0]).name, "DN/s", "MJy/sr"):
        VarianceHoleFill().run(model)


def test_pedestal_wrong_units_in_association(pointing, tmp_path, guard):
    from jwst_ceers import PedestalSkySub

    rate = corrupt_copy(pointing["cal"][1], tmp_path / "jw01345001001_02101_00002_nrca1_cal.fits",
                        lambda m: setattr(m.meta, "bunit_data", "DN/s"))
    asn = make_asn(tmp_path, [pointing["cal"][0], rate])
    guard.track(tmp_path)
    with raises(CeersDataError, "jw01345001001_02101_00002_nrca1_cal.fits", "DN/s"):
        PedestalSkySub().run(str(asn))


def test_varfill_all_nan_exposure_is_skipped(pointing, caplog):
    from jwst_ceers import VarianceHoleFill

    model = datamodels.open(pointing["cal"][0])
    model.data[:] = np.nan
    result = VarianceHoleFill().run(model)
    skipped(result, "ceers_varfill", caplog)
    assert np.array_equal(result.var_rnoise, model.var_rnoise, equal_nan=True)  # left unchanged


def test_pedestal_all_nan_exposure_is_skipped(pointing, caplog):
    from jwst_ceers import PedestalSkySub

    model = datamodels.open(pointing["cal"][0])
    model.data[:] = np.nan
    result = PedestalSkySub().run(model)
    skipped(result, "ceers_pedestal", caplog)
    assert not result.meta.background.subtracted


def test_pedestal_all_flagged_exposure_is_skipped(pointing, caplog):
    from jwst_ceers import PedestalSkySub

    model = datamodels.open(pointing["cal"][0])
    model.dq[:] = 1  # DO_NOT_USE everywhere
    data = model.data.copy()
    result = PedestalSkySub().run(model)
    skipped(result, "ceers_pedestal", caplog)
    assert np.array_equal(result.data, data, equal_nan=True)


def test_pedestal_one_bad_exposure_of_an_association_is_skipped_the_rest_done(pointing, tmp_path, guard, caplog):
    from jwst_ceers import PedestalSkySub

    nan = corrupt_copy(pointing["cal"][1], tmp_path / "jw01345001001_02101_00002_nrca1_cal.fits",
                       lambda m: m.data.__setitem__(slice(None), np.nan))
    asn = make_asn(tmp_path, [pointing["cal"][0], nan])
    guard.track(tmp_path)
    result = PedestalSkySub().run(str(asn))
    skipped(result, "ceers_pedestal", caplog, expected=["COMPLETE", "SKIPPED"])


def test_zero_size_exposure(pointing):
    from jwst_ceers import PedestalSkySub

    model = datamodels.ImageModel((0, 0))
    model.meta.filename = "empty_cal.fits"
    with raises(CeersDataError, "empty_cal.fits", "empty"):
        PedestalSkySub().run(model)


def test_pedestal_too_few_pixels_is_skipped(caplog):
    """A 4x4 cut-out: no pedestal can be measured from 16 pixels; SKIPPED, not a guess."""
    from jwst_ceers import PedestalSkySub

    rng = np.random.default_rng(3)
    model = datamodels.ImageModel(rng.normal(0.2, 0.01, (4, 4)).astype(np.float32))
    model.meta.filename = "cutout_cal.fits"
    model.var_rnoise = np.full((4, 4), 1e-4, np.float32)
    result = PedestalSkySub().run(model)
    skipped(result, "ceers_pedestal", caplog)
    assert np.array_equal(result.data, model.data)


def test_pedestal_tiny_subarray_is_measured(tiny_pointing):
    """A 32x32 subarray (1024 pixels) is small but measurable: COMPLETE with a finite level."""
    from jwst_ceers import PedestalSkySub

    result = PedestalSkySub().run(str(tiny_pointing.cal_files[0]))
    assert result.meta.cal_step.ceers_pedestal == "COMPLETE"
    truth = tiny_pointing.truth[Path(tiny_pointing.cal_files[0]).name.replace("_cal.fits", "")]
    assert abs(result.meta.background.level - truth.pedestal) < 0.5 * np.sqrt(truth.sky_variance)


def test_pedestal_mask_file_wrong_shape(pointing, tmp_path, guard):
    from jwst_ceers import PedestalSkySub

    cal = Path(pointing["cal"][0])
    shutil.copy(cal, tmp_path / cal.name)
    fits.PrimaryHDU(np.zeros((10, 12), np.int32)).writeto(tmp_path / cal.name.replace("_cal", "_1fmask"))
    guard.track(tmp_path)
    with raises(CeersFileError, "_1fmask.fits", "shape", "(10, 12)"):
        PedestalSkySub(mask_dir=str(tmp_path)).run(str(tmp_path / cal.name))


def test_pedestal_mask_file_unreadable(pointing, tmp_path, guard):
    from jwst_ceers import PedestalSkySub

    cal = Path(pointing["cal"][0])
    (tmp_path / cal.name.replace("_cal", "_1fmask")).write_text("not fits")
    guard.track(tmp_path)
    with raises(CeersFileError, "_1fmask.fits"):
        PedestalSkySub(mask_dir=str(tmp_path)).run(str(cal))


def test_pedestal_tier_lists_of_different_lengths(pointing):
    from jwst_ceers import PedestalSkySub

    with raises(CeersParameterError, "tier_kernel_fwhm", "same length"):
        PedestalSkySub(tier_kernel_fwhm=[10.0, 4.0], tier_nsigma=[3.0]).run(pointing["cal"][0])


def test_pedestal_parameter_out_of_range():
    from jwst_ceers import PedestalSkySub

    with raises(CeersParameterError, "ceers_pedestal", "min_sky_fraction"):
        PedestalSkySub(min_sky_fraction=1.5)


def test_varfill_unknown_array_name(pointing):
    from jwst_ceers import VarianceHoleFill

    with raises(CeersParameterError, "arrays", "var_bogus"):
        VarianceHoleFill(arrays=["var_bogus"]).run(pointing["cal"][0])


def test_varfill_parameter_file_unknown_key(pointing, tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    path = tmp_path / "varfill.asdf"
    _write_parameter_file(path, "jwst_ceers.VarianceHoleFill", "ceers_varfill", {"arrayz": ["var_rnoise"]})
    guard.track(path)
    with raises(CeersParameterError, "varfill.asdf", "arrayz"):
        VarianceHoleFill.call(pointing["cal"][0], config_file=str(path))


def test_varfill_parameter_file_malformed(pointing, tmp_path, guard):
    from jwst_ceers import VarianceHoleFill

    path = tmp_path / "varfill.asdf"
    path.write_text("#ASDF 1.0.0\n%YAML 1.1\n--- !core/asdf-1.1.0\nparameters: {arrays: [unclosed\n")
    guard.track(path)
    with raises(CeersParameterError, "varfill.asdf", "cannot be used"):
        VarianceHoleFill.call(pointing["cal"][0], config_file=str(path))


def test_parameter_file_missing(pointing, tmp_path):
    from jwst_ceers import VarianceHoleFill

    with raises(CeersParameterError, "nope.asdf", "not found"):
        VarianceHoleFill.call(pointing["cal"][0], config_file=str(tmp_path / "nope.asdf"))


def _write_parameter_file(path, class_name, name, parameters, steps=None):
    import asdf

    tree = {"class": class_name, "name": name, "parameters": parameters}
    if steps:
        tree["steps"] = steps
    asdf.AsdfFile(tree).write_to(path)


# ====================================================================== tweakreg
def test_tweakreg_empty_input_list():
    from jwst_ceers import CatalogTweakReg

    with raises(CeersParameterError, "ceers_tweakreg", "no exposure"):
        CatalogTweakReg().run([])


def test_tweakreg_refcat_missing(pointing, tmp_path):
    from jwst_ceers import CatalogTweakReg

    with raises(CeersFileError, "abs_refcat", "nope.ecsv", "does not exist"):
        CatalogTweakReg(abs_refcat=str(tmp_path / "nope.ecsv")).run(pointing["cal"])


def test_tweakreg_refcat_empty(pointing, tmp_path, guard):
    from jwst_ceers import CatalogTweakReg

    (tmp_path / "empty.ecsv").write_text(REFCAT_ECSV_EMPTY)
    guard.track(tmp_path)
    with raises(CeersFileError, "empty.ecsv", "no source"):
        CatalogTweakReg(abs_refcat=str(tmp_path / "empty.ecsv")).run(pointing["cal"])


def test_tweakreg_refcat_without_radec(pointing, tmp_path, guard):
    from jwst_ceers import CatalogTweakReg

    Table({"x": [1.0, 2.0], "y": [3.0, 4.0]}).write(tmp_path / "xy.ecsv")
    guard.track(tmp_path)
    with raises(CeersFileError, "xy.ecsv", "RA/DEC"):
        CatalogTweakReg(abs_refcat=str(tmp_path / "xy.ecsv")).run(pointing["cal"])


def test_tweakreg_refcat_other_format(pointing, tmp_path, guard):
    from jwst_ceers import CatalogTweakReg

    (tmp_path / "refcat.txt").write_text("this is prose, not a table\nat all\n")
    guard.track(tmp_path)
    with raises(CeersFileError, "refcat.txt", "cannot be read as a table"):
        CatalogTweakReg(abs_refcat=str(tmp_path / "refcat.txt")).run(pointing["cal"])


def test_tweakreg_refcat_mag_range_without_mag(pointing, tmp_path, guard):
    from jwst_ceers import CatalogTweakReg

    Table({"RA": [214.9], "DEC": [52.9]}).write(tmp_path / "nomag.ecsv")
    guard.track(tmp_path)
    with raises(CeersFileError, "nomag.ecsv", "magnitude"):
        CatalogTweakReg(abs_refcat=str(tmp_path / "nomag.ecsv"), abs_mag_range=[18.0, 24.0]).run(pointing["cal"])


def test_tweakreg_refcat_mag_range_selects_nothing(pointing):
    from jwst_ceers import CatalogTweakReg

    with raises(CeersParameterError, "abs_mag_range", "keeps no source"):
        CatalogTweakReg(abs_refcat=pointing["refcat"], abs_mag_range=[40.0, 41.0]).run(pointing["cal"])


def test_tweakreg_refcat_not_overlapping_is_skipped(pointing, tmp_path, guard, caplog):
    from jwst_ceers import CatalogTweakReg

    far = Table.read(pointing["refcat"])
    far["dec"] -= 1.0
    far.write(tmp_path / "far.ecsv")
    guard.track(tmp_path)
    result = CatalogTweakReg(abs_refcat=str(tmp_path / "far.ecsv")).run(pointing["cal"])
    skipped(result, "ceers_tweakreg", caplog)


def test_tweakreg_member_catalog_missing(pointing, tmp_path):
    from jwst_ceers import CatalogTweakReg

    asn = json.loads(pointing["asn"].read_text())
    for member in asn["products"][0]["members"]:
        member["expname"] = str(pointing["asn"].parent / member["expname"])
        member["tweakreg_catalog"] = str(tmp_path / "gone_cat.ecsv")
    path = tmp_path / "asn.json"
    path.write_text(json.dumps(asn))
    with raises(CeersFileError, "gone_cat.ecsv", "does not exist"):
        CatalogTweakReg(abs_refcat=pointing["refcat"]).run(str(path))


def test_tweakreg_member_catalog_without_xy(pointing, tmp_path, guard):
    from jwst_ceers import CatalogTweakReg

    Table({"ra": [1.0], "dec": [2.0]}).write(tmp_path / "radec_cat.ecsv")
    asn = json.loads(pointing["asn"].read_text())
    for member in asn["products"][0]["members"]:
        member["expname"] = str(pointing["asn"].parent / member["expname"])
        member["tweakreg_catalog"] = "radec_cat.ecsv"
    (tmp_path / "asn.json").write_text(json.dumps(asn))
    guard.track(tmp_path)
    with raises(CeersFileError, "radec_cat.ecsv", "no x column"):
        CatalogTweakReg(abs_refcat=pointing["refcat"]).run(str(tmp_path / "asn.json"))


def test_tweakreg_saved_wcs_missing(pointing, tmp_path):
    from jwst_ceers import CatalogTweakReg

    (tmp_path / "wcs").mkdir()
    with raises(CeersFileError, "jw01345001001_02101_00001_nrca1_tweakreg.asdf", "does not exist"):
        CatalogTweakReg(use_saved_wcs=True, wcs_dir=str(tmp_path / "wcs")).run(pointing["cal"])


def test_tweakreg_saved_wcs_corrupt(pointing, tmp_path, guard):
    from jwst_ceers import CatalogTweakReg

    (tmp_path / "wcs").mkdir()
    for cal in pointing["cal"]:
        root = Path(cal).name.replace("_cal.fits", "")
        (tmp_path / "wcs" / f"{root}_tweakreg.asdf").write_text("#ASDF 1.0.0\nnot yaml: [\n")
    guard.track(tmp_path)
    with raises(CeersFileError, "_tweakreg.asdf", "cannot be read"):
        CatalogTweakReg(use_saved_wcs=True, wcs_dir=str(tmp_path / "wcs")).run(pointing["cal"])


def test_tweakreg_use_saved_wcs_without_wcs_dir(pointing):
    from jwst_ceers import CatalogTweakReg

    with raises(CeersParameterError, "use_saved_wcs", "wcs_dir"):
        CatalogTweakReg(use_saved_wcs=True).run(pointing["cal"])


def test_tweakreg_wcs_missing(pointing):
    from jwst_ceers import CatalogTweakReg

    models = [datamodels.open(p) for p in pointing["cal"]]
    models[1].meta.wcs = None
    with raises(CeersDataError, models[1].meta.filename, "no WCS"):
        CatalogTweakReg(abs_refcat=pointing["refcat"]).run(models)


def test_tweakreg_all_nan_exposure_is_skipped(pointing, caplog):
    from jwst_ceers import CatalogTweakReg

    models = [datamodels.open(p) for p in pointing["cal"]]
    models[0].data[:] = np.nan
    result = CatalogTweakReg(abs_refcat=pointing["refcat"]).run(models)
    # the NaN exposure gives no catalog; its group (one detector) cannot be fitted
    skipped(result, "ceers_tweakreg", caplog)


def test_tweakreg_tiny_subarray_is_skipped(tiny_pointing, caplog):
    from jwst_ceers import CatalogTweakReg

    result = CatalogTweakReg(abs_refcat=str(tiny_pointing.refcat_path)).run(
        [str(p) for p in tiny_pointing.cal_files]
    )
    skipped(result, "ceers_tweakreg", caplog)


def test_tweakreg_parameter_out_of_range():
    from jwst_ceers import CatalogTweakReg

    with raises(CeersParameterError, "ceers_tweakreg", "minobj", "too small"):
        CatalogTweakReg(minobj=0)


def test_tweakreg_option_not_allowed():
    from jwst_ceers import CatalogTweakReg

    with raises(CeersParameterError, "fitgeometry", "unacceptable"):
        CatalogTweakReg(fitgeometry="affine")


def test_tweakreg_wcs_dir_under_a_regular_file(pointing, tmp_path, guard):
    from jwst_ceers import CatalogTweakReg

    (tmp_path / "afile").write_text("x")
    guard.track(tmp_path / "afile")
    with raises(CeersFileError, "afile"):
        CatalogTweakReg(abs_refcat=pointing["refcat"], wcs_dir=str(tmp_path / "afile" / "wcs")).run(pointing["cal"])


# ====================================================================== pipeline
GRID = {"crval": [214.9, 52.9], "rotation": 0.0, "pixel_scale": 0.04}


def run_pipeline(asn, out, refcat, **steps):
    from jwst_ceers import Image3Ceers

    out = Path(out)
    out.mkdir(exist_ok=True)
    config = {
        "tweakreg": {"abs_refcat": refcat},
        "outlier_detection": {"skip": True},
        "resample": GRID,
        "source_catalog": {"skip": True},
    }
    for name, values in steps.items():
        config.setdefault(name, {}).update(values)
    Image3Ceers.call(str(asn), output_dir=str(out), save_results=True, steps=config)
    return out


def test_pipeline_association_member_missing(pointing, tmp_path):
    asn = make_asn(tmp_path, [pointing["cal"][0], tmp_path / "missing_cal.fits"])
    with raises(CeersFileError, "missing_cal.fits", "does not exist"):
        run_pipeline(asn, tmp_path / "out", pointing["refcat"])


def test_pipeline_association_not_json(pointing, tmp_path, guard):
    (tmp_path / "asn.json").write_text("products:\n - nope\n")
    guard.track(tmp_path / "asn.json")
    with raises(CeersFileError, "asn.json", "json"):
        run_pipeline(tmp_path / "asn.json", tmp_path / "out", pointing["refcat"])


def test_pipeline_input_of_another_kind(pointing, tmp_path, guard):
    (tmp_path / "exposures.txt").write_text("\n".join(pointing["cal"]))
    guard.track(tmp_path / "exposures.txt")
    with raises(CeersFileError, "exposures.txt", "not a FITS or ASDF file"):
        run_pipeline(tmp_path / "exposures.txt", tmp_path / "out", pointing["refcat"])


def test_pipeline_member_without_wcs(pointing, tmp_path, guard):
    bad = corrupt_copy(pointing["cal"][1], tmp_path / "jw01345001001_02101_00002_nrca1_cal.fits",
                       lambda m: setattr(m.meta, "wcs", None))
    asn = make_asn(tmp_path, [pointing["cal"][0], bad])
    guard.track(tmp_path)
    with raises(CeersDataError, "jw01345001001_02101_00002_nrca1_cal.fits", "no WCS"):
        run_pipeline(asn, tmp_path / "out", pointing["refcat"])


def test_pipeline_member_in_wrong_units(pointing, tmp_path, guard):
    bad = corrupt_copy(pointing["cal"][1], tmp_path / "jw01345001001_02101_00002_nrca1_cal.fits",
                       lambda m: setattr(m.meta, "bunit_data", "DN/s"))
    asn = make_asn(tmp_path, [pointing["cal"][0], bad])
    guard.track(tmp_path)
    with raises(CeersDataError, "jw01345001001_02101_00002_nrca1_cal.fits", "DN/s"):
        run_pipeline(asn, tmp_path / "out", pointing["refcat"])


def test_pipeline_parameter_file_unknown_key(pointing, tmp_path, guard):
    from jwst_ceers import Image3Ceers

    path = tmp_path / "image3.asdf"
    _write_parameter_file(path, "jwst_ceers.Image3Ceers", "calwebb_image3_ceers", {"bogus_key": 3})
    guard.track(path)
    with raises(CeersParameterError, "image3.asdf", "bogus_key"):
        Image3Ceers.call(str(pointing["asn"]), config_file=str(path))


def test_pipeline_nested_parameter_out_of_range(pointing, tmp_path, guard):
    from jwst_ceers import Image3Ceers

    path = tmp_path / "image3.asdf"
    _write_parameter_file(
        path, "jwst_ceers.Image3Ceers", "calwebb_image3_ceers", {},
        steps=[{"class": "jwst_ceers.PedestalSkySub", "name": "pedestal", "parameters": {"flatten_box": -5}}],
    )
    guard.track(path)
    with raises(CeersParameterError, "image3.asdf", "steps/pedestal/flatten_box", "too small"):
        Image3Ceers.call(str(pointing["asn"]), config_file=str(path))


def test_pipeline_all_nan_member_is_skipped_and_the_mosaic_made(pointing, tmp_path, guard, caplog):
    nan = corrupt_copy(pointing["cal"][1], tmp_path / "jw01345001001_02101_00002_nrca1_cal.fits",
                       lambda m: m.data.__setitem__(slice(None), np.nan))
    asn = make_asn(tmp_path, [pointing["cal"][0], nan])
    guard.track(asn, nan)
    out = run_pipeline(asn, tmp_path / "out", pointing["refcat"], varfill={"save_results": True})
    saved = sorted(out.glob("*_varfill.fits"))  # per-exposure products after pedestal and varfill
    assert len(saved) == 2
    with datamodels.open(saved[1]) as model:
        assert model.meta.cal_step.ceers_tweakreg == "SKIPPED"
        assert model.meta.cal_step.ceers_pedestal == "SKIPPED"
        assert model.meta.cal_step.ceers_varfill == "SKIPPED"
    with datamodels.open(saved[0]) as model:
        assert model.meta.cal_step.ceers_pedestal == "COMPLETE"
        assert model.meta.cal_step.ceers_varfill == "COMPLETE"
    with datamodels.open(out / "t_f150w_i2d.fits") as i2d:
        assert np.isfinite(i2d.data).sum() > 0.5 * i2d.data.size / 2
    assert "no usable pixel" in caplog.text


# ================================================================ mosaic background
def test_mosaic_bkg_member_missing(mosaics, tmp_path):
    from jwst_ceers import MosaicBackground

    with raises(CeersFileError, "gone_i2d.fits", "does not exist"):
        MosaicBackground(output_dir=str(tmp_path)).run([mosaics[0], str(tmp_path / "gone_i2d.fits")])


def test_mosaic_bkg_member_not_fits(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    (tmp_path / "junk_i2d.fits").write_text("junk")
    guard.track(tmp_path / "junk_i2d.fits")
    with raises(CeersFileError, "junk_i2d.fits"):
        MosaicBackground(output_dir=str(tmp_path)).run([mosaics[0], str(tmp_path / "junk_i2d.fits")])


def test_mosaic_bkg_different_grids(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    with fits.open(mosaics[2]) as hdul:
        hdul["SCI"].header["CRPIX1"] += 3.5
        hdul.writeto(tmp_path / "shifted_drz.fits")
    guard.track(tmp_path / "shifted_drz.fits")
    with raises(CeersError, "not on one grid", "shifted_drz.fits"):
        MosaicBackground(output_dir=str(tmp_path)).run([mosaics[0], str(tmp_path / "shifted_drz.fits")])


def test_mosaic_bkg_different_shapes(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    with fits.open(mosaics[2]) as hdul:
        sci = fits.ImageHDU(hdul["SCI"].data[:200], header=hdul["SCI"].header, name="SCI")
        fits.HDUList([fits.PrimaryHDU(header=hdul[0].header), sci]).writeto(tmp_path / "cut_drz.fits")
    guard.track(tmp_path / "cut_drz.fits")
    with raises(CeersError, "not on one grid", "cut_drz.fits", "shape"):
        MosaicBackground(output_dir=str(tmp_path)).run([mosaics[0], str(tmp_path / "cut_drz.fits")])


def test_mosaic_bkg_plain_fits_without_wcs(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    fits.PrimaryHDU(np.zeros((256, 256), np.float32), header=fits.Header([("FILTER", "F160W")])).writeto(
        tmp_path / "nowcs_drz.fits")
    guard.track(tmp_path / "nowcs_drz.fits")
    with raises(CeersFileError, "nowcs_drz.fits", "WCS"):
        MosaicBackground(output_dir=str(tmp_path)).run([mosaics[0], str(tmp_path / "nowcs_drz.fits")])


def test_mosaic_bkg_plain_fits_without_filter(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    with fits.open(mosaics[2]) as hdul:
        for hdu in hdul:
            for key in ("FILTER", "FILTER1", "FILTER2"):
                hdu.header.remove(key, ignore_missing=True)
        hdul.writeto(tmp_path / "nofilter_drz.fits")
    guard.track(tmp_path / "nofilter_drz.fits")
    with raises(CeersFileError, "nofilter_drz.fits", "FILTER"):
        MosaicBackground(output_dir=str(tmp_path)).run([mosaics[0], str(tmp_path / "nofilter_drz.fits")])


def test_mosaic_bkg_all_nan_mosaic(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    with datamodels.open(mosaics[1]) as model:
        model.data[:] = np.nan
        model.save(tmp_path / "ceers_nircam1_f356w_i2d.fits")
    guard.track(tmp_path / "ceers_nircam1_f356w_i2d.fits")
    out = tmp_path / "out"
    out.mkdir()
    with raises(CeersDataError, "ceers_nircam1_f356w_i2d.fits", "no usable pixel"):
        MosaicBackground(output_dir=str(out)).run([mosaics[0], str(tmp_path / "ceers_nircam1_f356w_i2d.fits")])
    assert list(out.iterdir()) == []


def test_mosaic_bkg_malformed_region_file(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    (tmp_path / "edits.reg").write_text("# Region file format: DS9\nimage\ncircle(10,20\nbogus shape here\n")
    guard.track(tmp_path / "edits.reg")
    with raises(CeersFileError, "edits.reg", "DS9"):
        MosaicBackground(output_dir=str(tmp_path), edit_regions=[str(tmp_path / "edits.reg")]).run(mosaics[:2])


def test_mosaic_bkg_region_file_missing(mosaics, tmp_path):
    from jwst_ceers import MosaicBackground

    with raises(CeersFileError, "gone.reg", "does not exist"):
        MosaicBackground(output_dir=str(tmp_path), edit_regions=[str(tmp_path / "gone.reg")]).run(mosaics[:2])


def test_mosaic_bkg_odd_box_size(mosaics, tmp_path):
    from jwst_ceers import MosaicBackground

    with raises(CeersParameterError, "bkg_box_size", "even"):
        MosaicBackground(output_dir=str(tmp_path), bkg_box_size=33).run(mosaics[:2])


def test_mosaic_bkg_tier_lists_of_different_lengths(mosaics, tmp_path):
    from jwst_ceers import MosaicBackground

    with raises(CeersParameterError, "nircam_nsigma", "equal lengths"):
        MosaicBackground(output_dir=str(tmp_path), nircam_nsigma=[3.0, 3.0]).run(mosaics[:2])


def test_mosaic_bkg_parameter_out_of_range():
    from jwst_ceers import MosaicBackground

    with raises(CeersParameterError, "ceers_mosaic_bkg", "ring_radius"):
        MosaicBackground(ring_radius=1.0)


def test_mosaic_bkg_output_dir_is_a_regular_file(mosaics, tmp_path, guard):
    from jwst_ceers import MosaicBackground

    (tmp_path / "afile").write_text("x")
    guard.track(tmp_path / "afile")
    with raises(CeersFileError, "output_dir", "afile", "not a directory"):
        MosaicBackground(output_dir=str(tmp_path / "afile" / "sub")).run(mosaics[:2])


def test_mosaic_bkg_output_not_writable(mosaics, tmp_path, monkeypatch):
    """A read-only output directory (simulated: running as root, chmod would not stop us): found before work."""
    import tempfile

    from jwst_ceers import MosaicBackground

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with raises(CeersFileError, "output_dir", str(tmp_path), "not writable", "permission denied"):
        MosaicBackground(output_dir=str(tmp_path), bkg_box_size=32).run(mosaics[:2])
    assert list(tmp_path.iterdir()) == []


# ========================================================================== CLI
@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``jwst-ceers`` in-process; return (exit status, stdout, stderr lines)."""
    from jwst_ceers.cli import main

    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)  # keep stderr for errors only

    def run(*args):
        try:
            status = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            status = exc.code
        captured = capsys.readouterr()
        return status, captured.out, [line for line in captured.err.splitlines() if line.strip()]

    return run


def cli_error(result, command, *words):
    status, _, err = result
    assert status == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"jwst-ceers {command}: error: ")
    for word in words:
        assert str(word).lower() in err[0].lower(), err[0]


def test_cli_asn_missing_input(cli, tmp_path):
    cli_error(cli("asn", tmp_path / "nothing_here", "-o", tmp_path / "out"), "asn", "nothing_here", "does not exist")


def test_cli_asn_pattern_matches_nothing(cli, tmp_path):
    cli_error(cli("asn", str(tmp_path / "*_cal.fits"), "-o", tmp_path / "out"), "asn", "*_cal.fits", "matches no file")


def test_cli_asn_unreadable_file(cli, tmp_path, guard):
    (tmp_path / "x_cal.fits").write_text("junk")
    guard.track(tmp_path / "x_cal.fits")
    cli_error(cli("asn", tmp_path / "x_cal.fits", "-o", tmp_path / "out"), "asn", "x_cal.fits", "cannot read")


def test_cli_asn_output_dir_is_a_file(cli, pointing, tmp_path, guard):
    (tmp_path / "afile").write_text("x")
    guard.track(tmp_path / "afile")
    cli_error(cli("asn", *pointing["cal"], "-o", tmp_path / "afile"), "asn", "afile")


def test_cli_asn_unknown_filter(cli, pointing, tmp_path):
    cli_error(cli("asn", *pointing["cal"], "-o", tmp_path, "--filters", "F999W"), "asn", "f999w")


def test_cli_grid_reference_missing(cli, tmp_path):
    cli_error(cli("grid", "--reference", tmp_path / "ref.fits", "-o", tmp_path / "g.asdf"), "grid", "ref.fits")


def test_cli_grid_reference_without_wcs(cli, tmp_path, guard):
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(tmp_path / "ref.fits")
    guard.track(tmp_path / "ref.fits")
    cli_error(cli("grid", "--reference", tmp_path / "ref.fits", "-o", tmp_path / "g.asdf"), "grid", "ref.fits", "WCS")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--pixel-scale", "0"), ("pixel_scale",)),
        (("--pixel-scale", "1e-9"), ("output_shape", "pixels")),
        (("--pixel-scale", "0.03", "--crval", "214.9", "100"), ("crval", "dec")),
        (("--pixel-scale", "0.03", "--rotation", "nan"), ("rotation",)),
        (("--pixel-scale", "0.03", "--pixfrac", "2"), ("pixfrac",)),
        (("--pixel-scale", "0.03", "--margin", "-1"), ("margin",)),
    ],
    ids=["scale-zero", "scale-tiny", "dec-out-of-range", "rotation-nan", "pixfrac", "margin"],
)
def test_cli_grid_parameters_out_of_range(cli, pointing, tmp_path, args, words):
    cli_error(cli("grid", *pointing["cal"], *args, "-o", tmp_path / "g.asdf"), "grid", *words)
    assert not (tmp_path / "g.asdf").exists()


def test_cli_grid_output_under_a_regular_file(cli, pointing, tmp_path, guard):
    (tmp_path / "afile").write_text("x")
    guard.track(tmp_path / "afile")
    cli_error(cli("grid", *pointing["cal"], "--pixel-scale", "0.03", "-o", tmp_path / "afile" / "g.asdf"),
              "grid", "afile")


def test_cli_survey_config_missing(cli, tmp_path):
    cli_error(cli("survey", tmp_path / "survey.toml"), "survey", "survey.toml", "cannot read")


def test_cli_survey_config_not_toml(cli, tmp_path, guard):
    (tmp_path / "survey.toml").write_text('output_root = "p"\n[[pointings]\nname=\n')
    guard.track(tmp_path / "survey.toml")
    cli_error(cli("survey", tmp_path / "survey.toml"), "survey", "survey.toml", "toml")


def test_cli_survey_config_unknown_key(cli, tmp_path, guard):
    (tmp_path / "survey.toml").write_text('output_root = "p"\nbogus_key = 1\n')
    guard.track(tmp_path / "survey.toml")
    cli_error(cli("survey", tmp_path / "survey.toml"), "survey", "survey.toml", "bogus_key")


# ============================================================ atomic outputs
def _fits_hdul(value=1.0):
    return fits.HDUList([fits.PrimaryHDU(np.full((64, 64), value, np.float32))])


def test_atomic_write_disk_full_leaves_no_file(tmp_path, monkeypatch):
    """ENOSPC in the middle of a write: CeersFileError naming the file; no final and no temp file."""
    from jwst_ceers.atomic_io import write_fits_atomic

    real_writeto = fits.HDUList.writeto

    def full_disk(self, name, *args, **kwargs):
        Path(name).write_bytes(b"SIMPLE  =                    T" + b" " * 100)  # partial bytes reached disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", full_disk)
    with raises(CeersFileError, "product.fits", "no space left"):
        write_fits_atomic(_fits_hdul(), tmp_path / "product.fits")
    monkeypatch.setattr(fits.HDUList, "writeto", real_writeto)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_interrupted_keeps_the_previous_product(tmp_path, monkeypatch):
    """An exception mid-write (here KeyboardInterrupt) leaves the old product intact and no temp file."""
    from jwst_ceers.atomic_io import write_fits_atomic

    write_fits_atomic(_fits_hdul(1.0), tmp_path / "product.fits")
    before = (tmp_path / "product.fits").read_bytes()

    def interrupted(self, name, *args, **kwargs):
        Path(name).write_bytes(b"SIMPLE  = half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fits.HDUList, "writeto", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_fits_atomic(_fits_hdul(2.0), tmp_path / "product.fits")
    assert [p.name for p in tmp_path.iterdir()] == ["product.fits"]
    assert (tmp_path / "product.fits").read_bytes() == before


def test_atomic_write_rename_refused(tmp_path, monkeypatch):
    """The final rename fails (read-only directory, simulated): old product intact, temp removed."""
    from jwst_ceers.atomic_io import write_text_atomic

    write_text_atomic("old\n", tmp_path / "table.ecsv")

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with raises(CeersFileError, "table.ecsv", "permission denied"):
        write_text_atomic("new\n", tmp_path / "table.ecsv")
    assert [p.name for p in tmp_path.iterdir()] == ["table.ecsv"]
    assert (tmp_path / "table.ecsv").read_text() == "old\n"


def test_atomic_write_under_a_regular_file(tmp_path, guard):
    from jwst_ceers.atomic_io import write_text_atomic

    (tmp_path / "afile").write_text("x")
    guard.track(tmp_path / "afile")
    with raises(CeersFileError, "afile", "cannot write"):
        write_text_atomic("x", tmp_path / "afile" / "out.txt")


def test_atomic_model_write_records_the_final_file_name(tmp_path):
    """Defect fixed: model.save(temp) wrote the temporary name into FILENAME."""
    from jwst_ceers.atomic_io import write_model_atomic

    model = datamodels.ImageModel(np.ones((4, 4), np.float32))
    write_model_atomic(model, tmp_path / "x_i2d.fits")
    assert fits.getheader(tmp_path / "x_i2d.fits")["FILENAME"] == "x_i2d.fits"
    assert [p.name for p in tmp_path.iterdir()] == ["x_i2d.fits"]
    with raises(CeersFileError, "x_i2d.txt", ".fits or .asdf"):
        write_model_atomic(model, tmp_path / "x_i2d.txt")


def test_step_product_disk_full_is_a_clear_error(mosaics, tmp_path, monkeypatch):
    """MosaicBackground hits ENOSPC while writing: CeersFileError, and no partial/temp file remains."""
    from jwst_ceers import MosaicBackground

    real_writeto = fits.HDUList.writeto
    calls = {"n": 0}

    def fill_up(self, name, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:
            if hasattr(name, "write"):  # an open temporary file (models are written through a handle)
                name.write(b"SIMPLE  = partial")
            else:
                Path(name).write_bytes(b"SIMPLE  = partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writeto(self, name, *args, **kwargs)

    monkeypatch.setattr(fits.HDUList, "writeto", fill_up)
    with raises(CeersFileError, "no space left"):
        MosaicBackground(output_dir=str(tmp_path), bkg_box_size=32).run(mosaics[:2])
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert not [n for n in leftovers if ".tmp" in n]
    for name in leftovers:  # whatever was written before the failure is complete
        fits.getdata(tmp_path / name)


def test_step_results_saved_atomically(pointing, tmp_path, monkeypatch):
    """save_results products of jwst_ceers steps: complete with the final FILENAME, or absent."""
    from jwst_ceers import VarianceHoleFill

    VarianceHoleFill(output_dir=str(tmp_path), save_results=True).run(pointing["cal"][0])
    (product,) = tmp_path.iterdir()
    assert product.name == "jw01345001001_02101_00001_nrca1_varfill.fits"
    assert fits.getheader(product)["FILENAME"] == product.name
    with datamodels.open(product) as model:
        assert model.meta.cal_step.ceers_varfill == "COMPLETE"
    before = product.read_bytes()

    def full_disk(self, name, *args, **kwargs):
        Path(getattr(name, "name", name)).write_bytes(b"SIMPLE  = partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", full_disk)
    with raises(CeersFileError, "_varfill.fits", "no space left"):
        VarianceHoleFill(output_dir=str(tmp_path), save_results=True).run(pointing["cal"][0])
    assert [p.name for p in tmp_path.iterdir()] == [product.name]
    assert product.read_bytes() == before  # the previous complete product is untouched


# ============================================================ idempotent re-runs
def _arrays(path):
    with fits.open(path) as hdul:
        return {h.name: np.array(h.data) for h in hdul if h.data is not None and h.name != "ASDF"}


def _assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for name in a:
        if a[name].dtype.names:  # tables
            assert a[name].tobytes() == b[name].tobytes(), name
        else:
            assert np.array_equal(a[name], b[name], equal_nan=True), name


def test_rerun_varfill_and_pedestal_give_identical_results(pointing):
    from jwst_ceers import PedestalSkySub, VarianceHoleFill

    for step_class in (VarianceHoleFill, PedestalSkySub):
        first = step_class().run(pointing["cal"][0])
        second = step_class().run(pointing["cal"][0])
        for name in ("data", "err", "dq", "var_rnoise", "var_poisson", "var_flat"):
            assert np.array_equal(getattr(first, name), getattr(second, name), equal_nan=True)
        assert first.meta.background.level == second.meta.background.level


def test_rerun_tweakreg_gives_identical_wcs_and_tables(pointing, tmp_path):
    from jwst_ceers import CatalogTweakReg

    results = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        library = CatalogTweakReg(
            abs_refcat=pointing["refcat"], wcs_dir=str(tmp_path / run), results_file=str(tmp_path / run / "fits.ecsv"),
        ).run(str(pointing["asn"]))
        world = []
        with library:
            for index, model in enumerate(library):
                world.append(np.array(model.meta.wcs(np.array([0.0, 100.0, 255.0]), np.array([0.0, 50.0, 255.0]))))
                library.shelve(model, index, modify=False)
        results.append((world, Table.read(tmp_path / run / "fits.ecsv")))
    (world_a, table_a), (world_b, table_b) = results
    for a, b in zip(world_a, world_b, strict=True):
        assert np.array_equal(a, b)
    assert table_a.pformat() == table_b.pformat()


def test_rerun_pipeline_into_the_same_directory_gives_the_same_mosaic(pointing, tmp_path):
    out = tmp_path / "out"
    run_pipeline(pointing["asn"], out, pointing["refcat"])
    first = _arrays(out / "t_f150w_i2d.fits")
    products = sorted(p.name for p in out.iterdir())
    run_pipeline(pointing["asn"], out, pointing["refcat"])
    _assert_same_arrays(first, _arrays(out / "t_f150w_i2d.fits"))
    assert sorted(p.name for p in out.iterdir()) == products  # nothing new, no temp files


def test_rerun_mosaic_bkg_gives_identical_products(mosaics, tmp_path):
    from jwst_ceers import MosaicBackground

    outputs = MosaicBackground(output_dir=str(tmp_path), bkg_box_size=32).run(mosaics)
    files = sorted(p.name for p in tmp_path.iterdir())
    first = {name: _arrays(tmp_path / name) for name in files}
    MosaicBackground(output_dir=str(tmp_path), bkg_box_size=32).run(mosaics)
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    for name in files:
        _assert_same_arrays(first[name], _arrays(tmp_path / name))
    assert len(outputs["bkgsub"]) == 3


def test_rerun_asn_and_grid_commands_write_identical_files(cli, pointing, tmp_path):
    for run in ("a", "b"):
        assert cli("asn", *pointing["cal"], "-o", tmp_path / run, "--by", "program")[0] == 0
        assert cli("grid", *pointing["cal"], "--pixel-scale", "0.03", "-o", tmp_path / run / "grid.asdf")[0] == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and "grid.asdf" in names
    for name in names:
        if name.endswith(".json"):
            assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    import asdf

    with asdf.open(tmp_path / "a" / "grid.asdf") as a, asdf.open(tmp_path / "b" / "grid.asdf") as b:
        assert a.tree["parameters"] == b.tree["parameters"]
