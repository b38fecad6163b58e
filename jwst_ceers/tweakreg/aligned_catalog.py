"""The aligned sources of a run, on the sky: a JWST reference catalog for a later run.

Why: the absolute fit of one group is limited by the reference catalog's noise
averaged over that group's matches. A CEERS-like HST F160W catalog has 5-15 mas
of noise per source and ~260 sources on one SW detector (with its dithers), so a
SW detector's absolute shift is uncertain by ~1.2 mas rms (2-D) and exceeds 2 mas
in ~1 case out of 6 (measured, ``benchmarks/robustness.py``); a LW detector sees
four times the area and its shift is twice as good. The SW detectors were
observed at the same time through the same field as the LW one, and a SW source
matches its LW detection to a few mas: aligning the LW exposures first and then
the SW exposures to the LW sources (written here) gives every SW detector the
accuracy of the whole LW footprint.
"""

import logging
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation
from astropy.table import Table
from matplotlib.path import Path as Polygon

from jwst_ceers.associations import read_exposure_info
from jwst_ceers.atomic_io import atomic_output
from jwst_ceers.errors import CeersFileError
from jwst_ceers.mosaic_grid.from_files import exposure_footprint
from jwst_ceers.tweakreg.alignment import merge_detections
from jwst_ceers.tweakreg.diagnostics import tangent_plane

__all__ = ["MIN_SOURCES_PER_EXPOSURE", "aligned_source_catalog", "exposures_short_of_sources", "write_aligned_catalog"]

#: Fewest catalogue sources a detector needs over its exposures to be aligned to that
#: catalogue (the LW aligned sources of a 512^2 demo cut-out miss some SW cut-outs entirely).
MIN_SOURCES_PER_EXPOSURE = 10

log = logging.getLogger(__name__)


def aligned_source_catalog(catalogs, wcses, *, merge_radius_arcsec):
    """
    Sky positions of the sources of aligned exposures, each source's detections averaged.

    Parameters
    ----------
    catalogs : list of `~astropy.table.Table`
        Per exposure, sources with 0-based pixel ``x, y`` (and ``flux`` when present).
    wcses : list of `gwcs.WCS` or None
        The aligned WCS of each exposure; exposures with None (not aligned) are left out.
    merge_radius_arcsec : float
        Detections of one source in several exposures (mutual nearest neighbours
        closer than this) are averaged into one entry.

    Returns
    -------
    `~astropy.table.Table`
        ``RA, DEC`` (deg), ``FLUX`` (the first detection's ``flux``, NaN without it)
        and ``NEXP`` (detections averaged), brightest first.
    """
    sky, fluxes = [], []
    for catalog, wcs in zip(catalogs, wcses, strict=True):
        if wcs is None or len(catalog) == 0:
            continue
        ra, dec = wcs(np.asarray(catalog["x"], float), np.asarray(catalog["y"], float), with_bounding_box=False)
        finite = np.isfinite(ra) & np.isfinite(dec)
        sky.append((np.asarray(ra, float)[finite], np.asarray(dec, float)[finite]))
        flux = np.asarray(catalog["flux"], float) if "flux" in catalog.colnames else np.full(len(catalog), np.nan)
        fluxes.append(flux[finite])
    if not sky:
        return Table(names=("RA", "DEC", "FLUX", "NEXP"), dtype=(float, float, float, int))
    ra, dec, count, owner, row = merge_detections(sky, radius_arcsec=merge_radius_arcsec)
    flux = np.array([fluxes[k][r] for k, r in zip(owner, row, strict=True)], dtype=float)
    table = Table({"RA": ra, "DEC": dec, "FLUX": flux, "NEXP": count})
    table.sort("FLUX", reverse=True)
    return table


def write_aligned_catalog(table, path, *, abs_refcat=""):
    """Write ``table`` as ECSV to ``path`` atomically, recording what it was aligned to; return the path."""
    table = Table(table, copy=False)
    table.meta["comment"] = (
        "jwst_ceers ceers_tweakreg aligned sources (RA/DEC after alignment, detections merged); "
        "usable as abs_refcat"
    )
    table.meta["aligned_to"] = str(abs_refcat) or "(relative alignment only)"
    with atomic_output(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    return path


def exposures_short_of_sources(catalog, exposures, *, min_sources=MIN_SOURCES_PER_EXPOSURE):
    """
    The exposures whose detector sees fewer than ``min_sources`` sources of ``catalog``.

    Used before aligning SW exposures to the LW aligned sources: ceers_tweakreg fits
    the absolute shift per detector (its default ``group_by``), all dithers of a
    detector together, so a detector is short when the sources on all its exposures
    add up to fewer than ``min_sources``. Such a band is aligned to the reference
    catalogue instead (else the detector would be left unaligned).

    Parameters
    ----------
    catalog : str or Path
        ECSV with ``RA`` and ``DEC`` columns (deg; any case), e.g. written by ``aligned_catalog``.
    exposures : list of str or Path
        Level-2 exposures (their S_REGION footprint, else their WCS, is used; DETECTOR groups them).
    min_sources : int
        Fewest sources a detector needs over its exposures.

    Returns
    -------
    list of (str, int)
        File name and number of sources on it, for each exposure of a short detector.

    Raises
    ------
    CeersFileError
        If the catalogue cannot be read or has no RA/DEC columns.
    """
    try:
        table = Table.read(catalog, format="ascii.ecsv")
        columns = {name.upper(): name for name in table.colnames}  # RA/DEC or ra/dec, as jwst reads them
        ra = np.asarray(table[columns["RA"]], float)
        dec = np.asarray(table[columns["DEC"]], float)
    except (OSError, ValueError, KeyError) as exc:
        raise CeersFileError(f"{catalog}: cannot read RA/DEC of the aligned sources ({exc})") from exc
    sources = SkyCoord(ra, dec, unit="deg")
    counts, detectors, by_detector = {}, {}, {}
    for exposure in exposures:
        corners = np.asarray(exposure_footprint(exposure), float)
        mean = SkyCoord(corners[:, 0], corners[:, 1], unit="deg").cartesian.mean()
        centre = SkyCoord(mean.represent_as(UnitSphericalRepresentation))
        near = sources.separation(centre).deg < 10.0  # in front of the tangent plane, far from its edge
        ra0, dec0 = centre.ra.deg, centre.dec.deg
        polygon = Polygon(np.column_stack(tangent_plane(corners[:, 0], corners[:, 1], ra0, dec0)))
        points = np.column_stack(tangent_plane(ra[near], dec[near], ra0, dec0))
        counts[exposure] = int(np.count_nonzero(polygon.contains_points(points))) if len(points) else 0
        detectors[exposure] = read_exposure_info(exposure).detector.upper()
        by_detector[detectors[exposure]] = by_detector.get(detectors[exposure], 0) + counts[exposure]
    return [
        (Path(exposure).name, count)
        for exposure, count in counts.items()
        if by_detector[detectors[exposure]] < min_sources
    ]
