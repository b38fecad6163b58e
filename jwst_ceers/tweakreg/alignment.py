"""Relative and per-group absolute alignment of JWST image WCSs.

CEERS' two passes (Bagley et al. 2023, sec. 3.3.1):

1. **relative**: inside one group (by default the dithers of one detector in
   one visit and filter) every image is fitted to the others with
   `stcal.tweakreg.tweakreg.relative_align` (tweakwcs matching and fitting;
   each image is its own tweakwcs group, one of them the reference);
2. **absolute**: the group -- now internally consistent -- is fitted as one
   rigid body to the absolute reference catalog with `tweakwcs.align_wcs`.
   Unlike stock tweakreg, which forces every image of the association into a
   single absolute group, each group here gets its own solution, so that
   per-detector offsets (a few tens of mas in NIRCam) are removed.

Measured choices (``benchmarks/bench_tweakreg.py``, three simulated visits):
the per-group geometry defaults to a shift -- a 3-parameter rshift/rscale fit
per 64" detector adds 0.5-3 mas of rotation noise when the roll is known;
before the absolute fit, the detections of one source in the group's dithers
are averaged into one entry (`_merge_dither_catalogs`): fed three copies, the
one-to-one matcher keeps the copy nearest to its first guess and biased a LW
group by ~1 mas. A roll error common to the visit is handled by the optional
visit-level fit (per-group shifts plus one common rotation/scale,
`_visit_pass`). After the first absolute fit, each group is matched again
around its solution and refitted until it stops moving (``refine_iterations``,
`_refine_unit`): the first match is centred on the 2-D histogram's coarse guess
and biased the fit towards it by up to 3 mas.

Images whose relative fit failed are fitted to the reference catalog on their
own. A group whose absolute fit fails keeps its original WCS (status SKIPPED),
with the reason in its fit record.

All functions work on `AlignmentImage` records (a gwcs, its reference angles
and a source catalog) and return new WCS objects: the input WCSs are never
modified (tweakwcs correctors work on deep copies).
"""

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
from astropy.table import Table

from jwst_ceers.errors import CeersParameterError
from jwst_ceers.tweakreg.fit_results import FitRecord, record_from_fit_info

__all__ = [
    "AlignmentImage",
    "AlignedImage",
    "FitParameters",
    "make_corrector",
    "align_group",
    "align_groups",
    "check_fit_parameters",
    "merge_detections",
]

log = logging.getLogger(__name__)


@dataclass
class AlignmentImage:
    """One image to align.

    Attributes
    ----------
    name : str
        Exposure root name (used in logs, results and saved solutions).
    group : str
        Name of the relative-alignment group the image belongs to.
    wcs : `gwcs.WCS`
        The image's current WCS (not modified).
    wcsinfo : dict
        ``v2_ref``, ``v3_ref`` (arcsec) and ``roll_ref`` (deg).
    catalog : `~astropy.table.Table`
        Sources with 0-based pixel ``x``, ``y`` columns.
    visit : str
        Name of the visit (and filter) for the visit-level fit ('' = one visit).
    """

    name: str
    group: str
    wcs: object
    wcsinfo: dict
    catalog: Table
    visit: str = ""


@dataclass
class AlignedImage:
    """Outcome of aligning one image.

    Attributes
    ----------
    name : str
        Exposure root name.
    group : str
        Group name.
    wcs : `gwcs.WCS` or None
        The aligned WCS, or None when the image keeps its original WCS.
    status : str
        "COMPLETE" or "SKIPPED".
    reason : str
        Why it was skipped (empty when COMPLETE).
    """

    name: str
    group: str
    wcs: object
    status: str
    reason: str = ""


