"""CEERS's released Stage-3 material used as it is (issue 15): saved WCS solutions.

Runs on the real files of ``../shared/data/ceers_dr05`` (skipped when absent), applied to
synthetic exposures named like the real ones.
"""

import logging
import shutil
from pathlib import Path

import asdf
import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_ceers.errors import CeersError, CeersFileError
from jwst_ceers.tweakreg.saved_wcs import (
    asn_id_of,
    fits_header_offset_mas,
    find_wcs_solution,
    load_wcs_solution,
)

CEERS_DR05 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ceers_dr05"
SOLUTIONS = CEERS_DR05 / "tweakreg_wcs"
A3001_SOLUTIONS = CEERS_DR05 / "tweakreg_wcs_a3001_names"

pytestmark = pytest.mark.skipif(not SOLUTIONS.is_dir(), reason=f"{CEERS_DR05} not present")

SW_ROOT = "jw01345001001_02201_00001_nrca1"
LW_ROOT = "jw01345001001_02201_00001_nrcalong"
ROOT_2 = "jw01345001001_02201_00002_nrcb3"


def exposure(root, *, suffix="tweakreg", shape=(2048, 2048), wcsinfo_from=None):
    """A blank Level-2 image named like a real CEERS exposure, with the pre-alignment pointing keys."""
    model = datamodels.ImageModel(np.zeros(shape, dtype=np.float32))
    model.meta.filename = f"{root}_{suffix}.fits"
    model.meta.group_id = root
    model.meta.instrument.name = "NIRCAM"
    model.meta.exposure.type = "NRC_IMAGE"
    _, saved = load_wcs_solution(wcsinfo_from or SOLUTIONS / f"{root}_tweakreg.asdf")
    # the cal file's header: CEERS's stored (pre-alignment) FITS/SIP keywords
    model.meta.wcsinfo.instance.update({k: v for k, v in saved.items() if k != "s_region"})
    return model


def applied(models, wcs_dir, **kwargs):
    from jwst_ceers import CatalogTweakReg

    library = CatalogTweakReg(use_saved_wcs=True, wcs_dir=str(wcs_dir), **kwargs).run(models)
    out = []
    with library:
        for index, model in enumerate(library):
            out.append(model)
            library.shelve(model, index, modify=False)
    return out


def test_header_left_stale_by_ceers_and_recomputed_here():
    """The stored header disagrees with the applied gwcs (tens to hundreds of mas); after applying: <= 1 mas."""
    stale = []
    for path in sorted(SOLUTIONS.glob("*_tweakreg.asdf")):
        wcs, wcsinfo = load_wcs_solution(path)
        stale.append(fits_header_offset_mas(wcsinfo, wcs, (2048, 2048), npoints=9))
    assert len(stale) == 210
    # the numbers: median 74 mas, up to 400 mas
    assert np.median(stale) > 30 and np.max(stale) > 200

    models = [exposure(SW_ROOT), exposure(LW_ROOT)]
    for model in applied(models, SOLUTIONS):
        wcs, _ = load_wcs_solution(SOLUTIONS / f"{Path(model.meta.filename).name[:-14]}_tweakreg.asdf")
        assert model.meta.cal_step.ceers_tweakreg == "COMPLETE"
        # the gwcs is applied exactly
        x, y = np.meshgrid(np.linspace(0, 2047, 5), np.linspace(0, 2047, 5))
        assert np.array_equal(np.array(model.meta.wcs(x, y)), np.array(wcs(x, y)))
        # and the FITS/SIP header now agrees with it over the whole detector
        assert fits_header_offset_mas(model.meta.wcsinfo.instance, wcs, (2048, 2048), npoints=33) <= 1.0
        # S_REGION: the gwcs footprint
        numbers = [float(v) for v in model.meta.wcsinfo.s_region.split()[2:]]
        corners = np.array(numbers).reshape(-1, 2)
        assert np.allclose(np.sort(corners, axis=0), np.sort(wcs.footprint(), axis=0), atol=1e-7)


