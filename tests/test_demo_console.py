"""What ``jwst-ceers demo`` prints: each log record once, every record in demo.log, one line per stage.

The whole demo takes minutes, so these tests run the CLI's real logging path
(``jwst_ceers.cli.main`` -> ``demo_logging`` -> ``call_step``) around a real stpipe step
on a 32x32 exposure, in place of the simulated pointing.
"""

import logging

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_ceers import cli
from jwst_ceers.demo import DEFAULT_SIZE, chain
from jwst_ceers.demo.console import Stage, call_step, demo_logging


def small_exposure():
    """32x32 exposure: 7 zero-variance VAR_RNOISE pixels, no VAR_POISSON / VAR_FLAT (each a warning)."""
    rng = np.random.default_rng(5)
    model = datamodels.ImageModel((32, 32))
    model.data = rng.normal(0.2, 0.01, (32, 32)).astype(np.float32)
    model.var_rnoise = np.full((32, 32), 1e-4, np.float32)
    model.var_rnoise.flat[rng.choice(32 * 32, 7, replace=False)] = 0
    model.meta.filename = "jw01345001001_02101_00001_nrca1_cal.fits"
    return model


class TinyReport:
    def summary(self):
        return "QUALITY REPORT"


def tiny_demo(out_dir, *, seed, size, realism):
    """Stands in for run_demo: two stages, a real step, records of every kind."""
    from jwst_ceers import VarianceHoleFill

    with Stage("1/2 a real stpipe step", 1):
        call_step(VarianceHoleFill, small_exposure(), arrays=["var_rnoise", "var_poisson"])
    with Stage("2/2 records of other packages", 1):
        logging.getLogger("tweakwcs.wcsimage").warning("FOREIGN WARNING")
        logging.getLogger("jwst.resample").error("FOREIGN ERROR")
        logging.getLogger("jwst_ceers.demo.chain").debug("DEBUG RECORD")
    return TinyReport()


def test_each_record_once_on_terminal_and_all_in_demo_log(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(chain, "run_demo", tiny_demo)
    root = logging.getLogger()
    handlers_before = root.handlers[:]

    assert cli.main(["demo", "--out", str(tmp_path / "out")]) == 0

    out, err = capsys.readouterr()
    log_text = (tmp_path / "out" / "demo.log").read_text()
    # our warnings and every package's errors reach the terminal, each exactly once
    assert err.count("var_poisson array; nothing to fill there") == 1, err
    assert err.count("FOREIGN ERROR") == 1, err
    # other packages' warnings and all INFO records (stpipe's included) stay off the terminal ...
    assert "FOREIGN WARNING" not in err
    assert "zero-variance pixels set to +inf" not in err
    assert "running with args" not in err
    # ... and every record is in demo.log, exactly once, in stpipe's format
    for text in ("var_poisson array; nothing to fill there", "FOREIGN ERROR", "FOREIGN WARNING",
                 "var_rnoise: 7 zero-variance pixels set to +inf", "Step VarianceHoleFill running with args",
                 "Step VarianceHoleFill done"):
        assert log_text.count(text) == 1, (text, log_text)
    assert " - stpipe.step - INFO - Step VarianceHoleFill done" in log_text
    assert "DEBUG RECORD" not in log_text  # DEBUG only with --verbose
    # the terminal names the log file and what it kept off the terminal; one line per stage
    log_file = tmp_path / "out" / "demo.log"
    assert err.count(str(log_file)) == 2
    assert "also 1 warnings not shown here: 1 tweakwcs" in err
    stage_lines = [line for line in err.splitlines() if line.startswith(("1/2 ", "2/2 "))]
    assert len(stage_lines) == 2 and all("100%" in line and "1/1 [00:" in line for line in stage_lines)
    assert len(err.splitlines()) <= 8
    # the report comes last, on stdout
    assert out.strip() == "QUALITY REPORT"
    # the caller's logging is back as it was
    assert root.handlers == handlers_before


def test_verbose_writes_debug_records_to_the_log(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(chain, "run_demo", tiny_demo)
    assert cli.main(["--verbose", "demo", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "demo.log").read_text().count("DEBUG RECORD") == 1
    assert "DEBUG RECORD" not in capsys.readouterr().err


def test_stage_bar_counts_the_stpipe_steps_of_image3(tmp_path, capsys):
    """The Image3Ceers stage advances on stpipe's own "Step <name> running" records."""
    from jwst_ceers import VarianceHoleFill

    with demo_logging(tmp_path / "demo.log"):
        with Stage("3/5 Image3Ceers F150W", 3, count=chain._image3_step_started, counts="started") as stage:
            for name in ("tweakreg", "skymatch"):
                call_step(VarianceHoleFill, small_exposure(), arrays=["var_rnoise"], name=name)
            call_step(VarianceHoleFill, small_exposure(), arrays=["var_rnoise"], name="not_an_image3_step")
            done_before_exit = stage.n_done
    assert done_before_exit == 1  # tweakreg finished when skymatch started; the odd name is not counted
    assert stage.elapsed > 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("3/5 Image3Ceers F150W") and "3/3 [00:" in line


def test_failed_stage_says_so(capsys):
    with pytest.raises(RuntimeError, match="boom"), Stage("4/5 MosaicBackground", 1):
        raise RuntimeError("boom")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("4/5 MosaicBackground") and line.endswith("FAILED")


def test_default_demo_is_quick_and_full_frames_stay_available():
    parser = cli.build_parser()
    assert parser.parse_args(["demo"]).size == DEFAULT_SIZE < 2048
    assert parser.parse_args(["demo", "--size", "2048"]).size == 2048


def test_default_demo_simulates_every_artefact_and_refuses_unknown_presets(tmp_path, capsys, monkeypatch):
    from jwst_ceers.simulate import REALISM_PRESETS

    parser = cli.build_parser()
    assert parser.parse_args(["demo"]).realism == "realistic"
    assert REALISM_PRESETS["realistic"] != REALISM_PRESETS["none"]
    seen = {}
    monkeypatch.setattr(chain, "run_demo", lambda out, **kw: seen.update(kw) or TinyReport())
    assert cli.main(["demo", "--out", str(tmp_path / "a"), "--realism", "none"]) == 0
    assert seen["realism"] == "none"
    assert cli.main(["demo", "--out", str(tmp_path / "b"), "--realism", "sunny"]) == 2
    assert "sunny" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # refused before any work
