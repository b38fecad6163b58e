"""The survey engine: a graph of products, each made by a task function, on dask.

The engine knows nothing about JWST. A :class:`ProductTask` names a function by
its dotted path (``"package.module:function"``), the input files, JSON
parameters, the folder it writes to and the products it depends on. The engine

1. decides whether the product is up to date (its manifest, see
   :mod:`jwst_ceers.survey.manifest`) and skips it if so;
2. otherwise calls the function in a private staging folder, with the
   ``jwst``/``stpipe``/``jwst_ceers`` logs (and stdout/stderr) captured in
   ``<output_dir>/logs/<name>.log``;
3. stamps provenance keywords on every FITS file it wrote, renames the files into
   ``output_dir`` (atomic per file) and writes the manifest LAST.

A task function has the signature::

    def make_product(*, inputs, upstream, output_dir, name, params): ...

``inputs`` maps each input role (e.g. ``"members"``, ``"abs_refcat"``) to a list
of absolute file names, ``upstream`` maps each dependency's key to the list of its
output files, ``output_dir`` is the (staging) folder to write
into, ``name`` the product name and ``params`` its parameters. Everything it
writes into ``output_dir`` becomes the product's outputs.

One failing product never stops the others; its dependants are reported as
``failed-dependency``. Work runs on a ``distributed.Client`` or, with
``client=None``, serially in this process (same code path, same results).
"""

import contextlib
import dataclasses
import logging
import os
import re
import resource
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path

from jwst_ceers.survey.manifest import (
    file_record,
    inputs_digest,
    manifest_path,
    params_digest,
    read_manifest,
    stale_reason,
    write_manifest,
)
from jwst_ceers.survey.provenance import loaded_package_sources, package_versions, stamp_fits_provenance
from jwst_ceers.survey.worker_process import import_task_function, use_large_array_malloc

__all__ = [
    "EVENT_TOPIC",
    "ProductResult",
    "ProductTask",
    "execute_product",
    "format_summary",
    "order_tasks",
    "run_products",
    "scheduling_priorities",
]

log = logging.getLogger(__name__)

EVENT_TOPIC = "jwst-ceers-survey"
DONE, SKIPPED, FAILED, FAILED_DEPENDENCY = "done", "skipped", "failed", "failed-dependency"
OUT_OF_DATE = "out-of-date"  # dry runs only
_OK = (DONE, SKIPPED)
_STEP_RUNNING = re.compile(r"^Step (?:%s|\S+) running")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclasses.dataclass(frozen=True)
class ProductTask:
    """
    One product of the survey graph.

    Attributes
    ----------
    key : str
        Unique key, e.g. ``"nircam1/F150W"``.
    pointing : str
        Pointing (or tile) the product belongs to.
    label : str
        Short label within the pointing (filter name, ``"mosaic_bkg"`` ...).
    name : str
        Product name: manifest ``<name>.manifest.json`` and log ``logs/<name>.log``.
    function : str
        Dotted name of the task function, ``"module:function"`` or ``"module.function"``.
    output_dir : str
        Folder the outputs (and manifest) go to.
    inputs : dict
        Input files by role: ``{"members": [...], "abs_refcat": [...]}``. Their
        content (not their folder) is hashed into the manifest, so the task
        receives paths without paths entering the parameter digest.
    params : dict
        JSON-serialisable parameters (digested into the manifest).
    depends : tuple of str
        Keys of the products whose outputs this one needs.
    cost : float
        Relative amount of work (e.g. bytes of input), used only to order work on
        a cluster: the products with the longest remaining chain of work start
        first. Not part of the manifest.
    """

    key: str
    pointing: str
    label: str
    name: str
    function: str
    output_dir: str
    inputs: dict = dataclasses.field(default_factory=dict)
    params: dict = dataclasses.field(default_factory=dict)
    depends: tuple = ()
    cost: float = 0.0


@dataclasses.dataclass
class ProductResult:
    """What happened to one product (returned by the workers, printed in the summary)."""

    key: str
    pointing: str
    label: str
    status: str
    elapsed_s: float = 0.0
    reason: str = ""
    outputs: list = dataclasses.field(default_factory=list)
    worker: str = ""
    peak_rss_mb: float = 0.0  # peak resident memory of the worker process during this task
    cpu_s: float = 0.0  # CPU time of the worker process during this task

    @property
    def ok(self):
        """True when the product is done or up to date."""
        return self.status in _OK


