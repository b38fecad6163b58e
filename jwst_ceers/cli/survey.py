"""``jwst-ceers survey CONFIG.toml``: every pointing and filter of a survey on dask.

Products are made only when out of date (see :mod:`jwst_ceers.survey.manifest`),
so re-running after an interruption, or after changing an input or a parameter,
redoes exactly what is needed. Exit status: 0 all products done or up to date,
1 some product failed, 2 bad configuration.
"""

import contextlib
import logging
import sys
import time

__all__ = ["add_parser", "run"]


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
        help="memory limit per local worker, e.g. 8GB (default: 90%% of RAM / workers)",
    )
    parser.add_argument("--force", action="store_true", help="remake every product, even up-to-date ones")
    parser.add_argument(
        "--dry-run", action="store_true", help="only list the products that are out of date and why; run nothing"
    )
    parser.add_argument(
        "--rehash", action="store_true", help="re-read every input to hash it (ignore the size+mtime shortcut)"
    )


@contextlib.contextmanager
def _exclusive(output_root):
    """Hold ``<output_root>/.survey.lock`` so two runs never make the same products at once."""
    import fcntl

    from jwst_ceers.errors import CeersFileError

    output_root.mkdir(parents=True, exist_ok=True)
    path = output_root / ".survey.lock"
    with open(path, "a") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise CeersFileError(f"{output_root}: another jwst-ceers survey is running on this output_root") from exc
        try:
            yield
        finally:
            fcntl.flock(stream, fcntl.LOCK_UN)


def _quiet_dask(record):
    """Logging filter: drop dask's own INFO chatter (cluster start, connections)."""
    return record.levelno >= logging.WARNING or not record.name.startswith(("distributed", "dask"))


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
    limit = memory_limit if isinstance(memory_limit, str) else f"{memory_limit / 1e9:.1f} GB"
    return Client(cluster), f"local cluster: {workers} workers x 1 thread, {limit} each"


def run(args):
    """Run the survey; print progress and the summary table."""
    from jwst_ceers.errors import CeersParameterError
    from jwst_ceers.survey import check_step_parameters, load_survey_config, plan_survey

    if not getattr(args, "verbose", False):
        # the product logs hold the pipeline messages; keep the console to the progress lines
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_dask)
    config = load_survey_config(args.config)
    check_step_parameters(config)
    tasks = plan_survey(config)
    if args.workers is not None and args.workers < 1:
        raise CeersParameterError(f"--workers {args.workers}: must be >= 1")
    n_pointings = len(config.pointings)
    print(f"jwst-ceers survey: {len(tasks)} products in {n_pointings} pointing(s) -> {config.output_root}")
    start = time.perf_counter()
    with _exclusive(config.output_root):
        return _run_locked(args, config, tasks, start)


def _run_locked(args, config, tasks, start):
    import os

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
            from distributed import Client

            client = Client(args.scheduler)
            where = f"scheduler {args.scheduler}: {len(client.scheduler_info().get('workers', {}))} workers"
        else:
            client, where = _local_cluster(args.workers or os.cpu_count() or 1, args.memory_limit)
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
    sys.stdout.flush()
    return 0 if all(r.ok for r in results) else 1
