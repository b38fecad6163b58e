"""The survey never disturbs what it does not own: other runs, the process's logging and streams.

- Concurrent runs through the Python API (``run_products``, as the README's SLURM
  recipe calls it) take the survey lock: the second is refused at once, and never
  deletes the first run's staging folder.
- A product's log is captured without removing the application's root handlers, and
  sys.stdout, sys.stderr, the root level and os.environ are as before afterwards.
- ``stream=False`` opens no file.
"""

import builtins
import logging
import os
import sys
import threading
import time

import pytest

from jwst_ceers.errors import CeersFileError
from jwst_ceers.survey import load_survey_config, plan_survey, run_products
from test_survey import assert_products_match_truth, make_exposures, write_config


def standin_sees_root_handlers(*, inputs, upstream, output_dir, name, params):
    """Records which root handlers exist while the product runs, then logs and prints."""
    from pathlib import Path

    names = sorted(type(h).__name__ + ":" + (h.get_name() or "") for h in logging.getLogger().handlers)
    Path(params["record"]).write_text("\n".join(names))
    logging.getLogger("stpipe.step").info("unique-record-%s", name)
    print(f"unique-print-{name}")
    Path(output_dir, f"{name}.txt").write_text(name)


@pytest.fixture
def survey(tmp_path):
    truth = make_exposures(tmp_path)
    return tmp_path, truth


def test_concurrent_api_runs_take_the_lock_and_keep_each_others_staging(survey):
    root, truth = survey
    path = write_config(root, per_filter="[image3.steps.standin]\npartial_then_sleep = 1.5")
    tasks = plan_survey(load_survey_config(path))
    first = {}
    runner = threading.Thread(target=lambda: first.update({r.key: r for r in run_products(tasks, stream=False)}))
    runner.start()
    deadline = time.monotonic() + 60
    while not list((root / "products").glob("p1/.staging/*/p1_f150w_i2d.fits")) and time.monotonic() < deadline:
        time.sleep(0.02)
    staging = list((root / "products").glob("p1/.staging/*"))
    assert staging, "the first run never staged its product"
    with pytest.raises(CeersFileError, match="another jwst-ceers survey is running"):
        run_products(tasks, stream=False)
    assert all(folder.is_dir() for folder in staging)  # the second run deleted nothing
    runner.join(120)
    assert {r.status for r in first.values()} == {"done"}, {k: r.reason for k, r in first.items()}
    assert_products_match_truth(root, truth)
    # once the first run has finished, the lock is free again
    assert {r.status for r in run_products(tasks, stream=False)} == {"skipped"}


def test_product_logs_leave_the_process_logging_alone(tmp_path, monkeypatch):
    from jwst_ceers.survey import ProductTask

    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    ours = logging.StreamHandler(sys.__stderr__)
    ours.name = "application-console"
    root = logging.getLogger()
    root.addHandler(ours)
    level, stdout, stderr = root.level, sys.stdout, sys.stderr
    environ = dict(os.environ)
    record = tmp_path / "handlers.txt"
    task = ProductTask(
        "p/a", "p", "a", "p_a", "test_survey_isolation:standin_sees_root_handlers", str(tmp_path / "out"),
        params={"record": str(record)},
    )
    try:
        [result] = run_products([task], stream=False)
        assert result.status == "done", result.reason
        assert "StreamHandler:application-console" in record.read_text().splitlines()  # not removed meanwhile
        assert ours in root.handlers
    finally:
        root.removeHandler(ours)
    assert (root.level, sys.stdout, sys.stderr) == (level, stdout, stderr)
    assert dict(os.environ) == environ
    log = (tmp_path / "out" / "logs" / "p_a.log").read_text()
    assert log.count("unique-record-p_a") == 1 and log.count("unique-print-p_a") == 1


def test_two_threads_capture_their_own_records(tmp_path):
    from jwst_ceers.survey.log_capture import captured_log

    barrier = threading.Barrier(2)

    def product(name):
        with captured_log(tmp_path / f"{name}.log", name):
            for i in range(20):
                barrier.wait(5) if i == 0 else None
                logging.getLogger("jwst_ceers.test").warning("%s message %d", name, i)
                print(f"{name} printed {i}")

    threads = [threading.Thread(target=product, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for mine, other in (("a", "b"), ("b", "a")):
        text = (tmp_path / f"{mine}.log").read_text()
        assert text.count(f"{mine} message") == 20 and text.count(f"{mine} printed") == 20
        assert f"{other} message" not in text and f"{other} printed" not in text


def test_stream_false_opens_no_file(tmp_path, monkeypatch):
    from jwst_ceers.survey import ProductTask

    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    opened = []
    real_open = builtins.open

    def recording_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    task = ProductTask(
        "p/a", "p", "a", "p_a", "test_survey_isolation:standin_sees_root_handlers", str(tmp_path / "out"),
        params={"record": str(tmp_path / "h.txt")},
    )
    monkeypatch.setattr(builtins, "open", recording_open)
    run_products([task], stream=False, dry_run=True)
    assert os.devnull not in opened