def _reset_peak_rss():
    """Reset this process's peak-RSS counter (Linux >= 4.0), so each task reports its own peak."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb():
    """Peak resident memory of this process since the last reset, in MiB."""
    # VmHWM starts afresh at exec (unlike ru_maxrss, which a spawned worker inherits
    # from its parent) and is reset by _reset_peak_rss.
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


class _NotHandledByStream(logging.Filter):
    """Drop records that a handler writing to ``stream`` already wrote (no duplicates)."""

    def __init__(self, stream):
        super().__init__()
        self._stream = stream

    def filter(self, record):
        logger = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is self._stream:
                    return False
            if not logger.propagate:
                break
            logger = logger.parent
        return True


def _send_event(key, step):
    """Tell the dask client (if any) what a product is doing now."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    with contextlib.suppress(Exception):
        worker.log_event(EVENT_TOPIC, {"key": key, "step": step})


class _StepEvents(logging.Handler):
    """Forward stpipe's "Step X running" messages to the dask client as live progress."""

    def __init__(self, key):
        super().__init__(logging.INFO)
        self._key = key

    def emit(self, record):
        if not _STEP_RUNNING.match(str(record.msg)):
            return
        step = record.args[0] if record.args else str(record.msg).split()[1]
        _send_event(self._key, str(step))


