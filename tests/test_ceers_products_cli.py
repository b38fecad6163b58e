"""CEERS's released material through ``jwst-ceers asn`` and ``jwst-ceers grid`` (issue 15 items 2 and 4).

Runs on the real files of ``../shared/data/ceers_dr05`` (skipped when absent): exposures
are header-only FITS files named like the real ones, with the footprints (S_REGION) of
CEERS's real WCS solutions.
"""

import json
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.io import fits

from jwst_ceers.cli import main
from jwst_ceers.mosaic_grid import OutputGrid, read_grid_parameter_file, sky_to_grid_pixels

CEERS_DR05 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ceers_dr05"
SOLUTIONS = CEERS_DR05 / "tweakreg_wcs"
IMAGE3 = CEERS_DR05 / "parameter_files" / "image3_nircam1.asdf"

pytestmark = pytest.mark.skipif(not SOLUTIONS.is_dir(), reason=f"{CEERS_DR05} not present")

CEERS_GRID = {
    "crpix": [26678.5, -724.5], "crval": [214.825, 52.825], "rotation": -49.7,
    "pixel_scale": 0.03, "output_shape": [10600, 4800],
}


def ceers_exposures(directory, suffix, *, count=6):
    """Header-only Level-2 files named ``<root>_<suffix>.fits`` with the real solutions' S_REGION."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for solution in sorted(SOLUTIONS.glob("*_tweakreg.asdf"))[:count]:
        root = solution.name.removesuffix("_tweakreg.asdf")
        with asdf.open(solution) as handle:
            region = handle.tree["wcsinfo"]["s_region"]
        primary = fits.PrimaryHDU(header=fits.Header([
            ("PROGRAM", "01345"), ("OBSERVTN", "001"), ("VISIT", "001"),
            ("FILTER", "F277W" if root.endswith("long") else "F115W"), ("PUPIL", "CLEAR"),
            ("DETECTOR", root.rsplit("_", 1)[1].upper()), ("EXP_TYPE", "NRC_IMAGE"),
        ]))
        sci = fits.ImageHDU(np.zeros((2, 2), np.float32), name="SCI")
        sci.header["S_REGION"] = region
        path = directory / f"{root}_{suffix}.fits"
        fits.HDUList([primary, sci]).writeto(path)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------ asn
@pytest.mark.parametrize("suffix", ["tweakreg", "a3001_match", "crf", "cal"])
def test_asn_recognises_ceers_suffixes(tmp_path, suffix, capsys):
    ceers_exposures(tmp_path / "calibrated", suffix)
    assert main(["asn", str(tmp_path / "calibrated"), "-o", str(tmp_path / "asn")]) == 0
    written = capsys.readouterr().out.split()
    members = [m["expname"] for p in written for m in json.loads(Path(p).read_text())["products"][0]["members"]]
    assert len(members) == 6 and all(m.endswith(f"_{suffix}.fits") for m in members)


def test_asn_says_which_suffixes_it_found_and_looked_for(tmp_path, capsys):
    ceers_exposures(tmp_path / "mixed", "tweakreg")
    ceers_exposures(tmp_path / "mixed", "cal")
    assert main(["asn", str(tmp_path / "mixed"), "-o", str(tmp_path / "asn")]) == 2
    err = capsys.readouterr().err
    assert "*_cal.fits (6)" in err and "*_tweakreg.fits (6)" in err and "--suffix" in err
    assert main(["asn", str(tmp_path / "mixed"), "-o", str(tmp_path / "asn"), "--suffix", "tweakreg"]) == 0

    ceers_exposures(tmp_path / "other", "1fcor")
    assert main(["asn", str(tmp_path / "other"), "-o", str(tmp_path / "asn")]) == 2
    err = capsys.readouterr().err
    assert "*_1fcor.fits (6)" in err
    assert all(f"*_{s}.fits" in err for s in ("cal", "crf", "tweakreg", "match"))


# ----------------------------------------------------------------------- grid
def test_grid_from_ceers_image3_parameter_file_is_exact(tmp_path, capsys):
    """``--from image3_nircam1.asdf`` writes an Image3Ceers file with exactly CEERS's grid (it used to fail)."""
    from jwst_ceers import Image3Ceers

    out = tmp_path / "grid.asdf"
    assert main(["grid", "--from", str(IMAGE3), "-o", str(out)]) == 0
    with asdf.open(out) as handle:
        assert handle.tree["class"] == "jwst_ceers.Image3Ceers"
        (resample,) = handle.tree["steps"]
        assert {k: resample["parameters"][k] for k in CEERS_GRID} == CEERS_GRID
        assert resample["parameters"]["pixfrac"] == 1.0 and resample["parameters"]["weight_type"] == "ivm"
    pipeline = Image3Ceers.from_config_file(str(out))
    assert list(pipeline.resample.crpix) == CEERS_GRID["crpix"]
    # --reference accepts the parameter file too
    assert main(["grid", "--reference", str(IMAGE3), "-o", str(tmp_path / "ref.asdf")]) == 0
    assert read_grid_parameter_file(tmp_path / "ref.asdf") == OutputGrid.from_mapping(CEERS_GRID)


