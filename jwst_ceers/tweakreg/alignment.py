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

Images whose relative fit failed are fitted to the reference catalog on their
own. A group whose absolute fit fails keeps its original WCS (status SKIPPED),
with the reason in its fit record.

All functions work on `AlignmentImage` records (a gwcs, its reference angles
and a source catalog) and return new WCS objects: the input WCSs are never
modified (tweakwcs correctors work on deep copies).
"""

import logging
import math
from dataclasses import dataclass, field

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
    "check_fit_parameters",
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
    """

    name: str
    group: str
    wcs: object
    wcsinfo: dict
    catalog: Table


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


@dataclass
class FitParameters:
    """Matching and fitting parameters, with jwst TweakReg's names and meanings.

    Distances are in arcsec (tangent plane of the V2/V3 frame).
    """

    searchrad: float = 2.0
    separation: float = 1.0
    tolerance: float = 0.7
    use2dhist: bool = True
    xoffset: float = 0.0
    yoffset: float = 0.0
    fitgeometry: str = "rshift"
    nclip: int = 3
    sigma: float = 3.0
    minobj: int = 15
    extra: dict = field(default_factory=dict)


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


def _relative_pass(images, params):
    """Align the images of one group to each other; return correctors and records."""
    from stcal.tweakreg.tweakreg import relative_align

    correctors = [make_corrector(image) for image in images]
    group = images[0].group
    if len(images) < 2:
        return correctors, [], [True] * len(images)

    with_sources = [len(c.meta["catalog"]) > 0 for c in correctors]
    error = _catch_alignment_errors(
        relative_align,
        correctors,
        searchrad=params.searchrad,
        separation=params.separation,
        use2dhist=params.use2dhist,
        tolerance=params.tolerance,
        xoffset=params.xoffset,
        yoffset=params.yoffset,
        enforce_user_order=False,
        expand_refcat=True,
        minobj=params.minobj,
        fitgeometry=params.fitgeometry,
        nclip=params.nclip,
        sigma=params.sigma,
    )
    records = []
    if error:
        log.warning("Relative alignment of group %s failed: %s", group, error)
        # Start again from the original WCSs: a refused solution may be half applied.
        correctors = [make_corrector(image) for image in images]
        records = [
            FitRecord.failed("relative", group, image.name, f"FAILED: {error}", params.fitgeometry)
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
    return correctors, records, aligned


def _absolute_pass(correctors, refcat, params, unit_name, group):
    """Fit ``correctors`` as one rigid body to ``refcat``; return (ok, record)."""
    from tweakwcs.imalign import align_wcs
    from tweakwcs.matchutils import XYXYMatch

    names = [c.meta["name"] for c in correctors]
    for corrector in correctors:
        corrector.meta["group_id"] = unit_name
        corrector.meta.pop("fit_info", None)
    if not any(len(c.meta["catalog"]) for c in correctors):
        return False, FitRecord.failed(
            "absolute", group, ",".join(names), "SKIPPED: no sources in the group", params.fitgeometry
        )
    if len(refcat) < params.minobj:
        return False, FitRecord.failed(
            "absolute",
            group,
            ",".join(names),
            f"SKIPPED: only {len(refcat)} reference sources overlap the group (abs_minobj={params.minobj})",
            params.fitgeometry,
        )
    match = XYXYMatch(
        searchrad=params.searchrad,
        separation=params.separation,
        use2dhist=params.use2dhist,
        tolerance=params.tolerance,
        xoffset=params.xoffset,
        yoffset=params.yoffset,
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
        return False, FitRecord.failed("absolute", group, ",".join(names), f"SKIPPED: {error}", params.fitgeometry)
    fit_info = correctors[0].meta.get("fit_info", {})
    status = fit_info.get("status", "FAILED: no fit performed")
    record = record_from_fit_info("absolute", group, ",".join(names), fit_info, status=status)
    if status != "SUCCESS":
        record.status = f"SKIPPED: {status}"
        return False, record
    return True, record


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


def align_group(images, *, refcat=None, relative=None, absolute=None):
    """
    Align one group of images: relative pass, then one absolute fit per group.

    Parameters
    ----------
    images : list of AlignmentImage
        The images of the group (all with the same ``group``).
    refcat : `~astropy.table.Table`, optional
        Absolute reference catalog (``RA``, ``DEC`` in deg). Without it only
        the relative pass is done.
    relative, absolute : FitParameters, optional
        Parameters of the two passes (``None``: defaults). ``relative=None``
        with one image skips the relative pass.

    Returns
    -------
    aligned : list of AlignedImage
        One per input image, in input order.
    records : list of FitRecord
        One per relative fit (per image) and one per absolute fit.
    """
    relative = relative or FitParameters()
    absolute = absolute or FitParameters(searchrad=6.0)
    group = images[0].group
    correctors, records, relatively_aligned = _relative_pass(images, relative)

    if refcat is None:
        outcome = []
        for image, corrector, ok in zip(images, correctors, relatively_aligned, strict=True):
            fitted = ok and len(images) > 1 and "fit_info" in corrector.meta
            outcome.append(
                AlignedImage(
                    image.name,
                    group,
                    corrector.wcs if fitted else None,
                    "COMPLETE" if fitted else "SKIPPED",
                    "" if fitted else "relative alignment failed and no abs_refcat",
                )
            )
        return outcome, records

    # Absolute fit units: the relatively aligned images together, each image
    # that could not be aligned relatively on its own.
    units = []
    together = [i for i, ok in enumerate(relatively_aligned) if ok]
    if together:
        units.append((group, together))
    units.extend((f"{group}:{images[i].name}", [i]) for i in range(len(images)) if not relatively_aligned[i])

    outcome = [None] * len(images)
    for unit_name, members in units:
        unit_correctors = [correctors[i] for i in members]
        nearby = _refcat_near(refcat, unit_correctors, absolute.searchrad + absolute.tolerance)
        ok, record = _absolute_pass(unit_correctors, nearby, absolute, unit_name, group)
        records.append(record)
        if not ok:
            log.warning("Absolute alignment of %s skipped: %s", unit_name, record.status)
        for i in members:
            outcome[i] = AlignedImage(
                images[i].name,
                group,
                correctors[i].wcs if ok else None,
                "COMPLETE" if ok else "SKIPPED",
                "" if ok else record.status,
            )
    return outcome, records
