"""Issue 14, class 1: no step, pipeline or writer ever writes onto one of its inputs.

Root: `jwst_ceers._step.ParameterErrors.run` registers every input file of a run
(`jwst_ceers.atomic_io.protected_inputs`) and checks the outputs it can predict before
any work; `jwst_ceers.atomic_io.atomic_output` (every product of jwst_ceers and of the
stock steps inside Image3Ceers goes through it) refuses a protected path whatever named
it. Each test hashes the inputs.
"""

import logging
import shutil

import pytest
from hostile_helpers import digest, f150w_files, simulate_small_pointing, write_asn

from jwst_ceers.atomic_io import write_model_atomic, write_text_atomic
from jwst_ceers.errors import CeersFileError


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_small_pointing(tmp_path_factory.mktemp("never_written") / "sim")


@pytest.mark.parametrize(
    "step_name, suffix", [("PedestalSkySub", "pedestal"), ("VarianceHoleFill", "varfill")]
)
def test_strun_on_a_product_of_the_same_step_refuses_before_work(sim, tmp_path, monkeypatch, caplog, step_name, suffix):
    """`strun ceers_<step> X_<suffix>.fits` used to rewrite X_<suffix>.fits in place."""
    import jwst_ceers

    monkeypatch.chdir(tmp_path)
    exposure = tmp_path / f"x_{suffix}.fits"
    shutil.copy(f150w_files(sim)[0], exposure)
    before = digest([exposure])
    step = getattr(jwst_ceers, step_name)
    with caplog.at_level(logging.INFO, logger="jwst_ceers"), pytest.raises(CeersFileError) as error:
        step.call(exposure.name, save_results=True)  # output_dir: the current (= input) folder
    assert f"x_{suffix}.fits" in str(error.value) and "overwrite the input" in str(error.value)
    assert digest([exposure]) == before
    assert "source mask:" not in caplog.text and "zero-variance" not in caplog.text  # refused before work


def test_same_step_into_another_folder_still_works(sim, tmp_path, monkeypatch):
    from jwst_ceers import VarianceHoleFill

    monkeypatch.chdir(tmp_path)
    exposure = tmp_path / "x_varfill.fits"
    shutil.copy(f150w_files(sim)[0], exposure)
    before = digest([exposure])
    VarianceHoleFill.call(exposure.name, save_results=True, output_dir=str(tmp_path / "out"))
    assert (tmp_path / "out" / "x_varfill.fits").is_file()
    assert digest([exposure]) == before


def test_association_members_are_protected_too(sim, tmp_path, monkeypatch):
    from jwst_ceers import VarianceHoleFill

    monkeypatch.chdir(tmp_path)
    members = []
    for index, source in enumerate(f150w_files(sim)):
        members.append(tmp_path / f"exp{index}_varfill.fits")
        shutil.copy(source, members[-1])
    asn = write_asn(tmp_path, [m.name for m in members])
    before = digest(members)
    # output_use_model: products named after the members, in their folder
    with pytest.raises(CeersFileError, match="overwrite the input"):
        VarianceHoleFill.call(str(asn), save_results=True, output_use_model=True)
    assert digest(members) == before


def test_pipeline_refuses_a_product_named_like_a_member(sim, tmp_path):
    """Members already named *_crf.fits, crf products saved beside them: refused before work."""
    from jwst_ceers import Image3Ceers

    members = []
    for source in f150w_files(sim):
        members.append(tmp_path / source.name.replace("_cal", "_crf"))
        shutil.copy(source, members[-1])
    asn = write_asn(tmp_path, [m.name for m in members])
    before = digest(members)
    with pytest.raises(CeersFileError, match="overwrite the input"):
        Image3Ceers.call(
            str(asn), output_dir=str(tmp_path), save_results=True,
            steps={"tweakreg": {"abs_refcat": str(sim.refcat_path)}, "source_catalog": {"skip": True},
                   "outlier_detection": {"save_results": True}},
        )
    assert digest(members) == before
    assert not (tmp_path / "t_f150w_i2d.fits").exists()


