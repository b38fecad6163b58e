"""One survey run per output folder at a time (``<folder>/.survey.lock``, an flock).

Both ``jwst-ceers survey`` and :func:`jwst_ceers.survey.run_products` (the Python API
the SLURM recipe uses) take it, so two runs never make, stage or clean up the same
products at once. The lock is released when the run ends or its process dies.
"""

import contextlib
import fcntl
import os
from pathlib import Path

from jwst_ceers.errors import CeersFileError

__all__ = ["LOCK_NAME", "check_writable_folder", "survey_lock"]

LOCK_NAME = ".survey.lock"


def check_writable_folder(folder, *, what="output folder"):
    """
    Create ``folder`` if needed and check that files can be made in it.

    Raises
    ------
    CeersFileError
        Naming the folder, when it is a regular file, lies below one, or is read-only.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CeersFileError(f"{folder}: {what} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CeersFileError(f"{folder}: {what} cannot be written ({exc.strerror or exc})") from exc
    return folder


@contextlib.contextmanager
def survey_lock(folders):
    """
    Hold the survey lock of every folder in ``folders`` (created if needed), or fail at once.

    Raises
    ------
    CeersFileError
        When a folder cannot be made or written, or another survey run holds its lock.
    """
    with contextlib.ExitStack() as held:
        for folder in sorted({Path(f).absolute() for f in folders}):
            check_writable_folder(folder)
            stream = held.enter_context(open(folder / LOCK_NAME, "a"))
            try:
                fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise CeersFileError(
                    f"{folder}: another jwst-ceers survey is running on this folder (it holds {LOCK_NAME})"
                ) from exc
            held.callback(fcntl.flock, stream, fcntl.LOCK_UN)
        yield
