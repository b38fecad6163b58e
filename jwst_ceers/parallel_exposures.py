"""Run a per-exposure function over a ModelLibrary on a few threads.

The per-exposure work of jwst_ceers (tweakreg source catalogs, pedestals, variance
fills) spends its time in numpy, scipy.ndimage, sep and photutils, which release
the GIL for the array work, so a thread per exposure uses the cores of a machine
without copying models between processes. Models are borrowed and shelved by the
calling thread only (a ModelLibrary is not thread-safe), at most ``threads`` at a
time, so an on-disk library holds at most that many exposures in memory. Each
exposure's result depends only on that exposure: the products are bitwise the
same for any thread count (tested).
"""

import logging
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

__all__ = ["map_exposures"]

log = logging.getLogger(__name__)


def map_exposures(library, function, *, threads=1, modify=True, borrow=None):
    """
    Call ``function(model, index)`` for every member of ``library``; return the results in order.

    Parameters
    ----------
    library : `~jwst.datamodels.ModelLibrary`
        The exposures (opened here with ``with library``).
    function : callable
        ``function(model, index) -> result``; may modify ``model`` in place.
    threads : int, optional
        Exposures processed at once (1: in order, in the calling thread).
    modify : bool, optional
        Shelve the models as modified (on-disk libraries then save them).
    borrow : callable, optional
        ``borrow(index) -> model`` used instead of ``library.borrow`` (e.g. to turn
        read errors into messages naming the file).

    Returns
    -------
    list
        ``function``'s results, in library order.

    Raises
    ------
    Exception
        The exception of the lowest-index member that failed, after every
        borrowed model has been shelved; no new member is started after a failure.
    """
    borrow = borrow or library.borrow
    n = len(library)
    threads = max(1, min(int(threads), n))
    results = [None] * n
    with library:
        if threads == 1:
            for index in range(n):
                model = borrow(index)
                try:
                    results[index] = function(model, index)
                finally:
                    library.shelve(model, index, modify=modify)
            return results

        errors = {}
        pending = {}
        next_index = 0
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="exposure") as pool:
            while pending or (next_index < n and not errors):
                while next_index < n and not errors and len(pending) < threads:
                    try:
                        model = borrow(next_index)
                    except Exception as exc:  # noqa: BLE001 (re-raised below, after shelving)
                        errors[next_index] = exc
                        break
                    pending[pool.submit(function, model, next_index)] = (next_index, model)
                    next_index += 1
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index, model = pending.pop(future)
                    library.shelve(model, index, modify=modify)
                    try:
                        results[index] = future.result()
                    except Exception as exc:  # noqa: BLE001 (re-raised below)
                        errors[index] = exc
        if errors:
            raise errors[min(errors)]
    return results
