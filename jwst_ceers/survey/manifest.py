"""Product manifests: what a survey product was made from, so a re-run can skip it.

A manifest is a JSON file written beside its product, atomically and LAST (after
every output file is in place). It records

- the inputs: role, name, size, mtime, ctime and SHA-256 of every input file (and
  of every output of the products it depends on) and one digest over
  ``(role, name, sha256)``;
- the parameters: the canonical JSON of the task parameters and its SHA-256;
- the package versions the product was made with, and the SHA-256 of the
  jwst_ceers source files loaded when it was made (an editable install keeps
  its version number while its code changes);
- the outputs: path (relative to the manifest), size, mtime, ctime and SHA-256.

A product is up to date when its manifest exists, parses, has the same task,
input digest, parameter digest and versions, and every output it lists is still
there with the recorded content. Anything else means "redo": a product without a
valid manifest (e.g. an interrupted run) is never trusted.

Input identity is the file CONTENT (SHA-256), not its path or mtime: moving or
re-copying unchanged inputs does not trigger a redo, editing one does. To avoid
re-reading hundreds of gigabytes on every run (SHA-256 reads ~300 MB/s here, about
0.3 s per 100 MB cal file), the hash recorded in the previous manifest is reused
when the file's path, size, mtime and ctime (ns) are all unchanged. The ctime
(inode change time) is what makes this safe against in-place edits that keep the
size and restore the mtime (``cp -p``, ``rsync -t``, ``touch -d``, ``os.utime``): the
kernel sets it on every write and every mtime change, and no user call can set it
back. Anything that changes the ctime without changing the content (chmod, chown,
a hard link) costs one re-read, never a remake. ``rehash=True`` re-reads everything.
Outputs are checked the same way: a changed size or mtime means "modified"; a
changed ctime alone means "re-hash it and compare".
"""

import datetime
import hashlib
import json
import math
import os
from pathlib import Path

from jwst_ceers.atomic_io import write_text_atomic
from jwst_ceers.survey.provenance import changed_sources

__all__ = [
    "MANIFEST_FORMAT",
    "canonical_json",
    "file_record",
    "file_sha256",
    "inputs_digest",
    "manifest_path",
    "params_digest",
    "read_manifest",
    "stale_reason",
    "write_manifest",
]

MANIFEST_FORMAT = "jwst_ceers.survey.manifest/1"
_CHUNK = 8 * 1024 * 1024


def manifest_path(output_dir, name):
    """Return the manifest file of product ``name`` in ``output_dir``."""
    return Path(output_dir) / f"{name}.manifest.json"


def file_sha256(path):
    """Return the hex SHA-256 of a file's content (read in 8 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path, *, known=None, rehash=False):
    """
    Describe one file by name, size, mtime, ctime and content hash.

    Parameters
    ----------
    path : str or Path
        The file.
    known : dict, optional
        Records of a previous manifest keyed by absolute path; their hash is
        reused when size, mtime and ctime are unchanged (unless ``rehash``).
    rehash : bool
        Always read the file to hash it.

    Returns
    -------
    dict
        ``path`` (absolute), ``name``, ``size``, ``mtime_ns``, ``ctime_ns``, ``sha256``.
    """
    path = Path(path).absolute()
    stat = path.stat()
    record = {
        "path": str(path),
        "name": path.name,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
    }
    previous = (known or {}).get(str(path))
    if not rehash and previous is not None and _same_stat(previous, record) and previous.get("sha256"):
        record["sha256"] = previous["sha256"]
    else:
        record["sha256"] = file_sha256(path)
    return record


def _same_stat(previous, record):
    """True when size, mtime and ctime of two records of one path agree (a record without ctime never does)."""
    return all(previous.get(key) == record[key] for key in ("size", "mtime_ns", "ctime_ns"))


def inputs_digest(records):
    """Digest of a set of input files: SHA-256 over their sorted (role, name, sha256)."""
    pairs = sorted((record.get("role", ""), record["name"], record["sha256"]) for record in records)
    return hashlib.sha256(canonical_json(pairs).encode()).hexdigest()


def _check_finite(value, where="params"):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: non-finite float {value!r} cannot be digested")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")


def canonical_json(value):
    """Return the canonical JSON text of ``value`` (sorted keys, no spaces, ASCII)."""
    _check_finite(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def params_digest(params):
    """Return the SHA-256 of the canonical JSON of ``params``."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


