"""The simulator's NIRCam artefacts against their stated parameters (issue 18)."""

from pathlib import Path

import numpy as np
import pytest

from jwst_ceers.errors import CeersParameterError
from jwst_ceers.simulate import REALISM_PRESETS, Realism, realism_preset, simulate_exposure
from jwst_ceers.simulate.artefacts import (
    STRIPING_MODELS,
    WISP_DETECTORS,
    flat_structure,
    persistence_image,
    snowballs,
    striping_block7_variance,
    striping_image,
)
from jwst_ceers.simulate.nircam_geometry import detector_pointing, nircam_gwcs
from jwst_ceers.simulate.psf import pupil_psf, spike_angles_deg
from jwst_ceers.simulate.sources import add_bright_stars, make_source_population

SHARED = Path(__file__).parents[1].parent / "shared"
REAL_WCS_DIR = SHARED / "data" / "ceers_dr05" / "tweakreg_wcs"
RA, DEC, PA = 214.9, 52.9, 130.0


# ---------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------

def test_presets_by_name_dict_and_errors():
    assert realism_preset(None) == Realism()
    realistic = realism_preset("realistic")
    assert realistic.striping == "residual" and realistic.psf == "pupil" and realistic.saturation
    assert realistic.snowball_rate > 0 and realistic.wisp_residual > 0 and realistic.persistence_ghosts > 0
    assert realistic.flat_rms > 0 and realistic.bright_stars > 0
    custom = realism_preset({"preset": "realistic", "striping": "unremoved"})
    assert custom.striping == "unremoved" and custom.psf == "pupil"
    assert set(REALISM_PRESETS) >= {"none", "realistic", "striping", "spikes", "snowballs", "wisps", "persistence",
                                    "flat", "saturated_stars", "striping_unremoved"}
    with pytest.raises(CeersParameterError, match="unknown"):
        realism_preset("hyperrealistic")
    with pytest.raises(CeersParameterError, match="striping"):
        realism_preset({"striping": "lots"})
    with pytest.raises(CeersParameterError, match="snowball_rate"):
        Realism(snowball_rate=-1.0)


def _exposure(realism, *, detector="NRCA1", filter_name="F150W", size=256, seed=3, sources=None, **kwargs):
    ra_ref, dec_ref, roll_ref = detector_pointing(detector, ra=RA, dec=DEC, pa_v3=PA)
    if sources is None:
        sources = make_source_population(ra=ra_ref, dec=dec_ref, width_arcsec=30, height_arcsec=30, seed=seed)
    return simulate_exposure(filter_name=filter_name, detector=detector, ra_ref=ra_ref, dec_ref=dec_ref,
                             roll_ref=roll_ref, sources=sources, seed=seed, size=size, keep_source_image=True,
                             realism=realism, **kwargs)


def test_none_preset_is_the_old_simulator():
    old, _ = _exposure(None)
    new, truth = _exposure("none")
    np.testing.assert_array_equal(old.data, new.data)
    assert truth.realism == Realism().to_dict()
    assert not np.any(truth.artefact_image)


def test_components_add_up_to_the_data():
    model, truth = _exposure({"preset": "realistic", "snowball_rate": 200.0, "persistence_ghosts": 100.0},
                             cosmic_ray_rate=0.0, bad_pixel_fraction=0.0)
    n = model.data.shape[0]
    u = (np.arange(n) - (n - 1) / 2.0) / n
    sky = truth.pedestal + truth.gradient[0] * u[None, :] + truth.gradient[1] * u[:, None]
    total = truth.source_image + sky + truth.artefact_image + truth.noise_image
    finite = np.isfinite(model.data)
    np.testing.assert_allclose(model.data[finite], total[finite], atol=1e-5)
    assert truth.n_snowballs > 0 and truth.n_persistence_ghosts > 0


# ---------------------------------------------------------------------------
# 1/f striping
# ---------------------------------------------------------------------------

def _row_offsets(image, start=0):
    amp = (start + np.arange(image.shape[1])) // 512
    return np.column_stack([image[:, amp == a].mean(axis=1) for a in np.unique(amp)])