@dataclass(kw_only=True)
class FitParameters:
    """Matching and fitting parameters, with jwst TweakReg's names and meanings.

    Distances are in arcsec (tangent plane of the V2/V3 frame). There are no
    defaults here: the defaults live in one place, `CatalogTweakReg`'s spec
    (``searchrad`` ... for the relative pass, ``abs_searchrad`` ... for the absolute
    one), and the step builds these from its parameters.
    ``refine_iterations`` > 0: after the first fit, the sources are matched again
    around the fitted solution (no offset search; tolerance ``refine_tolerance``, or
    ``tolerance`` when it is 0) and refitted, up to that many times or until the fit
    moves less than ``REFINE_CONVERGED_MAS``. The first match is centred on the 2-D
    histogram's guess, which is only good to about a histogram bin: a matched set
    off-centre by tens of mas takes false matches and noisy reference positions
    from one side, and pulled a LW detector's absolute fit 3 mas towards the guess
    (measured, ``benchmarks/robustness.py``, striping seed 1), and a LW dither's
    relative fit 2.1 mas (striping_unremoved seed 4, 1.1 mas re-matched).
    ``merge_radius`` > 0 (absolute fits only): detections of one source in several
    dithers of a group (after the relative pass) closer than this are averaged into
    one (see `_merge_dither_catalogs`). Both are 0 (off) unless given.
    """

    searchrad: float
    separation: float
    tolerance: float
    use2dhist: bool
    fitgeometry: str
    nclip: int
    sigma: float
    minobj: int
    refine_tolerance: float = 0.0
    refine_iterations: int = 0
    merge_radius: float = 0.0


def check_fit_parameters(params, *, prefix=""):
    """
    Check that ``separation`` exceeds ``sqrt(2) * tolerance`` (tweakwcs' rule).

    Raises
    ------
    CeersParameterError
        Naming the parameters (with ``prefix``, e.g. ``abs_``).
    """
    if params.separation <= math.sqrt(2.0) * params.tolerance:
        raise CeersParameterError(
            f"{prefix}separation ({params.separation}) must exceed sqrt(2) * {prefix}tolerance "
            f"({params.tolerance}) to avoid source confusion"
        )
    if params.refine_tolerance > 0 and params.separation <= math.sqrt(2.0) * params.refine_tolerance:
        raise CeersParameterError(
            f"{prefix}separation ({params.separation}) must exceed sqrt(2) * {prefix}refine_tolerance "
            f"({params.refine_tolerance}) to avoid source confusion"
        )


def make_corrector(image, *, group_id=None):
    """
    A tweakwcs `~tweakwcs.correctors.JWSTWCSCorrector` for ``image``.

    Sources outside the WCS bounding box are dropped. The corrector works on a
    deep copy of ``image.wcs``.
    """
    from stcal.tweakreg.tweakreg import filter_catalog_by_bounding_box
    from tweakwcs.correctors import JWSTWCSCorrector

    catalog = Table(image.catalog, copy=True)
    if len(catalog):
        catalog = filter_catalog_by_bounding_box(catalog, image.wcs.bounding_box)
    catalog.meta["name"] = image.name
    return JWSTWCSCorrector(
        wcs=image.wcs,
        wcsinfo={key: image.wcsinfo[key] for key in ("v2_ref", "v3_ref", "roll_ref")},
        meta={"catalog": catalog, "name": image.name, "group_id": group_id or image.name},
    )


def _catch_alignment_errors(function, *args, **kwargs):
    """Run a stcal/tweakwcs alignment call; return an error message or ''."""
    from stcal.tweakreg.tweakreg import TweakregError
    from tweakwcs.imalign import NotEnoughCatalogs

    try:
        function(*args, **kwargs)
    except TweakregError as exc:  # a BaseException in stcal: must be named
        return str(exc) or "relative alignment refused"
    except NotEnoughCatalogs as exc:
        return str(exc)
    except RuntimeError as exc:  # xyxymatch allocation overflow: confused matches
        return f"matching failed ({exc}); try smaller tolerance/separation"
    return ""


def _relative_align(correctors, params, *, refine=False):
    """
    stcal's relative alignment of ``correctors`` (in place); the error message, or "".

    ``refine=True``: a pass from the current solution, without the 2-D histogram's
    offset search, matching within ``params.refine_tolerance`` (or ``params.tolerance``).
    """
    from stcal.tweakreg.tweakreg import relative_align

    tolerance = (params.refine_tolerance or params.tolerance) if refine else params.tolerance
    return _catch_alignment_errors(
        relative_align,
        correctors,
        searchrad=tolerance if refine else params.searchrad,
        separation=params.separation,
        use2dhist=False if refine else params.use2dhist,
        tolerance=tolerance,
        xoffset=0.0,
        yoffset=0.0,
        enforce_user_order=False,
        expand_refcat=True,
        minobj=params.minobj,
        fitgeometry=params.fitgeometry,
        nclip=params.nclip,
        sigma=params.sigma,
    )


