"""Tests of the synthetic NIRCam data generator against injected truth and pysiaf."""

import asdf
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from jwst_ceers.errors import CeersFileError
from jwst_ceers.simulate import (
    FILTERS,
    load_source_table,
    load_truth,
    make_source_population,
    nircam_gwcs,
    render_sources,
    simulate_exposure,
    simulate_pointing,
    source_mag,
)
from jwst_ceers.simulate.nircam_geometry import detector_pointing, siaf_aperture, subarray_window

RA, DEC, PA = 214.9, 52.9, 130.0


def _sky_offset_arcsec(ra1, dec1, ra2, dec2):
    """(dra*cos(dec), ddec) in arcsec, point 1 minus point 2."""
    return ((ra1 - ra2 + 180) % 360 - 180) * np.cos(np.radians(dec2)) * 3600, (dec1 - dec2) * 3600


# ---------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("detector,size", [("NRCA1", None), ("NRCB3", 512), ("NRCALONG", None),
                                           ("NRCBLONG", 1024)])
def test_detector_to_v2v3_matches_pysiaf(detector, size):
    rng = np.random.default_rng(11)
    wcs = nircam_gwcs(detector, ra_ref=RA, dec_ref=DEC, roll_ref=PA, subarray=size)
    start, n = subarray_window(size)
    x, y = rng.uniform(-0.5, n - 0.5, (2, 200))
    x[:4], y[:4] = [0, n - 1, 0, n - 1], [0, 0, n - 1, n - 1]
    v2, v3 = wcs.get_transform("detector", "v2v3")(x, y)
    v2_siaf, v3_siaf = siaf_aperture(detector).sci_to_tel(x + start + 1, y + start + 1)
    assert np.max(np.hypot(v2 - v2_siaf, v3 - v3_siaf)) * 1000 < 0.01  # mas
    # the aperture reference pixel lands exactly on (ra_ref, dec_ref)
    ap = siaf_aperture(detector)
    ra0, dec0 = wcs(ap.XSciRef - 1 - start, ap.YSciRef - 1 - start)
    assert np.hypot(*_sky_offset_arcsec(ra0, dec0, RA, DEC)) < 1e-6
    # bounding box covers exactly the (sub)array
    assert wcs.bounding_box.bounding_box(order="F") == ((-0.5, n - 0.5), (-0.5, n - 0.5))


def test_detector_pointing_agrees_with_v23tosky():
    """Sky positions of other detectors' pixels agree with pysiaf's attitude matrix."""
    from pysiaf.utils import rotations

    from jwst_ceers.simulate.nircam_geometry import module_centre_v2v3

    v2c, v3c = module_centre_v2v3()
    att = rotations.attitude(v2c, v3c, RA, DEC, PA)
    for det in ("NRCA2", "NRCALONG"):
        ra_ref, dec_ref, roll_ref = detector_pointing(det, ra=RA, dec=DEC, pa_v3=PA)
        wcs = nircam_gwcs(det, ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref)
        x, y = np.array([0.0, 2047.0, 1000.0]), np.array([0.0, 2047.0, 30.0])
        v2, v3 = siaf_aperture(det).sci_to_tel(x + 1, y + 1)
        ra_siaf, dec_siaf = rotations.pointing(att, v2, v3)
        ra, dec = wcs(x, y)
        assert np.max(np.hypot(*_sky_offset_arcsec(ra, dec, ra_siaf, dec_siaf))) < 1e-5


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("r_eff,n,q,shape", [
    (0.0, 1.0, 1.0, 64),      # star
    (0.4, 4.0, 1.0, 64),      # tiny cuspy bulge
    (3.0, 1.0, 0.3, 128),     # small edge-on disc
    (12.0, 4.0, 0.7, 512),    # resolved bulge
    (60.0, 2.0, 0.6, 3000),   # large galaxy: analytic path
])
def test_render_sources_conserves_total_flux(r_eff, n, q, shape):
    c = shape / 2 + 0.3
    img = render_sources((shape, shape), [c], [c - 0.6], [1234.5], r_eff_pix=r_eff, sersic_n=n, axis_ratio=q,
                         pa_deg=35.0, psf_fwhm_pix=2.0, dtype=np.float64)
    assert img.sum() == pytest.approx(1234.5, rel=0.01)
    # light centroid at the injected position (interior sources)
    yy, xx = np.indices(img.shape)
    assert np.sum(img * xx) / img.sum() == pytest.approx(c, abs=0.02)
    assert np.sum(img * yy) / img.sum() == pytest.approx(c - 0.6, abs=0.02)


