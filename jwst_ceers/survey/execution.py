"""Make one product: decide whether it is out of date, run its task, publish its files.

:func:`execute_product` runs on a dask worker or in-process. It

1. **decides** (:func:`decide`) from the product's manifest
   (:mod:`jwst_ceers.survey.manifest`) and its dependencies' results whether the
   product must be made, and skips it if not;
2. **runs** (:func:`run_task`) the task function in a private staging folder
   (:mod:`jwst_ceers.survey.staging`), with its logs and printed output in
   ``<output_dir>/logs/<name>.log`` (:mod:`jwst_ceers.survey.log_capture`);
3. **publishes** (:func:`publish_product`): stamps provenance keywords on every FITS
   file, renames the files into ``output_dir`` (atomic per file) and writes the
   manifest LAST.

A task function has the signature::

    def make_product(*, inputs, upstream, output_dir, name, params): ...

``inputs`` maps each input role (e.g. ``"members"``, ``"abs_refcat"``) to a list
of absolute file names, ``upstream`` maps each dependency's key to the list of its
output files, ``output_dir`` is the (staging) folder to write into, ``name`` the
product name and ``params`` its parameters. Everything it writes into
``output_dir`` becomes the product's outputs. A function that also accepts
``run_options`` receives :attr:`ProductTask.run_options` (e.g. a memory budget).
A task that raises :class:`jwst_ceers.errors.CeersDataError` says its data cannot
make a product (e.g. an empty mosaic): dependants with ``partial_upstream`` are
then made without it.
"""

import contextlib
import dataclasses
import inspect
import shutil
import time
import traceback
from pathlib import Path

from jwst_ceers.atomic_io import check_outputs_not_inputs
from jwst_ceers.errors import CeersDataError
from jwst_ceers.survey.log_capture import captured_log
from jwst_ceers.survey.manifest import (
    file_record,
    inputs_digest,
    manifest_path,
    params_digest,
    read_manifest,
    stale_reason,
    write_manifest,
)
from jwst_ceers.survey.provenance import loaded_package_sources, package_versions
from jwst_ceers.survey.results import (
    DONE,
    FAILED,
    FAILED_DEPENDENCY,
    OUT_OF_DATE,
    SKIPPED,
    ProductResult,
    failure_reason,
)
from jwst_ceers.survey.staging import new_staging_dir, publish, staged_files
from jwst_ceers.survey.worker_process import (
    import_task_function,
    peak_rss_mb,
    reset_peak_rss,
    send_event,
    use_large_array_malloc,
    worker_name,
)

__all__ = ["Decision", "decide", "execute_product", "log_path", "publish_product", "run_task"]


def log_path(task):
    """The log file of a product: ``<output_dir>/logs/<name>.log``."""
    return Path(task.output_dir).absolute() / "logs" / f"{task.name}.log"


@dataclasses.dataclass
class Decision:
    """What :func:`decide` found: make the product (``status`` None) or report ``status``."""

    status: str | None
    reason: str
    records: list = dataclasses.field(default_factory=list)  # input file records, upstream outputs included
    params_sha: str = ""
    inputs_sha: str = ""
    versions: dict = dataclasses.field(default_factory=dict)
    old_manifest: dict | None = None
    upstream: list = dataclasses.field(default_factory=list)  # results of the dependencies used
    left_out: str = ""  # dependencies left out (partial_upstream), with their reasons


def _left_out_note(task, upstream):
    """Split the dependencies into (usable, blocking, note on the ones left out)."""
    usable, blocking, skipped = [], [], []
    for dep in upstream:
        if dep.ok:
            usable.append(dep)
        elif task.partial_upstream and dep.status == FAILED and dep.data_error:
            skipped.append(dep)
        else:
            blocking.append(dep)
    note = ", ".join(f"{dep.key} ({dep.reason})" for dep in skipped)
    return usable, blocking, note


