"""The final summary table of a survey run."""

from jwst_ceers.survey.results import DONE, FAILED, FAILED_DEPENDENCY, OUT_OF_DATE, SKIPPED

__all__ = ["format_summary"]


def format_summary(results):
    """
    Return the final summary table of a survey run (text).

    One row per product (status, time, worker peak memory, reason of failures, why a
    product was remade, and which dependencies it was made without), a count line
    and the peak memory of each worker.
    """
    header = ("product", "status", "time [s]", "peak MB", "reason (failed) / why remade (done)")
    rows = []
    for r in results:
        reason = r.reason.removeprefix("up to date").removeprefix("; ") if r.status == SKIPPED else r.reason
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
            f"{counts.get(s, 0)} {s}"
            for s in (DONE, SKIPPED, FAILED, FAILED_DEPENDENCY, OUT_OF_DATE)
            if s != OUT_OF_DATE or s in counts
        )
    )
    peaks = {}
    for r in results:
        if r.status == DONE and r.worker:
            peaks[r.worker] = max(peaks.get(r.worker, 0.0), r.peak_rss_mb)
    if peaks:
        lines.append("peak memory per worker: " + ", ".join(f"{w} {mb:.0f} MB" for w, mb in sorted(peaks.items())))
    return "\n".join(lines)