@pytest.mark.parametrize("n", [1.0, 4.0])
def test_render_sources_half_light_radius(n):
    """Without PSF, a round profile's circular half-light radius equals r_eff."""
    size, r_eff = 801, 15.0
    img = render_sources((size, size), [400.0], [400.0], [1.0], r_eff_pix=r_eff, sersic_n=n, axis_ratio=1.0,
                         pa_deg=0.0, psf_fwhm_pix=0.0, dtype=np.float64)
    yy, xx = np.indices(img.shape)
    r = np.hypot(xx - 400.0, yy - 400.0).ravel()
    order = np.argsort(r)
    cum = np.cumsum(img.ravel()[order])
    r_half = r[order][np.searchsorted(cum, 0.5 * cum[-1])]
    assert r_half == pytest.approx(r_eff, rel=0.04)


def test_render_sources_clips_at_edges():
    """A source straddling the edge puts exactly its inside part into the image."""
    kwargs = dict(r_eff_pix=[2.0, 40.0], sersic_n=[1.0, 4.0], axis_ratio=[0.5, 0.8], pa_deg=[10.0, 70.0],
                  psf_fwhm_pix=2.5, dtype=np.float64)
    big = render_sources((1400, 1400), [710.0, 1000.0], [400.0, 1000.0], [100.0, 5000.0], **kwargs)
    # the same sources seen by a 300x300 image whose corner is at (700, 700)
    small = render_sources((300, 300), [10.0, 300.0], [-300.0, 300.0], [100.0, 5000.0], **kwargs)
    np.testing.assert_allclose(small, big[700:1000, 700:1000], rtol=1e-3, atol=1e-9 * big.max())
    assert small.sum() < 0.9 * 5000.0


def test_population_counts_sizes_and_determinism():
    kw = dict(ra=RA, dec=DEC, width_arcsec=600.0, height_arcsec=600.0, mag_limit=28.5, star_fraction=0.03)
    t1 = make_source_population(seed=5, **kw)
    t2 = make_source_population(seed=5, **kw)
    t3 = make_source_population(seed=6, **kw)
    assert all(np.array_equal(t1[c], t2[c]) for c in t1.colnames)
    assert not np.array_equal(t1["ra"][:10], t3["ra"][:10])
    density = len(t1) / (600.0 * 600.0 / 3600.0**2)
    assert 3e5 < density < 5e5
    gal = t1[~t1["is_star"]]
    # differential counts: ~0.3 dex/mag at 20-23, flatter (~0.2) at 25-28
    h, _ = np.histogram(gal["mag"], bins=[20, 21.5, 23, 25, 26.5, 28])
    assert np.log10(h[1] / h[0]) / 1.5 == pytest.approx(0.3, abs=0.08)
    assert np.log10(h[3] / h[2] * 2 / 1.5) / 1.75 < 0.26  # flatter than the bright end
    # size-magnitude: brighter galaxies are larger
    assert np.median(gal["r_eff"][gal["mag"] < 23]) > 1.5 * np.median(gal["r_eff"][gal["mag"] > 27])
    assert 0.02 < t1["is_star"].mean() < 0.04
    assert np.all(t1["r_eff"][t1["is_star"]] == 0)
    # positions inside the requested rectangle
    dx = (t1["ra"] - RA) * np.cos(np.radians(DEC)) * 3600
    assert np.all(np.abs(dx) < 301) and np.all(np.abs((t1["dec"] - DEC) * 3600) < 301)
    big = make_source_population(seed=1, n_large_galaxies=3, **kw)
    assert np.sum(big["r_eff"] >= 1.0) >= 3


