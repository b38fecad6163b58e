"""Issue 14, class 2: an exposure twice, or several filters/instruments, never make a mosaic.

Root: `jwst_ceers.pipeline.input_checks.check_members` (Image3Ceers, before any work)
compares exposure identities (file-name root + DETECTOR, and EXPSTART + DETECTOR) and the
(instrument, filter) of every member; `jwst_ceers.associations.drop_duplicate_exposures`
(used by every association jwst_ceers builds: ``jwst-ceers asn`` and the survey) keeps
one file per exposure with a warning naming both.
"""

import logging
import shutil
import time

import pytest
from hostile_helpers import f150w_files, modified_copy, run_image3, simulate_small_pointing, write_asn

from jwst_ceers.errors import CeersDataError


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate_small_pointing(tmp_path_factory.mktemp("duplicates") / "sim")


def _refused_quickly(asn, out, sim, *words):
    start = time.perf_counter()
    with pytest.raises(CeersDataError) as error:
        run_image3(asn, out, sim.refcat_path)
    elapsed = time.perf_counter() - start
    message = str(error.value)
    for word in words:
        assert str(word) in message, f"{word!r} not in {message!r}"
    assert not (out / "t_f150w_i2d.fits").exists()
    return elapsed


def test_member_listed_twice_is_refused(sim, tmp_path):
    first, second = f150w_files(sim)
    asn = write_asn(tmp_path, [first, second, first])
    _refused_quickly(asn, tmp_path, sim, first.name, "same exposure", "drizzled twice")


def test_copies_of_one_exposure_in_two_folders_are_refused(sim, tmp_path):
    first, second = f150w_files(sim)
    copy = tmp_path / "copies" / first.name
    copy.parent.mkdir()
    shutil.copy(first, copy)
    asn = write_asn(tmp_path, [first, second, copy])
    _refused_quickly(asn, tmp_path, sim, str(first), str(copy), "same exposure")


def test_renamed_copy_is_found_by_expstart_and_detector(sim, tmp_path):
    first, second = f150w_files(sim)
    renamed = tmp_path / "my_renamed_copy_cal.fits"
    shutil.copy(first, renamed)
    asn = write_asn(tmp_path, [first, second, renamed])
    _refused_quickly(asn, tmp_path, sim, renamed.name, "EXPSTART and DETECTOR")


def test_mixed_filters_are_refused_before_work(sim, tmp_path):
    asn = write_asn(tmp_path, sim.cal_files)
    elapsed = _refused_quickly(asn, tmp_path, sim, "F150W", "F356W", "ONE filter", sim.cal_files[0].name)
    assert elapsed < 30  # before tweakreg/outlier_detection/resample (a full run takes longer)


def test_a_miri_member_is_refused(sim, tmp_path):
    first, second = f150w_files(sim)

    def make_miri(model):
        model.meta.instrument.name = "MIRI"
        model.meta.instrument.detector = "MIRIMAGE"
        model.meta.instrument.filter = "F770W"
        model.meta.instrument.pupil = None
        model.meta.exposure.start_time = 60000.0

    miri = modified_copy(second, tmp_path / "jw01345002001_02101_00001_mirimage_cal.fits", make_miri)
    asn = write_asn(tmp_path, [first, miri])
    _refused_quickly(asn, tmp_path, sim, "MIRI", "NIRCAM", "instruments", miri.name)


def test_asn_over_two_folders_of_copies_keeps_each_exposure_once(sim, tmp_path, caplog):
    from jwst_ceers.associations import write_associations

    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        for path in f150w_files(sim):
            shutil.copy(path, folder)
    with caplog.at_level(logging.WARNING, logger="jwst_ceers"):
        (asn,) = write_associations([str(f) for f in folders], tmp_path / "asn")
    import json

    members = json.loads(asn.read_text())["products"][0]["members"]
    assert len(members) == 2
    assert sorted(m["expname"].split("/")[-1] for m in members) == sorted(p.name for p in f150w_files(sim))
    for path in f150w_files(sim):
        assert str(tmp_path / "b" / path.name) in caplog.text and str(tmp_path / "a" / path.name) in caplog.text
    assert "same exposure" in caplog.text


def test_symbolic_link_to_a_member_is_the_same_exposure(sim, tmp_path):
    first, second = f150w_files(sim)
    link = tmp_path / "another_name_cal.fits"
    link.symlink_to(first)
    asn = write_asn(tmp_path, [first, second, link])
    _refused_quickly(asn, tmp_path, sim, link.name, "same exposure")