def read_manifest(path):
    """Return the manifest at ``path`` as a dict, or None when absent or unreadable."""
    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    return manifest


def stale_reason(manifest, *, task, inputs, params_sha, versions, base_dir):
    """
    Say why a product must be (re)made, or return None when it is up to date.

    Parameters
    ----------
    manifest : dict or None
        The product's manifest as read by :func:`read_manifest`.
    task : str
        Dotted name of the task function that makes the product.
    inputs : list of dict
        Current input file records (:func:`file_record`).
    params_sha : str
        Current parameter digest.
    versions : dict
        Current package versions.
    base_dir : Path
        Directory the manifest's output paths are relative to.

    Returns
    -------
    str or None
        A short reason ("no manifest", "inputs changed", ...) or None.
    """
    if manifest is None:
        return "no manifest"
    if manifest.get("task") != task:
        return f"task changed ({manifest.get('task')} -> {task})"
    if manifest.get("inputs_digest") != inputs_digest(inputs):
        old = {r.get("name"): r.get("sha256") for r in manifest.get("inputs", [])}
        new = {r["name"]: r.get("sha256") for r in inputs}
        changed = sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))
        more = f" +{len(changed) - 3} more" if len(changed) > 3 else ""
        return "inputs changed" + (f" ({', '.join(changed[:3])}{more})" if changed else "")
    if manifest.get("params_digest") != params_sha:
        return "parameters changed"
    if manifest.get("versions") != versions:
        old = manifest.get("versions") or {}
        diff = sorted(k for k in set(old) | set(versions) if old.get(k) != versions.get(k))
        return "package versions changed (" + ", ".join(diff) + ")"
    code = changed_sources(manifest.get("code"))
    if code:
        more = f" +{len(code) - 3} more" if len(code) > 3 else ""
        return f"jwst_ceers code changed ({', '.join(code[:3])}{more})"
    for output in manifest.get("outputs", []):
        path = Path(base_dir) / output["path"]
        try:
            stat = path.stat()
        except OSError:
            return f"output missing ({output['path']})"
        if stat.st_size != output.get("size") or stat.st_mtime_ns != output.get("mtime_ns"):
            return f"output modified ({output['path']})"
        if stat.st_ctime_ns != output.get("ctime_ns") and file_sha256(path) != output.get("sha256"):
            return f"output modified ({output['path']})"  # in place, with its size and mtime kept
    return None


def write_manifest(path, *, product, task, inputs, params, versions, outputs, elapsed_s, extra=None):
    """
    Write a product manifest atomically.

    Parameters
    ----------
    path : Path
        Manifest file name.
    product : str
        Product key.
    task : str
        Dotted name of the task function.
    inputs : list of dict
        Input file records (:func:`file_record`).
    params : dict
        Task parameters (JSON-serialisable).
    versions : dict
        Package versions.
    outputs : list of dict
        Output records; their ``path`` is made relative to the manifest's folder.
    elapsed_s : float
        Time the task took.
    extra : dict, optional
        More fields to record (host, peak memory ...).

    Returns
    -------
    dict
        The manifest written.
    """
    path = Path(path)
    base = path.parent.absolute()
    rel_outputs = []
    for record in outputs:
        record = dict(record)
        record["path"] = os.path.relpath(record["path"], base)
        rel_outputs.append(record)
    manifest = {
        "format": MANIFEST_FORMAT,
        "product": product,
        "task": task,
        "inputs_digest": inputs_digest(inputs),
        "inputs": sorted(inputs, key=lambda r: r["path"]),
        "params_digest": params_digest(params),
        "params": params,
        "versions": versions,
        "outputs": sorted(rel_outputs, key=lambda r: r["path"]),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(float(elapsed_s), 3),
        **(extra or {}),
    }
    write_text_atomic(json.dumps(manifest, indent=1, sort_keys=True) + "\n", path)
    return manifest