def test_calibrated_counts_match_the_ceers_hst_catalog(hst_refcat):
    """The mosaic population's galaxy counts follow the real CEERS HST F160W counts.

    Truth: the catalogue's MAG column over its 210 arcmin^2 (10-20" cells holding
    sources), in bins where stars are < 10% of sources and the catalogue is complete.
    """
    from jwst_ceers.simulate.sources import CEERS_F160W_GALAXY_COUNTS

    cat = Table.read(hst_refcat, format="ascii.ecsv")
    mag = np.asarray(cat["MAG"], dtype=float)
    area_arcmin2 = 210.0
    side = 1200.0  # arcsec; 400 arcmin^2
    pop = make_source_population(ra=RA, dec=DEC, width_arcsec=side, height_arcsec=side, seed=3,
                                 mag_limit=26.0, star_fraction=0.0, galaxy_counts=CEERS_F160W_GALAXY_COUNTS)
    for lo, hi in ((19.0, 21.0), (21.0, 23.0), (23.0, 24.0), (24.0, 25.0)):
        real = np.sum((mag >= lo) & (mag < hi)) / area_arcmin2
        simulated = np.sum((pop["mag"] >= lo) & (pop["mag"] < hi)) / (side * side / 3600.0)
        # stars are 5-10% of the catalogue at 19-21 (none simulated here)
        assert simulated == pytest.approx(real, rel=0.15), (lo, hi, simulated, real)
    # the default law (per-exposure simulator) is ~3.5x sparser at 23-25: unchanged
    old = make_source_population(ra=RA, dec=DEC, width_arcsec=side, height_arcsec=side, seed=3,
                                 mag_limit=26.0, star_fraction=0.0)
    assert np.sum((old["mag"] >= 23) & (old["mag"] < 25)) < 0.4 * np.sum((pop["mag"] >= 23) & (pop["mag"] < 25))


def test_large_galaxies_from_the_size_relation():
    """Requested large galaxies are bright (16-18.5) with sizes of their magnitude, not 1-4" at random."""
    kw = dict(ra=RA, dec=DEC, width_arcsec=60.0, height_arcsec=60.0, mag_limit=20.0, mag_bright=19.99,
              star_fraction=0.0)
    big = make_source_population(seed=4, n_large_galaxies=400, large_galaxy_sizes="size_relation", **kw)
    big = big[big["mag"] < 19.0]
    assert len(big) == 400
    assert np.all((big["mag"] >= 16.0) & (big["mag"] <= 18.5))
    # median r_eff 0.3" * 10^(0.1 (23 - mag)): ~1.0-1.4" at mag 17-18, 0.2 dex scatter
    log_ratio = np.log10(big["r_eff"]) - np.log10(0.3 * 10 ** (0.1 * (23.0 - big["mag"])))
    assert abs(np.median(log_ratio)) < 0.05
    assert 0.15 < np.std(log_ratio) < 0.25
    # more faint than bright ones (rising counts), discs and bulges
    assert np.sum(big["mag"] > 17.25) > 2 * np.sum(big["mag"] < 17.25)
    assert 0.25 < np.mean(big["sersic_n"] > 2.5) < 0.65
    with pytest.raises(Exception, match="large_galaxy_sizes"):
        make_source_population(seed=4, large_galaxy_sizes="huge", **kw)


def test_source_mag_colours():
    t = Table(dict(mag=[24.0, 24.0], is_star=[False, True], sed_slope=[-1.0, 1.5]))
    m444 = source_mag(t, "F444W")
    assert m444[0] == pytest.approx(24.0 - np.log10(4.404 / 1.5))  # galaxy brighter in the LW
    assert m444[1] > 24.0
    assert source_mag(t, "f150w") == pytest.approx([24.0, 24.0], abs=0.001)


def test_load_source_table_capitalisations(tmp_path):
    ecsv = tmp_path / "cat.ecsv"
    Table(dict(ALPHA_J2000=[214.9, 214.91], DELTA_J2000=[52.9, 52.91], MAG_AUTO=[22.0, 25.0],
               rh=[3.5, 7.0])).write(ecsv)
    t = load_source_table(ecsv)
    assert list(t["ra"]) == [214.9, 214.91] and list(t["mag"]) == [22.0, 25.0]
    assert t["is_star"][0] and t["r_eff"][0] == 0
    assert t["r_eff"][1] == pytest.approx(np.sqrt(7.0**2 - 3.5**2) * 0.03)
    fits_file = tmp_path / "cat.fits"
    Table(dict(ra=[1.0], Dec=[2.0], mag=[20.0], r_eff=[0.5])).write(fits_file)
    assert load_source_table(fits_file)["r_eff"][0] == 0.5
    bad = tmp_path / "bad.ecsv"
    Table(dict(RA=[1.0], MAG=[20.0])).write(bad)
    with pytest.raises(CeersFileError, match="bad.ecsv.*DEC"):
        load_source_table(bad)


