"""Checks Image3Ceers runs around the stock steps: refuse what would give a wrong product.

Before any work (:func:`check_members`):

- ONE filter (FILTER + PUPIL) of ONE instrument: a mix gives an i2d with
  ``FILTER='MULTIPLE'`` that looks normal;
- no exposure twice (the same member listed twice, or copies of one exposure from two
  folders): a duplicate is drizzled twice, which overstates the depth (WHT) and
  understates ERR;
- every member a 2-D image in MJy/sr whose DQ/ERR/variances match SCI and whose
  variances are not negative;
- members with non-ASCII file names get the nearest ASCII spelling as ``meta.filename``
  (the stock steps write it into FITS headers and tables), so their products have
  ASCII names;
- pixels whose value cannot be physical (non-finite, or ``|SCI| > 1e6 MJy/sr``) are
  flagged DO_NOT_USE and set to NaN in the pipeline's copies, and counted in one log
  line: otherwise one unflagged artefact makes outlier_detection flag most of every
  exposure it overlaps;
- at least one usable pixel in some member, and a user resample grid (``crval``,
  ``output_shape``, ``pixel_scale``) that can overlap a member, else
  `CeersEmptyProductError`;
- no product the pipeline will save is one of its input files.

After ``outlier_detection`` (:func:`report_outlier_flagging`): a warning with the
numbers for every exposure of which it flagged an implausible fraction.
After ``resample`` (:func:`check_mosaic_not_empty`): an i2d without a single covered
finite pixel is removed and `CeersEmptyProductError` raised.
"""

import logging
from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import check_outputs_not_inputs, fits_safe_text
from jwst_ceers.errors import CeersDataError, CeersEmptyProductError
from jwst_ceers.file_names import exposure_root
from jwst_ceers.inputs import UNPHYSICAL_SURFACE_BRIGHTNESS, check_image_model, unphysical_pixels

__all__ = [
    "OUTLIER_FRACTION_WARNING",
    "check_grid_overlaps_members",
    "check_members",
    "check_mosaic_not_empty",
    "count_outlier_flags",
    "pipeline_output_paths",
    "report_outlier_flagging",
]

log = logging.getLogger(__name__)

_DO_NOT_USE = 1
_OUTLIER = 16  # jwst dqflags.pixel["OUTLIER"]
# outlier_detection flags ~0.01-1% of the pixels of a clean exposure (cosmic rays,
# residual hot pixels); more than this fraction of an exposure's usable pixels means the
# median it compares with was damaged (artefact, misalignment, mismatched sky levels)
OUTLIER_FRACTION_WARNING = 0.05
# per-image steps of Image3Ceers whose saved products keep the member names
_PER_MEMBER_STEPS = ("tweakreg", "skymatch", "outlier_detection", "pedestal", "varfill")


def _member_label(library, index, *, full=False):
    """File name of member ``index`` (``full``: as the association gives it, with folders)."""
    try:
        expname = library.asn["products"][0]["members"][index]["expname"]
    except (KeyError, IndexError, TypeError):
        return f"member {index}"
    return str(expname) if full else Path(expname).name


# header keys that together identify one exposure of one detector (flat datamodel names)
_EXPOSURE_HEADER_KEYS = (
    "meta.observation.program_number", "meta.observation.observation_number", "meta.observation.visit_number",
    "meta.observation.visit_group", "meta.observation.activity_id", "meta.observation.exposure_number",
    "meta.instrument.filter", "meta.instrument.pupil",
)


def _identity(meta, name):
    """
    Exposure identities of a member (flat metadata): file-name root + DETECTOR, and
    EXPSTART + DETECTOR + observation ids and filter (so that a renamed copy is found).
    """
    detector = str(meta.get("meta.instrument.detector") or "").upper()
    keys = [("exposure root", exposure_root(name).lower(), detector)]
    start = meta.get("meta.exposure.start_time")
    if start is not None and detector:
        ids = " ".join(str(meta.get(key) or "") for key in _EXPOSURE_HEADER_KEYS)
        keys.append(("EXPSTART and DETECTOR", f"{float(start):.9f} {ids}".strip(), detector))
    return keys


