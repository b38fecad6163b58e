"""Memory of a benchmark's child processes (the galaxy fits' worker processes).

Their ``ru_maxrss`` (``RUSAGE_CHILDREN``) is no use: it counts the parent's pages
between fork and exec, so it reports the parent's size; so does their RSS when sampled
at that moment. Their unique set size (USS: pages no other process maps) is sampled
instead: what they add to the machine's memory.
"""

import psutil

__all__ = ["children_memory", "forked_not_started"]


def children_memory(process=None):
    """Summed unique set size (bytes) of the child processes of ``process`` (default: this one)."""
    total = 0
    for child in (process or psutil.Process()).children():
        try:
            total += child.memory_full_info().uss
        except psutil.Error:  # ended meanwhile
            pass
    return total


def forked_not_started(process):
    """
    True for a child caught between fork and exec: it still runs its parent's command
    and maps its parent's pages, so its RSS is its parent's (a sampler summing RSS over
    a process tree would count the parent twice).
    """
    try:
        parent = process.parent()
        return parent is not None and process.cmdline() == parent.cmdline()
    except psutil.Error:
        return True