def _relative_pass(images, params):
    """Align the images of one group to each other; return correctors and records."""
    correctors = [make_corrector(image) for image in images]
    group = images[0].group
    if len(images) < 2:
        return correctors, [], [True] * len(images)

    with_sources = [len(c.meta["catalog"]) > 0 for c in correctors]
    error = _relative_align(correctors, params)
    records = []
    if error:
        log.warning("Relative alignment of group %s failed: %s", group, error)
        # Start again from the original WCSs: a refused solution may be half applied.
        correctors = [make_corrector(image) for image in images]
        records = [
            FitRecord.without_fit("relative", group, image.name, f"FAILED: {error}", params.fitgeometry)
            for image in images
        ]
        return correctors, records, [False] * len(images)

    aligned = []
    for image, corrector, has_sources in zip(images, correctors, with_sources, strict=True):
        fit_info = corrector.meta.get("fit_info", {})
        status = fit_info.get("status", "FAILED: no fit performed")
        if not has_sources:
            status = "FAILED: empty source catalog"
        records.append(record_from_fit_info("relative", group, image.name, fit_info, status=status))
        aligned.append(status in ("SUCCESS", "REFERENCE"))
    if all(aligned) and params.refine_iterations > 0:
        _refine_relative(correctors, records, params, group)
    return correctors, records, aligned


def _refine_relative(correctors, records, params, group):
    """
    Re-match a relatively aligned group around its solution and refit, until converged.

    The first relative match is centred on the 2-D histogram's guess, as the absolute
    one is: see `FitParameters`. Each pass matches without the histogram, within the
    refine tolerance, and folds its correction into ``records``. A failed pass keeps the
    solution so far: tweakwcs applies a correction only to the images whose fit succeeded,
    and those corrections are folded in too.
    """
    for _ in range(params.refine_iterations):
        for corrector in correctors:
            corrector.meta.pop("fit_info", None)
        error = _relative_align(correctors, params, refine=True)
        moved_mas = 0.0
        for corrector, record in zip(correctors, records, strict=True):
            fit_info = corrector.meta.get("fit_info", {})
            if fit_info.get("status") != "SUCCESS":
                continue
            increment = record_from_fit_info("relative", group, record.image, fit_info)
            if record.status == "SUCCESS":
                _add_increment(record, increment)
            moved_mas = max(moved_mas, _moved_mas(increment))
        if error:
            log.warning("Refinement of the relative alignment of group %s failed (%s); keeping the solution so far",
                        group, error)
            return
        if moved_mas < REFINE_CONVERGED_MAS:
            return


def _absolute_pass(correctors, refcat, params, unit_name, group, *, refine=False, kind="absolute"):
    """
    Fit ``correctors`` as one rigid body to ``refcat``; return (ok, record).

    ``refine=True`` is a pass from an existing solution: no 2-D histogram
    offset search, matching within ``params.refine_tolerance`` (or
    ``params.tolerance`` when it is 0).
    A failed fit leaves the correctors' WCSs unchanged (tweakwcs applies a
    correction only when the fit succeeds).
    """
    from tweakwcs.imalign import align_wcs
    from tweakwcs.matchutils import XYXYMatch

    names = [c.meta["name"] for c in correctors]
    for corrector in correctors:
        corrector.meta["group_id"] = unit_name
        corrector.meta.pop("fit_info", None)
    if not any(len(c.meta["catalog"]) for c in correctors):
        return False, FitRecord.without_fit(
            kind, group, ",".join(names), "SKIPPED: no sources in the group", params.fitgeometry
        )
    if len(refcat) < params.minobj:
        return False, FitRecord.without_fit(
            kind,
            group,
            ",".join(names),
            f"SKIPPED: only {len(refcat)} reference sources overlap the group (abs_minobj={params.minobj})",
            params.fitgeometry,
        )
    if refine:
        tolerance = params.refine_tolerance or params.tolerance
        match = XYXYMatch(
            searchrad=tolerance,
            separation=params.separation,
            use2dhist=False,
            tolerance=tolerance,
            xoffset=0.0,
            yoffset=0.0,
        )
    else:
        match = XYXYMatch(
            searchrad=params.searchrad,
            separation=params.separation,
            use2dhist=params.use2dhist,
            tolerance=params.tolerance,
            xoffset=0.0,
            yoffset=0.0,
        )
    error = _catch_alignment_errors(
        align_wcs,
        correctors,
        refcat=refcat,
        enforce_user_order=True,
        expand_refcat=False,
        minobj=params.minobj,
        match=match,
        fitgeom=params.fitgeometry,
        nclip=params.nclip,
        sigma=(params.sigma, "rmse"),
    )
    if error:
        return False, FitRecord.without_fit(kind, group, ",".join(names), f"SKIPPED: {error}", params.fitgeometry)
    fit_info = correctors[0].meta.get("fit_info", {})
    status = fit_info.get("status", "FAILED: no fit performed")
    record = record_from_fit_info(kind, group, ",".join(names), fit_info, status=status)
    if status != "SUCCESS":
        record.status = f"SKIPPED: {status}"
        return False, record
    return True, record