def decide(task, upstream, *, rehash=False, force=False, dry_run=False):
    """
    Decide whether ``task`` must be made, from its manifest and its dependencies' results.

    Returns
    -------
    Decision
        ``status`` is None when the product must be made; otherwise SKIPPED (up to
        date, with ``outputs`` in ``old_manifest``), OUT_OF_DATE (dry run),
        FAILED_DEPENDENCY or FAILED (an input cannot be read).
    """
    pending = [dep.key for dep in upstream if dep.status == OUT_OF_DATE]
    if dry_run and pending:
        return Decision(OUT_OF_DATE, "after " + ", ".join(pending))
    usable, blocking, left_out = _left_out_note(task, upstream)
    if blocking or (upstream and not usable):
        needs = blocking or [dep for dep in upstream if not dep.ok]
        return Decision(FAILED_DEPENDENCY, "needs " + ", ".join(dep.key for dep in needs))

    output_dir = Path(task.output_dir).absolute()
    old = read_manifest(manifest_path(output_dir, task.name))
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
        return Decision(FAILED, failure_reason(exc))
    for dep in usable:
        records.extend({**r, "role": f"upstream:{dep.key}"} for r in dep.outputs)
    decision = Decision(
        None, "", records, params_sha, inputs_digest(records), versions, old, usable, left_out
    )
    reason = stale_reason(
        old, task=task.function, inputs=records, params_sha=params_sha, versions=versions, base_dir=output_dir
    )
    if reason is None and not force:
        decision.status, decision.reason = SKIPPED, "up to date"
    else:
        decision.reason = reason or "forced"
        if dry_run:
            decision.status = OUT_OF_DATE
    if left_out:
        decision.reason += f"; without {left_out}"
    return decision


def _accepts_run_options(function):
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "run_options" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def run_task(task, decision, staging, stream):
    """
    Call the task function of ``task`` into ``staging``; return None or the failure.

    Returns
    -------
    None or tuple
        ``(reason, data_error)`` when the task failed (its traceback is in ``stream``).
    """
    print(f"jwst_ceers survey: making {task.key} ({decision.reason}) with {task.function}", file=stream)
    if decision.left_out:
        print(f"jwst_ceers survey: WARNING: {task.key} is made without {decision.left_out}", file=stream)
    kwargs = {
        "inputs": {role: [str(Path(p).absolute()) for p in paths] for role, paths in task.inputs.items()},
        "upstream": {dep.key: [r["path"] for r in dep.outputs] for dep in decision.upstream},
        "output_dir": str(staging),
        "name": task.name,
        "params": task.params,
    }
    try:
        function = import_task_function(task.function)
        if task.run_options and _accepts_run_options(function):
            kwargs["run_options"] = dict(task.run_options)
        function(**kwargs)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - isolate any task failure
        traceback.print_exc(file=stream)
        return failure_reason(exc), isinstance(exc, CeersDataError)
    if not staged_files(staging):
        return "task wrote no output file", False
    return None


def publish_product(task, decision, staging, *, extra):
    """
    Move the staged files into place and write the manifest last; return the output records.

    Nothing is written or deleted when a file to publish, or an old output to delete,
    is one of the product's inputs (CeersFileError). The old manifest is removed first
    (it must never describe new files) and outputs of the old manifest that the new
    run no longer makes are deleted.
    """
    output_dir = Path(task.output_dir).absolute()
    manifest_file = manifest_path(output_dir, task.name)
    stale = [output_dir / r["path"] for r in (decision.old_manifest or {}).get("outputs", [])]
    planned = [output_dir / p.relative_to(staging) for p in staged_files(staging)]
    check_outputs_not_inputs([*planned, *stale], [r["path"] for r in decision.records], what=f"{task.key}: output")
    with contextlib.suppress(FileNotFoundError):
        manifest_file.unlink()
    finals = publish(
        staging,
        output_dir,
        product=task.key,
        params_sha=decision.params_sha,
        inputs_sha=decision.inputs_sha,
        versions=decision.versions,
    )
    outputs = [file_record(p) for p in finals]
    final_set = {str(p) for p in finals}
    for stale in (decision.old_manifest or {}).get("outputs", []):  # outputs the new run no longer makes
        stale_path = (output_dir / stale["path"]).absolute()
        if str(stale_path) not in final_set and output_dir in stale_path.parents:
            stale_path.unlink(missing_ok=True)
    write_manifest(
        manifest_file,
        product=task.key,
        task=task.function,
        inputs=decision.records,
        params=task.params,
        versions=decision.versions,
        outputs=outputs,
        elapsed_s=extra.pop("elapsed_s"),
        extra=extra,
    )
    return outputs


