"""Level-3 associations per (pointing or visit, filter) made from cal-file headers.

Stage 3 must never mosaic several filters together (a COSMOS-Web reduction of
simulated data did exactly that when it fed one association with every filter),
so the exposures are split by pointing or visit *and* by optical element
(FILTER plus PUPIL when the pupil carries a filter, e.g. F150W2+F162M), and one
association is written per group with jwst's
:func:`~jwst.associations.asn_from_list.asn_from_list`.

Only the FITS headers are read (no data arrays), so grouping thousands of
exposures is fast.
"""

import glob
import logging
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from jwst_ceers.associations.product_suffixes import directory_exposure_files
from jwst_ceers.atomic_io import write_text_atomic
from jwst_ceers.errors import CeersDataError, CeersFileError, CeersParameterError
from jwst_ceers.file_names import exposure_root
from jwst_ceers.inputs import require_file

__all__ = [
    "ExposureInfo",
    "AssociationGroup",
    "find_exposure_files",
    "read_exposure_info",
    "group_exposures",
    "build_association",
    "drop_duplicate_exposures",
    "write_associations",
]

log = logging.getLogger(__name__)

# Pupil values that do not change the band (NIRCam imaging uses CLEAR; the
# medium/narrow bands F162M, F164N, F323N, F405N, F466N, F470N sit in the pupil wheel).
_NEUTRAL_PUPILS = {"", "CLEAR", "CLEARP", "NONE", "N/A", "ANY"}

GROUPING_KEYS = ("pointing", "visit", "program")


@dataclass(frozen=True)
class ExposureInfo:
    """Header facts of one Level-2 exposure needed to associate it.

    Attributes
    ----------
    path : Path
        Absolute path of the file.
    program, observation, visit : str
        Observation identifiers (PROGRAM, OBSERVTN, VISIT keywords).
    filter, pupil : str
        Optical elements (FILTER, PUPIL keywords; pupil ``""`` when absent).
    detector : str
        Detector name (DETECTOR keyword), ``""`` when absent.
    exp_type : str
        EXP_TYPE keyword, ``""`` when absent.
    start_time : str
        EXPSTART keyword (MJD) as written, ``""`` when absent.
    exposure : str
        EXPOSURE keyword (exposure number within the visit), ``""`` when absent.
    """

    path: Path
    program: str
    observation: str
    visit: str
    filter: str
    pupil: str
    detector: str
    exp_type: str
    start_time: str = ""
    exposure: str = ""

    def identities(self):
        """
        Keys that are equal for two files of one exposure (copies, other product levels).

        The exposure root of the file name with the detector, and EXPSTART with the
        detector, observation ids, exposure number and band when the header has
        EXPSTART and DETECTOR (hand-made files may share one EXPSTART across visits).
        """
        keys = [
            ("file", str(self.path.resolve()), ""),
            ("exposure root", exposure_root(self.path.name).lower(), self.detector),
        ]
        if self.start_time and self.detector:
            ids = f"{self.start_time} {self.program} {self.observation} {self.visit} {self.exposure} {self.band}"
            keys.append(("EXPSTART and DETECTOR", ids, self.detector))
        return keys

    @property
    def band(self):
        """Lower-case band name: ``f150w``, or ``f150w2-f162m`` for a pupil-wheel filter."""
        band = self.filter.lower()
        if self.pupil.upper() not in _NEUTRAL_PUPILS:
            band = f"{band}-{self.pupil.lower()}"
        return band

    @property
    def program_id(self):
        """``jw<program>``."""
        return f"jw{self.program}"

    @property
    def pointing_id(self):
        """``jw<program>-o<observation>`` (the pointing: one observation)."""
        return f"{self.program_id}-o{self.observation}"

    @property
    def visit_id(self):
        """``jw<program>-o<observation>-v<visit>``."""
        return f"{self.pointing_id}-v{self.visit}"

    @property
    def detector_group_id(self):
        """Tweakreg group id shared by the dithers of one detector within one visit."""
        return f"jw{self.program}{self.observation}{self.visit}_{self.detector.lower()}"


