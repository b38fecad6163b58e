"""Issue 14, class 4: what can be checked is checked before the first expensive step.

Root: `jwst_ceers.inputs.check_image_model` (shapes of DQ/ERR/variances, signs of
variances; called for every member before any member is processed, by
`jwst_ceers._step.ExposureStep` and by Image3Ceers' `input_checks.check_members`) and
`jwst_ceers._step.check_output_locations` (output_dir, results_file's folder, wcs_dir:
made and probed for writing before work, for a step and for every step of a pipeline).
"""

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hostile_helpers import digest, f150w_files, modified_copy, run_image3, simulate_small_pointing, write_asn

from jwst_ceers.errors import CeersDataError, CeersFileError


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_small_pointing(tmp_path_factory.mktemp("early") / "sim")


def _negative_rnoise(model):
    var = model.var_rnoise.copy()
    var[10:12, 20:25] = -1e-4
    model.var_rnoise = var


def _dq_of_wrong_shape(model):
    model.dq = np.zeros((model.data.shape[0] - 6, model.data.shape[1]), dtype=np.uint32)


def _negative_err(model):
    err = model.err.copy()
    err[0, :3] = -1.0
    model.err = err


BAD_ARRAYS = {
    "negative VAR_RNOISE": (_negative_rnoise, ("VAR_RNOISE", "10 negative")),
    "negative ERR": (_negative_err, ("ERR", "3 negative", "an error cannot be negative")),
    "DQ of the wrong shape": (_dq_of_wrong_shape, ("DQ array has shape (250, 256)", "(256, 256)")),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
@pytest.mark.parametrize("step_name", ["PedestalSkySub", "VarianceHoleFill"])
def test_standalone_steps_refuse_bad_arrays_naming_file_and_array(sim, tmp_path, case, step_name):
    """Negative VAR_RNOISE used to be kept (COMPLETE); a DQ of another shape accepted silently."""
    import jwst_ceers

    change, words = BAD_ARRAYS[case]
    bad = modified_copy(f150w_files(sim)[1], tmp_path / "bad_cal.fits", change)
    with pytest.raises(CeersDataError) as error:
        getattr(jwst_ceers, step_name).call(str(bad))
    for word in ("bad_cal.fits", *words):
        assert word in str(error.value), str(error.value)


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_pipeline_refuses_bad_arrays_before_work(sim, tmp_path, caplog, case):
    """The DQ case used to crash in resample with a broadcast ValueError naming no file."""
    change, words = BAD_ARRAYS[case]
    good, source = f150w_files(sim)
    bad = modified_copy(source, tmp_path / source.name, change)
    with caplog.at_level(logging.INFO), pytest.raises(CeersDataError) as error:
        run_image3(write_asn(tmp_path, [good, bad]), tmp_path / "out", sim.refcat_path)
    for word in (bad.name, *words):
        assert word in str(error.value), str(error.value)
    assert "Step tweakreg running" not in caplog.text


def test_bad_second_member_is_found_before_the_first_is_processed(sim, tmp_path, caplog):
    from jwst_ceers import VarianceHoleFill

    good, source = f150w_files(sim)
    bad = modified_copy(source, tmp_path / source.name, _negative_rnoise)
    with caplog.at_level(logging.INFO, logger="jwst_ceers"), pytest.raises(CeersDataError, match="VAR_RNOISE"):
        VarianceHoleFill.call(str(write_asn(tmp_path, [good, bad])))
    assert "zero-variance pixels" not in caplog.text  # the first member was not processed


@pytest.fixture
def read_only(monkeypatch):
    """Make directories read-only for jwst_ceers (as root, chmod would not stop us)."""
    directories = []
    original = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        directory = kwargs.get("dir")
        if directory is not None and any(Path(directory).resolve() == d.resolve() for d in directories):
            raise PermissionError(13, "Permission denied")
        return original(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return directories


def test_read_only_output_dir_is_found_before_work(sim, tmp_path, caplog, read_only):
    out = tmp_path / "out"
    out.mkdir()
    read_only.append(out)
    start = time.perf_counter()
    with caplog.at_level(logging.INFO), pytest.raises(CeersFileError, match="not writable") as error:
        run_image3(write_asn(tmp_path, f150w_files(sim)), out, sim.refcat_path)
    assert str(out) in str(error.value) and "output_dir" in str(error.value)
    assert "Step tweakreg running" not in caplog.text
    assert time.perf_counter() - start < 20


def test_read_only_output_dir_of_one_step_of_the_pipeline_is_found_before_work(sim, tmp_path, caplog, read_only):
    crf_dir = tmp_path / "crf"
    crf_dir.mkdir()
    read_only.append(crf_dir)
    with caplog.at_level(logging.INFO), pytest.raises(CeersFileError, match="not writable") as error:
        run_image3(
            write_asn(tmp_path, f150w_files(sim)), tmp_path / "out", sim.refcat_path,
            outlier_detection={"save_results": True, "output_dir": str(crf_dir)},
        )
    assert str(crf_dir) in str(error.value)
    assert "Step tweakreg running" not in caplog.text


def test_results_file_folder_is_made_before_the_fit(sim, tmp_path):
    """A missing results_file folder used to be found only after the fit."""
    from jwst_ceers import CatalogTweakReg

    results = tmp_path / "not" / "yet" / "fits.ecsv"
    CatalogTweakReg.call(str(write_asn(tmp_path, f150w_files(sim))), abs_refcat=str(sim.refcat_path),
                         results_file=str(results))
    assert results.is_file()


def test_results_file_under_a_regular_file_is_refused_before_the_fit(sim, tmp_path, caplog):
    from jwst_ceers import CatalogTweakReg

    (tmp_path / "plain").write_text("x")
    asn = write_asn(tmp_path, f150w_files(sim))
    before = digest([tmp_path / "plain"])
    with caplog.at_level(logging.INFO, logger="jwst_ceers"), pytest.raises(CeersFileError) as error:
        CatalogTweakReg.call(str(asn), abs_refcat=str(sim.refcat_path), results_file=str(tmp_path / "plain" / "fits.ecsv"))
    assert "results_file" in str(error.value) and "plain" in str(error.value)
    assert "Reference catalog" not in caplog.text  # nothing was read or fitted
    assert digest([tmp_path / "plain"]) == before


def test_missing_mask_dir_is_refused_before_work(sim, tmp_path, caplog):
    """A mask_dir that does not exist used to fall back to internal masks silently."""
    from jwst_ceers import PedestalSkySub

    with caplog.at_level(logging.INFO, logger="jwst_ceers"), pytest.raises(CeersFileError, match="mask_dir .*does not exist"):
        PedestalSkySub.call(str(f150w_files(sim)[0]), mask_dir=str(tmp_path / "no_such_folder"))
    assert "source mask:" not in caplog.text
