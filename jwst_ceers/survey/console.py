"""What a survey run shows on the terminal: one line per product and one progress bar.

Each finished product prints one line (count, pointing, label, status, elapsed time,
and for a failure its reason and log file). On a terminal a tqdm bar below them
shows the products finished, the elapsed time and what is running now (with the
stpipe step a product is in). The products' full logs are in files; the first line
names where.
"""

import contextlib
import os
import threading
from pathlib import Path

from tqdm import tqdm

from jwst_ceers.survey.results import DONE, FAILED, SKIPPED

__all__ = ["Progress"]


class Progress:
    """
    Progress display of one run over ``tasks`` on ``stream``.

    Parameters
    ----------
    tasks : list of ProductTask
        The products, in dependency order.
    stream : file
        Where to print.
    live : bool
        Show the live progress bar (a terminal); otherwise only the finished lines.
    name_logs : bool
        Say first where the products' log files are (not for a dry run: it writes none).
    """

    def __init__(self, tasks, stream, *, live, name_logs=True):
        self._stream = stream
        self._total = len(tasks)
        self._count = 0
        self._running = {}  # key -> current step ("" before the first)
        self._width = len(str(self._total))
        log_dirs = sorted({str(Path(t.output_dir).absolute() / "logs") for t in tasks})
        if log_dirs and name_logs:
            where = log_dirs[0] if len(log_dirs) == 1 else os.path.commonpath(log_dirs) + "/*/logs"
            self._line(f"full logs: {where}/<product>.log")
        self._bar = tqdm(
            total=self._total,
            file=stream,
            disable=not live,
            unit="product",
            dynamic_ncols=True,
            leave=False,
            bar_format="{n_fmt}/{total_fmt} |{bar:20}| {elapsed} {postfix}",
        )

    def _line(self, text):
        print(text, file=self._stream, flush=True)

    def running(self, keys):
        """The products of ``keys`` have started."""
        for key in keys:
            self._running.setdefault(key, "")
        self._show_running()

    def step(self, key, step):
        """Product ``key`` is now in stpipe step ``step``."""
        self._running[key] = step or self._running.get(key, "")
        self._show_running()

    def _show_running(self):
        items = [f"{key}:{step}" if step else key for key, step in self._running.items()]
        self._bar.set_postfix_str(" ".join(items)[:120], refresh=True)

    def finished(self, result):
        """Print the line of a finished (or skipped, or failed) product."""
        self._count += 1
        self._running.pop(result.key, None)
        status = {SKIPPED: "up to date"}.get(result.status, result.status)
        detail = ""
        if result.status != SKIPPED and result.reason:
            detail = f"  {result.reason}"
        elif result.status == SKIPPED and result.reason != "up to date":
            detail = f"  {result.reason.removeprefix('up to date; ')}"
        if result.status == FAILED and result.log_file:
            detail += f"  (log: {result.log_file})"
        line = (
            f"[{self._count:>{self._width}}/{self._total}] "
            f"{result.pointing:<12} {result.label:<11} {status:<17} {result.elapsed_s:7.1f} s{detail}"
        )
        self._bar.write(line, file=self._stream)
        self._bar.update(1)
        self._show_running()
        if result.status not in (DONE, SKIPPED):
            self._stream.flush()

    def refresh(self):
        """Redraw the bar (elapsed time) while nothing finishes."""
        self._bar.refresh()

    @contextlib.contextmanager
    def ticking(self, seconds=1.0):
        """Redraw the bar every ``seconds`` from a thread of its own (serial runs: this thread is busy)."""
        if self._bar.disable:
            yield
            return
        stop = threading.Event()

        def tick():
            while not stop.wait(seconds):
                self._bar.refresh()

        ticker = threading.Thread(target=tick, name="survey-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()

    def close(self):
        """Remove the bar."""
        self._bar.close()
