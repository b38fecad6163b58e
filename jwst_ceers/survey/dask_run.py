"""Run a product graph on a ``distributed.Client``: submission order, priorities, progress events."""

import contextlib
import time

from jwst_ceers.survey.execution import execute_product
from jwst_ceers.survey.graph import scheduling_priorities
from jwst_ceers.survey.results import FAILED, FAILED_DEPENDENCY, ProductResult, failure_reason
from jwst_ceers.survey.worker_process import EVENT_TOPIC

__all__ = ["run_on_client"]


def _submit_all(client, ordered, *, rehash, force, run_id):
    """Submit every product; return (futures by product key, product key by future key)."""
    futures, key_of = {}, {}
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
            run_id=run_id,
            key=f"ceers-survey-{task.name}-{run_id}",
            pure=False,
            priority=priorities[task.key],
        )
        futures[task.key] = future
        key_of[future.key] = task.key
    return futures, key_of


def _result_of(future, task, results):
    try:
        # blocks only if the result was lost with a worker and is being recomputed
        # (a recomputation finds the product up to date and skips it)
        return future.result()
    except Exception as exc:  # noqa: BLE001 - the task never raises: a worker died
        bad_deps = [d for d in task.depends if d in results and not results[d].ok]
        if bad_deps:
            return ProductResult(
                task.key, task.pointing, task.label, FAILED_DEPENDENCY, reason="needs " + ", ".join(bad_deps)
            )
        return ProductResult(task.key, task.pointing, task.label, FAILED, reason=failure_reason(exc))


def run_on_client(client, ordered, results, progress, *, rehash, force, run_id):
    """Make the products of ``ordered`` on ``client``, filling ``results`` (key -> ProductResult)."""
    from distributed import as_completed  # only with a client: keeps the serial path free of dask

    futures, key_of = _submit_all(client, ordered, rehash=rehash, force=force, run_id=run_id)
    by_key = {t.key: t for t in ordered}

    def on_event(event):
        _, message = event
        if isinstance(message, dict) and message.get("key") in by_key:
            progress.step(message["key"], message.get("step", ""))

    subscribed = False
    with contextlib.suppress(Exception):  # live progress only
        client.subscribe_topic(EVENT_TOPIC, on_event)
        subscribed = True
    try:
        pending = as_completed(list(futures.values()))
        while not pending.is_empty():
            if not pending.has_ready():
                progress.refresh()
                time.sleep(0.5)
                continue
            for future in pending.next_batch(block=False):
                task = by_key[key_of[future.key]]
                results[task.key] = _result_of(future, task, results)
                progress.finished(results[task.key])
    finally:
        if subscribed:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(EVENT_TOPIC)
