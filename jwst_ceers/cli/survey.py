"""``jwst-ceers survey CONFIG.toml``: every pointing and filter of a survey on dask.

Products are made only when out of date (see :mod:`jwst_ceers.survey.manifest`),
so re-running after an interruption, or after changing an input or a parameter,
redoes exactly what is needed. Exit status: 0 all products done or up to date,
1 some product failed, 2 bad configuration or command line (one line on stderr).

The terminal shows one line per product and a progress bar; each product's full log
is in ``<output_root>/<pointing>/logs/<product>.log`` and this process's own messages
in ``<output_root>/survey.log``.
"""

import contextlib
import logging
import os
import sys
import time

from jwst_ceers.errors import CeersParameterError

__all__ = ["SCHEDULER_TIMEOUT_S", "add_parser", "run"]

SCHEDULER_TIMEOUT_S = 5  # --scheduler: seconds to wait for the scheduler to answer


def add_parser(parser):
    """Add the ``survey`` arguments to ``parser``."""
    parser.add_argument("config", help="survey configuration (TOML)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="local dask cluster of N worker processes, 1 thread each (default: number of CPUs)",
    )
    where.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="use an existing dask scheduler (tcp://host:8786)"
    )
    where.add_argument(
        "--serial", action="store_true", help="run the products one by one in this process (no dask; debugging)"
    )
    parser.add_argument(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help="memory limit per local worker, e.g. 8GB (default: 90%% of RAM / workers); "
        "each product's memory budget is 70%% of it unless the config sets memory_budget_gb",
    )
    parser.add_argument("--force", action="store_true", help="remake every product, even up-to-date ones")
    parser.add_argument(
        "--dry-run", action="store_true", help="only list the products that are out of date and why; run nothing"
    )
    parser.add_argument(
        "--rehash",
        action="store_true",
        help="re-read every input to hash it (by default an input whose size, mtime and ctime are "
        "unchanged keeps the hash recorded in the manifest)",
    )


def _memory_limit(text):
    """``--memory-limit`` in bytes (None when not given)."""
    if text is None:
        return None
    from dask.utils import parse_bytes  # dask only when a size is given

    try:
        value = parse_bytes(text)
    except (ValueError, TypeError) as exc:
        raise CeersParameterError(f"--memory-limit {text!r}: not a size (e.g. 8GB, 512MiB)") from exc
    if value <= 0:
        raise CeersParameterError(f"--memory-limit {text!r}: must be > 0")
    return int(value)


def _quiet_dask(record):
    """
    Logging filter: drop dask's own INFO chatter (cluster start, connections), and the
    nanny's warning when it kills a worker at the end of a run (jwst leaves threads
    that outlive the 4 s grace period; the products are all written by then).
    """
    if not record.name.startswith(("distributed", "dask")):
        return True
    if record.name == "distributed.nanny" and str(record.msg).startswith("Worker process still alive after"):
        return False
    return record.levelno >= logging.WARNING


@contextlib.contextmanager
def _console_and_log_file(path, *, verbose):
    """
    While running: the console shows no product's records (they are in its log file) and
    no dask chatter; every record of this process also goes to ``path``.
    """
    from jwst_ceers.survey import NotFromAProduct

    root = logging.getLogger()
    console_filters = [NotFromAProduct()] + ([] if verbose else [_quiet_dask])
    consoles = list(root.handlers)
    for handler in consoles:
        for item in console_filters:
            handler.addFilter(item)
    file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.addFilter(NotFromAProduct())
    root.addHandler(file_handler)
    try:
        yield
    finally:
        root.removeHandler(file_handler)
        file_handler.close()
        for handler in consoles:
            for item in console_filters:
                handler.removeFilter(item)


def _connect(address):
    """A client of the scheduler at ``address``, or a one-line error after SCHEDULER_TIMEOUT_S."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{SCHEDULER_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise CeersParameterError(
            f"--scheduler {address}: no dask scheduler answered within {SCHEDULER_TIMEOUT_S} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from exc


def _local_cluster(workers, memory_limit):
    import importlib.util

    import dask
    import psutil
    from distributed import Client, LocalCluster

    if memory_limit is None:
        memory_limit = int(psutil.virtual_memory().total * 0.9 / workers)
    has_dashboard = importlib.util.find_spec("bokeh") is not None
    # A worker holds only the product it runs (no queued spare): when a worker dies
    # (memory limit, crash) dask fails the tasks it held, and no bystander goes with it.
    dask.config.set({"distributed.scheduler.worker-saturation": 1.0})
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        # without bokeh there is no dashboard: take any free port for the scheduler's http server
        dashboard_address=":8787" if has_dashboard else ":0",
    )
    if has_dashboard:
        print(f"jwst-ceers survey: dask dashboard at {cluster.dashboard_link}")
    return Client(cluster), f"local cluster: {workers} workers x 1 thread, {memory_limit / 1e9:.1f} GB each"


def run(args):
    """Run the survey; print progress and the summary table."""
    from jwst_ceers.survey import check_survey_outputs, load_survey_config, plan_survey
    from jwst_ceers.survey.lock import survey_lock

    # everything a user can get wrong is checked before any cluster starts or product runs
    if args.workers is not None and args.workers < 1:
        raise CeersParameterError(f"--workers {args.workers}: must be >= 1")
    memory_limit = _memory_limit(args.memory_limit)
    config = load_survey_config(args.config)  # also checks the step parameters
    check_survey_outputs(config)
    tasks = plan_survey(config)
    n_pointings = len(config.pointings)
    print(f"jwst-ceers survey: {len(tasks)} products in {n_pointings} pointing(s) -> {config.output_root}")
    start = time.perf_counter()
    with survey_lock([config.output_root]):
        log_file = config.output_root / "survey.log"
        with _console_and_log_file(log_file, verbose=getattr(args, "verbose", False)):
            print(f"jwst-ceers survey: messages of this run in {log_file}", flush=True)
            return _run_locked(args, config, tasks, start, memory_limit)


def _run_locked(args, config, tasks, start, memory_limit):
    from jwst_ceers.atomic_io import write_text_atomic
    from jwst_ceers.survey import format_summary, run_products

    client = None
    try:
        if args.dry_run:
            results = run_products(tasks, dry_run=True, rehash=args.rehash, force=args.force)
            print(format_summary(results))
            return 0
        if args.serial:
            where = "serial, in this process"
        elif args.scheduler:
            client = _connect(args.scheduler)
            where = f"scheduler {args.scheduler}: {len(client.scheduler_info().get('workers', {}))} workers"
        else:
            client, where = _local_cluster(args.workers or os.cpu_count() or 1, memory_limit)
        print(f"jwst-ceers survey: running on {where}", flush=True)
        if client is not None:
            from jwst_ceers.survey.worker_process import prepare_workers

            prepare_workers(client, tasks)
        results = run_products(tasks, client=client, rehash=args.rehash, force=args.force)
    finally:
        if client is not None:
            if args.scheduler:
                client.close()  # leave the user's cluster running
            else:
                client.shutdown()  # scheduler and workers of our local cluster
    summary = format_summary(results) + f"\nwall time {time.perf_counter() - start:.1f} s"
    print(summary)
    write_text_atomic(summary + "\n", config.output_root / "survey_summary.txt")
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"jwst-ceers survey: {len(failed)} product(s) not made; their logs: "
              + ", ".join(r.log_file for r in failed if r.log_file))
    sys.stdout.flush()
    return 0 if not failed else 1
