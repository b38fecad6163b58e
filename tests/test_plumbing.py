"""Plumbing: stpipe registry, lazy names, strun / Step.call / parameter files, logging."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

import jwst_ceers
from jwst_ceers._registry import get_steps

PARAMETER_FILES = Path(__file__).resolve().parents[1] / "parameter_files"
DESIGN_NAMES = {
    "CatalogTweakReg": ("ceers_tweakreg", False),
    "PedestalSkySub": ("ceers_pedestal", False),
    "VarianceHoleFill": ("ceers_varfill", False),
    "CeersOutlierDetection": ("ceers_outlier_detection", False),
    "MosaicBackground": ("ceers_mosaic_bkg", False),
    "CutoutResample": ("ceers_resample", False),
    "Image3Ceers": ("calwebb_image3_ceers", True),
}


def offline_env(tmp_path):
    env = dict(os.environ)
    env["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
    env["CRDS_PATH"] = str(tmp_path / "crds_cache")
    env["CRDS_SERVER_URL"] = "https://jwst-crds.invalid"
    return env


def write_exposure(path, seed=0):
    """A small exposure with 7 zero-variance pixels in VAR_RNOISE."""
    rng = np.random.default_rng(seed)
    model = datamodels.ImageModel((32, 32))
    model.data = rng.normal(0.2, 0.01, (32, 32)).astype(np.float32)
    model.var_rnoise = np.full((32, 32), 1e-4, np.float32)
    model.var_rnoise.flat[rng.choice(32 * 32, 7, replace=False)] = 0
    model.var_poisson = np.full((32, 32), 1e-5, np.float32)
    model.var_flat = np.full((32, 32), 1e-6, np.float32)
    model.meta.filename = path.name
    model.save(path)
    return path


def test_registry_matches_classes_and_design():
    """Every registered class imports, has the registered alias, and is a public name."""
    from jwst.stpipe import Pipeline, Step

    steps = get_steps()
    aliases = [alias for _, alias, _ in steps]
    assert len(set(aliases)) == len(aliases)
    for class_path, alias, is_pipeline in steps:
        class_name = class_path.rsplit(".", 1)[1]
        assert DESIGN_NAMES[class_name] == (alias, is_pipeline)
        cls = getattr(jwst_ceers, class_name)
        assert cls.class_alias == alias
        assert issubclass(cls, Pipeline if is_pipeline else Step)
        assert alias.startswith("ceers_") or alias == "calwebb_image3_ceers"
        assert class_name in jwst_ceers.__all__


def test_registered_with_stpipe_and_stock_aliases_still_unique():
    from stpipe import entry_points
    from stpipe.utilities import resolve_step_class_alias

    infos = [info for info in entry_points.get_steps() if info.package_name == "jwst_ceers"]
    assert {(i.class_name, i.class_alias, i.is_pipeline) for i in infos} == set(get_steps())
    for _, alias, _ in get_steps():
        assert resolve_step_class_alias(alias).startswith("jwst_ceers.")
    # registering our steps must not shadow jwst's own aliases
    assert resolve_step_class_alias("tweakreg") == "jwst.step.TweakRegStep"
    assert resolve_step_class_alias("resample") == "jwst.step.ResampleStep"
    assert resolve_step_class_alias("skymatch") == "jwst.step.SkyMatchStep"


def test_import_is_light():
    code = "import sys, jwst_ceers; print('jwst' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="NoSuchStep"):
        jwst_ceers.NoSuchStep  # noqa: B018


@pytest.mark.parametrize(
    "how",
    ["alias", "class_path", "parameter_file"],
)
def test_strun_offline(tmp_path, how):
    """strun works by alias, by class path and with a parameter file, without CRDS."""
    exposure = write_exposure(tmp_path / "jw01345001001_02101_00001_nrca1_cal.fits")
    target = {
        "alias": "ceers_varfill",
        "class_path": "jwst_ceers.VarianceHoleFill",
        "parameter_file": str(PARAMETER_FILES / "ceers_varfill.asdf"),
    }[how]
    out = subprocess.run(
        ["strun", target, str(exposure), "--output_dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=offline_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # jwst_ceers's own logger reaches strun's output
    assert "jwst_ceers.varfill.varfill_step" in out.stderr
    assert "var_rnoise: 7 zero-variance pixels set to +inf" in out.stderr
    result = datamodels.open(tmp_path / "out" / "jw01345001001_02101_00001_nrca1_varfill.fits")
    assert np.isposinf(result.var_rnoise).sum() == 7
    assert result.meta.cal_step.ceers_varfill == "COMPLETE"
    # the input file is untouched
    assert datamodels.open(exposure).var_rnoise.min() == 0


def test_step_call_offline_with_logs(tmp_path):
    from jwst_ceers import VarianceHoleFill

    exposure = write_exposure(tmp_path / "jw01345001001_02101_00001_nrca1_cal.fits")
    result = VarianceHoleFill.call(str(exposure), arrays=["var_rnoise"])
    assert np.isposinf(result.var_rnoise).sum() == 7
    assert any("zero-variance pixels" in line for line in result.cal_logs.ceers_varfill)


def test_stock_steps_in_image3ceers_save_atomically(tmp_path, monkeypatch):
    """crf/i2d products of stock sub-steps are written through a temp file + rename."""
    from jwst_ceers import Image3Ceers

    pipeline = Image3Ceers(output_dir=str(tmp_path))
    resample = pipeline.resample
    resample.save_results = True
    model = datamodels.ImageModel(np.ones((4, 4), np.float32))
    model.meta.filename = "t_i2d.fits"

    # success: the product appears under stpipe's name, no temp file left behind
    path = resample.save_model(model, suffix="i2d", output_file="t")
    assert Path(path).name == "t_i2d.fits" and Path(path).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["t_i2d.fits"]

    # a write that dies half-way leaves neither a product nor a temp file
    def broken_write(self, handle, *args, **kwargs):
        handle.write(b"SIMPLE  =                    T")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datamodels.ImageModel, "to_fits", broken_write)
    with pytest.raises(OSError, match="No space left"):
        resample.save_model(model, suffix="i2d", output_file="u")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t_i2d.fits"]


def test_one_exposure_root_for_cal_crf_and_rate_names(tmp_path):
    """Saved WCS solutions and masks pair with an exposure whatever its product suffix."""
    from jwst_ceers.file_names import exposure_root
    from jwst_ceers.tweakreg.saved_wcs import solution_path

    root = "jw01345001001_02101_00001_nrca1"
    for name in (f"{root}_cal.fits", f"{root}_a3001_crf.fits", f"{root}_rate.fits", f"{root}_varfill.fits"):
        assert exposure_root(name) == root
        assert solution_path(tmp_path, name) == tmp_path / f"{root}_tweakreg.asdf"
    assert exposure_root("myexp_cal.fits") == "myexp"