def test_load_source_table_reads_ceers_hst_catalog(hst_refcat):
    t = load_source_table(hst_refcat)
    assert len(t) > 40000
    assert 214.5 < np.median(t["ra"]) < 215.5 and 52.5 < np.median(t["dec"]) < 53.2
    assert 0.05 < np.median(t["r_eff"][~t["is_star"]]) < 0.5


# ---------------------------------------------------------------------------
# exposures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def field_sources():
    return make_source_population(ra=RA, dec=DEC, width_arcsec=240.0, height_arcsec=240.0, seed=2,
                                  density_scale=3.0)


def _exposure(sources, **kw):
    ra_ref, dec_ref, roll_ref = detector_pointing(kw.pop("detector", "NRCA1"), ra=RA, dec=DEC, pa_v3=PA)
    args = dict(filter_name="F150W", detector="NRCA1", ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref,
                sources=sources, seed=4, size=512, pedestal=0.2, gradient=(0.004, -0.003), cosmic_ray_rate=0.0,
                keep_source_image=True)
    args.update(kw)
    return simulate_exposure(**args)


def _sky_pixels(model, truth):
    """Source-free, good pixels: outside the source mask and where the true source image is ~0."""
    ok = (truth.segmentation == 0) & np.isfinite(model.data) & (model.var_rnoise > 0)
    return ok & (truth.source_image < 0.02 * np.sqrt(truth.sky_variance))


def _gradient(truth, n):
    u = (np.arange(n) - (n - 1) / 2.0) / n
    gx, gy = truth.gradient
    return gx * u[None, :] + gy * u[:, None]


def test_noise_matches_written_variances_and_pedestal(field_sources):
    model, truth = _exposure(field_sources)
    sky = _sky_pixels(model, truth)
    assert sky.sum() > 100_000
    resid = (model.data - truth.pedestal - _gradient(truth, 512))[sky]
    written_var = (model.var_poisson + model.var_rnoise + model.var_flat)[sky]
    assert np.std(resid) == pytest.approx(np.sqrt(np.mean(written_var)), rel=0.03)
    np.testing.assert_allclose(model.err[sky] ** 2, written_var, rtol=1e-5)
    assert np.var(resid) == pytest.approx(truth.sky_variance, rel=0.03)
    # the recorded pedestal is what was added (mean sky minus gradient)
    assert np.mean(resid) == pytest.approx(0.0, abs=5 * np.std(resid) / np.sqrt(sky.sum()) + 2e-5)
    # realistic depth: sky sigma a few percent of the sky level
    assert 0.005 < np.std(resid) / truth.pedestal < 0.06


def test_written_rnoise_scaled_by_requested_factor(field_sources):
    model, truth = _exposure(field_sources, rnoise_scale_error=2.5)
    filt = FILTERS["F150W"]
    expected_true = (filt.photmjsr / filt.gain * filt.read_noise_e / model.meta.exposure.exposure_time) ** 2
    good = np.isfinite(model.var_rnoise) & (model.var_rnoise > 0)
    np.testing.assert_allclose(model.var_rnoise[good], 2.5 * expected_true, rtol=1e-5)
    # the noise itself follows the TRUE read noise, not the written one
    sky = _sky_pixels(model, truth)
    resid = (model.data - truth.pedestal - _gradient(truth, 512))[sky]
    true_var = (model.var_poisson + model.var_flat)[sky] + expected_true
    assert np.var(resid) == pytest.approx(np.mean(true_var), rel=0.03)
    assert np.var(resid) < 0.9 * np.mean((model.err**2)[sky])


def test_striping_block_variance(field_sources):
    model, truth = _exposure(field_sources, one_over_f=1.0, seed=9)
    resid = np.where(_sky_pixels(model, truth), model.data - truth.pedestal - _gradient(truth, 512), np.nan)
    nb = 512 // 7
    blocks = resid[:nb * 7, :nb * 7].reshape(nb, 7, nb, 7)
    full = np.all(np.isfinite(blocks), axis=(1, 3))
    means = blocks.mean(axis=(1, 3))[full]
    assert full.sum() > 1500
    # white-only expectation would be sky_variance / 49; striping makes it several times larger
    assert truth.block7_variance > 3 * truth.sky_variance / 49
    assert np.var(means) == pytest.approx(truth.block7_variance, rel=0.2)


