"""
Realistic synthetic NIRCam Level-2 (``*_cal.fits``) data, offline and deterministic by seed.

Quick start
-----------
>>> from jwst_ceers.simulate import simulate_pointing, load_truth
>>> sim = simulate_pointing("sim", filters=("F150W", "F356W"), n_dithers=3, size=1024, seed=1)
>>> sim.cal_files[0].name
'jw01345001001_02101_00001_nrca1_cal.fits'
>>> truth = load_truth("sim")            # same content, read back from sim/simulation_truth.json
>>> t = truth.truth["jw01345001001_02101_00001_nrca1"]
>>> t.pedestal, t.wcs_error, t.sky_variance, t.block7_variance

``simulate_pointing`` writes, in ``out_dir``:

- ``<root>_cal.fits``: ImageModel (SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE, VAR_FLAT) with
  complete meta for the stock Image3 steps (wcsinfo, S_REGION, exposure times, observation
  ids, instrument, photometry, subarray) and the HEADER (perturbed) gwcs in ``meta.wcs``;
  ``root = jw01345{obs:03d}001_021{activity:02d}_{dither:05d}_{detector}``, one
  observation per visit and one activity per (SW, LW) filter pair, so names never collide;
- ``<root>_true_wcs.asdf``: the TRUE gwcs (``wcs``) and its ``wcsinfo``;
- ``<root>_<mask_suffix>.fits`` (default ``1fmask``): CEERS-style integer segmentation map
  in the PRIMARY HDU, 0 = sky, from the noiseless source image thresholded at 0.5 sky
  sigma and dilated (4 pixels SW, 2 LW);
- ``simulated_sources.ecsv``: the true sources; ``refcat.ecsv``: absolute reference
  catalogue (``ra, dec, mag``; sources brighter than F160W = 26 with 5-15 mas noise per
  axis, like the CEERS HST F160W catalogue);
- ``simulation_truth.json``: everything below, per exposure (read with :func:`load_truth`).

Units and truth definitions
---------------------------
- Images in MJy/sr. Source magnitudes AB; ``mag`` in the table is at 1.5 micron,
  :func:`source_mag` gives other filters (power-law SED, column ``sed_slope``).
- ``SCI = sources + pedestal + gradient + white noise + striping + cosmic rays`` (see
  :mod:`jwst_ceers.simulate.exposures`). ``pedestal`` is the constant sky added (MJy/sr);
  ``gradient = (gx, gy)`` adds ``gx*u + gy*v`` with ``u = (x - (nx-1)/2)/nx``,
  ``v = (y - (ny-1)/2)/ny`` (zero mean over the array).
- White noise is drawn from the TRUE variances; the written VAR_RNOISE is the true
  read-noise variance times ``rnoise_scale_error``; ERR = sqrt(sum of written variances).
  ``sky_variance`` is the expected per-pixel variance of source-free sky at the pedestal
  (white components); ``block7_variance`` the expected variance of 7x7 block means
  including the 1/f-like striping (``one_over_f`` in units of sqrt(sky_variance)).
- ``wcs_error = {dra_arcsec, ddec_arcsec, droll_deg}``: HEADER minus TRUE pointing at the
  detector's SIAF reference point (``dra`` on the sky, i.e. times cos dec); per visit a
  random pointing error (``pointing_error_arcsec`` range) plus a per-detector offset
  (``detector_error_mas`` range), the same for all dithers of a visit.
- Bad pixels: DQ DO_NOT_USE, NaN in SCI/ERR/variances. Zero-variance pixels: unflagged,
  exactly 0 in all three variance arrays and ERR. Cosmic rays: unflagged, not in truth
  beyond their count.

Realistic NIRCam conditions: ``simulate_pointing(..., realism="realistic")`` (or any
name in :data:`REALISM_PRESETS`, a dict of :class:`Realism` fields, a :class:`Realism`)
adds residual 1/f striping, the JWST pupil PSF with its diffraction spikes, saturated
bright stars, snowballs, wisps, persistence ghosts and flat-field structure
(:mod:`jwst_ceers.simulate.artefacts`, :mod:`jwst_ceers.simulate.psf`); the default
(None = ``"none"``) is the simulator as before.

Lower-level pieces: :func:`make_source_population`, :func:`load_source_table` and
:func:`render_sources` (PSF-convolved Sersic profiles, total flux conserved) in
:mod:`jwst_ceers.simulate.sources`; :data:`FILTERS` and :func:`nircam_gwcs` (SIAF
``detector -> v2v3 -> world`` gwcs) in :mod:`jwst_ceers.simulate.nircam_geometry`;
:func:`simulate_exposure` for a single in-memory exposure.
"""

from jwst_ceers.simulate.artefacts import REALISM_PRESETS, Realism, realism_preset
from jwst_ceers.simulate.exposures import (
    ExposureTruth,
    SimulatedPointing,
    load_truth,
    simulate_exposure,
    simulate_pointing,
)
from jwst_ceers.simulate.nircam_geometry import (
    FILTERS,
    NircamFilter,
    abmag_to_pixel_sum,
    detector_pointing,
    nircam_gwcs,
    nircam_wcsinfo,
)
from jwst_ceers.simulate.sources import (
    load_source_table,
    make_source_population,
    render_sources,
    source_mag,
)

__all__ = [
    "REALISM_PRESETS",
    "Realism",
    "realism_preset",
    "ExposureTruth",
    "FILTERS",
    "NircamFilter",
    "SimulatedPointing",
    "abmag_to_pixel_sum",
    "detector_pointing",
    "load_source_table",
    "load_truth",
    "make_source_population",
    "nircam_gwcs",
    "nircam_wcsinfo",
    "render_sources",
    "simulate_exposure",
    "simulate_pointing",
    "source_mag",
]