def test_striping_rms_amplifier_correlation_and_power_spectrum():
    model = STRIPING_MODELS["unremoved"]
    rng = np.random.default_rng(1)
    rows, cols = [], []
    for _ in range(6):
        image = striping_image((2048, 2048), start=0, sky_sigma=2.0, model=model, rng=rng)
        offsets = _row_offsets(image)
        cols.append(image - offsets[:, (np.arange(2048) // 512)])
        rows.append(offsets)
    rows = np.array(rows)  # (realisation, row, amp)
    # column offsets are the same down each column and white
    col = np.array([c[0] - c[0].mean() for c in cols])
    assert abs(col.std() / (model.col_rms * 2.0) - 1) < 0.1
    rows_nocol = rows - rows.mean(axis=1, keepdims=True)
    # row offsets: rms (minus the column part's mean over 512 columns, negligible) as stated
    assert abs(rows.std() / (model.row_rms * 2.0) - 1) < 0.15
    # a common_fraction of the variance is shared by the amplifiers
    corr = np.mean([np.corrcoef(r.T)[np.triu_indices(4, 1)].mean() for r in rows_nocol])
    assert abs(corr - model.common_fraction) < 0.1
    # power spectrum of the row sequence ~ f**-alpha
    psd = np.mean(np.abs(np.fft.rfft(rows_nocol, axis=1)) ** 2, axis=(0, 2))
    f = np.fft.rfftfreq(2048)
    keep = (f > 0.005) & (f < 0.4)
    slope = np.polyfit(np.log(f[keep]), np.log(psd[keep]), 1)[0]
    assert abs(slope + model.alpha) < 0.15


@pytest.mark.parametrize("name", ["residual", "unremoved"])
def test_striping_block7_variance_matches_realisations(name):
    model = STRIPING_MODELS[name]
    rng = np.random.default_rng(2)
    start, n = 256, 1024  # a subarray straddling amplifier boundaries
    means = []
    for _ in range(8):
        image = striping_image((n, n), start=start, sky_sigma=1.0, model=model, rng=rng)
        nb = n // 7
        blocks = image[:nb * 7, :nb * 7].reshape(nb, 7, nb, 7).mean(axis=(1, 3))
        means.append(np.var(blocks - blocks.mean()))
    expected = striping_block7_variance(shape=(n, n), start=start, sky_sigma=1.0, model=model)
    # the block-mean variance is dominated by the row offsets (7 rows x 7 columns per block)
    assert abs(np.mean(means) / expected - 1) < 0.12


def test_striping_in_exposure_truth():
    _, plain = _exposure(None)
    _, striped = _exposure("striping_unremoved")
    assert striped.block7_variance > 3 * plain.block7_variance
    offsets = _row_offsets(striped.noise_image, start=(2048 - 256) // 2)
    assert abs(offsets.std() / (STRIPING_MODELS["unremoved"].row_rms * np.sqrt(striped.sky_variance)) - 1) < 0.3


# ---------------------------------------------------------------------------
# PSF and spikes
# ---------------------------------------------------------------------------

def _angular_profile(stamp, r_min=20, r_max=60, step=1.0):
    h = stamp.shape[0] // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    r = np.hypot(xx, yy)
    ang = np.degrees(np.arctan2(yy, xx)) % 180.0
    centres = np.arange(0, 180, step)
    prof = []
    for a in centres:
        d = np.abs((ang - a + 90) % 180 - 90) < step / 2
        prof.append(stamp[(r > r_min) & (r < r_max) & d].mean())
    return centres, np.array(prof)


@pytest.mark.parametrize("rotation, parity", [(0.0, 1), (12.5, -1)])
def test_spike_position_angles(rotation, parity):
    psf = pupil_psf(1.501, 0.031, rotation_deg=rotation, parity=parity)
    stamp = psf.stamp(0.0, 0.0, 64)
    centres, prof = _angular_profile(stamp, r_min=25, r_max=60)
    main, strut = spike_angles_deg(rotation, parity)

    def level(a):
        d = np.abs((centres - a + 90) % 180 - 90)
        return prof[d <= 1.0].max()

    off = np.ones(centres.size, bool)
    for a in (*main, strut):
        off &= np.abs((centres - a + 90) % 180 - 90) > 8
    background = np.median(prof[off])
    for a in main:
        assert level(a) > 10 * background, a
    # nothing as bright away from the spikes
    assert prof[off].max() < 0.5 * min(level(a) for a in main)
    # the strut spike is there but fainter than the segment spikes
    assert 2 * background < level(strut) < 0.5 * min(level(a) for a in main)


def test_psf_centroid_flux_and_core():
    psf = pupil_psf(1.501, 0.031)
    for dx, dy in ((0.0, 0.0), (0.37, -0.21)):
        stamp = psf.stamp(dx, dy, 127)
        h = 127
        yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
        core = np.hypot(xx - dx, yy - dy) < 20
        cx = (stamp * xx)[core].sum() / stamp[core].sum()
        cy = (stamp * yy)[core].sum() / stamp[core].sum()
        assert abs(cx - dx) < 0.01 and abs(cy - dy) < 0.01
        assert 0.97 < stamp.sum() <= 1.0 + 1e-6
    # F150W: diffraction-limited core, peak fraction ~0.15-0.25 at 0.031"/px (JWST F150W)
    assert 0.12 < psf.stamp(0, 0, 16).max() < 0.3


def test_exposure_spikes_follow_detector_v3():
    """A star on NRCA1 with the pupil PSF: spikes along the detector's +V3 direction (the pixel y axis)."""
    ra_ref, dec_ref, roll_ref = detector_pointing("NRCA1", ra=RA, dec=DEC, pa_v3=PA)
    wcs = nircam_gwcs("NRCA1", ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref, subarray=256)
    ra, dec = wcs(127.3, 128.6)
    star = make_source_population(ra=ra_ref, dec=dec_ref, width_arcsec=1, height_arcsec=1, seed=1)[:0]
    star = add_bright_stars(star, ra=float(ra), dec=float(dec), half_width_arcsec=1e-6, count=1,
                            rng=np.random.default_rng(0), mag_range=(20.0, 20.0))
    _, truth = _exposure("spikes", sources=star, size=256)
    img = truth.source_image
    y0, x0 = np.unravel_index(np.argmax(img), img.shape)
    assert abs(x0 - 127.3) <= 1 and abs(y0 - 128.6) <= 1
    up = img[y0 + 30:y0 + 60, x0 - 1:x0 + 2].sum()
    diagonal = np.mean([img[y0 + k, x0 + k] for k in range(30, 60)]) * 90
    assert up > 5 * diagonal


# ---------------------------------------------------------------------------
# saturation, snowballs, wisps, persistence, flat
# ---------------------------------------------------------------------------

def test_saturated_star_core_flagged_spikes_not():
    from stdatamodels.jwst.datamodels import dqflags

    ra_ref, dec_ref, _ = detector_pointing("NRCA1", ra=RA, dec=DEC, pa_v3=PA)
    wcs = nircam_gwcs("NRCA1", ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=detector_pointing("NRCA1", ra=RA, dec=DEC,
                                                                                          pa_v3=PA)[2], subarray=256)
    ra, dec = wcs(128.0, 128.0)
    star = make_source_population(ra=ra_ref, dec=dec_ref, width_arcsec=1, height_arcsec=1, seed=1)[:0]
    star = add_bright_stars(star, ra=float(ra), dec=float(dec), half_width_arcsec=1e-6, count=1,
                            rng=np.random.default_rng(0), mag_range=(14.0, 14.0))
    model, truth = _exposure("saturated_stars", sources=star, size=256, bad_pixel_fraction=0.0)
    sat = (model.dq & dqflags.pixel["SATURATED"]) > 0
    assert truth.n_saturated == sat.sum() > 10
    assert np.all(np.isnan(model.data[sat])) and np.all(model.dq[sat] & dqflags.pixel["DO_NOT_USE"])
    # saturated pixels are the core: near the star, and spikes/halo beyond are finite and bright
    yy, xx = np.nonzero(sat)
    assert np.hypot(xx - 128, yy - 128).max() < 25
    sigma = np.sqrt(truth.sky_variance)
    halo = model.data[128 + 40, 127:130] - truth.pedestal
    assert np.all(np.isfinite(halo)) and halo.max() > 10 * sigma


def test_snowballs_cores_flagged_halos_unflagged():
    from stdatamodels.jwst.datamodels import dqflags

    rng = np.random.default_rng(4)
    image, core, centres = snowballs((512, 512), rate=200.0, exposure_time=2834.5, sky_sigma=1.0, rng=rng)
    assert len(centres) == pytest.approx(200 * 2.8345 / 16, rel=0.5)
    for x, y, rc in centres:
        if 3 * rc < x < 509 - 3 * rc and 3 * rc < y < 509 - 3 * rc:
            assert core[int(round(y)), int(round(x))]
            ring = image[int(y), int(x + 1.3 * rc)]
            assert ring > 0.1  # halo: positive excess just outside the core
    model, truth = _exposure("snowballs", size=512, seed=5, bad_pixel_fraction=0.0)
    jump = (model.dq & dqflags.pixel["JUMP_DET"]) > 0
    assert truth.n_snowballs > 0 and jump.sum() > 30 * truth.n_snowballs * 0.5
    halo = (truth.artefact_image > 0.3 * np.sqrt(truth.sky_variance)) & ~jump
    assert halo.sum() > jump.sum()  # halos bigger than cores and left unflagged
    assert not np.any(model.dq[halo] & dqflags.pixel["DO_NOT_USE"])


@pytest.mark.parametrize("detector, filter_name, has_wisp", [
    ("NRCA3", "F150W", True), ("NRCB4", "F200W", True), ("NRCA1", "F150W", False), ("NRCALONG", "F356W", False)])
def test_wisps_only_on_a3_a4_b3_b4(detector, filter_name, has_wisp):
    _, truth = _exposure("wisps", detector=detector, filter_name=filter_name, size=1024, seed=8)
    peak = np.abs(truth.artefact_image).max()
    if has_wisp:
        assert detector in WISP_DETECTORS and truth.wisp_factor != 0
        limit = REALISM_PRESETS["wisps"].wisp_residual * 0.08 * truth.pedestal
        assert 0 < peak <= limit * 1.01
        assert np.mean(np.abs(truth.artefact_image) > 0.1 * peak) > 0.05  # extended (hundreds of px)
    else:
        assert peak == 0 and truth.wisp_factor == 0


def test_persistence_ghosts_and_flat():
    rng = np.random.default_rng(6)
    image, ghosts = persistence_image((1024, 1024), mean_count=400, sky_sigma=1.0, rng=rng)
    assert len(ghosts) == pytest.approx(100, rel=0.35)
    assert np.all((ghosts[:, 2] >= 0.5) & (ghosts[:, 2] <= 5.0))
    assert image.max() <= 5.0 * 1.5  # overlapping ghosts at most add up
    eps = flat_structure((1024, 1024), rms=0.004, rng=rng)
    assert abs(eps.mean()) < 1e-6 and eps.std() == pytest.approx(0.004, rel=1e-3)
    # smooth: little power on the 7-px scale
    assert np.std(np.diff(eps, axis=1)) < 0.05 * eps.std()


# ---------------------------------------------------------------------------
# real geometry
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not REAL_WCS_DIR.is_dir(), reason="real CEERS WCS solutions not available")
def test_real_geometry_truth_is_the_real_solution(tmp_path):
    import asdf

    from jwst_ceers.simulate import load_truth, simulate_pointing
    from jwst_ceers.simulate.real_geometry import load_real_wcs, real_wcs_file

    sim = simulate_pointing(tmp_path, filters=("F150W",), sw_detectors=("NRCA1",), lw_detectors=(), n_dithers=2,
                            size=128, seed=2, real_geometry=True, real_wcs_dir=REAL_WCS_DIR)
    truth = load_truth(tmp_path).truth
    for t in truth.values():
        real = load_real_wcs(str(real_wcs_file("NRCA1", "F150W", t.dither + 1, wcs_dir=REAL_WCS_DIR)))
        with asdf.open(t.true_wcs_file) as handle:
            true_wcs = handle["wcs"]
        start = (2048 - 128) // 2
        np.testing.assert_allclose(true_wcs(10.0, 20.0), real(10.0 + start, 20.0 + start), atol=1e-10)
        err = np.hypot(t.wcs_error["dra_arcsec"], t.wcs_error["ddec_arcsec"])
        assert 0.07 < err < 0.35
    assert len(sim.cal_files) == 2