def _add_increment(total, increment):
    """Fold a later pass's correction into ``total`` (small-angle composition); take its match statistics."""
    total.xshift += increment.xshift
    total.yshift += increment.yshift
    total.rotation = (0.0 if np.isnan(total.rotation) else total.rotation) + (
        0.0 if np.isnan(increment.rotation) else increment.rotation
    )
    total.scale = (1.0 if np.isnan(total.scale) else total.scale) * (
        1.0 if np.isnan(increment.scale) else increment.scale
    )
    if increment.fitgeometry not in total.fitgeometry.split("+"):
        total.fitgeometry = f"{total.fitgeometry}+{increment.fitgeometry}"
    total.nmatch, total.rmse, total.mae = increment.nmatch, increment.rmse, increment.mae


def _refcat_near(refcat, correctors, margin_arcsec):
    """Reference sources inside the sky bounding box of ``correctors`` (+ margin)."""
    ra_all, dec_all = [], []
    for corrector in correctors:
        ra, dec = corrector.wcs.footprint(axis_type="spatial").T
        ra_all.append(ra)
        dec_all.append(dec)
    ra = np.concatenate(ra_all)
    dec = np.concatenate(dec_all)
    ra0 = np.rad2deg(np.angle(np.mean(np.exp(1j * np.deg2rad(ra)))))
    margin = margin_arcsec / 3600.0
    cosd = max(np.cos(np.deg2rad(np.mean(dec))), 1e-6)
    dra = ((ra - ra0 + 180.0) % 360.0) - 180.0
    ref_dra = ((np.asarray(refcat["RA"]) - ra0 + 180.0) % 360.0) - 180.0
    inside = (
        (ref_dra >= dra.min() - margin / cosd)
        & (ref_dra <= dra.max() + margin / cosd)
        & (np.asarray(refcat["DEC"]) >= dec.min() - margin)
        & (np.asarray(refcat["DEC"]) <= dec.max() + margin)
    )
    sub = refcat[inside]
    sub.meta["name"] = refcat.meta.get("name", "abs_refcat")
    return sub


def align_group(images, *, relative, absolute, refcat=None):
    """
    Align one group of images: relative pass, then one absolute fit of the group.

    Same as `align_groups` with a single group and no visit-level fit.

    Returns
    -------
    aligned : list of AlignedImage
        One per input image, in input order.
    records : list of FitRecord
        One per relative fit (per image) and one per absolute fit.
    """
    outcomes, records = align_groups({images[0].group: images}, relative=relative, absolute=absolute, refcat=refcat)
    return outcomes[images[0].group], records


