"""Memory of a benchmark's child processes (the galaxy fits' worker processes).

Their ``ru_maxrss`` (``RUSAGE_CHILDREN``) is no use: it counts the parent's pages
between fork and exec, so it reports the parent's size. Their RSS is sampled instead.
"""

import psutil

__all__ = ["children_rss"]


def children_rss(process=None):
    """Summed RSS (bytes) of the current child processes of ``process`` (default: this one)."""
    total = 0
    for child in (process or psutil.Process()).children():
        try:
            total += child.memory_info().rss
        except psutil.Error:  # ended meanwhile
            pass
    return total
