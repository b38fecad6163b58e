"""Each product's messages in its own log file, without taking the process's logging over.

:func:`captured_log` sends, for the thread that makes a product (and threads it
starts while it is the only product running in the process):

- every log record (a handler ADDED to the root logger: the handlers others have
  installed stay where they are);
- what the task prints to ``sys.stdout`` / ``sys.stderr`` (a stream that routes by
  thread, installed while at least one product runs and removed after the last);

to ``<output_dir>/logs/<name>.log``. Records a product claims also still reach the
application's own handlers; an application that wants them only in the product logs
(``jwst-ceers survey`` does) adds :class:`NotFromAProduct` to its console handlers.
"""

import contextlib
import logging
import re
import sys
import threading

from jwst_ceers.survey.worker_process import send_event

__all__ = ["NotFromAProduct", "captured_log"]

_STEP_RUNNING = re.compile(r"^Step (?:%s|\S+) running")
_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"

_lock = threading.RLock()
_captures = {}  # thread ident -> _Capture of the product that thread makes
_saved_streams = None  # (stdout, stderr) replaced by the routing streams, while any capture is active
_saved_level = None  # the root logger's level, while any capture is active (raised to INFO)


class _Capture:
    def __init__(self, stream, key):
        self.stream = stream
        self.key = key


def _capture_of(thread_id):
    """The capture a record or write from ``thread_id`` belongs to, or None."""
    with _lock:
        capture = _captures.get(thread_id)
        if capture is None and len(_captures) == 1:  # a thread the only running product started
            capture = next(iter(_captures.values()))
        return capture


class NotFromAProduct(logging.Filter):
    """Logging filter for an application's console: drop the records a product log holds."""

    def filter(self, record):
        return _capture_of(record.thread) is None


class _ProductHandler(logging.StreamHandler):
    """Writes the records of one product's thread(s) to its log; stpipe steps reported as events."""

    def __init__(self, capture):
        super().__init__(capture.stream)
        self._capture = capture
        self.setFormatter(logging.Formatter(_FORMAT))

    def filter(self, record):
        if _capture_of(record.thread) is not self._capture:
            return False
        return not _written_by_own_handler(record, self._capture.stream)

    def emit(self, record):
        super().emit(record)
        if record.name.startswith("stpipe") and _STEP_RUNNING.match(str(record.msg)):
            step = record.args[0] if record.args else str(record.msg).split()[1]
            send_event(self._capture.key, str(step))


def _written_by_own_handler(record, stream):
    """True if a handler on the record's logger chain already writes it to the product's log."""
    logger = logging.getLogger(record.name)
    while logger is not None and logger is not logging.root:
        for handler in logger.handlers:
            target = getattr(handler, "stream", None)
            if target is stream or (isinstance(target, _RoutedStream) and target.target() is stream):
                return True
        if not logger.propagate:
            break
        logger = logger.parent
    return False


class _RoutedStream:
    """A stand-in for sys.stdout/sys.stderr: a product's thread writes to its log, others to the original."""

    def __init__(self, original):
        self._original = original

    def target(self):
        capture = _capture_of(threading.get_ident())
        return self._original if capture is None else capture.stream

    def write(self, text):
        return self.target().write(text)

    def flush(self):
        self.target().flush()

    def isatty(self):
        return False

    def __getattr__(self, name):  # encoding, fileno ... of the original stream
        return getattr(self._original, name)


def _take_over_process_outputs():
    global _saved_streams, _saved_level
    if _saved_level is None:
        # INFO records must reach the root's handlers; a root at WARNING (Python's
        # default) would drop them before any handler sees them
        root = logging.getLogger()
        _saved_level = root.level
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
    if _saved_streams is None:
        _saved_streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _RoutedStream(sys.stdout), _RoutedStream(sys.stderr)


def _give_back_process_outputs():
    global _saved_streams, _saved_level
    if _captures:
        return
    if _saved_level is not None:
        logging.getLogger().setLevel(_saved_level)
        _saved_level = None
    if _saved_streams is not None:
        # put the originals back only where nobody replaced our streams in the meantime
        if isinstance(sys.stdout, _RoutedStream):
            sys.stdout = _saved_streams[0]
        if isinstance(sys.stderr, _RoutedStream):
            sys.stderr = _saved_streams[1]
        _saved_streams = None


@contextlib.contextmanager
def captured_log(path, key):
    """
    Write the current thread's log records and printed output to ``path`` (truncated first).

    Parameters
    ----------
    path : Path
        The product's log file (its folder is created).
    key : str
        Product key, for the live progress events (stpipe's "Step X running").

    Yields
    ------
    file
        The open log file (line-buffered), for the engine's own lines.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    thread = threading.get_ident()
    root = logging.getLogger()
    with open(path, "w", buffering=1, encoding="utf-8") as stream:
        capture = _Capture(stream, key)
        handler = _ProductHandler(capture)
        with _lock:
            if thread in _captures:
                raise RuntimeError(f"{key}: this thread already makes a product")
            _captures[thread] = capture
            _take_over_process_outputs()
        root.addHandler(handler)
        try:
            yield stream
        finally:
            root.removeHandler(handler)
            with _lock:
                del _captures[thread]
                _give_back_process_outputs()