def check_members(pipeline, library):
    """
    Validate the members of an Image3Ceers input before any work; flag unphysical pixels.

    Parameters
    ----------
    pipeline : Image3Ceers
        For the names of the products it will save.
    library : ModelLibrary
        The association's exposures (the pipeline's own copies: flagged in place).

    Raises
    ------
    CeersDataError
        Several filters or instruments, an exposure twice, or a bad member (shapes,
        negative variance, units); the message names the files.
    CeersEmptyProductError
        No member has a usable pixel.
    CeersFileError
        A product would overwrite an input file.
    """
    names = [_member_label(library, i) for i in range(len(library))]
    seen = {}
    bands = {}
    with library:
        for index, name in enumerate(names):
            meta = library.read_metadata(index)
            instrument = str(meta.get("meta.instrument.name") or "?").upper()
            band = str(meta.get("meta.instrument.filter") or "?").upper()
            pupil = str(meta.get("meta.instrument.pupil") or "").upper()
            if pupil and pupil not in ("CLEAR", "CLEARP", "NONE", "N/A", "ANY"):
                band = f"{band}+{pupil}"
            bands.setdefault((instrument, band), []).append(name)
            resolved = str(Path(_member_label(library, index, full=True)).resolve())
            for key in [("file", resolved, ""), *_identity(meta, name)]:
                if key in seen:
                    raise CeersDataError(
                        f"{_member_label(library, index, full=True)} and {seen[key]} are the same exposure (same {key[0]}: "
                        f"{key[1]} {key[2]}); an exposure listed twice is drizzled twice "
                        "(depth overstated, errors understated): remove one from the association"
                    )
                seen[key] = _member_label(library, index, full=True)
    if len(bands) > 1:
        listing = "; ".join(
            f"{instrument} {band}: {', '.join(files[:3])}{' ...' if len(files) > 3 else ''}"
            for (instrument, band), files in sorted(bands.items())
        )
        kinds = "instruments" if len({i for i, _ in bands}) > 1 else "filters"
        raise CeersDataError(
            f"calwebb_image3_ceers takes ONE filter of ONE instrument; the input mixes {kinds} "
            f"({listing}). Make one association per filter (jwst-ceers asn)"
        )
    check_grid_overlaps_members(pipeline.resample, library, names)
    member_paths = _member_paths(library)
    check_outputs_not_inputs(pipeline_output_paths(pipeline, member_paths), member_paths, what="calwebb_image3_ceers product")
    _check_and_flag_data(library, names)


def _s_region_vertices(s_region):
    """(ra, dec) arrays of an S_REGION ``POLYGON [frame] ra1 dec1 ...`` (None if unparsable)."""
    numbers = []
    for token in str(s_region or "").split():
        try:
            numbers.append(float(token))
        except ValueError:
            continue
    if len(numbers) < 6 or len(numbers) % 2:
        return None
    return np.array(numbers[0::2]), np.array(numbers[1::2])


