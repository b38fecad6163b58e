"""What ``jwst-ceers demo`` prints: one line per stage, every log record in one file.

stpipe's ``Step.call`` adds its own stderr handler to the ``stpipe``, ``jwst``, ... and
``jwst_ceers`` loggers; with the root handler of ``logging.basicConfig`` every record was
printed twice, and thousands of INFO lines buried the report. Inside
:func:`demo_logging` the root logger has exactly two handlers: the log file (every
record, stpipe's format) and the terminal (errors, and jwst_ceers's warnings, written
above the progress bars). Steps must then be called with ``configure_log=False``
(:func:`call_step`), so that stpipe adds no handler of its own.
"""

import logging
import math
import os
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

__all__ = ["LOG_FORMAT", "DemoLog", "Stage", "call_step", "demo_logging"]

# stpipe's own format (stpipe._log.DEFAULT_FORMAT), so demo.log reads like a strun log
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
# the package whose warnings the terminal shows (every package's errors are shown)
SHOWN_PACKAGE = "jwst_ceers"
# one terminal line per stage: label, bar, count, elapsed time, what runs now
BAR_FORMAT = "{desc:<34.34} {percentage:3.0f}%|{bar:16}| {n_fmt}/{total_fmt} [{elapsed}]{postfix}"


class _TerminalHandler(logging.Handler):
    """
    Errors, and warnings of ``jwst_ceers``, above the progress bars on the current ``sys.stderr``.

    Other packages' warnings (tweakwcs' "not enough matches" for every sub-group, jwst's
    association notes, ...) go to the log file only; ``hidden`` counts them per package.
    """

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.hidden = Counter()

    def emit(self, record):
        package = record.name if record.name == "py.warnings" else record.name.split(".")[0]
        if record.levelno < logging.ERROR and package != SHOWN_PACKAGE:
            self.hidden[package] += 1
            return
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: never raise from emit
            self.handleError(record)


@dataclass
class DemoLog:
    """Where :func:`demo_logging` wrote, and the warnings it kept off the terminal."""

    path: Path
    hidden_warnings: Counter = field(default_factory=Counter)

    def summary(self):
        """One line naming the log file and what it holds that the terminal did not show."""
        line = f"full log: {self.path}"
        if self.hidden_warnings:
            packages = ", ".join(f"{n} {name}" for name, n in self.hidden_warnings.most_common())
            line += f" (also {sum(self.hidden_warnings.values())} warnings not shown here: {packages})"
        return line


@contextmanager
def demo_logging(log_file, *, verbose=False):
    """
    Send every log record once to ``log_file``; errors and jwst_ceers warnings once to the terminal.

    The root logger's handlers and level are replaced for the duration and restored
    afterwards; Python warnings are logged (as stpipe does) while inside.

    Parameters
    ----------
    log_file : str or Path
        The full log (overwritten).
    verbose : bool, optional
        Also write DEBUG records to the file.

    Yields
    ------
    DemoLog
        The log file and, once the block ends, the count of warnings kept off the terminal.
    """
    log_file = Path(log_file)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    to_file = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    to_terminal = _TerminalHandler()
    to_terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers = [to_file, to_terminal]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
    demo_log = DemoLog(path=log_file, hidden_warnings=to_terminal.hidden)
    try:
        yield demo_log
    finally:
        logging.captureWarnings(False)
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        to_file.close()


def call_step(step_class, *args, **kwargs):
    """``step_class.call`` without stpipe's own log handlers (:func:`demo_logging` owns them)."""
    return step_class.call(*args, configure_log=False, **kwargs)


def _is_sized_terminal(file):
    """True for a terminal with rows (tqdm draws nothing on a 0x0 pseudo-terminal)."""
    try:
        return file.isatty() and os.get_terminal_size(file.fileno()).lines > 0
    except (AttributeError, OSError, ValueError):
        return False


class _RecordCounter(logging.Handler):
    """Advance a :class:`Stage` on the log records ``count`` recognises."""

    def __init__(self, stage, count):
        super().__init__(level=logging.DEBUG)
        self.stage, self.count = stage, count

    def emit(self, record):
        label = self.count(record)
        if label is not None:
            self.stage.advance(label)


class Stage:
    """
    One terminal line for one stage of the demo: label, progress bar, elapsed time.

    Use as a context manager. ``count(record)`` is called with every log record while
    the stage runs; when it returns a string (what now runs), the bar advances by one
    and shows that string. On a terminal the bar redraws in place; elsewhere (a file,
    a pipe) only the final line is written.

    Parameters
    ----------
    label : str
        What the stage does.
    total : int
        Number of units (steps, exposures, ...).
    count : callable or None, optional
        ``count(logging.LogRecord) -> str or None``.
    counts : {"finished", "started"}, optional
        Whether ``count`` recognises the end of a unit (the bar advances at once) or its
        start (the bar advances when the next unit starts, or at the end).
    file : file-like or None, optional
        Where the line goes (default: the current ``sys.stderr``).

    Attributes
    ----------
    note : str
        Shown after the bar once the stage is done (e.g. what it made).
    elapsed : float
        Seconds the stage took (after it ends).
    """

    def __init__(self, label, total, *, count=None, counts="finished", file=None):
        if counts not in ("finished", "started"):
            raise ValueError(f"counts must be 'finished' or 'started', not {counts!r}")
        self.label, self.total, self.count, self.counts = label, max(int(total), 1), count, counts
        self.file = sys.stderr if file is None else file
        self.note = ""
        self.elapsed = math.nan
        self._started = 0
        self._bar = None
        self._handler = None
        self._interactive = False

    def __enter__(self):
        self._interactive = _is_sized_terminal(self.file)
        self._start = time.perf_counter()
        # elsewhere than on a terminal the bar stays silent and __exit__ writes one line
        self._bar = tqdm(
            total=self.total, desc=self.label, file=self.file, bar_format=BAR_FORMAT, leave=True,
            dynamic_ncols=True, mininterval=0.5, disable=not self._interactive,
        )
        if self.count is not None:
            self._handler = _RecordCounter(self, self.count)
            logging.getLogger().addHandler(self._handler)
        return self

    @property
    def n_done(self):
        """Units finished so far."""
        return self._bar.n

    def advance(self, now=""):
        """One more unit finished (or started, see ``counts``); ``now`` says what it is."""
        self._started += 1
        done = self._started - 1 if self.counts == "started" else self._started
        self._bar.n = min(done, self.total)
        self._bar.set_postfix_str(now, refresh=False)
        self._bar.refresh()  # a no-op when the bar is disabled

    def __exit__(self, exc_type, exc, tb):
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
        self.elapsed = time.perf_counter() - self._start
        if exc_type is None:
            self._bar.n = self.total
        note = self.note if exc_type is None else "FAILED"
        self._bar.set_postfix_str(note, refresh=False)
        self._bar.close()
        if not self._interactive:
            line = self._bar.format_meter(
                self._bar.n, self.total, self.elapsed, prefix=self.label, bar_format=BAR_FORMAT,
                postfix=note,
            )
            print(line, file=self.file, flush=True)
        return False