def test_defects_and_dq(field_sources):
    from stdatamodels.jwst.datamodels import dqflags

    model, truth = _exposure(field_sources, bad_pixel_fraction=0.01, zero_variance_fraction=0.001,
                             cosmic_ray_rate=1e-4)
    bad = (model.dq & dqflags.pixel["DO_NOT_USE"]) > 0
    assert bad.sum() == truth.n_bad_pixels > 0
    assert np.all(np.isnan(model.data[bad])) and np.all(np.isfinite(model.data[~bad]))
    zero = ~bad & (model.var_rnoise == 0)
    assert zero.sum() == truth.n_zero_variance > 0
    assert np.all(model.var_poisson[zero] == 0) and np.all(model.var_flat[zero] == 0)
    assert np.all(model.dq[zero] == 0)
    # unflagged cosmic rays: sharp positive outliers outside sources
    resid = (model.data - truth.pedestal) / np.sqrt(truth.sky_variance)
    assert np.sum((resid > 15) & (truth.source_image < 0.1) & ~bad) >= truth.n_cosmic_rays > 0


def test_exposure_deterministic_by_seed(field_sources):
    m1, _ = _exposure(field_sources, seed=21)
    m2, _ = _exposure(field_sources, seed=21)
    m3, _ = _exposure(field_sources, seed=22)
    np.testing.assert_array_equal(m1.data, m2.data)
    np.testing.assert_array_equal(m1.dq, m2.dq)
    assert not np.array_equal(np.nan_to_num(m1.data), np.nan_to_num(m3.data))


def test_sources_land_at_true_positions(field_sources):
    """A bright isolated star appears where the TRUE WCS puts it."""
    model, truth = _exposure(field_sources)
    wcs = truth.true_wcs[0]
    ra, dec = wcs(300.3, 200.7)
    star = Table(dict(ra=[ra], dec=[dec], mag=[18.0], r_eff=[0.0], sersic_n=[1.0], axis_ratio=[1.0], pa=[0.0],
                      is_star=[True], sed_slope=[0.0]))
    model, truth = _exposure(star, bad_pixel_fraction=0.0)
    img = truth.source_image
    yy, xx = np.indices(img.shape)
    assert np.sum(img * xx) / img.sum() == pytest.approx(300.3, abs=0.005)
    assert np.sum(img * yy) / img.sum() == pytest.approx(200.7, abs=0.005)
    from jwst_ceers.simulate.nircam_geometry import abmag_to_pixel_sum
    assert img.sum() == pytest.approx(abmag_to_pixel_sum(18.0, 0.031), rel=1e-3)


@pytest.fixture(scope="module")
def pointing(tmp_path_factory):
    out = tmp_path_factory.mktemp("pointing")
    return simulate_pointing(out, filters=("F115W", "F150W", "F356W"), sw_detectors=("NRCA1",),
                             lw_detectors=("NRCALONG",), n_dithers=2, n_visits=1, size=256, seed=7,
                             roll_error_deg=0.01, rnoise_scale_error=1.3, source_density_scale=5.0)


def test_pointing_files_and_names(pointing):
    names = sorted(p.name for p in pointing.cal_files)
    assert len(names) == len(set(names)) == 6  # (F115W+F356W, F150W) x 2 dithers, no collisions
    assert "jw01345001001_02101_00001_nrca1_cal.fits" in names
    assert "jw01345001001_02102_00002_nrca1_cal.fits" in names
    assert all(p.is_file() for p in pointing.cal_files + pointing.mask_files)
    filters = {pointing.truth[p.name.removesuffix("_cal.fits")].filter for p in pointing.cal_files}
    assert filters == {"F115W", "F150W", "F356W"}
    ref = Table.read(pointing.refcat_path)
    assert set(ref.colnames) >= {"ra", "dec", "mag"} and np.all(ref["mag"] < 26.0) and len(ref) > 20
    # refcat positions carry 5-15 mas of noise around the truth
    src = pointing.sources
    keep = source_mag(src, "F160W") < 26.0
    dra, ddec = _sky_offset_arcsec(ref["ra"], ref["dec"], src["ra"][keep], src["dec"][keep])
    assert 0.004 < np.std(np.concatenate([dra, ddec])) < 0.016


