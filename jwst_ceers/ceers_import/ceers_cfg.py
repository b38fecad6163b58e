"""CEERS's alignment cfgs and ``mosaic_background.cfg`` as jwst_ceers parameter files.

Alignment cfgs (``f115w.cfg`` ...; INI, one section per visit) become
``ceers_tweakreg`` parameter files; ``mosaic_background.cfg`` (a ``[nircam]``
section and one per HST filter) becomes a ``ceers_mosaic_bkg`` parameter file plus
a ``filter_tiers`` file holding every filter's own tiers. Keys are mapped by
meaning, not by name:

- CEERS's ``snr_threshold``, ``kernel_fwhm``, ``kernel_nsigma`` and ``bkg_boxsize``
  were never in effect (their catalogs came from SExtractor with ``detect_thresh``
  and ``detect_minarea``): ``detect_thresh`` becomes ``snr_threshold`` (sep, like
  SExtractor, thresholds in units of the background rms), ``detect_minarea``
  becomes ``npixels``, and the others are not carried over.
- ``tier_nsigma`` counts CEERS's unsmoothed-image rms; jwst_ceers counts each
  smoothed image's rms, so the values are converted (`tier_nsigma`).

Every key without an exact equivalent is returned as a `KeyNote` saying why.
"""

import configparser
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import atomic_output, check_outputs_not_inputs, ensure_output_directory
from jwst_ceers.ceers_import.tier_nsigma import (
    FWHM_PER_SIGMA,
    measured_smoothing_gain,
    smoothed_nsigma,
    white_noise_smoothing_gain,
)
from jwst_ceers.errors import CeersFileError

__all__ = ["KeyNote", "ImportedFile", "read_ceers_cfg", "convert_ceers_cfg", "write_imported"]

log = logging.getLogger(__name__)

TWEAKREG_CLASS = "jwst_ceers.CatalogTweakReg"
MOSAIC_BKG_CLASS = "jwst_ceers.MosaicBackground"
FILTER_TIERS_FILE = "ceers_mosaic_bkg_filter_tiers.asdf"

# ceers_tweakreg parameters with CEERS's names and meanings
_SAME_NAME = (
    "minobj", "searchrad", "separation", "tolerance", "nclip", "sigma",
    "abs_minobj", "abs_searchrad", "abs_separation", "abs_tolerance", "abs_nclip", "abs_sigma",
)
_RENAMED = {
    "detect_thresh": (
        "snr_threshold",
        "SExtractor DETECT_THRESH: threshold in units of the background rms, as ceers_tweakreg's sep detection",
    ),
    "detect_minarea": ("npixels", "SExtractor DETECT_MINAREA: minimum connected pixels"),
    "abs_fitgeom": ("abs_fitgeometry", "absolute fit geometry per detector group, as CEERS"),
}
_NOT_IN_EFFECT = {
    "snr_threshold": "never in effect in CEERS (catalogs from SExtractor with detect_thresh); "
    "ceers_tweakreg's snr_threshold takes detect_thresh",
    "kernel_fwhm": "never in effect in CEERS (SExtractor's own filter was used); ceers_tweakreg keeps its "
    "2 px Gaussian detection filter",
    "kernel_nsigma": "never in effect in CEERS (size of an unused photutils kernel)",
    "bkg_boxsize": "never in effect in CEERS (SExtractor estimated the background); ceers_tweakreg keeps "
    "its 128 px mesh",
}

# mosaic_background.cfg
CEERS_KERNEL_SIGMAS = (25.0, 15.0, 5.0, 2.0)  # Gaussian2DKernel(25, 15, 5, 2) in CEERS's script: standard deviations
_BACKGROUND_SCALARS = {
    "bg_box_size": ("bkg_box_size", "Background2D box size, pixels"),
    "bg_filter_size": ("bkg_filter_size", "Background2D median filter size, boxes"),
    "ring_radius_in": ("ring_radius", "inner radius of the ring-median filter, pixels"),
    "ring_width": ("ring_width", "width of the ring-median filter, pixels"),
}
_TIER_LISTS = {"tier_nsigma": "nsigma", "tier_npixels": "npixels", "tier_dilate_size": "dilate"}
NIRCAM_SECTION = "nircam"


@dataclass(frozen=True)
class KeyNote:
    """What became of one CEERS key.

    Attributes
    ----------
    source : str
        ``file [section]``.
    key, value : str
        The CEERS key and its value as written.
    target : str or None
        The jwst_ceers parameter it went to (None: not carried over).
    exact : bool
        False when the meaning is not kept exactly (listed as "no equivalent").
    reason : str
    """

    source: str
    key: str
    value: str
    target: str | None
    exact: bool
    reason: str

    def line(self):
        """One printable line."""
        where = f"-> {self.target}" if self.target else "-> (not carried over)"
        return f"{self.source}: {self.key} = {self.value} {where}: {self.reason}"