def check_grid_overlaps_members(resample, library, names):
    """
    Refuse, before any work, a user resample grid that no member can overlap.

    Rotation-free and conservative: the grid lies within ``R`` of ``crval`` (its
    farthest corner from ``crpix``), each member within its S_REGION's circumscribed
    circle; only when every member's circle misses the grid's circle is the run refused.
    Grids that barely miss are caught after resample (:func:`check_mosaic_not_empty`).

    Raises
    ------
    CeersEmptyProductError
        Naming the grid and the nearest member.
    """
    from astropy.coordinates import SkyCoord  # function-local: only user grids need it

    crval, shape, scale = resample.crval, resample.output_shape, resample.pixel_scale
    if not crval or not shape or not scale:
        return
    nx, ny = shape
    crpix = resample.crpix if resample.crpix else ((nx - 1) / 2.0, (ny - 1) / 2.0)
    corners = np.array([(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1)], dtype=float)
    grid_radius = (np.max(np.hypot(corners[:, 0] - crpix[0], corners[:, 1] - crpix[1])) + 1.0) * scale / 3600.0
    centre = SkyCoord(crval[0], crval[1], unit="deg")
    nearest = (np.inf, None)
    with library:
        for index, name in enumerate(names):
            vertices = _s_region_vertices(library.read_metadata(index).get("meta.wcsinfo.s_region"))
            if vertices is None:
                return  # cannot tell
            points = SkyCoord(*vertices, unit="deg")
            member_centre = SkyCoord(
                points.cartesian.mean(), representation_type="cartesian"
            ).represent_as("unitspherical")
            member_centre = SkyCoord(member_centre.lon, member_centre.lat)
            member_radius = float(np.max(member_centre.separation(points).deg))
            distance = float(member_centre.separation(centre).deg)
            if distance <= grid_radius + member_radius:
                return
            nearest = min(nearest, (distance - member_radius, name), key=lambda item: item[0])
    raise CeersEmptyProductError(
        f"resample grid (crval {list(crval)}, output_shape {list(shape)}, pixel_scale {scale}\") does not "
        f"overlap any member: the nearest, {nearest[1]}, ends {nearest[0]:.4g} deg from the grid centre, the "
        f"grid reaches {grid_radius:.4g} deg from it; no mosaic made (check crval/crpix of --steps.resample)"
    )


def _member_paths(library):
    """Member files of a library read from files ([] for models built in memory)."""
    directory = getattr(library, "_asn_dir", None)
    if not directory:
        return []
    try:
        members = library.asn["products"][0]["members"]
    except (KeyError, IndexError, TypeError):
        return []
    return [Path(directory) / m["expname"] for m in members if m.get("expname")]


def _check_and_flag_data(library, names):
    """Check each member's arrays; flag unphysical pixels; refuse when nothing is usable."""
    flagged = {}
    renamed = []
    usable = 0
    with library:
        for index, name in enumerate(names):
            model = library.borrow(index)
            modified = False
            try:
                check_image_model(model, what=name)
                filename = model.meta.filename
                if filename and fits_safe_text(filename) != filename:
                    # stock resample writes member names into a FITS table (ASCII only)
                    renamed.append((filename, fits_safe_text(filename)))
                    model.meta.filename = fits_safe_text(filename)
                    modified = True
                bad = unphysical_pixels(model.data)
                dq = np.asarray(model.dq) if model.hasattr("dq") else None
                newly = bad if dq is None else bad & ((dq & _DO_NOT_USE) == 0)
                count = int(np.count_nonzero(newly))
                if count:
                    flagged[name] = count
                    data = np.array(model.data, copy=True)
                    data[bad] = np.nan
                    model.data = data
                    if dq is not None:
                        model.dq = dq | np.where(bad, _DO_NOT_USE, 0).astype(dq.dtype)
                    modified = True
                good = ~bad if dq is None else ~bad & ((np.asarray(model.dq) & (_DO_NOT_USE | 512)) == 0)
                usable += int(np.count_nonzero(good))
            finally:
                library.shelve(model, index, modify=modified)
    if renamed:
        log.info(
            "%d member(s) have non-ASCII file names, which FITS headers and tables cannot hold: their "
            "products are named after the nearest ASCII spelling (e.g. %s -> %s); the inputs keep their names",
            len(renamed), *renamed[0],
        )
    if flagged:
        log.warning(
            "%d pixel(s) of %d member(s) are non-finite or |SCI| > %.0e MJy/sr without DO_NOT_USE: "
            "flagged DO_NOT_USE and ignored (%s)",
            sum(flagged.values()), len(flagged), UNPHYSICAL_SURFACE_BRIGHTNESS,
            ", ".join(f"{name}: {count}" for name, count in flagged.items()),
        )
    if usable == 0:
        raise CeersEmptyProductError(
            f"no usable pixel in any of the {len(names)} member(s) ({', '.join(names[:3])}"
            f"{' ...' if len(names) > 3 else ''}): all NaN, unphysical or DO_NOT_USE; no mosaic made"
        )


