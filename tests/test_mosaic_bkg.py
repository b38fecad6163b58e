"""MosaicBackground (ceers_mosaic_bkg): accuracy vs injected truth, merging, edits, I/O."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from jwst_ceers.errors import CeersError
from jwst_ceers.simulate.mosaics import read_mosaic_truth, simulate_mosaics

PARAMETER_FILE = Path(__file__).resolve().parents[1] / "parameter_files" / "ceers_mosaic_bkg.asdf"
SHAPE = (1600, 1600)


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pointing(tmp_path_factory):
    """Two NIRCam filters + one HST filter on one grid, and the step run on them."""
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
    root = tmp_path_factory.mktemp("mosaic_bkg")
    sim = simulate_mosaics(root / "in", shape=SHAPE, seed=11, filters=("F150W", "F356W"), hst_filters=("F160W",),
                           n_large_galaxies=1)
    paths = [sim.paths[f] for f in ("F150W", "F356W", "F160W")]
    hashes = {p: _md5(p) for p in paths}
    out = root / "out"
    out.mkdir()
    outputs = MosaicBackground(output_dir=str(out), pointing_name="p1").run([str(p) for p in paths])
    return {"sim": sim, "paths": paths, "hashes": hashes, "out": out, "outputs": outputs}


def test_outputs_exist_with_wcs_filter_and_status(pointing):
    outputs = pointing["outputs"]
    assert [Path(p).name for p in outputs["bkgsub"]] == [
        "ceers_nircam1_f150w_bkgsub.fits", "ceers_nircam1_f356w_bkgsub.fits", "ceers_nircam1_f160w_bkgsub.fits"]
    assert Path(outputs["merged_mask"]).name == "p1_merged_mask.fits"
    header0 = pointing["sim"].header
    for kind, dtype_kind in (("bkg", "f"), ("tiermask", "u")):
        for path, filt in zip(outputs[kind], ("F150W", "F356W", "F160W"), strict=True):
            with fits.open(path) as hdul:
                assert hdul[0].header["FILTER"] == filt
                assert hdul[0].data.dtype.kind == dtype_kind and hdul[0].data.dtype.itemsize <= 4
                w = WCS(hdul[0].header)
                assert np.allclose(w.all_pix2world([[10.0, 20.0]], 0), WCS(header0).all_pix2world([[10.0, 20.0]], 0))
                assert hdul[0].header["CMBKGSTP"] == "COMPLETE"
    from stdatamodels.jwst import datamodels

    with datamodels.open(outputs["bkgsub"][0]) as model:
        assert model.meta.cal_step.ceers_mosaic_bkg == "COMPLETE"
        assert model.data.dtype.kind == "f" and model.data.dtype.itemsize == 4
        nodata = pointing["sim"].coverage
        assert np.all(model.data[nodata] == 0)
    with fits.open(outputs["bkgsub"][2]) as hdul:  # HST member keeps its plain-FITS layout
        assert hdul["SCI"].header["FILTER"] == "F160W" and hdul[0].header["CMBKGSTP"] == "COMPLETE"
    with fits.open(outputs["tiermask"][0]) as hdul:
        bits = hdul[0].data
        assert np.array_equal((bits & 1).astype(bool), pointing["sim"].coverage)


def test_inputs_unmodified(pointing):
    for path, digest in pointing["hashes"].items():
        assert _md5(path) == digest


def test_background_accuracy_against_truth(pointing):
    """
    Residual rms and bias under masks (pixel-sigma units) vs the injected background.

    This small field holds one forced large galaxy (mag 16.5, F356W ~16.0, r_eff 1.4",
    n 3.7) near its edge. Without Sersic models of large galaxies the step left F356W
    rms 0.20, bias +0.15 (F150W 0.082 / +0.002) here; with them, measured
    0.046 / 0.053, bias -0.001 / -0.020 (arrays, same algorithm).
    """
    merged = fits.getdata(pointing["outputs"]["merged_mask"]).astype(bool)
    for bkg_path, filt in zip(pointing["outputs"]["bkg"][:2], ("F150W", "F356W"), strict=True):
        truth = read_mosaic_truth(pointing["sim"].truth_paths[filt])
        good = ~truth["nodata"]
        resid = (fits.getdata(bkg_path) - truth["background"]) / truth["noise_sigma"]
        rms = np.sqrt(np.mean(resid[good] ** 2))
        bias = np.mean(resid[merged & good])
        print(f"{filt}: rms {rms:.4f} bias {bias:+.4f}")
        # the injected background spans 1-3 sigma: a fit that ignored it would be off by ~0.5;
        # issue 8's thresholds
        assert rms <= 0.06, (filt, rms)
        assert abs(bias) <= 0.03, (filt, bias)
        # bright true-source light is masked or modelled: pixels where the truth minus the
        # step's galaxy model still exceeds 3 sigma are masked
        with fits.open(bkg_path) as hdul:
            header = hdul[0].header
        components = _models_from_header(header)
        assert components, "the forced large galaxy was not modelled"
        from jwst_ceers.mosaic_bkg.sersic import evaluate_components

        model = evaluate_components(components, truth["sources"].shape)
        bright = (truth["sources"] - model > 3 * truth["noise_sigma"]) & good
        assert np.mean(merged[bright]) > 0.97


def _models_from_header(header):
    from jwst_ceers.mosaic_bkg.sersic import components_from_header

    return components_from_header(header)


def test_large_galaxy_model_recovers_the_injected_galaxy(pointing):
    """The Sersic fit of the forced large galaxy finds its injected centre, size and index."""
    sim = pointing["sim"]
    table = sim.sources
    from jwst_ceers.simulate.sources import source_mag

    for bkg_path, filt in zip(pointing["outputs"]["bkg"][:2], ("F150W", "F356W"), strict=True):
        with fits.open(bkg_path) as hdul:
            components = _models_from_header(hdul[0].header)
        brightest = int(np.argmin(np.asarray(source_mag(table, filt))))
        true_x, true_y = float(table["x"][brightest]), float(table["y"][brightest])
        true_reff = float(table["r_eff"][brightest]) / 0.03
        true_n = float(table["sersic_n"][brightest])
        main = min(components, key=lambda c: np.hypot(c.x - true_x, c.y - true_y))
        assert np.hypot(main.x - true_x, main.y - true_y) < 2.0
        assert abs(main.r_eff / true_reff - 1) < 0.1, (main.r_eff, true_reff)
        assert abs(main.n - true_n) < 0.5, (main.n, true_n)


ACCEPTANCE_SHAPE = (4000, 4000)


def test_acceptance_accuracy_on_a_4000_square_pointing():
    """
    Issue 8 acceptance (residual rms <= 0.06, bias under masked sources <= 0.03 pixel
    sigma) on the benchmark's 4000 x 4000 two-filter pointing (seed 2023: 16 Mpix,
    galaxy counts calibrated on the CEERS HST F160W catalogue, drizzle-correlated
    noise, gradient + bumps of 1-3 sigma, NaN borders, depth strips), with the step's
    default parameters, on arrays (no I/O).

    Measured: rms 0.034 / 0.044, bias +0.004 / +0.003 (F150W / F356W) with Sersic
    models of the large galaxies (the defaults); an older version of the step (wing
    growth of the mask, since removed) was at 0.053 / 0.091, bias -0.025 / -0.033
    here, so the thresholds can fail.
    """
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground, algorithm_options
    from jwst_ceers.mosaic_bkg.pointing_background import pointing_background

    sim = simulate_mosaics(None, shape=ACCEPTANCE_SHAPE, seed=2023, filters=("F150W", "F356W"))
    step = MosaicBackground()
    filters = ("F150W", "F356W")
    result = pointing_background(
        [sim.images[f] for f in filters],
        nodata=[sim.coverage] * 2,
        tiers=[step.tier_sets()["nircam"]] * 2,
        noise=[sim.truth[f]["noise_sigma"] for f in filters],
        **algorithm_options(step),
    )
    from jwst_ceers.mosaic_bkg.sersic import evaluate_components

    good = ~sim.coverage
    masked = result.merged_mask & good
    for filt, background, components in zip(filters, result.backgrounds, result.galaxy_models, strict=True):
        truth = sim.truth[filt]
        assert background.dtype == np.float32
        resid = (background - truth["background"]) / truth["noise_sigma"]
        rms = float(np.sqrt(np.mean(resid[good] ** 2)))
        bias = float(np.mean(resid[masked]))
        # source light neither masked nor modelled (the wings of modelled galaxies are
        # subtracted, not masked)
        unmodelled = truth["sources"] - evaluate_components(components, truth["sources"].shape)
        source = (unmodelled > 0.5 * truth["noise_sigma"]) & good
        unmasked_source = float(np.mean(~result.merged_mask[source]))
        print(f"{filt}: rms {rms:.4f} bias {bias:+.4f} masked {masked.sum() / good.sum():.3f} "
              f"source px unmasked {unmasked_source:.4f}")
        assert rms <= 0.06, (filt, rms)
        assert abs(bias) <= 0.03, (filt, bias)
        assert unmasked_source < 0.02, (filt, unmasked_source)


def test_single_filter_source_is_masked_everywhere(pointing):
    sim = pointing["sim"]
    info = sim.single_filter_source
    merged = fits.getdata(pointing["outputs"]["merged_mask"]).astype(bool)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    core = np.hypot(xx - info["x"], yy - info["y"]) < info["radius"]
    assert merged[core].all()
    # its own filter's tiers detect it; the other filter has no light there (truth), so
    # the other filter's fit excludes it only through the merged mask. (The other
    # filter's own tier mask cannot be asserted empty there: with drizzle-correlated LW
    # noise the CEERS tiers mask 70-80% of the field on noise peaks.)
    other = [f for f in ("F150W", "F356W") if f != info["filter"]][0]
    own_bits = fits.getdata(pointing["outputs"]["tiermask"][("F150W", "F356W").index(info["filter"])])
    assert ((own_bits[core] >> 1) != 0).all()
    other_truth = sim.truth[other]
    own_truth = sim.truth[info["filter"]]
    assert np.max(own_truth["sources"][core] - other_truth["sources"][core]) > 5 * np.max(own_truth["noise_sigma"][core])


def test_region_edits_change_the_merged_mask_exactly_there(pointing, tmp_path):
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    base = fits.getdata(pointing["outputs"]["merged_mask"]).astype(bool)
    nodata = pointing["sim"].coverage
    # pick a fully masked spot to remove (sky coords) and an unmasked spot to add (pixel coords)
    wcs = WCS(pointing["sim"].header)
    yy, xx = np.nonzero(base & ~nodata)
    pick = np.argmax(base[yy, xx])
    rx, ry = int(xx[pick]), int(yy[pick])
    ra, dec = wcs.all_pix2world([[rx, ry]], 0)[0]
    ay, ax = 800, 800
    while base[ay - 30 : ay + 30, ax - 30 : ax + 30].any() or nodata[ay, ax]:
        ax += 37
        ay = 800 + (ax // 1600) * 53
        ax %= 1500
    region = tmp_path / "edits.reg"
    region.write_text(
        "# Region file format: DS9 version 4.1\n"
        f'fk5\n-circle({ra:.8f},{dec:.8f},0.6")\n'
        f"image\nbox({ax + 1},{ay + 1},20,20,0)\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    outputs = MosaicBackground(output_dir=str(out), pointing_name="p1", edit_regions=[str(region)]).run(
        [str(p) for p in pointing["paths"][:2]]
    )
    edited = fits.getdata(outputs["merged_mask"]).astype(bool)
    yg, xg = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    removed_zone = np.hypot(xg - rx, yg - ry) <= 0.6 / 0.03 - 0.5
    added_zone = (np.abs(xg - ax) <= 9) & (np.abs(yg - ay) <= 9)
    assert not edited[removed_zone].any()
    assert edited[added_zone].all()
    assert not base[added_zone].any()
    # elsewhere the merged mask is exactly the union of that run's (unedited) tier and growth bits
    far = ~(np.hypot(xg - rx, yg - ry) <= 25) & ~((np.abs(xg - ax) <= 15) & (np.abs(yg - ay) <= 15))
    union = _union_of_tiermasks(outputs["tiermask"])
    assert np.array_equal(edited[far], union[far])
    assert not union[added_zone].all()


def _union_of_tiermasks(paths):
    """Union of the source bits (tiers and growth) of tier-mask files."""
    merged = np.zeros(SHAPE, dtype=bool)
    for path in paths:
        merged |= (fits.getdata(path) >> 1) != 0
    return merged


def test_different_grids_raise(tmp_path):
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    a = simulate_mosaics(tmp_path / "a", shape=(300, 300), seed=1, filters=("F150W",), mag_limit=26)
    b = simulate_mosaics(tmp_path / "b", shape=(300, 300), seed=2, filters=("F356W",), mag_limit=26,
                         crval=(214.98, 52.9801))
    with pytest.raises(CeersError, match="not on one grid.*f356w"):
        MosaicBackground(output_dir=str(tmp_path)).run([str(a.paths["F150W"]), str(b.paths["F356W"])])
    c = simulate_mosaics(tmp_path / "c", shape=(300, 320), seed=2, filters=("F356W",), mag_limit=26)
    with pytest.raises(CeersError, match="shape"):
        MosaicBackground(output_dir=str(tmp_path)).run([str(a.paths["F150W"]), str(c.paths["F356W"])])


def test_parameter_file_loads_and_is_validated(tmp_path):
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    step = MosaicBackground.from_config_file(str(PARAMETER_FILE))
    assert list(step.nircam_dilate) == [33.0, 25.0, 21.0, 19.0]
    assert len(step.hst_nsigma) == 4
    bad = tmp_path / "bad.asdf"
    bad.write_text(PARAMETER_FILE.read_text().replace("bkg_filter_size: 3", "bkg_filter_size: 0"))
    with pytest.raises(Exception, match="bkg_filter_size|below"):
        MosaicBackground.from_config_file(str(bad))


def test_unequal_tier_lists_raise(tmp_path):
    from jwst_ceers.errors import CeersParameterError
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    a = simulate_mosaics(tmp_path / "a", shape=(300, 300), seed=1, filters=("F150W",), mag_limit=26)
    with pytest.raises(CeersParameterError, match="nircam_npixels"):
        MosaicBackground(nircam_npixels=[15, 10]).run([str(a.paths["F150W"])])


def test_background_fit_recovers_smooth_surface():
    """The O(N) block fit alone, on pure noise + a known smooth surface."""
    from jwst_ceers.mosaic_bkg.background_fit import fit_background

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:700, 0:900].astype(np.float32)
    truth = 0.002 * xx - 0.001 * yy + 1.5 * np.exp(-((xx - 400) ** 2 + (yy - 300) ** 2) / (2 * 250.0**2))
    data = truth + rng.standard_normal(truth.shape).astype(np.float32)
    exclude = np.zeros(truth.shape, bool)
    exclude[300:400, 300:500] = True
    data[exclude] += 50.0  # a masked "source" must not leak into the fit
    bkg, _ = fit_background(data, exclude, box_size=64, filter_size=3)
    assert np.sqrt(np.mean((bkg - truth) ** 2)) < 0.05


def test_thin_plate_fill_keeps_planes_across_holes_and_edges():
    """Masked boxes (under big galaxies, at the edges) continue the measured gradient."""
    from jwst_ceers.mosaic_bkg.grid_resampling import fill_invalid_nearest, fill_invalid_smooth

    yy, xx = np.mgrid[0:30, 0:50].astype(np.float64)
    plane = 0.3 * xx - 0.2 * yy + 5.0
    valid = np.ones(plane.shape, bool)
    valid[8:22, 10:30] = False  # a hole
    valid[:, 44:] = False  # an edge strip
    filled = fill_invalid_smooth(np.where(valid, plane, np.nan), valid)
    assert filled.dtype == np.float32
    assert np.max(np.abs(filled - plane)) < 1e-3
    # nearest-neighbour filling (the old way) leaves steps of several units there
    assert np.max(np.abs(fill_invalid_nearest(np.where(valid, plane, np.nan), valid) - plane)) > 1.0


def test_larger_boxes_around_a_large_bright_galaxy_reduce_its_wing_bias():
    """
    A large exponential galaxy whose wing reaches past its mask: it is found (centre,
    size vs the injected profile), and the blended larger-box fit around it cuts the
    over-subtraction under its mask (vs the injected background); a field without it
    finds nothing (so the fit there is the plain small-box fit).
    """
    from jwst_ceers.mosaic_bkg.background_fit import fit_background
    from jwst_ceers.mosaic_bkg.large_sources import find_large_bright_sources

    rng = np.random.default_rng(5)
    n = 1024
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    background = 0.8 * (xx / n) - 0.5 * (yy / n) + 0.6 * np.exp(-0.5 * ((xx - 300) ** 2 + (yy - 700) ** 2) / 250.0**2)
    galaxy = 40.0 * np.exp(-np.hypot(yy - 560, xx - 480) / 45.0)  # above 1 sigma out to r = 166 px
    noise = rng.normal(0, 1, (n, n)).astype(np.float32)
    data = (background + galaxy).astype(np.float32) + noise
    mask = galaxy > 0.5  # masked out to r = 197 px; the wing beyond stays unmasked
    sources = find_large_bright_sources(data, mask)
    assert len(sources) == 1
    y, x, radius = sources[0]
    assert np.hypot(y - 560, x - 480) < 8
    assert 120 < radius < 200
    assert find_large_bright_sources(background.astype(np.float32) + noise, mask) == []
    plain, _ = fit_background(data, mask, large_source_box=None)
    blended, _ = fit_background(data, mask)
    bias_plain = float(np.mean((plain - background)[mask]))
    bias_blended = float(np.mean((blended - background)[mask]))
    # measured: +0.26 (plain 128 px boxes) and -0.035 (blended with 256 px boxes)
    assert bias_plain > 0.15
    assert abs(bias_blended) < 0.08
    assert np.sqrt(np.mean((blended - background) ** 2)) < np.sqrt(np.mean((plain - background) ** 2))