def test_pointing_meta_for_stock_steps(pointing):
    from stdatamodels.jwst import datamodels

    root = "jw01345001001_02101_00002_nrcalong"
    with datamodels.open(pointing.out_dir / f"{root}_cal.fits") as model:
        meta = model.meta
        assert meta.instrument.name == "NIRCAM" and meta.instrument.detector == "NRCALONG"
        assert meta.instrument.filter == "F356W" and meta.exposure.type == "NRC_IMAGE"
        assert meta.bunit_data == "MJy/sr" and meta.exposure.exposure_time > 0
        assert meta.exposure.start_time < meta.exposure.mid_time < meta.exposure.end_time
        assert meta.observation.exposure_number == "00002" and meta.observation.activity_id == "01"
        for key in ("v2_ref", "v3_ref", "roll_ref", "ra_ref", "dec_ref", "v3yangle", "vparity", "s_region"):
            assert getattr(meta.wcsinfo, key) is not None
        assert meta.subarray.xstart == 897 and meta.subarray.xsize == 256
        assert meta.photometry.pixelarea_steradians > 0
        assert model.data.shape == (256, 256)


def test_header_wcs_off_by_recorded_error(pointing):
    """Sky positions from the cal file's WCS minus the truth asdf's = the recorded error."""
    from stdatamodels.jwst import datamodels

    truth = load_truth(pointing.out_dir)
    assert set(truth.truth) == set(pointing.truth)
    for root, tr in truth.truth.items():
        with datamodels.open(tr.cal_file) as model, asdf.open(tr.true_wcs_file) as af:
            header_wcs, true_wcs = model.meta.wcs, af["wcs"]
            assert af["wcsinfo"]["ra_ref"] == pytest.approx(tr.true_ra_ref)
            ap = siaf_aperture(tr.detector)
            start, n = subarray_window(256)
            xr, yr = ap.XSciRef - 1 - start, ap.YSciRef - 1 - start
            offset = _sky_offset_arcsec(*header_wcs(xr, yr), *true_wcs(xr, yr))
            np.testing.assert_allclose(offset, (tr.wcs_error["dra_arcsec"], tr.wcs_error["ddec_arcsec"]),
                                       atol=2e-5)
            # away from the reference point the roll error adds a rotation about it
            corner = _sky_offset_arcsec(*header_wcs(0, 0), *true_wcs(0, 0))
            rel = np.array(corner) - np.array(offset)
            dist = np.hypot(*_sky_offset_arcsec(*true_wcs(0, 0), *true_wcs(xr, yr)))
            assert np.hypot(*rel) == pytest.approx(dist * np.radians(abs(tr.wcs_error["droll_deg"])), rel=0.01,
                                                   abs=2e-5)
            assert 0.1 <= np.hypot(*offset) <= 0.33
            assert model.meta.wcsinfo.ra_ref == pytest.approx(
                tr.true_ra_ref + tr.wcs_error["dra_arcsec"] / 3600 / np.cos(np.radians(tr.true_dec_ref)))


def test_pointing_masks_and_truth_file(pointing):
    truth = load_truth(pointing.out_dir)
    tr = truth.truth["jw01345001001_02101_00001_nrca1"]
    assert tr.pedestal == pytest.approx(pointing.truth[tr.root].pedestal)
    assert tr.rnoise_scale_error == 1.3
    with fits.open(tr.mask_file) as hdul:
        seg = hdul[0].data
    with fits.open(tr.cal_file) as hdul:
        sci = hdul["SCI"].data
    assert seg.dtype.kind == "i" and seg.shape == sci.shape
    assert 0 < (seg > 0).mean() < 0.5 and seg.max() >= 3
    # masked pixels are brighter on average: the mask marks real sources
    assert np.nanmean(sci[seg > 0]) > np.nanmean(sci[seg == 0]) + 0.5 * np.sqrt(tr.sky_variance)


def test_load_truth_missing(tmp_path):
    with pytest.raises(CeersFileError, match="simulation_truth"):
        load_truth(tmp_path)