def pipeline_output_paths(pipeline, member_paths):
    """
    Products Image3Ceers will save: per-member products of steps asked to save, and the i2d.

    Parameters
    ----------
    pipeline : Image3Ceers
        With its steps configured as in ``process``.
    member_paths : sequence of Path

    Returns
    -------
    list of str
    """
    from jwst_ceers._step import _output_path  # function-local: _step imports the steps' modules

    paths = []
    for step_name in _PER_MEMBER_STEPS:
        step = getattr(pipeline, step_name)
        if step.skip or not (step.save_results or step.output_file):
            continue
        suffix = step.suffix or step.default_suffix()
        paths += [_output_path(step, model_filename=Path(p).name, suffix=suffix) for p in member_paths]
    resample = pipeline.resample
    if resample.save_results and pipeline.output_file:
        paths.append(resample.make_output_path(basepath=pipeline.output_file, suffix=resample.suffix or "i2d"))
    return paths


def count_outlier_flags(library):
    """OUTLIER-flagged pixels per member (before outlier_detection runs)."""
    counts = []
    with library:
        for index in range(len(library)):
            model = library.borrow(index)
            try:
                counts.append(int(np.count_nonzero(np.asarray(model.dq) & _OUTLIER)) if model.hasattr("dq") else 0)
            finally:
                library.shelve(model, index, modify=False)
    return counts


def report_outlier_flagging(library, before):
    """
    Warn, with the numbers, for each member of which outlier_detection flagged too much.

    Parameters
    ----------
    library : ModelLibrary
        After outlier_detection.
    before : list of int
        From :func:`count_outlier_flags` before it ran.

    Returns
    -------
    list of (str, float)
        Member name and flagged fraction of its usable pixels, for members above
        `OUTLIER_FRACTION_WARNING`.
    """
    damaged = []
    with library:
        for index in range(len(library)):
            model = library.borrow(index)
            try:
                if not model.hasattr("dq"):
                    continue
                dq = np.asarray(model.dq)
                # outlier_detection sets DO_NOT_USE with OUTLIER: usable before = still usable + new
                new = int(np.count_nonzero(dq & _OUTLIER)) - before[index]
                usable = int(np.count_nonzero((dq & (_DO_NOT_USE | 512)) == 0)) + new
                fraction = new / max(usable, 1)
                if fraction > OUTLIER_FRACTION_WARNING:
                    damaged.append((model.meta.filename or f"member {index}", fraction))
            finally:
                library.shelve(model, index, modify=False)
    for name, fraction in damaged:
        log.warning(
            "%s: outlier_detection flagged %.1f%% of its usable pixels (> %.0f%%); the median it "
            "compares with is probably damaged (an unflagged artefact in an overlapping exposure, "
            "misalignment or mismatched sky levels). Its coverage in the mosaic is reduced accordingly: "
            "check the inputs or rerun with --steps.outlier_detection.skip=true",
            name, 100.0 * fraction, 100.0 * OUTLIER_FRACTION_WARNING,
        )
    return damaged


def check_mosaic_not_empty(resample, result, product_name):
    """
    Raise CeersEmptyProductError (removing a saved i2d) if ``result`` has no covered finite pixel.

    Parameters
    ----------
    resample : ResampleStep
        The step that made (and maybe saved) ``result``.
    result : ImageModel
        The i2d.
    product_name : str or None
        The product name (for the message and the saved file name).
    """
    data = np.asarray(result.data)
    wht = getattr(result, "wht", None) if result.hasattr("wht") else None
    weight = np.ones(data.shape) if wht is None or np.shape(wht) != data.shape else np.asarray(wht)
    if np.count_nonzero(np.isfinite(data) & (weight > 0)):
        return
    removed = ""
    if resample.save_results and product_name:
        path = Path(resample.make_output_path(basepath=product_name, suffix=resample.suffix or "i2d"))
        if path.is_file():
            path.unlink()
            removed = f"; {path} removed"
    raise CeersEmptyProductError(
        f"{product_name or 'mosaic'}: the i2d has no finite pixel with weight > 0 "
        f"(shape {data.shape}; no member overlaps the output grid or every pixel is unusable){removed}"
    )
