"""``jwst-ceers survey``: user errors give ONE line on stderr and exit status 2, before any work.

Early validation: everything a configuration can get wrong (step parameter values,
grid sizes, output folders, encodings) is refused when it is loaded, before the first
product runs.
"""

import os
import shutil
import subprocess
import time

import pytest

from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.survey import load_survey_config
from test_survey import make_exposures, write_config


@pytest.fixture
def cli(monkeypatch):
    import jwst_ceers.cli as cli_module

    monkeypatch.setattr(cli_module, "COMMANDS", {"survey": cli_module.COMMANDS["survey"]})
    return cli_module


@pytest.fixture
def survey_root(tmp_path):
    make_exposures(tmp_path)
    return tmp_path


def _one_line_error(capsys, *needles):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _no_product_made(root):
    return not list((root / "products").glob("*/*.manifest.json")) if (root / "products").is_dir() else True


# ---------------------------------------------------------------- command line
def test_output_root_is_a_regular_file(cli, survey_root, capsys):
    path = write_config(survey_root)
    (survey_root / "products").write_text("not a folder")
    assert cli.main(["survey", str(path), "--serial"]) == 2
    _one_line_error(capsys, "output_root", "products", "not a directory")


def _make_read_only(folder):
    """Make ``folder`` unwritable, also for root (immutable attribute); False if impossible."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return True
    if shutil.which("chattr") is None:
        return False
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        return False
    return True


def _make_writable(folder):
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.chmod(0o755)


def test_output_root_is_read_only(cli, survey_root, capsys):
    path = write_config(survey_root)
    products = survey_root / "products"
    if not _make_read_only(products):
        pytest.skip("cannot make a read-only folder here")
    try:
        assert cli.main(["survey", str(path), "--serial"]) == 2
    finally:
        _make_writable(products)
    _one_line_error(capsys, "output_root", "cannot be written")
    assert _no_product_made(survey_root)


def test_memory_limit_not_a_size(cli, survey_root, capsys):
    path = write_config(survey_root)
    start = time.perf_counter()
    assert cli.main(["survey", str(path), "--workers", "1", "--memory-limit", "lots"]) == 2
    assert time.perf_counter() - start < 10  # no cluster was started
    _one_line_error(capsys, "--memory-limit", "lots")


def test_no_scheduler_at_the_address_fails_fast(cli, survey_root, capsys):
    pytest.importorskip("distributed")
    path = write_config(survey_root)
    start = time.perf_counter()
    assert cli.main(["survey", str(path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert time.perf_counter() - start < 20  # was 30 s then a traceback
    _one_line_error(capsys, "--scheduler tcp://127.0.0.1:9", "no dask scheduler")
    assert _no_product_made(survey_root)


# ---------------------------------------------------------------- early validation
BASE = 'output_root = "products"\n[engine]\nimage3_task = "test_survey:standin_image3"\n'
POINTING = '[[pointings]]\nname = "p1"\ninputs = ["cal/p1/*_cal.fits"]\n'


def test_odd_bkg_box_size_is_refused_at_load(survey_root):
    # the default MosaicBackground task: its parameters are checked when the config is read
    path = survey_root / "odd.toml"
    path.write_text(BASE + "[mosaic_bkg.params]\nbkg_box_size = 63\n" + POINTING)
    with pytest.raises(CeersParameterError, match=r"mosaic_bkg\.params\.bkg_box_size.*even, got 63") as info:
        load_survey_config(path)
    assert str(path) in str(info.value)


def test_out_of_range_step_value_is_refused_at_load(survey_root):
    path = survey_root / "range.toml"
    path.write_text(BASE + "[mosaic_bkg.params]\nbkg_clip_sigma = 0.1\n" + POINTING)
    with pytest.raises(CeersParameterError, match=r"mosaic_bkg\.params.*bkg_clip_sigma"):
        load_survey_config(path)
    path.write_text(
        'output_root = "products"\n[image3.steps.tweakreg]\nabs_searchrad = "wide"\n'
        '[engine]\nmosaic_bkg_task = "test_survey:standin_bkg"\n' + POINTING
    )
    with pytest.raises(CeersParameterError, match=r"image3: .*tweakreg/abs_searchrad"):
        load_survey_config(path)


def test_huge_output_shape_is_refused_at_load(survey_root):
    path = survey_root / "huge.toml"
    grid = "[pointings.grid]\noutput_shape = [200000, 200000]\n"
    path.write_text(BASE + POINTING + grid)
    with pytest.raises(CeersParameterError, match=r"pointings\[0\]\.grid\.output_shape: 200000 x 200000") as info:
        load_survey_config(path, check_steps=False)
    assert "GB" in str(info.value)
    # a real CEERS grid passes (1.4 GB of arrays); a memory budget below that refuses it
    path.write_text(BASE + POINTING + "[pointings.grid]\noutput_shape = [10600, 4800]\n")
    load_survey_config(path, check_steps=False)
    path.write_text("memory_budget_gb = 1.0\n" + BASE + POINTING + "[pointings.grid]\noutput_shape = [10600, 4800]\n")
    with pytest.raises(CeersParameterError, match="memory_budget_gb"):
        load_survey_config(path, check_steps=False)


def test_cli_bad_step_value_exits_2_before_any_product(cli, survey_root, capsys):
    path = survey_root / "odd.toml"
    path.write_text(BASE + "[mosaic_bkg.params]\nbkg_box_size = 63\n" + POINTING)
    assert cli.main(["survey", str(path), "--serial"]) == 2
    _one_line_error(capsys, "bkg_box_size")
    assert _no_product_made(survey_root)


def test_toml_with_a_byte_order_mark_is_read(survey_root):
    path = write_config(survey_root)
    text = path.read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    config = load_survey_config(path)
    assert [p.name for p in config.pointings] == ["p1", "p2"]


def test_config_path_that_is_a_directory(survey_root):
    with pytest.raises(CeersFileError, match="is a directory"):
        load_survey_config(survey_root)
