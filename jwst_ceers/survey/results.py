"""What happened to one product: :class:`ProductResult` and its statuses."""

import dataclasses

__all__ = [
    "DONE",
    "FAILED",
    "FAILED_DEPENDENCY",
    "OUT_OF_DATE",
    "SKIPPED",
    "ProductResult",
    "failure_reason",
]

DONE, SKIPPED, FAILED, FAILED_DEPENDENCY = "done", "skipped", "failed", "failed-dependency"
OUT_OF_DATE = "out-of-date"  # dry runs only
_OK = (DONE, SKIPPED)


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
    data_error: bool = False  # failed because its data cannot make a product (CeersDataError)
    log_file: str = ""  # the product's full log

    @property
    def ok(self):
        """True when the product is done or up to date."""
        return self.status in _OK


def failure_reason(exc):
    """One line saying why a product failed: ``"<ExceptionType>: <last line of message>"``."""
    text = str(exc).strip().splitlines()
    message = text[-1] if text else ""
    if type(exc).__name__ == "KilledWorker":  # a worker process died (memory limit, crash)
        message = message.split(". ")[0] + " (see the workers' logs; memory limit?)"
    if not message:  # e.g. NotImplementedError() - say at least where
        message = "(no message; see the product's log for the traceback)"
    return f"{type(exc).__name__}: {message}"[:300]
