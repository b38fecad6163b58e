"""Atomic output writing: a product either exists complete or not at all.

Everything jwst_ceers writes goes through :func:`atomic_output`: the data are
written to a temporary file in the destination directory and renamed over the
final name only after the write succeeded, so an interrupted run never leaves a
half-written product that a re-run would trust.

Inputs are never written: a run registers the files it reads with
:func:`protected_inputs` (every jwst_ceers step does so in ``run``), and every atomic
write refuses a path that is one of them (:func:`check_outputs_not_inputs`), whatever
named it. Steps also call the check on their predicted outputs before any work.
"""

import contextlib
import itertools
import os
import tempfile
import threading
from pathlib import Path

from jwst_ceers.errors import CeersFileError

__all__ = [
    "check_outputs_not_inputs",
    "protected_inputs",
    "current_protected_inputs",
    "ensure_output_directory",
    "check_directory_writable",
    "atomic_output", "fits_safe_text", "write_fits_atomic", "write_model_atomic", "write_text_atomic"]


def ensure_output_directory(path, *, what="output directory"):
    """
    Create directory ``path`` (and its parents) if needed; return it as a Path.

    Raises
    ------
    CeersFileError
        If ``path`` (or a parent) is a regular file or cannot be created.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CeersFileError(f"{what} {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CeersFileError(f"{what} {path}: cannot be created ({exc.strerror or exc})") from exc
    check_directory_writable(path, what=what)
    return path


def check_directory_writable(path, *, what="output directory"):
    """
    Raise CeersFileError naming ``path`` unless a file can be created in it.

    Tried with a real temporary file (``os.access`` is wrong for root, ACLs and
    read-only mounts), so a read-only ``output_dir`` is found before any work.
    """
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".jwst_ceers_write_test.")
    except OSError as exc:
        raise CeersFileError(f"{what} {path}: is not writable ({exc.strerror or exc})") from exc
    os.close(fd)
    os.unlink(probe)


def _same_file(a, b):
    """True when paths ``a`` and ``b`` name one file (resolved; hard links too)."""
    a, b = Path(a), Path(b)
    try:
        return a.samefile(b)
    except OSError:  # one of them does not exist (yet): compare the resolved names
        return a.resolve() == b.resolve()


def check_outputs_not_inputs(outputs, inputs, *, what="output"):
    """
    Refuse to go on when an output path would overwrite an input path.

    Call it before the first expensive step, with every path the run will write and
    every file it reads. Paths are compared resolved (symbolic links, ``..``) and, when
    both exist, as files (hard links).

    Parameters
    ----------
    outputs, inputs : iterable of str or Path
        Paths to be written, and paths read.
    what : str
        What the outputs are, for the message.

    Raises
    ------
    CeersFileError
        Naming the first output that is also an input.
    """
    inputs = [Path(p) for p in inputs if p]
    for out in outputs:
        if not out:
            continue
        for inp in inputs:
            if _same_file(out, inp):
                raise CeersFileError(
                    f"{what} {out} would overwrite the input {inp}; choose another output_dir, "
                    "output_file or suffix (inputs are never written)"
                )


# Files read by the active runs of this process (never written by atomic_output). Global,
# not per thread: steps write from thread pools (MosaicBackground), and a file that any
# concurrent run reads must not be replaced by another run either.
_PROTECTED_INPUTS = {}
_PROTECTED_LOCK = threading.Lock()
_REGISTRATIONS = itertools.count()


@contextlib.contextmanager
def protected_inputs(paths):
    """
    Register ``paths`` as inputs of the enclosed run: no atomic write may replace them.

    Registrations add up (a pipeline's inputs stay protected while its steps run) and
    hold for every thread of the process (steps write from thread pools; concurrent
    runs never replace each other's inputs either).

    Parameters
    ----------
    paths : iterable of str or Path
        Input files (missing ones are ignored when writing is checked).
    """
    added = tuple(str(Path(p).absolute()) for p in paths if p)  # pinned to the current folder
    key = next(_REGISTRATIONS)
    with _PROTECTED_LOCK:
        _PROTECTED_INPUTS[key] = added
    try:
        yield
    finally:
        with _PROTECTED_LOCK:
            del _PROTECTED_INPUTS[key]


def current_protected_inputs():
    """The input paths registered by the active :func:`protected_inputs` contexts."""
    with _PROTECTED_LOCK:
        return tuple(dict.fromkeys(p for paths in _PROTECTED_INPUTS.values() for p in paths))


@contextlib.contextmanager
def atomic_output(path):
    """
    Yield a temporary path beside ``path``; rename it to ``path`` on success.

    Parameters
    ----------
    path : str or Path
        Final output file name.

    Yields
    ------
    Path
        Temporary file name to write to (same directory, same suffix).

    Raises
    ------
    CeersFileError
        If ``path`` is a protected input (see :func:`protected_inputs`), the directory
        does not exist or is not writable, or the write fails.
    """
    path = Path(path)
    check_outputs_not_inputs([path], current_protected_inputs())
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    except OSError as exc:
        raise CeersFileError(f"{path}: cannot write output in {directory}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600 files; products get the usual permissions (0666 minus umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise CeersFileError(f"{path}: writing output failed: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _open_temporary(tmp):
    """
    Open the (new, empty) temporary file of :func:`atomic_output` for writing.

    Not with ``"wb"``: its O_TRUNC makes ext4 write the whole file to disk when it is
    closed (``auto_da_alloc``; measured 0.2 s per 600 MB, during which the writer
    waits), which an empty file made by ``mkstemp`` does not need.
    """
    return open(tmp, "r+b")


def write_fits_atomic(hdulist, path):
    """Write an `astropy.io.fits.HDUList` to ``path`` atomically (overwriting)."""
    with atomic_output(path) as tmp:
        hdulist.writeto(tmp, overwrite=True)
    return Path(path)


def write_model_atomic(model, path):
    """
    Save a jwst datamodel to ``path`` (``.fits`` or ``.asdf``) atomically (overwriting).

    The model is written through an open file handle, so that its ``FILENAME``
    (``meta.filename``) is the final name and never the temporary one, which
    ``model.save(temporary_path)`` would record. A non-ASCII file name is recorded in
    the FITS header in its nearest ASCII spelling (:func:`fits_safe_text`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".fits", ".asdf"):
        raise CeersFileError(f"{path}: a datamodel can only be saved as .fits or .asdf")
    # FITS headers hold ASCII only: a non-ASCII name is recorded in its nearest ASCII
    # spelling in the file, while the model in memory keeps the real name
    model.meta.filename = fits_safe_text(path.name) if suffix == ".fits" else path.name
    try:
        with atomic_output(path) as tmp, _open_temporary(tmp) as handle:
            if suffix == ".fits":
                model.to_fits(handle, overwrite=True)
            else:
                model.to_asdf(handle)
    finally:
        model.meta.filename = path.name
    return path


def fits_safe_text(text):
    """
    ``text`` as printable ASCII, which FITS header values must be.

    Accented letters lose their accents (``é`` -> ``e``); other non-ASCII characters
    become ``?``. Used for the FILENAME of products whose file name is not ASCII: the
    file keeps its name, the header records the nearest ASCII spelling.
    """
    import unicodedata

    if text.isascii() and text.isprintable():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    without_accents = "".join(c for c in decomposed if not unicodedata.combining(c))
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in without_accents)


def write_text_atomic(text, path):
    """Write a text file atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)