def align_groups(groups, *, relative, absolute, refcat=None, visit_fitgeometry="none", visits=None):
    """
    Align groups of images: relative pass per group, then absolute fits.

    The absolute model has two levels. Every group (normally the dithers of
    one detector) gets its own solution of geometry ``absolute.fitgeometry``
    (a shift by default: per-detector offsets are translations). Optionally
    (``visit_fitgeometry`` 'rshift' or 'rscale'), one rotation (and scale)
    common to all groups of a visit is fitted to the matches of all its
    groups together: the header pointing error is one rigid rotation of the
    whole focal plane, which a single 64" detector measures poorly. The
    order is: per-group fit (``absolute.tolerance``, 2-D histogram search),
    visit-level fit, then per-group re-matching around the solution
    (``absolute.refine_iterations`` passes at most, at least one after a
    visit-level fit).

    Parameters
    ----------
    groups : dict
        ``{group name: [AlignmentImage, ...]}``.
    refcat : `~astropy.table.Table`, optional
        Absolute reference catalog (``RA``, ``DEC`` in deg). Without it only
        the relative pass is done.
    relative, absolute : FitParameters
        Parameters of the relative and absolute fits (the step builds them from its
        spec, where their defaults are).
    visit_fitgeometry : {'none', 'rshift', 'rscale'}, optional
        Geometry of the visit-level fit; 'none' skips it.
    visits : dict, optional
        ``{group name: visit name}``; groups of one visit share the
        visit-level fit. Default: the images' ``visit`` attributes.

    Returns
    -------
    aligned : dict
        ``{group name: [AlignedImage, ...]}`` in the groups' input order.
    records : list of FitRecord
        Relative fits (one per image), visit-level fits (one per visit) and
        absolute fits (one per group or lone image; shifts, rotation and
        scale summed over the passes, nmatch and rmse of the last pass).
    """
    if visit_fitgeometry not in ("none", "rshift", "rscale"):
        raise CeersParameterError(f"visit_fitgeometry must be none, rshift or rscale, not {visit_fitgeometry!r}")
    visits = visits or {group: images[0].visit or "visit" for group, images in groups.items()}
    records, outcomes, units = [], {}, []
    for group, images in groups.items():
        correctors, group_records, relatively_aligned = _relative_pass(images, relative)
        records.extend(group_records)
        if refcat is None:
            outcomes[group] = _relative_only_outcome(images, correctors, relatively_aligned)
            continue
        outcomes[group] = [None] * len(images)
        # Absolute fit units: the relatively aligned images together, each image
        # that could not be aligned relatively on its own.
        together = [i for i, ok in enumerate(relatively_aligned) if ok]
        if together:
            units.append(_Unit(group, group, together, [correctors[i] for i in together]))
        units.extend(
            _Unit(f"{group}:{images[i].name}", group, [i], [correctors[i]])
            for i in range(len(images))
            if not relatively_aligned[i]
        )
    if refcat is None:
        return outcomes, records

    for unit in units:
        if len(unit.correctors) > 1 and absolute.merge_radius > 0:
            _merge_dither_catalogs(unit.correctors, radius_arcsec=absolute.merge_radius)
        unit.refcat = _refcat_near(refcat, unit.correctors, absolute.searchrad + absolute.tolerance)
        unit.ok, unit.record = _absolute_pass(unit.correctors, unit.refcat, absolute, unit.name, unit.group)
    iterations = absolute.refine_iterations
    if visit_fitgeometry != "none":
        records.extend(_visit_pass(units, refcat, absolute, visit_fitgeometry, visits))
        # the common rotation moved each group about its own tangent point: refit the shifts
        iterations = max(iterations, 1)
    for unit in (u for u in units if u.ok):
        _refine_unit(unit, absolute, iterations)
    for unit in units:
        records.append(unit.record)
        if not unit.ok:
            log.warning("Absolute alignment of %s skipped: %s", unit.name, unit.record.status)
        images = groups[unit.group]
        for i, corrector in zip(unit.members, unit.correctors, strict=True):
            outcomes[unit.group][i] = AlignedImage(
                images[i].name,
                unit.group,
                corrector.wcs if unit.ok else None,
                "COMPLETE" if unit.ok else "SKIPPED",
                "" if unit.ok else unit.record.status,
            )
    return outcomes, records


# a re-matching pass that moves the fit less than this ends the refinement (milli-arcsec)
REFINE_CONVERGED_MAS = 0.05


def _moved_mas(increment):
    """How far a pass's correction moved the image (mas): shift, plus the rotation's displacement 30" from the centre (half a SW detector)."""
    rotation = 0.0 if np.isnan(increment.rotation) else increment.rotation
    return 1000.0 * (math.hypot(increment.xshift, increment.yshift) + 30.0 * abs(math.radians(rotation)))


