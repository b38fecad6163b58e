"""What "up to date" compares: content, with a stat shortcut an in-place edit cannot fool.

An input (or an output) changed in place with the same size and its mtime put back
(``cp -p``, ``rsync -t``, ``touch -d``) is seen as changed: its ctime moved, so it is
re-hashed. A change of metadata alone (chmod) re-hashes but remakes nothing.
"""

import os

import numpy as np
from astropy.io import fits

from test_survey import i2d_path, make_exposures, run_serial, write_config


def _edit_in_place_keeping_size_and_mtime(path, offset):
    stat = path.stat()
    with fits.open(path, mode="update") as hdul:
        hdu = hdul["SCI"] if "SCI" in hdul else hdul[0]
        hdu.data = (hdu.data + offset).astype(hdu.data.dtype)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_input_edited_in_place_with_same_size_and_mtime_is_redone(tmp_path):
    make_exposures(tmp_path)
    path = write_config(tmp_path)
    run_serial(path)
    member = sorted((tmp_path / "cal" / "p1").glob("*_02101_*_cal.fits"))[0]
    _edit_in_place_keeping_size_and_mtime(member, 5.0)
    results, _ = run_serial(path)
    assert results["p1/F150W"].status == "done"
    assert "inputs changed" in results["p1/F150W"].reason and member.name in results["p1/F150W"].reason
    assert results["p1/mosaic_bkg"].status == "done" and results["p2/F150W"].status == "skipped"
    expected = np.mean([fits.getdata(p) for p in sorted(member.parent.glob("*_02101_*_cal.fits"))], axis=0)
    np.testing.assert_allclose(fits.getdata(i2d_path(tmp_path, "p1", "F150W"), "SCI"), expected, rtol=1e-6)


def test_output_edited_in_place_with_same_size_and_mtime_is_redone(tmp_path):
    make_exposures(tmp_path)
    path = write_config(tmp_path)
    run_serial(path)
    _edit_in_place_keeping_size_and_mtime(i2d_path(tmp_path, "p2", "F356W"), 1.0)
    results, _ = run_serial(path)
    assert results["p2/F356W"].status == "done" and "output modified" in results["p2/F356W"].reason
    assert results["p1/F356W"].status == "skipped"


def test_metadata_change_alone_remakes_nothing(tmp_path):
    make_exposures(tmp_path)
    path = write_config(tmp_path)
    run_serial(path)
    for member in (tmp_path / "cal" / "p1").glob("*_cal.fits"):
        member.chmod(0o444)  # ctime moves, content does not
    i2d_path(tmp_path, "p1", "F150W").chmod(0o444)
    results, _ = run_serial(path)
    assert {r.status for r in results.values()} == {"skipped"}
