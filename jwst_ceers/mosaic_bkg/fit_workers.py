"""Sersic fits of large galaxies on worker processes.

The least-squares fits of :mod:`.galaxy_models` are pure Python and scipy calls that
hold the GIL (scipy's SVD among them): on threads, two fits ran at 1.1x the speed of
one. :class:`FitWorkers` runs them on Python subprocesses (:func:`serve`) instead: plain pipes, no multiprocessing, so nothing of the caller's
``__main__`` is re-run, and it works inside daemonic processes (dask workers) too.
Each worker runs :func:`~jwst_ceers.mosaic_bkg.galaxy_models.fit_sersic_galaxy` with a
single-threaded BLAS, as the fits in the calling process do, so its results are bit
for bit those of the same fit made in place; its log records are sent back with them.

If a worker cannot start or dies, its tasks fail with :class:`FitWorkersError` and the
caller fits them itself.
"""

import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

__all__ = ["FitWorkers", "FitWorkersError", "serve"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")

#: Environment of the workers: one BLAS/OpenMP thread each (set before numpy loads).
_SINGLE_THREADED = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


class FitWorkersError(RuntimeError):
    """A worker process failed (could not start, died, or sent nothing back)."""


def _write_message(stream, obj):
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_message(stream):
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None  # end of stream
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return pickle.loads(payload)  # noqa: S301 (our own worker's messages)


class FitWorkers:
    """
    A fixed number of fit worker processes, used as a context manager.

    Parameters
    ----------
    count : int
        Worker processes (0: none; :meth:`submit` then raises). They start with the
        first :meth:`submit` or :meth:`start` (~0.4 s; none for a mosaic without large
        galaxies).

    Notes
    -----
    :meth:`submit` returns a `concurrent.futures.Future` whose result is
    ``(components, records)``: the fit's list of
    `~jwst_ceers.mosaic_bkg.sersic.SersicComponent` and the log records (logger name,
    level, message) the fit emitted, for the caller to log when it uses the result.
    """

    def __init__(self, count):
        self._tasks = queue.Queue()
        self._processes = []
        self._threads = []
        self._lock = threading.Lock()
        self._started = False
        self.count = max(0, int(count))

    def start(self):
        """Start the worker processes (once; :meth:`submit` does it when needed)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            env = dict(os.environ, **_SINGLE_THREADED)
            # the workers import this very package, wherever it was imported from
            package_root = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
            for _ in range(self.count):
                try:
                    process = subprocess.Popen(
                        [sys.executable, "-c", "from jwst_ceers.mosaic_bkg.fit_workers import serve; serve()"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                    )
                except OSError as exc:
                    log.warning("galaxy fits: could not start a worker process (%s); fitting in this process", exc)
                    break
                self._processes.append(process)
                thread = threading.Thread(target=self._feed, args=(process,), daemon=True, name="ceers-fit-feeder")
                thread.start()
                self._threads.append(thread)
            self.count = len(self._processes)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def submit(self, blocks, usable, options):
        """Fit ``fit_sersic_galaxy(blocks, usable, **options)`` on a worker; returns a Future."""
        self.start()
        if not self._processes:
            raise FitWorkersError("no fit worker processes")
        future = Future()
        self._tasks.put((future, (blocks, usable, options)))
        return future

    def close(self):
        """Stop the workers once the tasks submitted so far are done (a dead worker's fail)."""
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes, self._threads = [], []

    def _feed(self, process):
        """Send tasks to one worker and set their results, until told to stop (None) or the worker dies."""
        broken = None
        while True:
            item = self._tasks.get()
            if item is None:
                break
            future, task = item
            if broken is not None or not future.set_running_or_notify_cancel():
                if broken is not None:
                    future.set_exception(broken)
                continue
            try:
                _write_message(process.stdin, task)
                reply = _read_message(process.stdout)
            except (OSError, ValueError) as exc:
                reply, error = None, exc
            else:
                error = None
            if reply is None:
                broken = FitWorkersError(f"fit worker process {process.pid} failed"
                                         f"{f' ({error})' if error else ''} (exit code {process.poll()})")
                future.set_exception(broken)
                continue
            status, value = reply
            if status == "ok":
                future.set_result(value)
            else:
                future.set_exception(FitWorkersError(f"fit worker process {process.pid}: {value}"))
        try:
            process.stdin.close()
        except OSError:
            pass


class _RecordCollector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.name, record.levelno, record.getMessage()))


def serve():
    """Worker loop: read (blocks, usable, options) tasks on stdin, write results on stdout."""
    # an interrupt reaches the whole process group: the caller stops the workers (by
    # closing their input) once it has handled it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the protocol owns the original stdout; anything printed goes to stderr
    channel_in = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    channel_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from jwst_ceers.mosaic_bkg.galaxy_models import fit_sersic_galaxy, single_threaded_blas

    collector = _RecordCollector()
    package_log = logging.getLogger("jwst_ceers")
    package_log.addHandler(collector)
    package_log.setLevel(logging.DEBUG)
    package_log.propagate = False
    while True:
        task = _read_message(channel_in)
        if task is None:
            return
        blocks, usable, options = task
        collector.records = []
        try:
            with single_threaded_blas():
                reply = ("ok", (fit_sersic_galaxy(blocks, usable, **options), collector.records))
        except Exception as exc:  # noqa: BLE001 (sent back to the caller, which fits itself)
            reply = ("error", f"{type(exc).__name__}: {exc}")
        _write_message(channel_out, reply)