def _refine_unit(unit, absolute, iterations):
    """Re-match ``unit`` around its solution and refit, until converged or ``iterations`` passes."""
    for _ in range(iterations):
        ok, increment = _absolute_pass(unit.correctors, unit.refcat, absolute, unit.name, unit.group, refine=True)
        if not ok:
            log.warning("Refinement of %s failed (%s); keeping the solution so far", unit.name, increment.status)
            return
        _add_increment(unit.record, increment)
        if _moved_mas(increment) < REFINE_CONVERGED_MAS:
            return


@dataclass
class _Unit:
    """Images fitted together to the reference catalog (a group, or one image of it)."""

    name: str
    group: str
    members: list
    correctors: list
    refcat: object = None
    ok: bool = False
    record: object = None


def _relative_only_outcome(images, correctors, relatively_aligned):
    outcome = []
    for image, corrector, ok in zip(images, correctors, relatively_aligned, strict=True):
        fitted = ok and len(images) > 1 and "fit_info" in corrector.meta
        outcome.append(
            AlignedImage(
                image.name,
                image.group,
                corrector.wcs if fitted else None,
                "COMPLETE" if fitted else "SKIPPED",
                "" if fitted else "relative alignment failed and no abs_refcat",
            )
        )
    return outcome


def _merge_dither_catalogs(correctors, *, radius_arcsec):
    """
    Replace the dithers' catalogs by one catalog of averaged detections, split among them.

    After the relative pass the dithers of a group share one frame. A source
    seen in three dithers would otherwise enter the group catalog three
    times, and the one-to-one matcher would keep only the copy nearest to
    the reference position *as first guessed*, which biases the fit towards
    that guess (measured: 1.2 mas on a LW detector). Instead, detections of
    one source (mutual nearest neighbours within ``radius_arcsec``) are
    averaged on the sky and each averaged source is given to exactly one
    dither (the first that saw it), in that dither's pixel frame, so that
    tweakwcs still fits the dithers as one group. Modifies the correctors'
    catalogs (their own copies).
    """
    sky = []
    for corrector in correctors:
        catalog = corrector.meta["catalog"]
        if len(catalog):
            ra, dec = corrector.wcs(np.asarray(catalog["x"]), np.asarray(catalog["y"]), with_bounding_box=False)
        else:
            ra = dec = np.zeros(0)
        sky.append((np.asarray(ra, float), np.asarray(dec, float)))
    ra_mean, dec_mean, count, owner, row = merge_detections(sky, radius_arcsec=radius_arcsec)
    for k, corrector in enumerate(correctors):
        mine = owner == k
        catalog = corrector.meta["catalog"][row[mine]]
        if mine.any():
            x, y = corrector.wcs.invert(ra_mean[mine], dec_mean[mine], with_bounding_box=False)
            catalog["x"] = np.asarray(x, float)
            catalog["y"] = np.asarray(y, float)
        # (every dither gets the column: tweakwcs stacks the group's catalogs exactly)
        catalog["n_dithers"] = count[mine]
        corrector.meta["catalog"] = catalog


def merge_detections(sky, *, radius_arcsec):
    """
    Average the detections of one source in several catalogs of one sky frame.

    Catalogs are taken in order; a detection joins the running mean of an
    earlier source when the two are mutual nearest neighbours within
    ``radius_arcsec``, otherwise it starts a new source.

    Parameters
    ----------
    sky : list of (ra, dec)
        Per catalog, arrays of right ascension and declination (deg).
    radius_arcsec : float
        Largest distance between two detections of one source.

    Returns
    -------
    ra, dec : ndarray
        Mean position of each merged source (deg).
    count : ndarray of int
        Number of detections averaged into each.
    owner, row : ndarray of int
        Catalog index and row of each source's first detection.
    """
    from scipy.spatial import cKDTree

    sizes = [len(ra) for ra, _ in sky]
    if sum(sizes):
        ra0 = float(np.mean(np.concatenate([s[0] for s in sky])))
        dec0 = float(np.mean(np.concatenate([s[1] for s in sky])))
    else:
        ra0 = dec0 = 0.0
    cosd = math.cos(math.radians(dec0))

    def plane(ra, dec):
        return np.column_stack([(ra - ra0) * cosd * 3600.0, (dec - dec0) * 3600.0])

    # running sums of the merged sources: position sums, counts, owning catalog, row in it
    xy_sum = np.zeros((0, 2))
    count = np.zeros(0, int)
    owner = np.zeros(0, int)
    row = np.zeros(0, int)
    for k, (ra, dec) in enumerate(sky):
        xy = plane(ra, dec)
        if not len(xy):
            continue
        new = np.ones(len(xy), bool)
        if len(count):
            mean_xy = xy_sum / count[:, None]
            dist, nearest = cKDTree(mean_xy).query(xy, distance_upper_bound=radius_arcsec)
            back = cKDTree(xy).query(mean_xy)[1]
            mutual = np.isfinite(dist) & (back[np.minimum(nearest, len(back) - 1)] == np.arange(len(xy)))
            np.add.at(xy_sum, nearest[mutual], xy[mutual])
            np.add.at(count, nearest[mutual], 1)
            new = ~mutual
        xy_sum = np.vstack([xy_sum, xy[new]])
        count = np.concatenate([count, np.ones(new.sum(), int)])
        owner = np.concatenate([owner, np.full(new.sum(), k)])
        row = np.concatenate([row, np.flatnonzero(new)])
    mean_xy = xy_sum / np.maximum(count, 1)[:, None]
    return ra0 + mean_xy[:, 0] / 3600.0 / cosd, dec0 + mean_xy[:, 1] / 3600.0, count, owner, row


