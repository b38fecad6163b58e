"""Issue 14, class 5: a clear CeersError (or a working run) instead of a traceback or a misleading message.

Roots: `jwst_ceers.inputs.require_file` (directory vs missing, used by every file
check), `jwst_ceers.inputs.check_complete_asdf` (truncated ASDF inputs and parameter
files), gzip magic in the input check and ``.gz`` stripped from product names
(`jwst_ceers._step`), `jwst_ceers.atomic_io.fits_safe_text` (non-ASCII file names in
FITS headers), text RA/DEC in `jwst_ceers.tweakreg.reference_catalog`, and DS9 shapes
checked at read time and clipped to the image in `jwst_ceers.mosaic_bkg.region_edits`.
"""

import gzip
import logging
import shutil
import time

import numpy as np
import pytest
from astropy.table import Table
from hostile_helpers import digest, f150w_files, run_image3, simulate_small_pointing, write_asn

from jwst_ceers.errors import CeersFileError, CeersParameterError


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_small_pointing(tmp_path_factory.mktemp("clear_errors") / "sim")


# ----------------------------------------------------------------- reference catalogs
def test_sexagesimal_refcat_is_parsed(tmp_path):
    from jwst_ceers.tweakreg.reference_catalog import load_reference_catalog

    Table({"RA": ["14:19:21.3", "14h19m00s", "14 19 00"], "Dec": ["+52:52:01", "52d50m00s", "-01 30 00"],
           "mag": [20.0, 21.0, 22.0]}).write(tmp_path / "sexagesimal.ecsv")
    table = load_reference_catalog(tmp_path / "sexagesimal.ecsv")
    np.testing.assert_allclose(table["RA"], [214.83875, 214.75, 214.75], atol=1e-9)
    np.testing.assert_allclose(table["DEC"], [52.866944444, 52.833333333, -1.5], atol=1e-8)
    Table({"ra": ["214.9", "215.0"], "dec": ["52.9", "53.0"]}).write(tmp_path / "text_degrees.csv")
    np.testing.assert_allclose(load_reference_catalog(tmp_path / "text_degrees.csv")["RA"], [214.9, 215.0])


def test_refcat_with_unparsable_coordinates_names_the_file(tmp_path):
    from jwst_ceers.tweakreg.reference_catalog import load_reference_catalog

    Table({"ra": ["north", "x"], "dec": ["52.9", "53"]}).write(tmp_path / "garbage.ecsv")
    with pytest.raises(CeersFileError, match="garbage.ecsv.*neither decimal degrees nor sexagesimal"):
        load_reference_catalog(tmp_path / "garbage.ecsv")