@dataclass
class ImportedFile:
    """One parameter file to write: ``name`` and its asdf ``tree``."""

    name: str
    tree: dict
    notes: list = field(default_factory=list)


def read_ceers_cfg(path):
    """
    Sections of a CEERS cfg as ``{section: {key: text}}`` (comments removed).

    Raises
    ------
    CeersFileError
        If the file is missing or not INI (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise CeersFileError(f"{path}: CEERS cfg file does not exist")
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",), interpolation=None, strict=True)
    try:
        parser.read_string(path.read_text(), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise CeersFileError(f"{path}: not a CEERS cfg (INI) file: {exc}") from exc
    sections = {name: dict(parser[name]) for name in parser.sections()}
    if not sections:
        raise CeersFileError(f"{path}: no [section] in the CEERS cfg")
    return sections


def _number(text, *, where):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError as exc:
        raise CeersFileError(f"{where}: {text!r} is not a number") from exc


def _numbers(text, *, where):
    return [_number(word.strip(), where=where) for word in text.split(",") if word.strip()]


def convert_ceers_cfg(path, *, noise_mosaics=None):
    """
    Convert one CEERS cfg (alignment or mosaic background) to parameter files.

    Parameters
    ----------
    path : str or Path
        ``<filter>.cfg`` (alignment; sections are visits) or ``mosaic_background.cfg``.
    noise_mosaics : dict, optional
        ``{FILTER: mosaic path}``: measure each filter's smoothing gain on its mosaic
        (correlated drizzle noise included) to convert ``tier_nsigma``; filters
        without one get the white-noise conversion. Also gives those NIRCam filters
        their own ``filter_tiers`` entry.

    Returns
    -------
    list of ImportedFile
        With the notes of every key (``notes`` of the first file hold them all).

    Raises
    ------
    CeersFileError
        For a file that is neither kind, or a bad value (named).
    """
    path = Path(path)
    sections = read_ceers_cfg(path)
    keys = {key for values in sections.values() for key in values}
    if keys & set(_TIER_LISTS):
        return _convert_background(path, sections, noise_mosaics or {})
    if keys & ({"detect_thresh", "minobj", "abs_minobj"} | set(_SAME_NAME)):
        if noise_mosaics:
            log.info("%s: an alignment cfg; --noise-from is not used for it", path.name)
        return _convert_alignment(path, sections)
    raise CeersFileError(
        f"{path}: neither a CEERS alignment cfg (detect_thresh, minobj ...) nor mosaic_background.cfg "
        f"(tier_nsigma ...); keys found: {', '.join(sorted(keys))}"
    )


# ------------------------------------------------------------------ alignment
def _convert_alignment(path, sections):
    files = []
    for section, values in sections.items():
        source = f"{path.name} [{section}]"
        parameters, notes = {}, []
        for key, text in values.items():
            where = f"{source} {key}"
            if key in _SAME_NAME:
                parameters[key] = _number(text, where=where)
                notes.append(KeyNote(source, key, text, key, True, "same name and meaning"))
            elif key in _RENAMED:
                target, reason = _RENAMED[key]
                value = text.strip() if key == "abs_fitgeom" else _number(text, where=where)
                parameters[target] = value
                notes.append(KeyNote(source, key, text, target, True, reason))
            elif key in _NOT_IN_EFFECT:
                notes.append(KeyNote(source, key, text, None, False, _NOT_IN_EFFECT[key]))
            elif key == "deblend":
                levels = _number(text, where=where)
                parameters["deblend"] = bool(levels)
                notes.append(KeyNote(
                    source, key, text, "deblend", False,
                    f"a count of deblending levels (DEBLEND_NTHRESH-like) has no equivalent: ceers_tweakreg "
                    f"deblends with sep's 32 levels or not at all; deblend = {bool(levels)}",
                ))
            else:
                notes.append(KeyNote(source, key, text, None, False, "not a CEERS alignment key known here"))
        parameters["flat_rms"] = True
        notes.append(KeyNote(
            source, "(implicit)", "", "flat_rms", True,
            "CEERS's SExtractor detection used one background rms per image: flat_rms = True",
        ))
        suffix = f"_{section}" if len(sections) > 1 else ""
        name = f"ceers_tweakreg_{path.stem}{suffix}.asdf"
        tree = {"class": TWEAKREG_CLASS, "name": "ceers_tweakreg", "parameters": parameters}
        files.append(ImportedFile(name, tree, notes))
    return files


# ---------------------------------------------------------- mosaic background
def _tier_lists(values, *, source, nsigma_gain, gain_origin):
    """``{kernel_fwhm, nsigma, npixels, dilate}`` of one cfg section, nsigma converted."""
    lists, notes = {}, []
    for key, target in _TIER_LISTS.items():
        if key not in values:
            raise CeersFileError(f"{source}: no {key}")
        lists[target] = _numbers(values[key], where=f"{source} {key}")
    counts = {len(v) for v in lists.values()}
    if counts != {len(CEERS_KERNEL_SIGMAS)}:
        raise CeersFileError(
            f"{source}: tier lists must have {len(CEERS_KERNEL_SIGMAS)} values (CEERS's kernels "
            f"{CEERS_KERNEL_SIGMAS}), got {', '.join(f'{k}={len(v)}' for k, v in lists.items())}"
        )
    kernel_fwhm = [sigma * FWHM_PER_SIGMA for sigma in CEERS_KERNEL_SIGMAS]
    gains = nsigma_gain(kernel_fwhm)
    ceers_nsigma = list(lists["nsigma"])
    lists["nsigma"] = [round(float(v), 3) for v in smoothed_nsigma(ceers_nsigma, reference="unsmoothed", gain=gains)]
    lists["kernel_fwhm"] = [round(f, 3) for f in kernel_fwhm]
    notes.append(KeyNote(
        source, "tier_nsigma", values["tier_nsigma"], "nsigma", True,
        f"CEERS counts the UNSMOOTHED image's rms, jwst_ceers each smoothed image's: x gain "
        f"{', '.join(f'{g:.1f}' for g in gains)} ({gain_origin}) -> {lists['nsigma']}",
    ))
    notes.append(KeyNote(source, "tier_npixels", values["tier_npixels"], "npixels", True, "minimum connected pixels"))
    notes.append(KeyNote(source, "tier_dilate_size", values["tier_dilate_size"], "dilate", True, "dilation disk radius"))
    notes.append(KeyNote(
        source, "(script)", "Gaussian2DKernel(25, 15, 5, 2)", "kernel_fwhm", True,
        "CEERS's kernels are not in the cfg; their standard deviations 25, 15, 5, 2 px as FWHM",
    ))
    return lists, notes


def _gain_functions(noise_mosaics, *, ring_radius, ring_width):
    """``{FILTER: (gain function, origin text, is_jwst)}`` measured on mosaics as MosaicBackground sees them."""
    from jwst_ceers.mosaic_bkg.mosaic_io import read_mosaic
    from jwst_ceers.mosaic_bkg.ring_median import ring_median_background

    kernels = [sigma * FWHM_PER_SIGMA for sigma in CEERS_KERNEL_SIGMAS]
    functions = {}
    for filter_name, mosaic_path in noise_mosaics.items():
        mosaic = read_mosaic(str(mosaic_path))
        try:
            noise = mosaic.noise if mosaic.noise is not None and np.ndim(mosaic.noise) == 2 else None
            ring = ring_median_background(mosaic.data, mosaic.nodata, radius=ring_radius, width=ring_width)
            gains = list(measured_smoothing_gain(
                mosaic.data, kernel_fwhm=kernels, excluded=mosaic.nodata, noise=noise, background=ring
            ))
        finally:
            if mosaic.hdul is not None:
                mosaic.hdul.close()
            if mosaic.model is not None:
                mosaic.model.close()
        log.info("%s: smoothing gains %s measured on %s", filter_name, np.round(gains, 2), mosaic_path)
        functions[filter_name.upper()] = (
            lambda _fwhms, gains=gains: gains,
            f"measured on {Path(mosaic_path).name}",
            mosaic.is_jwst,
        )
    return functions


def _white_gains(fwhms):
    return [white_noise_smoothing_gain(f) for f in fwhms]


def _convert_background(path, sections, noise_mosaics):
    white = (_white_gains, "white noise; drizzled mosaics need less: give --noise-from")
    parameters, notes, filter_entries = {}, [], {}
    names = {name.lower(): name for name in sections}
    if NIRCAM_SECTION not in names:
        raise CeersFileError(f"{path}: no [{NIRCAM_SECTION}] section (the NIRCam tiers)")

    # scalars: one value per run in jwst_ceers
    for key, (target, reason) in _BACKGROUND_SCALARS.items():
        per_section = {name: values[key] for name, values in sections.items() if key in values}
        if not per_section:
            continue
        nircam_value = per_section.get(names[NIRCAM_SECTION], next(iter(per_section.values())))
        parameters[target] = _number(nircam_value, where=f"{path.name} {key}")
        differing = sorted(name for name, text in per_section.items() if text.strip() != nircam_value.strip())
        notes.append(KeyNote(f"{path.name} [all]", key, nircam_value, target, not differing, reason + (
            f"; differs in [{', '.join(differing)}] but jwst_ceers has one value per run: [nircam]'s taken"
            if differing else ""
        )))
    measured = _gain_functions(
        noise_mosaics, ring_radius=parameters.get("ring_radius", 80.0), ring_width=parameters.get("ring_width", 4.0)
    )
    if parameters.get("bkg_box_size", 0) % 2:
        box = parameters["bkg_box_size"]
        parameters["bkg_box_size"] = box + 1
        notes.append(KeyNote(f"{path.name} [all]", "bg_box_size", str(box), "bkg_box_size", False,
                             f"jwst_ceers needs an even box: {box + 1}"))

    # Features CEERS's algorithm did not have are switched off, so that the imported
    # settings keep CEERS's meaning: its tiers saw the unclipped image (a ceiling
    # changes the mask fraction by ~6 points on a simulated F150W mosaic), and its
    # background was Background2D boxes + a median filter, not a smoothing spline.
    parameters["detection_ceiling_nsigma"] = 0.0
    notes.append(KeyNote(f"{path.name} [all]", "(no key)", "-", "detection_ceiling_nsigma", True,
                         "0 (off): CEERS's tiers smoothed the unclipped image"))
    parameters["bkg_smoothing"] = 0.0
    notes.append(KeyNote(f"{path.name} [all]", "(no key)", "-", "bkg_smoothing", True,
                         "0: boxes + median filter (bkg_filter_size), as CEERS's Background2D"))

    for name, values in sections.items():
        source = f"{path.name} [{name}]"
        for key, text in values.items():
            if key not in _BACKGROUND_SCALARS and key not in _TIER_LISTS:
                notes.append(KeyNote(source, key, text, None, False, "not a mosaic_background.cfg key known here"))
        if name.lower() == NIRCAM_SECTION:
            lists, tier_notes = _tier_lists(values, source=source, nsigma_gain=white[0], gain_origin=white[1])
            for key, value in lists.items():
                parameters[f"nircam_{key}"] = value
            notes.extend(
                KeyNote(n.source, n.key, n.value, f"nircam_{n.target}", n.exact, n.reason) for n in tier_notes
            )
            continue
        gain, origin = measured[name.upper()][:2] if name.upper() in measured else white
        lists, tier_notes = _tier_lists(values, source=source, nsigma_gain=gain, gain_origin=origin)
        filter_entries[name.upper()] = lists
        notes.extend(
            KeyNote(n.source, n.key, n.value, f"filter_tiers {name.upper()} {n.target}", n.exact, n.reason)
            for n in tier_notes
        )
    # NIRCam filters with a measured mosaic: their own entry from [nircam]
    for filter_name, (gain, origin, is_jwst) in measured.items():
        if filter_name in filter_entries or not is_jwst:
            continue
        source = f"{path.name} [{names[NIRCAM_SECTION]}]"
        lists, tier_notes = _tier_lists(sections[names[NIRCAM_SECTION]], source=source, nsigma_gain=gain,
                                        gain_origin=origin)
        filter_entries[filter_name] = lists
        notes.extend(
            KeyNote(n.source, n.key, n.value, f"filter_tiers {filter_name} {n.target}", n.exact, n.reason)
            for n in tier_notes if n.key == "tier_nsigma"
        )
    files = []
    if filter_entries:
        parameters["filter_tiers"] = FILTER_TIERS_FILE
        files.append(ImportedFile(FILTER_TIERS_FILE, {
            "filter_tiers": filter_entries,
            "provenance": {"source": path.name, "nsigma": "smoothed-image rms (converted from CEERS's unsmoothed)"},
        }))
    tree = {"class": MOSAIC_BKG_CLASS, "name": "ceers_mosaic_bkg", "parameters": parameters}
    return [ImportedFile("ceers_mosaic_bkg.asdf", tree, notes)] + files


def write_imported(files, output_dir, *, inputs=()):
    """
    Write converted parameter files into ``output_dir`` (created), atomically.

    The directory and every output name are checked before anything is written;
    an output that would overwrite an input is refused.

    Returns
    -------
    list of Path
    """
    import asdf

    if len({f.name for f in files}) != len(files):
        names = sorted(f.name for f in files)
        raise CeersFileError(f"{output_dir}: two converted files would have the same name ({', '.join(names)})")
    output_dir = ensure_output_directory(output_dir, what="import-ceers output directory")
    paths = [output_dir / f.name for f in files]
    check_outputs_not_inputs(paths, inputs, what="converted parameter file")
    for imported, path in zip(files, paths, strict=True):
        with atomic_output(path) as tmp:
            asdf.AsdfFile(imported.tree).write_to(tmp)
    return paths
