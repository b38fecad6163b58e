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

import numpy as np
from astropy.table import Table

from jwst_ceers.atomic_io import atomic_output
from jwst_ceers.tweakreg.alignment import merge_detections

__all__ = ["aligned_source_catalog", "write_aligned_catalog"]

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
