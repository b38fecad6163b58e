"""What ``jwst-ceers survey`` shows on the terminal (issue 13 item 5).

Each record is printed once, in the product's log file only; the terminal gets one
line per product, a progress bar with the elapsed time on a terminal, and the names
of the files the full logs are in.
"""

import io
import logging
import re
import sys

import pytest

from jwst_ceers.survey import load_survey_config, plan_survey, run_products
from test_survey import make_exposures, standin_image3, write_config


def standin_image3_chatty(*, inputs, upstream, output_dir, name, params):
    """Logs as stpipe does (including through a handler of its own, as Step.call adds one) and prints."""
    logging.getLogger("stpipe.step").info("Step %s running with args", "tweakreg")
    logging.getLogger("jwst_ceers.test").warning("chatty-record-%s", name)
    own = logging.StreamHandler(sys.stderr)  # what stpipe's Step.call(configure_log=True) does
    fake_stpipe = logging.getLogger("stpipe.fake")
    fake_stpipe.addHandler(own)
    try:
        fake_stpipe.warning("own-handler-record-%s", name)
    finally:
        fake_stpipe.removeHandler(own)
    print(f"chatty-print-{name}")
    standin_image3(inputs=inputs, upstream=upstream, output_dir=output_dir, name=name, params=params)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def chatty_survey(tmp_path):
    make_exposures(tmp_path)
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("test_survey:standin_image3", "test_survey_console:standin_image3_chatty"))
    return tmp_path, path


def test_cli_prints_one_line_per_product_and_names_the_logs(chatty_survey, capsys, monkeypatch):
    import jwst_ceers.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", {"survey": cli.COMMANDS["survey"]})
    root, path = chatty_survey
    console = logging.StreamHandler(sys.stderr)  # the application's console, as logging.basicConfig makes it
    logging.getLogger().addHandler(console)
    try:
        assert cli.main(["survey", str(path), "--serial"]) == 0
    finally:
        logging.getLogger().removeHandler(console)
    captured = capsys.readouterr()
    terminal = captured.out + captured.err
    assert "chatty" not in terminal and "own-handler-record" not in terminal and "Step tweakreg" not in terminal
    for k in range(1, 7):
        assert len(re.findall(rf"^\[{k}/6\] ", captured.out, flags=re.M)) == 1
    assert f"full logs: {root / 'products'}/*/logs/<product>.log" in captured.out
    assert str(root / "products" / "survey.log") in captured.out
    for pointing in ("p1", "p2"):
        for band in ("f150w", "f356w"):
            name = f"{pointing}_{band}"
            log = (root / "products" / pointing / "logs" / f"{name}.log").read_text()
            for needle in (f"chatty-record-{name}", f"own-handler-record-{name}", f"chatty-print-{name}"):
                assert log.count(needle) == 1, (needle, log)


def test_live_progress_bar_with_elapsed_time(chatty_survey):
    _, path = chatty_survey
    terminal = _Terminal()
    results = run_products(plan_survey(load_survey_config(path)), stream=terminal)
    assert {r.status for r in results} == {"done"}
    text = terminal.getvalue()
    assert re.search(r"\r6/6 \|[^|]*\| 00:\d\d", text), text[-500:]
    assert "p1/F150W" in text  # the running product is shown on the bar
    # not a terminal: the same lines, without the bar
    plain = io.StringIO()
    run_products(plan_survey(load_survey_config(path)), stream=plain, force=True)
    assert "\r" not in plain.getvalue() and plain.getvalue().count("] p") == 6


def standin_raises_without_message(*, inputs, upstream, output_dir, name, params):
    """Fails as regions' DS9 parser does on a point region: an exception with no message."""
    raise NotImplementedError()


def test_a_failure_without_message_still_says_where_to_look(tmp_path):
    from jwst_ceers.survey import ProductTask, format_summary

    task = ProductTask("p/a", "p", "a", "p_a", "test_survey_console:standin_raises_without_message", str(tmp_path))
    stream = io.StringIO()
    [result] = run_products([task], stream=stream)
    assert result.status == "failed"
    assert result.reason.startswith("NotImplementedError: ") and "log" in result.reason.removeprefix("NotImplementedError: ")
    assert str(tmp_path / "logs" / "p_a.log") in stream.getvalue()  # the failed line names its log
    assert "Traceback" in (tmp_path / "logs" / "p_a.log").read_text()
    assert "NotImplementedError: (no message" in format_summary([result])


def test_console_drops_dask_chatter_but_keeps_its_warnings():
    from jwst_ceers.cli.survey import _quiet_dask

    def record(name, level, msg):
        return logging.LogRecord(name, level, "", 0, msg, (), None)

    assert not _quiet_dask(record("distributed.scheduler", logging.INFO, "Receive client connection"))
    assert not _quiet_dask(record("distributed.nanny", logging.WARNING, "Worker process still alive after 4.0 seconds, killing"))
    assert _quiet_dask(record("distributed.worker", logging.WARNING, "Unmanaged memory use is high"))
    assert _quiet_dask(record("jwst_ceers.survey", logging.INFO, "anything of ours"))