@dataclass(frozen=True)
class AssociationGroup:
    """Exposures that go into one Level-3 association.

    Attributes
    ----------
    field_id : str
        Pointing, visit or program identifier (``ExposureInfo.pointing_id`` /
        ``visit_id`` / ``program_id``).
    band : str
        Lower-case band name shared by every member.
    exposures : tuple of ExposureInfo
        Members, sorted by file name.
    """

    field_id: str
    band: str
    exposures: tuple


def _header_string(header, keyword):
    value = header.get(keyword)
    if value is None:
        return None
    return str(value).strip()


def find_exposure_files(inputs, *, suffixes=None):
    """
    Expand directories, glob patterns and file names into a sorted list of files.

    Parameters
    ----------
    inputs : str, Path or sequence of them
        Directories (searched for ``*_<suffix>.fits``), glob patterns or file names.
    suffixes : sequence of str, optional
        File suffixes looked for inside directories (``cal``, ``crf`` ...). Default:
        whichever one of ``RECOGNISED_SUFFIXES`` (``cal``, ``crf``, ``tweakreg``,
        ``match``) the directory holds; a directory holding several of them, or none,
        is an error that lists the suffixes found and those looked for.

    Returns
    -------
    list of Path
        Unique absolute paths, sorted.

    Raises
    ------
    CeersFileError
        If a named file does not exist, or a directory or pattern matches nothing.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found = set()
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            matches = directory_exposure_files(path, suffixes)
        elif glob.has_magic(text):
            matches = [Path(m) for m in glob.glob(text)]
            if not matches:
                raise CeersFileError(f"{text}: pattern matches no file")
        elif path.is_file():
            matches = [path]
        else:
            raise CeersFileError(f"{path}: input file does not exist")
        found.update(m.resolve() for m in matches)
    if not found:
        raise CeersFileError("no input files given")
    return sorted(found)


def read_exposure_info(path):
    """
    Read the association-relevant keywords of one exposure (headers only).

    Parameters
    ----------
    path : str or Path
        A Level-2 FITS product (``*_cal.fits``, ``*_crf.fits``).

    Returns
    -------
    ExposureInfo

    Raises
    ------
    CeersFileError
        If the file is missing, is not readable FITS, or lacks FILTER or the
        observation identifiers.
    """
    from astropy.io import fits

    path = require_file(path, what="input file")
    try:
        header = fits.getheader(path, 0)
    except Exception as exc:  # astropy raises OSError, TypeError, ValueError ... on bad files
        raise CeersFileError(f"{path}: cannot read FITS header ({exc})") from exc
    values = {}
    for keyword in ("PROGRAM", "OBSERVTN", "VISIT", "FILTER"):
        value = _header_string(header, keyword)
        if not value:
            raise CeersFileError(f"{path}: primary header has no {keyword} keyword")
        values[keyword] = value
    return ExposureInfo(
        path=path.resolve(),
        program=values["PROGRAM"],
        observation=values["OBSERVTN"],
        visit=values["VISIT"],
        filter=values["FILTER"].upper(),
        pupil=(_header_string(header, "PUPIL") or "").upper(),
        detector=(_header_string(header, "DETECTOR") or "").upper(),
        exp_type=(_header_string(header, "EXP_TYPE") or "").upper(),
        start_time=_header_string(header, "EXPSTART") or "",
        exposure=_header_string(header, "EXPOSURE") or "",
    )


def group_exposures(exposures, *, by="pointing", filters=None):
    """
    Split exposures into groups of one pointing (or visit) and one band.

    Parameters
    ----------
    exposures : iterable of ExposureInfo
        Exposures, e.g. from :func:`read_exposure_info`.
    by : {'pointing', 'visit', 'program'}, optional
        ``pointing`` groups by program + observation, ``visit`` also by visit,
        ``program`` only by program (all given files of a program and band in one
        association: use it when the inputs already are one pointing's files).
    filters : sequence of str, optional
        Keep only these bands (case-insensitive; ``F150W`` or ``f150w2-f162m``).

    Returns
    -------
    list of AssociationGroup
        Sorted by field id then band; never mixes two bands.

    Raises
    ------
    CeersParameterError
        If ``by`` is unknown or ``filters`` selects nothing.
    """
    if by not in GROUPING_KEYS:
        raise CeersParameterError(f"by={by!r}: must be one of {', '.join(GROUPING_KEYS)}")
    wanted = None if filters is None else {f.lower() for f in filters}
    groups = defaultdict(list)
    for exposure in exposures:
        if wanted is not None and exposure.band not in wanted:
            continue
        field_id = {"pointing": exposure.pointing_id, "visit": exposure.visit_id, "program": exposure.program_id}[by]
        groups[(field_id, exposure.band)].append(exposure)
    if not groups:
        if wanted is not None:
            raise CeersParameterError(f"filters={sorted(wanted)}: no input exposure has these bands")
        raise CeersParameterError("no exposures to associate")
    return [
        AssociationGroup(field_id, band, tuple(sorted(members, key=lambda e: e.path.name)))
        for (field_id, band), members in sorted(groups.items())
    ]


def drop_duplicate_exposures(exposures):
    """
    Keep one file per exposure; warn, naming both files, for each one dropped.

    An exposure listed twice (or two copies of it in two folders) would be drizzled
    twice: the mosaic's depth (WHT) overstated and its errors understated. Files are
    the same exposure when :meth:`ExposureInfo.identities` share a key; the first file
    in the given order is kept.

    Parameters
    ----------
    exposures : iterable of ExposureInfo

    Returns
    -------
    list of ExposureInfo
        The kept exposures, in the given order.
    """
    kept, seen = [], {}
    for exposure in exposures:
        first = next((seen[key] for key in exposure.identities() if key in seen), None)
        if first is not None:
            key = next(k for k in exposure.identities() if k in seen)
            log.warning(
                "%s is the same exposure as %s (same %s); it is left out so that the exposure is "
                "drizzled once",
                exposure.path, first.path, key[0],
            )
            continue
        for key in exposure.identities():
            seen[key] = exposure
        kept.append(exposure)
    return kept


def _relative_name(path, directory):
    """Path of ``path`` relative to ``directory`` (as associations store members)."""
    return Path(os.path.relpath(path, directory)).as_posix()


def build_association(group, product_name, *, asn_dir, group_by_detector=False, catalog_suffix=None):
    """
    Build one Level-3 association (a jwst ``Association``) for ``group``.

    Parameters
    ----------
    group : AssociationGroup
        The exposures (all of one band).
    product_name : str
        Level-3 product name (the stage-3 outputs are ``<product_name>_i2d.fits`` ...).
    asn_dir : str or Path
        Directory the association will be written to; member names are relative to it.
    group_by_detector : bool, optional
        Give each member a ``group_id`` shared by the dithers of one detector in one
        visit, so that tweakreg aligns them as one rigid group.
    catalog_suffix : str, optional
        Add ``tweakreg_catalog = <root>_<catalog_suffix>.ecsv`` to each member whose
        catalog file exists beside the exposure (``<root>`` is the file name without
        its last ``_<suffix>.fits``).

    Returns
    -------
    jwst.associations.Association
        Validated association whose single product holds every member.

    Raises
    ------
    CeersDataError
        If the members do not all share one band.

    Notes
    -----
    Files of one exposure (copies in two folders, a file listed twice) are kept once,
    with a warning naming both (:func:`drop_duplicate_exposures`).
    """
    from jwst.associations.asn_from_list import asn_from_list

    bands = {e.band for e in group.exposures}
    if len(bands) != 1:
        # Never reached through group_exposures; guards hand-made groups.
        raise CeersDataError(f"{product_name}: members of several bands {sorted(bands)} in one association")
    exposures = drop_duplicate_exposures(group.exposures)
    asn_dir = Path(asn_dir).resolve()
    members = [_relative_name(e.path, asn_dir) for e in exposures]
    association = asn_from_list(members, product_name=product_name)
    association.data["asn_type"] = "image3"
    association.data["target"] = group.field_id
    association.data["program"] = group.exposures[0].program
    missing_catalogs = []
    for member, exposure in zip(association["products"][0]["members"], exposures, strict=True):
        if group_by_detector:
            if not exposure.detector:
                raise CeersFileError(f"{exposure.path}: no DETECTOR keyword for group_by_detector")
            member["group_id"] = exposure.detector_group_id
        if catalog_suffix:
            root = exposure.path.name.removesuffix(".fits").rsplit("_", 1)[0]
            catalog = exposure.path.with_name(f"{root}_{catalog_suffix}.ecsv")
            if catalog.is_file():
                member["tweakreg_catalog"] = _relative_name(catalog, asn_dir)
            else:
                missing_catalogs.append(catalog.name)
    if missing_catalogs:
        log.warning(
            "%s: %d of %d members have no %s catalog (e.g. %s); tweakreg builds those",
            product_name, len(missing_catalogs), len(members), catalog_suffix, missing_catalogs[0],
        )
    return association


def write_associations(
    inputs,
    output_dir=".",
    *,
    by="pointing",
    product=None,
    filters=None,
    group_by_detector=False,
    catalog_suffix=None,
    suffixes=None,
):
    """
    Write one Level-3 association per (pointing or visit, band) of the inputs.

    Parameters
    ----------
    inputs : str, Path or sequence of them
        Directories, glob patterns or files (see :func:`find_exposure_files`).
    output_dir : str or Path, optional
        Where the ``<product>_<band>.json`` files go (created if needed).
    by : {'pointing', 'visit', 'program'}, optional
        Group by program + observation (default), also by visit, or only by
        program (see :func:`group_exposures`); always also by band.
    product : str, optional
        Product name prefix. Default: the pointing, visit or program id
        (``jw01345-o001`` / ``jw01345-o001-v001`` / ``jw01345``). A given prefix
        requires the inputs to hold a single pointing (or visit, or program).
    filters : sequence of str, optional
        Only these bands.
    group_by_detector : bool, optional
        Per-member ``group_id`` per visit + detector (see :func:`build_association`).
    catalog_suffix : str, optional
        Per-member ``tweakreg_catalog`` ``<root>_<catalog_suffix>.ecsv`` when present.
    suffixes : sequence of str, optional
        File suffixes looked for in directories (default: see :func:`find_exposure_files`).

    Returns
    -------
    list of Path
        The association files written, sorted.

    Raises
    ------
    CeersFileError
        For a missing or unreadable input (the message names it) or an unwritable output.
    CeersParameterError
        For an unknown ``by``, an empty filter selection, or a ``product`` given for
        inputs spanning several pointings.
    """
    from jwst.associations import AssociationNotValidError

    files = find_exposure_files(inputs, suffixes=suffixes)
    exposures = [read_exposure_info(f) for f in files]
    groups = group_exposures(exposures, by=by, filters=filters)
    field_ids = sorted({g.field_id for g in groups})
    if product is not None and len(field_ids) > 1:
        raise CeersParameterError(
            f"product={product!r}: inputs span {len(field_ids)} {by}s ({', '.join(field_ids)}); "
            "give the files of one or omit the product name"
        )
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CeersFileError(f"{output_dir}: cannot create output directory ({exc.strerror or exc})") from exc
    written = []
    for group in groups:
        product_name = f"{product or group.field_id}_{group.band}"
        association = build_association(
            group,
            product_name,
            asn_dir=output_dir,
            group_by_detector=group_by_detector,
            catalog_suffix=catalog_suffix,
        )
        try:
            with warnings.catch_warnings():
                # Members outside output_dir are stored as relative paths on purpose.
                warnings.filterwarnings("ignore", message=".*contains path information")
                _, serialized = association.dump(format="json")
        except AssociationNotValidError as exc:
            raise CeersDataError(f"{product_name}: association not valid ({exc})") from exc
        path = write_text_atomic(serialized, output_dir / f"{product_name}.json")
        log.info("%s: %d exposures (%s)", path.name, len(association["products"][0]["members"]), group.band)
        written.append(path)
    return written
