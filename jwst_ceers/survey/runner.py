"""Make every product of a graph: serially in this process or on a dask client.

:func:`run_products` holds the survey lock of every output folder of the graph
(:mod:`jwst_ceers.survey.lock`) for the whole run, so concurrent runs through the
Python API and the command never stage or clean up each other's products.
"""

import io
import sys
import time

from jwst_ceers.survey.console import Progress
from jwst_ceers.survey.dask_run import run_on_client
from jwst_ceers.survey.execution import execute_product
from jwst_ceers.survey.graph import order_tasks
from jwst_ceers.survey.lock import survey_lock
from jwst_ceers.survey.staging import remove_leftover_staging

__all__ = ["run_products"]


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
        Only report which products are out of date and why (runs serially, writes
        nothing, takes no lock).
    stream : file or False, optional
        Where progress lines go (default ``sys.stdout``); ``False`` prints nothing.
    live : bool, optional
        Show a live progress bar (default: when ``stream`` is a terminal).

    Returns
    -------
    list of ProductResult
        In dependency order.

    Raises
    ------
    CeersFileError
        When an output folder cannot be written or another survey run holds its lock
        (nothing has been made then).
    """
    ordered = order_tasks(tasks)
    stream = sys.stdout if stream is None else (io.StringIO() if stream is False else stream)
    if live is None:
        live = bool(getattr(stream, "isatty", lambda: False)())
    folders = [] if dry_run else [t.output_dir for t in ordered]
    run_id = f"{time.time_ns():x}"
    with survey_lock(folders):
        for folder in sorted(set(folders)):
            remove_leftover_staging(folder, run_id)
        progress = Progress(ordered, stream, live=live, name_logs=not dry_run)
        results = {}
        try:
            if client is None or dry_run:
                with progress.ticking():
                    _run_serially(ordered, results, progress, rehash=rehash, force=force, dry_run=dry_run, run_id=run_id)
            else:
                run_on_client(client, ordered, results, progress, rehash=rehash, force=force, run_id=run_id)
        finally:
            progress.close()
    return [results[t.key] for t in ordered]


def _run_serially(ordered, results, progress, *, rehash, force, dry_run, run_id):
    for task in ordered:
        progress.running([task.key])
        deps = [results[d] for d in task.depends]
        results[task.key] = execute_product(task, *deps, rehash=rehash, force=force, dry_run=dry_run, run_id=run_id)
        progress.finished(results[task.key])