def test_header_read_by_astropy_from_the_saved_fits_file(tmp_path):
    """What DS9/astropy read from the written cal file agrees with the gwcs to <= 1 mas."""
    from astropy.io import fits
    from astropy.wcs import WCS

    (model,) = applied([exposure(ROOT_2)], SOLUTIONS)
    path = tmp_path / f"{ROOT_2}_tweakreg.fits"
    model.save(path)
    header = fits.getheader(path, "SCI")
    wcs, _ = load_wcs_solution(SOLUTIONS / f"{ROOT_2}_tweakreg.asdf")
    x, y = np.meshgrid(np.linspace(0, 2047, 33), np.linspace(0, 2047, 33))
    ra_h, dec_h = WCS(header).all_pix2world(x, y, 0)
    ra_g, dec_g = wcs(x, y)
    offset = 3.6e6 * np.hypot((ra_h - ra_g) * np.cos(np.deg2rad(dec_g)), dec_h - dec_g)
    assert offset.max() <= 1.0


def test_files_without_wcsinfo_are_accepted(tmp_path):
    wcs_dir = tmp_path / "wcs"
    wcs_dir.mkdir()
    with asdf.open(SOLUTIONS / f"{SW_ROOT}_tweakreg.asdf", lazy_load=False) as handle:
        asdf.AsdfFile({"filename": handle.tree["filename"], "wcs": handle.tree["wcs"]}).write_to(
            wcs_dir / f"{SW_ROOT}_tweakreg.asdf"
        )
    (model,) = applied([exposure(SW_ROOT)], wcs_dir)
    wcs, _ = load_wcs_solution(SOLUTIONS / f"{SW_ROOT}_tweakreg.asdf")
    assert model.meta.cal_step.ceers_tweakreg == "COMPLETE"
    assert fits_header_offset_mas(model.meta.wcsinfo.instance, wcs, (2048, 2048)) <= 1.0


def test_a3001_names_are_found_and_logged(caplog):
    """``<root>_a3001_tweakreg.asdf`` (the earlier CEERS naming) is used, and the log says which file."""
    assert asn_id_of(f"{SW_ROOT}_a3001_match.fits") == "a3001"
    assert asn_id_of(f"{SW_ROOT}_tweakreg.fits") is None
    path, looked_for = find_wcs_solution(A3001_SOLUTIONS, f"{SW_ROOT}_tweakreg.fits", asn_ids=["a3001"])
    assert path.name == f"{SW_ROOT}_a3001_tweakreg.asdf"
    assert looked_for[0].endswith(f"{SW_ROOT}_tweakreg.asdf")
    # <root>_tweakreg.asdf first when both exist
    path, _ = find_wcs_solution(SOLUTIONS, f"{SW_ROOT}_a3001_match.fits")
    assert path.name == f"{SW_ROOT}_tweakreg.asdf"

    caplog.set_level(logging.INFO, logger="jwst_ceers")
    # the _final associations' member names carry the asn id
    (model,) = applied([exposure(SW_ROOT, suffix="a3001_match")], A3001_SOLUTIONS)
    assert model.meta.cal_step.ceers_tweakreg == "COMPLETE"
    assert f"applied saved WCS solution {A3001_SOLUTIONS / SW_ROOT}_a3001_tweakreg.asdf" in caplog.text
    # without an id in the name: the single <root>_<asn id>_tweakreg.asdf is taken
    (model,) = applied([exposure(SW_ROOT)], A3001_SOLUTIONS)
    assert model.meta.cal_step.ceers_tweakreg == "COMPLETE"