def test_grid_from_a_mosaic_is_exact(tmp_path):
    """An HST mosaic or an i2d: the whole mosaic's grid."""
    grid = OutputGrid.from_mapping({**CEERS_GRID, "crpix": [26678.5 - 20000, -724.5 + 3000], "output_shape": [300, 200]})
    header = grid.to_fits_header()
    del header["NAXIS*"]
    fits.PrimaryHDU(np.zeros((200, 300), np.float32), header=header).writeto(tmp_path / "hst_f160w.fits")
    out = tmp_path / "grid.asdf"
    assert main(["grid", "--from", str(tmp_path / "hst_f160w.fits"), "-o", str(out)]) == 0
    got = read_grid_parameter_file(out)
    assert got.output_shape == grid.output_shape and np.allclose(got.crpix, grid.crpix, atol=1e-9)
    assert np.allclose(got.crval, grid.crval) and abs(got.rotation - grid.rotation) < 1e-9


def test_grid_snap_shares_ceers_lattice(tmp_path):
    """A footprint grid with CEERS's crval/rotation/scale is half a pixel off; --snap puts it on the lattice."""
    exposures = ceers_exposures(tmp_path / "cal", "cal", count=10)
    plain = tmp_path / "plain.asdf"
    assert main([
        "grid", str(tmp_path / "cal"), "-o", str(plain), "--crval", "214.825", "52.825",
        "--rotation", "-49.7", "--pixel-scale", "0.03",
    ]) == 0
    snapped = tmp_path / "snapped.asdf"
    assert main(["grid", str(tmp_path / "cal"), "--from", str(IMAGE3), "--snap", "-o", str(snapped)]) == 0
    ceers = OutputGrid.from_mapping(CEERS_GRID)
    plain_grid, snap_grid = read_grid_parameter_file(plain), read_grid_parameter_file(snapped)
    # the old footprint grid: whole-number crpix, so pixel centres fall on CEERS pixel edges
    offset = (np.array(plain_grid.crpix) - ceers.crpix) % 1.0
    assert np.allclose(offset, 0.5)
    # snapped: same crval, rotation and scale, crpix shifted by whole pixels
    assert snap_grid.crval == ceers.crval and snap_grid.rotation == ceers.rotation
    assert snap_grid.pixel_scale == ceers.pixel_scale
    shift = np.array(snap_grid.crpix) - ceers.crpix
    assert np.array_equal(shift, np.round(shift))
    # its pixel centres are CEERS pixel centres, and it covers every exposure
    sky = snap_grid.to_fits_wcs().all_pix2world([[0, 0], [snap_grid.output_shape[0] - 1, 7]], 0)
    x, y = sky_to_grid_pixels(ceers, sky[:, 0], sky[:, 1])
    assert np.allclose(x, np.round(x), atol=1e-6) and np.allclose(y, np.round(y), atol=1e-6)
    for path in exposures:
        region = fits.getheader(path, "SCI")["S_REGION"].split()[2:]
        ra, dec = np.array(region, float).reshape(-1, 2).T
        x, y = sky_to_grid_pixels(snap_grid, ra, dec)
        assert x.min() > 0 and y.min() > 0
        assert x.max() < snap_grid.output_shape[0] - 1 and y.max() < snap_grid.output_shape[1] - 1


def test_grid_from_refuses_ambiguous_options(tmp_path, capsys):
    ceers_exposures(tmp_path / "cal", "cal", count=2)
    assert main(["grid", str(tmp_path / "cal"), "--from", str(IMAGE3), "-o", str(tmp_path / "g.asdf")]) == 2
    assert "--snap" in capsys.readouterr().err
    assert main(["grid", "--from", str(IMAGE3), "-o", str(IMAGE3)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    part1 = CEERS_DR05 / "parameter_files" / "image3_part1.asdf"
    assert main(["grid", "--from", str(part1), "-o", str(tmp_path / "g.asdf")]) == 2
    assert "image3_part1.asdf" in capsys.readouterr().err