@contextlib.contextmanager
def _captured_log(path, key):
    """Send logging (root and below), warnings, stdout and stderr to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
        handler.addFilter(_NotHandledByStream(stream))
        events = _StepEvents(key)
        root = logging.getLogger()
        step_logger = logging.getLogger("stpipe")
        old_level = root.level
        # the product's messages go to its log only, not to the console of the run
        old_handlers = list(root.handlers)
        for other in old_handlers:
            root.removeHandler(other)
        root.addHandler(handler)
        step_logger.addHandler(events)
        if old_level > logging.INFO or old_level == logging.NOTSET:
            root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield stream
        finally:
            root.removeHandler(handler)
            for other in old_handlers:
                root.addHandler(other)
            step_logger.removeHandler(events)
            root.setLevel(old_level)


def _staging_dir(output_dir, name):
    staging_root = output_dir / ".staging"
    staging_root.mkdir(parents=True, exist_ok=True)
    for stale in staging_root.glob(f"{name}.*"):  # left by an interrupted attempt
        shutil.rmtree(stale, ignore_errors=True)
    staging = staging_root / f"{name}.{os.getpid()}.{time.time_ns()}"
    staging.mkdir()
    return staging


def _publish(staging, output_dir, *, task, params_sha, inputs_sha, versions):
    """Stamp FITS files, move them from ``staging`` into ``output_dir``; return final paths."""
    written = sorted(p for p in staging.rglob("*") if p.is_file())
    for path in written:
        if path.suffix.lower() == ".fits":
            stamp_fits_provenance(
                path, product=task.key, params_sha=params_sha, inputs_sha=inputs_sha, versions=versions
            )
    finals = []
    for path in written:
        final = output_dir / path.relative_to(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
        finals.append(final)
    return finals


def _failure_reason(exc):
    text = str(exc).strip().splitlines()
    message = text[-1] if text else ""
    if type(exc).__name__ == "KilledWorker":  # a worker process died (memory limit, crash)
        message = message.split(". ")[0] + " (see the workers' logs; memory limit?)"
    return f"{type(exc).__name__}: {message}"[:300]


def execute_product(task, *upstream, rehash=False, force=False, dry_run=False):
    """
    Make one product if it is out of date (runs on a dask worker or in-process).

    Parameters
    ----------
    task : ProductTask
        The product.
    *upstream : ProductResult
        Results of the products in ``task.depends`` (same order).
    rehash : bool
        Re-read every input to hash it (ignore the size+mtime shortcut).
    force : bool
        Remake the product even when it is up to date.
    dry_run : bool
        Only say whether the product is up to date (status ``out-of-date`` and
        the reason otherwise); write nothing.

    Returns
    -------
    ProductResult
        Never raises for a failure of the task itself: the reason is returned.
    """
    start = time.perf_counter()
    cpu_start = time.process_time()
    if not dry_run:
        use_large_array_malloc()
    _reset_peak_rss()
    _send_event(task.key, "")
    result = ProductResult(task.key, task.pointing, task.label, FAILED, worker=_worker_name())

    def finish(status, reason=""):
        result.status, result.reason = status, reason
        result.elapsed_s = time.perf_counter() - start
        result.cpu_s = time.process_time() - cpu_start
        result.peak_rss_mb = _peak_rss_mb()
        return result

    pending = [dep.key for dep in upstream if dep.status == OUT_OF_DATE]
    if dry_run and pending:
        return finish(OUT_OF_DATE, "after " + ", ".join(pending))
    failed_deps = [dep.key for dep in upstream if not dep.ok]
    if failed_deps:
        return finish(FAILED_DEPENDENCY, "needs " + ", ".join(failed_deps))

    output_dir = Path(task.output_dir).absolute()
    manifest_file = manifest_path(output_dir, task.name)
    old = read_manifest(manifest_file)
    known = {r["path"]: r for r in (old or {}).get("inputs", [])}
    versions = package_versions()
    try:
        params_sha = params_digest(task.params)
        records = [
            {**file_record(p, known=known, rehash=rehash), "role": role}
            for role, paths in sorted(task.inputs.items())
            for p in paths
        ]
    except (OSError, ValueError, TypeError) as exc:
        return finish(FAILED, _failure_reason(exc))
    for dep in upstream:
        records.extend({**r, "role": f"upstream:{dep.key}"} for r in dep.outputs)
    inputs_sha = inputs_digest(records)

    reason = stale_reason(
        old, task=task.function, inputs=records, params_sha=params_sha, versions=versions, base_dir=output_dir
    )
    if reason is None and not force:
        result.outputs = [
            {**record, "path": str(output_dir / record["path"])} for record in old["outputs"]
        ]
        return finish(SKIPPED, "up to date")
    result.reason = reason or "forced"
    if dry_run:
        return finish(OUT_OF_DATE, result.reason)

    output_dir.mkdir(parents=True, exist_ok=True)
    loaded_package_sources()  # hash the package code already imported in this process, as it is now
    staging = _staging_dir(output_dir, task.name)
    log_file = output_dir / "logs" / f"{task.name}.log"
    try:
        with _captured_log(log_file, task.key) as stream:
            print(f"jwst_ceers survey: making {task.key} ({result.reason}) with {task.function}", file=stream)
            try:
                function = import_task_function(task.function)
                function(
                    inputs={role: [str(Path(p).absolute()) for p in paths] for role, paths in task.inputs.items()},
                    upstream={dep.key: [r["path"] for r in dep.outputs] for dep in upstream},
                    output_dir=str(staging),
                    name=task.name,
                    params=task.params,
                )
            except (Exception, SystemExit) as exc:  # noqa: BLE001 - isolate any task failure
                traceback.print_exc(file=stream)
                return finish(FAILED, _failure_reason(exc))
            if not any(p.is_file() for p in staging.rglob("*")):
                return finish(FAILED, "task wrote no output file")
            with contextlib.suppress(FileNotFoundError):
                manifest_file.unlink()  # the old manifest must never describe new files
            try:
                finals = _publish(
                    staging, output_dir, task=task, params_sha=params_sha, inputs_sha=inputs_sha, versions=versions
                )
            except (OSError, ValueError) as exc:  # e.g. a *.fits output that is not FITS
                traceback.print_exc(file=stream)
                return finish(FAILED, _failure_reason(exc))
            outputs = [file_record(p) for p in finals]
            final_set = {str(p) for p in finals}
            for stale in (old or {}).get("outputs", []):  # outputs the new run no longer makes
                stale_path = (output_dir / stale["path"]).absolute()
                if str(stale_path) not in final_set and output_dir in stale_path.parents:
                    stale_path.unlink(missing_ok=True)
            elapsed = time.perf_counter() - start
            write_manifest(
                manifest_file,
                product=task.key,
                task=task.function,
                inputs=records,
                params=task.params,
                versions=versions,
                outputs=outputs,
                elapsed_s=elapsed,
                extra={
                    "code": loaded_package_sources(),
                    "worker": result.worker,
                    "peak_rss_mb": round(_peak_rss_mb(), 1),
                    "cpu_s": round(time.process_time() - cpu_start, 2),
                },
            )
            print(f"jwst_ceers survey: {task.key} done in {elapsed:.1f} s", file=stream)
    except (OSError, ValueError) as exc:
        return finish(FAILED, _failure_reason(exc))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.outputs = outputs
    return finish(DONE, result.reason)  # why it was (re)made


def order_tasks(tasks):
    """
    Check a product graph and return its tasks in dependency order.

    Raises
    ------
    ValueError
        On duplicate keys or names in one folder, bad names, unknown
        dependencies or cycles.
    """
    by_key = {}
    names = set()
    for task in tasks:
        if task.key in by_key:
            raise ValueError(f"duplicate product key {task.key!r}")
        if not _NAME_OK.match(task.name):
            raise ValueError(f"product name {task.name!r} is not a plain file name")
        folder_name = (str(Path(task.output_dir).absolute()), task.name)
        if folder_name in names:
            raise ValueError(f"two products named {task.name!r} in {task.output_dir}")
        names.add(folder_name)
        by_key[task.key] = task
    ordered, state = [], {}

    def visit(key, chain):
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise ValueError("dependency cycle: " + " -> ".join([*chain, key]))
        state[key] = "visiting"
        for dep in by_key[key].depends:
            if dep not in by_key:
                raise ValueError(f"product {key!r} depends on unknown product {dep!r}")
            visit(dep, [*chain, key])
        state[key] = "done"
        ordered.append(by_key[key])

    for task in tasks:
        visit(task.key, [])
    return ordered


class _Progress:
    """Per-pointing progress: one line per finished product and a live status line."""

    def __init__(self, tasks, stream, live):
        self._tasks = tasks
        self._stream = stream
        self._live = live
        self._state = {t.key: "wait" for t in tasks}
        self._step = {}
        self._count = 0
        self._start = time.perf_counter()
        self._last_live = ""

    def running(self, keys):
        for key in keys:
            if self._state.get(key) == "wait":
                self._state[key] = "run"

    def step(self, key, step):
        if self._state.get(key) == "wait":
            self._state[key] = "run"
        if step:
            self._step[key] = step

    def finished(self, result):
        self._count += 1
        self._state[result.key] = result.status
        status = {SKIPPED: "up to date"}.get(result.status, result.status)
        detail = f"  {result.reason}" if result.status != SKIPPED and result.reason else ""
        self._clear()
        print(
            f"[{self._count:>{len(str(len(self._tasks)))}}/{len(self._tasks)}] "
            f"{result.pointing:<12} {result.label:<11} {status:<17} {result.elapsed_s:7.1f} s{detail}",
            file=self._stream,
            flush=True,
        )

    def _clear(self):
        if self._live and self._last_live:
            print("\r" + " " * len(self._last_live) + "\r", end="", file=self._stream)
            self._last_live = ""

    def refresh(self):
        if not self._live:
            return
        marks = {"wait": ".", "run": "~", DONE: "+", SKIPPED: "=", FAILED: "x", FAILED_DEPENDENCY: "x", OUT_OF_DATE: "!"}
        parts, pointing_parts = [], {}
        for task in self._tasks:
            state = self._state[task.key]
            label = task.label
            if state == "run" and task.key in self._step:
                label = f"{label}:{self._step[task.key]}"
            pointing_parts.setdefault(task.pointing, []).append(f"{marks.get(state, '?')}{label}")
        for pointing, items in pointing_parts.items():
            parts.append(f"{pointing}[{' '.join(items)}]")
        elapsed = time.perf_counter() - self._start
        line = f"{int(elapsed // 60):02d}:{int(elapsed % 60):02d} " + " ".join(parts)
        width = shutil.get_terminal_size((160, 20)).columns - 1
        line = line[:width]
        print("\r" + line + " " * max(0, len(self._last_live) - len(line)), end="", file=self._stream, flush=True)
        self._last_live = line

    def close(self):
        self._clear()


def run_products(tasks, *, client=None, rehash=False, force=False, dry_run=False, stream=None, live=None):
    """
    Make every product of the graph, skipping those that are up to date.

    Parameters
    ----------
    tasks : list of ProductTask
        The product graph.
    client : distributed.Client, optional
        Where to run; None runs the tasks one after the other in this process.
    rehash : bool
        Re-read all inputs to hash them.
    force : bool
        Remake every product.
    dry_run : bool
        Only report which products are out of date and why (runs serially).
    stream : file, optional
        Where progress lines go (default ``sys.stdout``); None output with ``stream=False``.
    live : bool, optional
        Show a refreshed status line (default: when ``stream`` is a terminal).

    Returns
    -------
    list of ProductResult
        In dependency order.
    """
    ordered = order_tasks(tasks)
    stream = sys.stdout if stream is None else (open(os.devnull, "w") if stream is False else stream)
    if live is None:
        live = hasattr(stream, "isatty") and stream.isatty()
    progress = _Progress(ordered, stream, live)
    results = {}
    try:
        if client is None or dry_run:
            for task in ordered:
                progress.running([task.key])
                progress.refresh()
                deps = [results[d] for d in task.depends]
                results[task.key] = execute_product(task, *deps, rehash=rehash, force=force, dry_run=dry_run)
                progress.finished(results[task.key])
        else:
            _run_on_client(client, ordered, results, progress, rehash=rehash, force=force)
    finally:
        progress.close()
    return [results[t.key] for t in ordered]


def scheduling_priorities(ordered):
    """
    Dask priorities of a product graph: longest remaining chain of work first.

    A product's rank is its ``cost`` plus the largest rank among the products
    that depend on it (the "upward rank" of list scheduling). On few workers this
    starts the big products of every pointing before the small ones, instead of
    leaving one big product to run alone at the end.

    Parameters
    ----------
    ordered : list of ProductTask
        The graph in dependency order (:func:`order_tasks`).

    Returns
    -------
    dict
        Product key -> integer priority (higher runs first; 0 for the lowest rank).
    """
    dependants = {task.key: [] for task in ordered}
    for task in ordered:
        for dep in task.depends:
            dependants[dep].append(task.key)
    rank = {}
    for task in reversed(ordered):  # dependants come later in dependency order
        rank[task.key] = max(0.0, float(task.cost)) + max((rank[k] for k in dependants[task.key]), default=0.0)
    levels = sorted(set(rank.values()))
    return {key: levels.index(value) for key, value in rank.items()}


def _run_on_client(client, ordered, results, progress, *, rehash, force):
    from distributed import as_completed

    futures, key_of = {}, {}
    run_id = time.time_ns()
    priorities = scheduling_priorities(ordered)
    # Submit in priority order too: the scheduler hands out the first submissions before
    # it knows the rest (a task group becomes "root-ish" and queued only once it is
    # large), so submitting in dependency order ran small products first. A product's
    # priority is never below its dependants', so this order still has every
    # dependency before the products that need it.
    for task in sorted(ordered, key=lambda t: -priorities[t.key]):
        future = client.submit(
            execute_product,
            task,
            *[futures[d] for d in task.depends],
            rehash=rehash,
            force=force,
            key=f"ceers-survey-{task.name}-{run_id}",
            pure=False,
            priority=priorities[task.key],
        )
        futures[task.key] = future
        key_of[future.key] = task.key
    by_key = {t.key: t for t in ordered}

    def on_event(event):
        _, message = event
        if isinstance(message, dict) and message.get("key") in by_key:
            progress.step(message["key"], message.get("step", ""))

    subscribed = False
    with contextlib.suppress(Exception):
        client.subscribe_topic(EVENT_TOPIC, on_event)
        subscribed = True
    try:
        pending = as_completed(list(futures.values()))
        while not pending.is_empty():
            if pending.has_ready():
                finished = pending.next_batch(block=False)
            else:
                progress.refresh()
                time.sleep(0.5)
                continue
            for future in finished:
                task = by_key[key_of[future.key]]
                try:
                    # blocks only if the result was lost with a worker and is being recomputed
                    # (a recomputation finds the product up to date and skips it)
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - the task never raises: a worker died
                    bad_deps = [d for d in task.depends if d in results and not results[d].ok]
                    if bad_deps:
                        result = ProductResult(
                            task.key, task.pointing, task.label, FAILED_DEPENDENCY, reason="needs " + ", ".join(bad_deps)
                        )
                    else:
                        result = ProductResult(task.key, task.pointing, task.label, FAILED, reason=_failure_reason(exc))
                results[task.key] = result
                progress.finished(result)
    finally:
        if subscribed:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(EVENT_TOPIC)


def format_summary(results):
    """
    Return the final summary table of a survey run (text).

    One row per product (status, time, worker peak memory, reason of failures),
    a count line and the peak memory of each worker.
    """
    header = ("product", "status", "time [s]", "peak MB", "reason (failed) / why remade (done)")
    rows = []
    for r in results:
        reason = "" if r.status == SKIPPED else r.reason
        peak = f"{r.peak_rss_mb:.0f}" if r.status == DONE else ""
        rows.append((r.key, r.status, f"{r.elapsed_s:.1f}", peak, reason))
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header[:4], widths, strict=True)) + "  " + header[4]]
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(
        f"{len(results)} products: "
        + ", ".join(
            f"{counts.get(s, 0)} {s}" for s in (DONE, SKIPPED, FAILED, FAILED_DEPENDENCY, OUT_OF_DATE) if s != OUT_OF_DATE or s in counts
        )
    )
    peaks = {}
    for r in results:
        if r.status == DONE and r.worker:
            peaks[r.worker] = max(peaks.get(r.worker, 0.0), r.peak_rss_mb)
    if peaks:
        lines.append(
            "peak memory per worker: " + ", ".join(f"{w} {mb:.0f} MB" for w, mb in sorted(peaks.items()))
        )
    return "\n".join(lines)