def test_a3001_names_through_a_ceers_association(tmp_path, caplog):
    """CEERS's own association (asn_id a3001, members ``calibrated/<root>_tweakreg.fits``)."""
    import json

    asn = json.loads((CEERS_DR05 / "associations" / "nircam1_f115w.json").read_text())
    members = [m for m in asn["products"][0]["members"] if SW_ROOT in m["expname"]]
    asn["products"][0]["members"] = members
    (tmp_path / "calibrated").mkdir()
    exposure(SW_ROOT).save(tmp_path / "calibrated" / f"{SW_ROOT}_tweakreg.fits")
    (tmp_path / "asn.json").write_text(json.dumps(asn))
    wcs_dir = tmp_path / "wcs"
    wcs_dir.mkdir()
    shutil.copy(A3001_SOLUTIONS / f"{SW_ROOT}_a3001_tweakreg.asdf", wcs_dir)
    # a second file with another id: only the association's asn_id can choose
    shutil.copy(A3001_SOLUTIONS / f"{SW_ROOT}_a3001_tweakreg.asdf", wcs_dir / f"{SW_ROOT}_a3002_tweakreg.asdf")
    caplog.set_level(logging.INFO, logger="jwst_ceers")
    (model,) = applied(str(tmp_path / "asn.json"), wcs_dir)
    assert model.meta.cal_step.ceers_tweakreg == "COMPLETE"
    assert f"{SW_ROOT}_a3001_tweakreg.asdf" in caplog.text
    with pytest.raises(CeersFileError, match="several saved WCS solutions"):
        find_wcs_solution(wcs_dir, f"{SW_ROOT}_tweakreg.fits")


def test_missing_solution_skips_that_exposure_only(tmp_path, caplog):
    wcs_dir = tmp_path / "wcs"
    wcs_dir.mkdir()
    shutil.copy(SOLUTIONS / f"{SW_ROOT}_tweakreg.asdf", wcs_dir)
    before = exposure(LW_ROOT)
    original = np.array(before.meta.wcs(100.0, 100.0)) if before.meta.wcs is not None else None
    models = applied([exposure(SW_ROOT), before], wcs_dir)
    assert models[0].meta.cal_step.ceers_tweakreg == "COMPLETE"
    assert models[1].meta.cal_step.ceers_tweakreg == "SKIPPED"
    assert original is None and models[1].meta.wcs is None  # left unchanged
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and LW_ROOT in r.getMessage())
    assert str(wcs_dir / f"{LW_ROOT}_tweakreg.asdf") in warning and "SKIPPED" in warning


def test_subarray_given_a_full_frame_solution_is_refused(tmp_path):
    wcs_dir = tmp_path / "wcs"
    wcs_dir.mkdir()
    shutil.copy(SOLUTIONS / f"{SW_ROOT}_tweakreg.asdf", wcs_dir)
    subarray = exposure(SW_ROOT, shape=(256, 256))
    with pytest.raises(CeersError) as info:
        applied([subarray], wcs_dir)
    message = str(info.value)
    assert f"{SW_ROOT}_tweakreg.asdf" in message and f"{SW_ROOT}_tweakreg.fits" in message
    assert "256 x 256" in message and "2047.5" in message


def test_output_folders_created_and_checked_before_any_fit(tmp_path, monkeypatch):
    """#13 item 6: wcs_dir and the folder of results_file are made (or refused) before the first catalog."""
    from jwst_ceers import CatalogTweakReg

    calls = []
    monkeypatch.setattr(CatalogTweakReg, "_alignment_image", lambda *args: calls.append(args) or 1 / 0)
    models = [exposure(SW_ROOT, shape=(64, 64))]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CeersFileError, match="results_file folder .*afile"):
        CatalogTweakReg(results_file=str(tmp_path / "afile" / "fits.ecsv")).run(models)
    with pytest.raises(CeersFileError, match="wcs_dir .*afile"):
        CatalogTweakReg(wcs_dir=str(tmp_path / "afile" / "wcs")).run(models)
    with pytest.raises(CeersFileError, match="is a directory"):
        CatalogTweakReg(results_file=str(tmp_path)).run(models)
    assert not calls
    # missing folders are created, then the work starts
    with pytest.raises(ZeroDivisionError):
        CatalogTweakReg(wcs_dir=str(tmp_path / "new" / "wcs"), results_file=str(tmp_path / "new2" / "t" / "fits.ecsv")).run(
            models
        )
    assert (tmp_path / "new" / "wcs").is_dir() and (tmp_path / "new2" / "t").is_dir()