def test_every_atomic_write_refuses_a_protected_input(sim, tmp_path):
    """The last line of defence: whatever computed the name, an input is not replaced."""
    from stdatamodels.jwst import datamodels

    from jwst_ceers.atomic_io import protected_inputs  # new in issue 14

    exposure = tmp_path / "x_cal.fits"
    shutil.copy(f150w_files(sim)[0], exposure)
    link = tmp_path / "link_cal.fits"
    link.symlink_to(exposure)
    before = digest([exposure])
    with datamodels.open(exposure) as model, protected_inputs([exposure]):
        with pytest.raises(CeersFileError, match="overwrite the input"):
            write_model_atomic(model, exposure)
        with pytest.raises(CeersFileError, match="overwrite the input"):
            write_text_atomic("x", tmp_path / "sub" / ".." / "x_cal.fits")
        with pytest.raises(CeersFileError, match="overwrite the input"):
            write_model_atomic(model, link)  # a symbolic link to an input is the input
    assert digest([exposure]) == before
    write_text_atomic("x", exposure.with_name("other.txt"))  # outside the context: allowed


def test_pedestal_side_product_named_like_the_input_is_refused_before_work(sim, tmp_path, monkeypatch, caplog):
    """save_bkgsub writes <root>_bkgsub.fits: with an input of that name, refused before work."""
    from jwst_ceers import PedestalSkySub

    monkeypatch.chdir(tmp_path)
    exposure = tmp_path / "x_bkgsub.fits"
    shutil.copy(f150w_files(sim)[0], exposure)
    before = digest([exposure])
    with caplog.at_level(logging.INFO, logger="jwst_ceers"), pytest.raises(CeersFileError, match="overwrite the input"):
        PedestalSkySub.call(exposure.name, save_bkgsub=True, output_dir=str(tmp_path))
    assert "source mask:" not in caplog.text
    assert digest([exposure]) == before


def test_protection_holds_in_worker_threads(sim, tmp_path):
    """Steps write from thread pools (MosaicBackground): the inputs are protected there too."""
    from concurrent.futures import ThreadPoolExecutor

    from jwst_ceers.atomic_io import protected_inputs

    exposure = tmp_path / "x_cal.fits"
    shutil.copy(f150w_files(sim)[0], exposure)
    before = digest([exposure])
    with protected_inputs([exposure]), ThreadPoolExecutor(2) as pool:
        future = pool.submit(write_text_atomic, "x", exposure)
        with pytest.raises(CeersFileError, match="overwrite the input"):
            future.result()
    assert digest([exposure]) == before


def test_mosaic_background_second_pass_never_writes_its_inputs(tmp_path):
    """A second MosaicBackground pass over *_bkgsub.fits into the same folder used to overwrite them."""
    from jwst_ceers import MosaicBackground
    from jwst_ceers.errors import CeersError
    from jwst_ceers.simulate.mosaics import simulate_mosaics

    sim = simulate_mosaics(tmp_path / "in", shape=(256, 256), seed=4, filters=("F150W", "F356W"), hst_filters=(),
                           n_large_galaxies=0)
    out = tmp_path / "out"
    MosaicBackground(output_dir=str(out), bkg_box_size=32).run([str(sim.paths[f]) for f in ("F150W", "F356W")])
    first_pass = sorted(out.glob("*_bkgsub.fits"))
    assert len(first_pass) == 2
    before = digest(first_pass)
    try:
        MosaicBackground(output_dir=str(out), bkg_box_size=32).run([str(p) for p in first_pass])
    except CeersError as exc:  # refused (a collision-free naming is the other allowed outcome)
        assert "overwrite the input" in str(exc) or "input" in str(exc)
    assert digest(first_pass) == before
