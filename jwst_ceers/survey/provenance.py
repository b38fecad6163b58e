"""Provenance: package versions of a run and the keywords stamped on FITS products."""

import hashlib
import sys
from importlib import metadata
from pathlib import Path

from astropy.io import fits

__all__ = [
    "PROVENANCE_KEYWORDS",
    "TRACKED_PACKAGES",
    "changed_sources",
    "loaded_package_sources",
    "package_versions",
    "stamp_fits_provenance",
]

# Distributions whose version change makes every product out of date: the ones
# whose code computes the pixels (numpy/scipy included: they change float results).
TRACKED_PACKAGES = (
    "jwst_ceers",
    "jwst",
    "stpipe",
    "stdatamodels",
    "stcal",
    "tweakwcs",
    "gwcs",
    "drizzle",
    "photutils",
    "astropy",
    "numpy",
    "scipy",
)

# keyword -> comment; values are set by stamp_fits_provenance
PROVENANCE_KEYWORDS = {
    "CEERSVER": "jwst_ceers version of this product",
    "CEERSJWV": "jwst version of this product",
    "CEERSPRD": "jwst_ceers survey product key",
    "CEERSPAR": "parameters SHA-256 (first 32 hex)",
    "CEERSINP": "inputs SHA-256 (first 32 hex)",
}


def package_versions(packages=TRACKED_PACKAGES):
    """Return ``{distribution: version or None}`` for the tracked packages."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def stamp_fits_provenance(path, *, product, params_sha, inputs_sha, versions):
    """
    Add the provenance keywords to the primary header of a FITS file, in place.

    Call it on a file that is not yet published (the survey engine stamps files
    in its staging folder, then renames them into place, so the published file
    is replaced atomically).

    Parameters
    ----------
    path : str or Path
        FITS file (modified in place).
    product : str
        Product key.
    params_sha, inputs_sha : str
        Parameter and input digests (hex; the first 32 digits are recorded,
        the full digests are in the product's manifest).
    versions : dict
        Package versions (``jwst_ceers`` and ``jwst`` are recorded).
    """
    values = {
        "CEERSVER": versions.get("jwst_ceers") or "unknown",
        "CEERSJWV": versions.get("jwst") or "unknown",
        "CEERSPRD": product[:68],
        "CEERSPAR": params_sha[:32],
        "CEERSINP": inputs_sha[:32],
    }
    with fits.open(Path(path), mode="update", memmap=False) as hdul:
        header = hdul[0].header
        for key, value in values.items():
            header[key] = (value, PROVENANCE_KEYWORDS[key])


_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # .../jwst_ceers
# engine, configuration and command-line code do not compute pixels
_NOT_PRODUCT_CODE = ("survey/", "cli/")
_PRODUCT_CODE_EXCEPTIONS = ("survey/tasks.py",)


def _is_product_code(relpath):
    return relpath in _PRODUCT_CODE_EXCEPTIONS or not relpath.startswith(_NOT_PRODUCT_CODE)


def _source_sha(relpath):
    try:
        return hashlib.sha256((_PACKAGE_ROOT / relpath).read_bytes()).hexdigest()
    except OSError:
        return None


# relpath -> sha256 of the file when this process first saw its module loaded: a
# long-lived worker keeps running the code it imported even if the file is edited later
_SEEN_SOURCES = {}


def loaded_package_sources():
    """
    SHA-256 of the jwst_ceers source files loaded in this process (the code a task ran).

    A development (editable) install keeps one version number while its code
    changes; recording the sources the product was made with lets a re-run redo
    it when that code changed. Each file is hashed the first time its module is
    seen loaded in this process (call this at task start and end), so an edit
    made after the import is not mistaken for the code that ran. Engine,
    configuration and CLI modules are left out.

    Returns
    -------
    dict
        ``{path relative to the package: sha256}``.
    """
    sources = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        try:
            relpath = Path(file).resolve().relative_to(_PACKAGE_ROOT).as_posix()
        except ValueError:
            continue
        if _is_product_code(relpath):
            if relpath not in _SEEN_SOURCES:
                _SEEN_SOURCES[relpath] = _source_sha(relpath)
            if _SEEN_SOURCES[relpath] is not None:
                sources[relpath] = _SEEN_SOURCES[relpath]
    return dict(sorted(sources.items()))


def changed_sources(recorded):
    """Return the recorded jwst_ceers source files whose content changed (or vanished)."""
    return sorted(relpath for relpath, sha in (recorded or {}).items() if _source_sha(relpath) != sha)
