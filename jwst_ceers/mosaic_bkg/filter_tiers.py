"""Per-filter tier settings of MosaicBackground (``filter_tiers`` parameter file).

CEERS's ``mosaic_background.cfg`` gives each HST filter its own tiers (F606W, F814W,
F105W ... differ) and one set to all NIRCam filters. ``nircam_*`` / ``hst_*`` hold
one set per telescope; a ``filter_tiers`` file overrides them for the filters it
names. It is an ASDF file whose tree has::

    filter_tiers:
      F606W: {kernel_fwhm: [...], nsigma: [...], npixels: [...], dilate: [...]}
      F814W: {...}

``nsigma`` there is, like ``nircam_nsigma``, in units of the smoothed image's rms
(``jwst-ceers import-ceers`` converts CEERS's unsmoothed-noise values). Every value
of every list is checked (per-value bounds of `~jwst_ceers.masking.MaskTier`).
"""

from pathlib import Path

from jwst_ceers.atomic_io import atomic_output
from jwst_ceers.errors import CeersFileError

__all__ = ["TIER_KEYS", "read_filter_tiers", "write_filter_tiers", "tiers_from_lists"]

TIER_KEYS = ("kernel_fwhm", "nsigma", "npixels", "dilate")


def tiers_from_lists(lists, *, what):
    """
    ``MaskTier`` tuple from ``{kernel_fwhm: [...], nsigma: [...], npixels: [...], dilate: [...]}``.

    Raises
    ------
    ValueError
        Naming ``what`` and the key when a list is missing, the lengths differ or a
        value is out of bounds.
    """
    from jwst_ceers.masking import MaskTier

    missing = [key for key in TIER_KEYS if key not in lists]
    if missing:
        raise ValueError(f"{what}: missing {', '.join(missing)}")
    values = [list(lists[key]) for key in TIER_KEYS]
    if len({len(v) for v in values}) != 1 or not values[0]:
        lengths = ", ".join(f"{key}={len(v)}" for key, v in zip(TIER_KEYS, values, strict=True))
        raise ValueError(f"{what}: tier lists must be non-empty and of equal lengths ({lengths})")
    tiers = []
    for number, (fwhm, nsigma, npixels, dilate) in enumerate(zip(*values, strict=True), start=1):
        try:
            tiers.append(MaskTier(float(fwhm), float(nsigma), int(npixels), float(dilate)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} tier {number}: {exc}") from exc
    return tuple(tiers)


def read_filter_tiers(path):
    """
    Read a ``filter_tiers`` file.

    Returns
    -------
    dict
        ``{FILTER (upper case): tuple of MaskTier}``.

    Raises
    ------
    CeersFileError
        If the file is missing or unreadable, or a filter's lists are invalid (the
        message names the file, the filter and the value).
    """
    import asdf

    path = Path(path)
    if not path.is_file():
        raise CeersFileError(f"filter_tiers {path}: file does not exist")
    try:
        with asdf.open(path, lazy_load=False) as handle:
            entries = dict(handle.tree.get("filter_tiers") or {})
    except Exception as exc:  # asdf raises many types for bad files
        raise CeersFileError(f"filter_tiers {path}: cannot be read ({exc})") from exc
    if not entries:
        raise CeersFileError(f"filter_tiers {path}: no 'filter_tiers' entry")
    tiers = {}
    for name, lists in entries.items():
        try:
            tiers[str(name).upper()] = tiers_from_lists(dict(lists), what=f"filter_tiers {path}: {name}")
        except (TypeError, ValueError) as exc:
            raise CeersFileError(str(exc)) from exc
    return tiers


def write_filter_tiers(path, entries, *, provenance=None):
    """
    Write a ``filter_tiers`` file atomically.

    Parameters
    ----------
    path : str or Path
    entries : dict
        ``{filter: {kernel_fwhm, nsigma, npixels, dilate}}`` (lists); validated first.
    provenance : dict, optional
        Stored under ``provenance`` (e.g. where the values came from).

    Returns
    -------
    Path
    """
    import asdf

    clean = {}
    for name, lists in entries.items():
        tiers_from_lists(lists, what=f"filter_tiers {name}")
        clean[str(name).upper()] = {
            "kernel_fwhm": [float(v) for v in lists["kernel_fwhm"]],
            "nsigma": [float(v) for v in lists["nsigma"]],
            "npixels": [int(v) for v in lists["npixels"]],
            "dilate": [float(v) for v in lists["dilate"]],
        }
    path = Path(path)
    with atomic_output(path) as tmp:
        asdf.AsdfFile({"filter_tiers": clean, "provenance": dict(provenance or {})}).write_to(tmp)
    return path