class _Meter:
    """Wall time, CPU time and peak memory of one product in this process."""

    def __init__(self):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        reset_peak_rss()

    def fill(self, result):
        result.elapsed_s = time.perf_counter() - self.start
        result.cpu_s = time.process_time() - self.cpu_start
        result.peak_rss_mb = peak_rss_mb()
        return result


def execute_product(task, *upstream, rehash=False, force=False, dry_run=False, run_id=None):
    """
    Make one product if it is out of date (runs on a dask worker or in-process).

    Parameters
    ----------
    task : ProductTask
        The product.
    *upstream : ProductResult
        Results of the products in ``task.depends`` (same order).
    rehash : bool
        Re-read every input to hash it (ignore the size+mtime+ctime shortcut).
    force : bool
        Remake the product even when it is up to date.
    dry_run : bool
        Only say whether the product is up to date (status ``out-of-date`` and
        the reason otherwise); write nothing.
    run_id : str, optional
        Identifies the run in staging folder names (default: a new one).

    Returns
    -------
    ProductResult
        Never raises for a failure of the task itself: the reason is returned.
    """
    if not dry_run:
        use_large_array_malloc()
    meter = _Meter()
    send_event(task.key, "")
    result = ProductResult(task.key, task.pointing, task.label, FAILED, worker=worker_name())
    decision = decide(task, upstream, rehash=rehash, force=force, dry_run=dry_run)
    result.status, result.reason = decision.status or FAILED, decision.reason
    if decision.status == SKIPPED:
        output_dir = Path(task.output_dir).absolute()
        result.outputs = [{**r, "path": str(output_dir / r["path"])} for r in decision.old_manifest["outputs"]]
    if decision.status is not None:
        return meter.fill(result)

    output_dir = Path(task.output_dir).absolute()
    result.log_file = str(log_path(task))
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        loaded_package_sources()  # hash the package code already imported in this process, as it is now
        staging = new_staging_dir(output_dir, task.name, run_id or f"{time.time_ns():x}")
    except OSError as exc:
        result.reason = failure_reason(exc)
        return meter.fill(result)
    try:
        with captured_log(log_path(task), task.key) as stream:
            failure = run_task(task, decision, staging, stream)
            if failure is not None:
                result.reason, result.data_error = failure
                return meter.fill(result)
            try:
                result.outputs = publish_product(
                    task,
                    decision,
                    staging,
                    extra={
                        "elapsed_s": time.perf_counter() - meter.start,
                        "code": loaded_package_sources(),
                        "worker": result.worker,
                        "peak_rss_mb": round(peak_rss_mb(), 1),
                        "cpu_s": round(time.process_time() - meter.cpu_start, 2),
                    },
                )
            except (OSError, ValueError) as exc:  # e.g. a *.fits output that is not FITS
                traceback.print_exc(file=stream)
                result.reason = failure_reason(exc)
                return meter.fill(result)
            meter.fill(result)
            print(f"jwst_ceers survey: {task.key} done in {result.elapsed_s:.1f} s", file=stream)
    except OSError as exc:  # the log file cannot be written
        result.reason = failure_reason(exc)
        return meter.fill(result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.status = DONE  # reason: why it was (re)made
    return result