# ------------------------------------------------------------------------ file kinds
def test_gzipped_cal_input_is_accepted(sim, tmp_path):
    from jwst_ceers import VarianceHoleFill

    compressed = tmp_path / "x_cal.fits.gz"
    compressed.write_bytes(gzip.compress(f150w_files(sim)[0].read_bytes()))
    VarianceHoleFill.call(str(compressed), output_dir=str(tmp_path / "out"), save_results=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x_varfill.fits"]


def test_directory_is_not_reported_as_missing(tmp_path):
    from jwst_ceers import VarianceHoleFill
    from jwst_ceers.inputs import read_association

    (tmp_path / "folder_cal.fits").mkdir()
    with pytest.raises(CeersFileError, match="is a directory, not a file"):
        VarianceHoleFill.call(str(tmp_path / "folder_cal.fits"))
    (tmp_path / "asn.json").mkdir()
    with pytest.raises(CeersFileError, match="is a directory, not a file"):
        read_association(tmp_path / "asn.json")
    with pytest.raises(CeersFileError, match="does not exist"):
        VarianceHoleFill.call(str(tmp_path / "missing_cal.fits"))


def test_directory_is_not_reported_as_missing_by_the_other_readers(tmp_path):
    """Mosaics, source catalogs and saved WCS solutions: a folder is said to be a folder."""
    from jwst_ceers.mosaic_bkg.mosaic_io import read_mosaic
    from jwst_ceers.tweakreg.saved_wcs import load_wcs_solution
    from jwst_ceers.tweakreg.source_catalog import read_source_catalog

    for name, reader in (
        ("p_f150w_i2d.fits", read_mosaic),
        ("x_cat.ecsv", read_source_catalog),
        ("x_tweakreg.asdf", load_wcs_solution),
    ):
        (tmp_path / name).mkdir()
        with pytest.raises(CeersFileError, match="is a directory, not a file"):
            reader(tmp_path / name)
        with pytest.raises(CeersFileError, match="does not exist"):
            reader(tmp_path / f"missing_{name}")


@pytest.fixture(scope="module")
def asdf_exposure(sim, tmp_path_factory):
    from stdatamodels.jwst import datamodels

    path = tmp_path_factory.mktemp("asdf") / "x_cal.asdf"
    with datamodels.open(f150w_files(sim)[0]) as model:
        model.save(path)
    return path


@pytest.mark.parametrize("keep", [0.3, 0.002])
def test_truncated_asdf_input_says_truncated(asdf_exposure, tmp_path, keep):
    """Used to say 'list index out of range' (cut in the blocks) or fail in the YAML reader."""
    from jwst_ceers import VarianceHoleFill

    data = asdf_exposure.read_bytes()
    truncated = tmp_path / "t_cal.asdf"
    truncated.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(CeersFileError, match="t_cal.asdf.*truncated"):
        VarianceHoleFill.call(str(truncated))


def test_complete_asdf_input_still_works(asdf_exposure, tmp_path):
    from jwst_ceers import VarianceHoleFill

    result = VarianceHoleFill.call(str(asdf_exposure))
    assert result.meta.cal_step.ceers_varfill == "COMPLETE"


def test_truncated_asdf_parameter_file_says_truncated(sim, tmp_path):
    from pathlib import Path

    from jwst_ceers import PedestalSkySub

    source = Path(__file__).resolve().parents[1] / "parameter_files" / "ceers_pedestal.asdf"
    truncated = tmp_path / "ceers_pedestal.asdf"
    truncated.write_bytes(source.read_bytes()[:600])
    with pytest.raises(CeersParameterError, match="ceers_pedestal.asdf.*truncated"):
        PedestalSkySub.call(str(f150w_files(sim)[0]), config_file=str(truncated))


# ------------------------------------------------------------------ unicode file names
def test_unicode_exposure_names_run_through_the_pipeline(sim, tmp_path):
    """Used to end in a FITS-header ValueError after the alignment and outlier steps."""
    from stdatamodels.jwst import datamodels

    members = []
    for index, source in enumerate(f150w_files(sim)):
        members.append(tmp_path / f"exposé_{index}_cal.fits")
        shutil.copy(source, members[-1])
    before = digest(members)
    mosaic = run_image3(write_asn(tmp_path, [m.name for m in members]), tmp_path / "out", sim.refcat_path,
                        outlier_detection={"save_results": True})
    assert mosaic.is_file()
    # products of the pipeline: ASCII names (resample writes member names into a FITS table)
    crf = sorted((tmp_path / "out").glob("*_crf.fits"))
    assert [p.name for p in crf] == ["expose_0_a3001_crf.fits", "expose_1_a3001_crf.fits"]
    with datamodels.open(mosaic) as model:
        assert np.isfinite(model.data).any()
    assert digest(members) == before


def test_unicode_exposure_name_standalone_step_keeps_the_name(sim, tmp_path):
    from astropy.io import fits

    from jwst_ceers import VarianceHoleFill

    exposure = tmp_path / "exposé_cal.fits"
    shutil.copy(f150w_files(sim)[0], exposure)
    VarianceHoleFill.call(str(exposure), output_dir=str(tmp_path / "out"), save_results=True)
    product = tmp_path / "out" / "exposé_varfill.fits"
    assert product.is_file()
    assert fits.getheader(product)["FILENAME"] == "expose_varfill.fits"  # FITS headers are ASCII


def test_fits_safe_text():
    from jwst_ceers.atomic_io import fits_safe_text

    assert fits_safe_text("exposé_Ω_cal.fits") == "expose_?_cal.fits"
    assert fits_safe_text("plain_cal.fits") == "plain_cal.fits"


# ---------------------------------------------------------------------- DS9 regions
def test_ds9_text_labels_are_skipped_point_and_line_refused(tmp_path, caplog):
    from jwst_ceers.mosaic_bkg.region_edits import apply_region_edits, read_region_edits

    labelled = tmp_path / "labelled.reg"
    labelled.write_text("image\ncircle(10,10,3)\n# text(20,20) text={a galaxy}\n")
    with caplog.at_level(logging.WARNING, logger="jwst_ceers"):
        edits = read_region_edits([labelled])
    assert len(edits) == 1 and "1 text shape(s)" in caplog.text
    assert apply_region_edits(np.zeros((40, 40), bool), edits).sum() == 25  # centres strictly inside r=3
    for shape in ("point(20,20)", "line(1,1,20,20)"):
        path = tmp_path / "no_area.reg"
        path.write_text(f"image\ncircle(10,10,3)\n{shape}\n")
        kind = shape.split("(")[0]
        with pytest.raises(CeersFileError, match=f"no_area.reg: shape 2 \\({kind}\\) has no area"):
            read_region_edits([path])


def test_huge_ds9_circle_is_clipped_to_the_image(tmp_path):
    """A circle of radius 1e5 px used to ask for 298 GiB (MemoryError)."""
    from jwst_ceers.mosaic_bkg.region_edits import apply_region_edits, read_region_edits

    path = tmp_path / "huge.reg"
    path.write_text("image\ncircle(100,100,100000)\n-circle(50,60,10)\n")
    edits = read_region_edits([path])
    start = time.perf_counter()
    mask = apply_region_edits(np.zeros((300, 400), bool), edits)
    assert time.perf_counter() - start < 10
    yy, xx = np.mgrid[:300, :400]
    expected = (xx - 49) ** 2 + (yy - 59) ** 2 >= 100  # DS9 1-based centre; centres strictly inside removed
    np.testing.assert_array_equal(mask, expected)


def test_grid_reference_that_is_a_directory_says_so(tmp_path):
    from jwst_ceers.mosaic_grid.from_files import exposure_footprint, read_reference_header

    with pytest.raises(CeersFileError, match="reference mosaic is a directory, not a file"):
        read_reference_header(tmp_path)
    with pytest.raises(CeersFileError, match="input file is a directory, not a file"):
        exposure_footprint(tmp_path)
