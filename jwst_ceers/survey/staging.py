"""Staging folders: a product is written aside, then renamed into place file by file.

Each product attempt writes into its own folder
``<output_dir>/.staging/<name>.<run id>.<pid>.<ns>``, unique per run and process, and
removes only that folder. Leftovers of interrupted runs are removed by
:func:`remove_leftover_staging`, which the runner calls while it holds the survey
lock (:mod:`jwst_ceers.survey.lock`) of the folder, so no other run can be using them.
"""

import os
import shutil
import time
from pathlib import Path

from jwst_ceers.survey.provenance import stamp_fits_provenance

__all__ = ["STAGING", "new_staging_dir", "publish", "remove_leftover_staging", "staged_files"]

STAGING = ".staging"


def new_staging_dir(output_dir, name, run_id):
    """Make and return a fresh staging folder for one attempt at product ``name``."""
    staging_root = Path(output_dir) / STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = staging_root / f"{name}.{run_id}.{os.getpid()}.{time.time_ns()}"
    staging.mkdir()
    return staging


def remove_leftover_staging(output_dir, run_id):
    """Remove the staging folders of earlier runs in ``output_dir`` (call it under the folder's lock)."""
    staging_root = Path(output_dir) / STAGING
    if not staging_root.is_dir():
        return []
    removed = []
    for leftover in sorted(staging_root.iterdir()):
        parts = leftover.name.split(".")
        if len(parts) >= 4 and parts[-3] == str(run_id):
            continue  # this run's
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover)
    return removed


def staged_files(staging):
    """The files a task wrote into its staging folder, sorted."""
    return sorted(p for p in Path(staging).rglob("*") if p.is_file())


def publish(staging, output_dir, *, product, params_sha, inputs_sha, versions):
    """
    Stamp the FITS files of ``staging`` and rename every file into ``output_dir``.

    Each rename is atomic; the caller writes the manifest after this, so a run killed
    half-way leaves no product a re-run would trust.

    Returns
    -------
    list of Path
        The published files.
    """
    written = staged_files(staging)
    for path in written:
        if path.suffix.lower() == ".fits":
            stamp_fits_provenance(path, product=product, params_sha=params_sha, inputs_sha=inputs_sha, versions=versions)
    finals = []
    for path in written:
        final = Path(output_dir) / path.relative_to(staging)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)
        finals.append(final)
    return finals