def _visit_pass(units, refcat, absolute, fitgeometry, visits):
    """
    One rotation (+ scale) per visit from all its aligned groups; return records.

    The model is per-group shifts plus one common rotation/scale. Its
    least-squares rotation is the match-weighted mean of the rotations that
    each group measures about its own centre (its shift being free), so each
    group is fitted with ``fitgeometry`` on a copy, the linear parts are
    averaged with weights ``nmatch``, and the mean is applied to every group
    about its own tangent point; the per-group shift is then refitted (by the
    caller's refinement pass). Rotating all groups as one rigid body about
    the visit centre would instead fight the per-group shifts already found.
    """
    import copy

    by_visit = {}
    for unit in units:
        if unit.ok:
            by_visit.setdefault(visits.get(unit.group, "visit"), []).append(unit)
    params = replace(absolute, fitgeometry=fitgeometry, refine_tolerance=absolute.refine_tolerance or absolute.tolerance)
    records = []
    for visit, members in by_visit.items():
        matrices, weights, rotations, scales, rmses = [], [], [], [], []
        for unit in members:
            trial = copy.deepcopy(unit.correctors)
            ok, record = _absolute_pass(trial, unit.refcat, params, f"visit:{visit}:{unit.name}", unit.group, refine=True)
            if ok:
                matrices.append(np.asarray(trial[0].meta["fit_info"]["matrix"], dtype=float))
                weights.append(record.nmatch)
                rotations.append(record.rotation)
                scales.append(record.scale)
                rmses.append(record.rmse)
        names = ",".join(unit.name for unit in members)
        if not matrices:
            log.warning("Visit-level %s fit of %s failed: groups keep their own fits", fitgeometry, visit)
            records.append(FitRecord.without_fit("visit", visit, names, "SKIPPED: no group could be fitted", fitgeometry))
            continue
        weights = np.asarray(weights, dtype=float)
        matrix = np.tensordot(weights / weights.sum(), np.asarray(matrices), axes=1)
        record = FitRecord(
            kind="visit",
            group=visit,
            image=names,
            nmatch=int(weights.sum()),
            rmse=float(np.average(rmses, weights=weights)),
            xshift=0.0,
            yshift=0.0,
            rotation=float(np.average(rotations, weights=weights)),
            scale=float(np.average(scales, weights=weights)),
            fitgeometry=fitgeometry,
            status="SUCCESS" if len(matrices) == len(members) else f"SUCCESS ({len(matrices)} of {len(members)} groups)",
        )
        records.append(record)
        for unit in members:
            centre = copy.deepcopy(unit.correctors[0])
            for corrector in unit.correctors:
                corrector.set_correction(matrix=matrix, shift=[0.0, 0.0], ref_tpwcs=centre)
            unit.record.rotation = (0.0 if np.isnan(unit.record.rotation) else unit.record.rotation) + record.rotation
            unit.record.scale = (1.0 if np.isnan(unit.record.scale) else unit.record.scale) * record.scale
            unit.record.fitgeometry = f"{unit.record.fitgeometry}+visit-{fitgeometry}"
    return records
