"""What a survey needs from each worker process: imports done ahead, memory settings.

- :func:`prepare_workers`: run the task modules' ``prepare_worker()`` hooks (e.g. import
  jwst) on every worker of a cluster at start-up.
- :func:`use_large_array_malloc`: glibc settings for tasks that allocate many MB-sized
  arrays (dask workers start with settings that make every such array a fresh mmap).
- :func:`reset_peak_rss`, :func:`peak_rss_mb`, :func:`worker_name`: what a product cost.
- :func:`worker_memory_limit_gb`, :func:`worker_threads`: the resources of the dask worker
  running the current task (None outside a worker).
- :func:`send_event`: live progress from a task to the dask client (topic :data:`EVENT_TOPIC`).
"""

import contextlib
import logging
import os
import resource
import socket
import sys
import time
from importlib import import_module
from pathlib import Path

__all__ = [
    "EVENT_TOPIC",
    "import_task_function",
    "peak_rss_mb",
    "prepare_workers",
    "reset_peak_rss",
    "send_event",
    "use_large_array_malloc",
    "worker_memory_limit_gb",
    "worker_name",
    "worker_threads",
]

EVENT_TOPIC = "jwst-ceers-survey"

log = logging.getLogger(__name__)


def import_task_function(dotted):
    """The task function named ``"module:function"`` or ``"module.function"``."""
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    return getattr(import_module(module_name), attr)


def _prepare_worker(functions):
    """Import the task functions and run their modules' ``prepare_worker()`` hooks."""
    done = set()
    for dotted in functions:
        module = sys.modules.get(getattr(import_task_function(dotted), "__module__", None))
        hook = getattr(module, "prepare_worker", None)
        if callable(hook) and module.__name__ not in done:
            hook()
            done.add(module.__name__)
    return sorted(done)


def prepare_workers(client, tasks):
    """
    Make every worker of ``client`` ready to run ``tasks`` (imports, done in parallel).

    A task module may define ``prepare_worker()`` (``jwst_ceers.survey.tasks`` imports
    jwst and the steps there, ~4 s per process); otherwise each worker's first product
    would pay it. Errors are logged, not raised: a product whose function cannot be
    imported fails on its own and is reported with its reason.

    Returns
    -------
    float
        Seconds it took.
    """
    start = time.perf_counter()
    functions = sorted({task.function for task in tasks})
    try:
        client.run(_prepare_worker, functions)
    except Exception as exc:  # noqa: BLE001 - reported per product later
        log.warning("preparing the workers failed (%s); products will import on first use", exc)
    return time.perf_counter() - start


# glibc malloc settings for tasks that allocate many large (MB-sized) arrays.
_MMAP_THRESHOLD = 32 * 1024**2  # M_MMAP_THRESHOLD: arrays up to 32 MB come from the heap
_TRIM_THRESHOLD = 128 * 1024**2  # M_TRIM_THRESHOLD: keep up to 128 MB of freed heap


def use_large_array_malloc():
    """
    Let this process reuse freed memory for MB-sized arrays (glibc only; else no-op).

    dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also
    freezes glibc's adaptive mmap threshold at 128 kB: every array above that is a
    fresh mmap, page-faulted and zeroed by the kernel, and freed with munmap. Measured
    on one 1024^2 F150W Image3Ceers product (6 exposures): 2.96e6 page faults, 9.2 s of
    system time and 30.4 s wall, against 0.3e6, 2.8 s and 22.8 s in a plain process,
    and two such workers slowed each other down by a further 35% on 2 cores (kernel
    memory management is shared). Setting the thresholds back to glibc's own upper
    values (32 MB mmap, 128 MB trim) gives 0.19e6 faults, 2.7 s and 24.2 s. Called
    before every product, so any worker (local, SLURM, adaptive) gets it.

    Returns
    -------
    bool
        True if the settings were applied.
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, _MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, _TRIM_THRESHOLD))


def reset_peak_rss():
    """Reset this process's peak-RSS counter (Linux >= 4.0), so each task reports its own peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb():
    """Peak resident memory of this process since the last reset, in MiB."""
    # VmHWM starts afresh at exec (unlike ru_maxrss, which a spawned worker inherits
    # from its parent) and is reset by reset_peak_rss.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def worker_name():
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _current_worker():
    """The dask worker running the current task, or None (no distributed, or not in a task)."""
    try:
        from distributed import get_worker  # only on workers: keeps the serial path free of dask

        return get_worker()
    except (ImportError, ValueError):
        return None


def worker_threads():
    """
    Threads of the dask worker running the current task, or None outside a worker.

    A task uses this many threads at most, so that N workers x T threads never
    oversubscribe the cores the cluster was sized for.
    """
    worker = _current_worker()
    if worker is None:
        return None
    state = getattr(worker, "state", worker)
    threads = getattr(state, "nthreads", None)
    return int(threads) if threads else None


def worker_memory_limit_gb():
    """
    Memory limit of the dask worker running the current task, per thread, in GB (1e9 bytes).

    None outside a worker or when the worker has no limit.
    """
    worker = _current_worker()
    if worker is None:
        return None
    manager = getattr(worker, "memory_manager", None)
    limit = getattr(manager, "memory_limit", None) or getattr(worker, "memory_limit", None)
    if not limit:
        return None
    return float(limit) / 1e9 / (worker_threads() or 1)


def send_event(key, step):
    """Tell the dask client (if any) what product ``key`` is doing now (stpipe step name)."""
    worker = _current_worker()
    if worker is None:
        return
    with contextlib.suppress(Exception):  # progress only: never fail a product for it
        worker.log_event(EVENT_TOPIC, {"key": key, "step": step})
