"""``jwst-ceers asn`` and ``jwst-ceers grid``: associations per (pointing, filter), shared grids.

Exposures are small synthetic ImageModels with a plain TAN gwcs (known sky
position, pixel scale and orientation) and a star injected at a known RA/Dec, so
that the grouping, the footprints and the drizzled positions can be checked
against the injected truth.
"""

import hashlib
import json
import math
import shutil

import numpy as np
import pytest
from astropy.io import fits

from jwst_ceers.associations import group_exposures, read_exposure_info, write_associations
from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.mosaic_grid import (
    OutputGrid,
    grid_from_footprints,
    grid_from_reference_header,
    pointing_grid,
    read_grid_parameter_file,
    sky_to_grid_pixels,
    write_grid_parameter_file,
)

FIELD_RA, FIELD_DEC = 214.9650, 52.9380  # CEERS/EGS-like
FIELD_PA = -49.7  # position angle of the detector +y axis (deg)
STAR_RA, STAR_DEC = 214.96512, 52.93791  # injected point source


def _tan_wcs(shape, *, ra, dec, pa, scale):
    """A FITS-equivalent TAN gwcs, east left, +y at position angle ``pa``; tangent point at the centre."""
    import astropy.units as u
    from astropy.coordinates import ICRS
    from astropy.modeling import models
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    ny, nx = shape
    theta = math.radians(pa)
    cd = scale / 3600.0 * np.array([[-math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    transform = (
        (models.Shift(-(nx - 1) / 2) & models.Shift(-(ny - 1) / 2))
        | models.AffineTransformation2D(matrix=cd)
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(ra, dec, 180.0)
    )
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=ICRS(), name="world", unit=(u.deg, u.deg))
    wcs = gwcs_wcs.WCS([(detector, transform), (sky, None)])
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    return wcs


def make_exposure(
    path,
    *,
    filter_name="F150W",
    pupil="CLEAR",
    detector="NRCA1",
    program="01345",
    observation="001",
    visit="001",
    exposure=1,
    shape=(8, 8),
    ra=FIELD_RA,
    dec=FIELD_DEC,
    pa=FIELD_PA,
    scale=0.031,
    star_flux=0.0,
    seed=0,
):
    """Write a minimal cal-like ImageModel (with a gwcs, S_REGION and noise) to ``path``."""
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(seed)
    ny, nx = shape
    wcs = _tan_wcs(shape, ra=ra, dec=dec, pa=pa, scale=scale)
    data = rng.normal(0.0, 0.01, shape).astype(np.float32)
    if star_flux:
        x_star, y_star = wcs.invert(STAR_RA, STAR_DEC)
        yy, xx = np.mgrid[0:ny, 0:nx]
        sigma = 1.5
        data += (star_flux * np.exp(-((xx - x_star) ** 2 + (yy - y_star) ** 2) / (2 * sigma**2))).astype(np.float32)
    model = datamodels.ImageModel(data=data, validate_on_assignment=False)  # validated on save
    model.dq = np.zeros(shape, np.uint32)
    model.err = np.full(shape, 0.01, np.float32)
    model.var_rnoise = np.full(shape, 1e-4, np.float32)
    model.var_poisson = np.zeros(shape, np.float32)
    model.var_flat = np.zeros(shape, np.float32)
    meta = model.meta
    meta.instrument.name = "NIRCAM"
    meta.instrument.filter = filter_name
    meta.instrument.pupil = pupil
    meta.instrument.detector = detector
    meta.instrument.channel = "SHORT" if scale < 0.05 else "LONG"
    meta.exposure.type = "NRC_IMAGE"
    meta.exposure.exposure_time = 100.0
    meta.exposure.effective_exposure_time = 100.0
    meta.exposure.measurement_time = 100.0
    meta.exposure.start_time = 59800.0 + exposure * 0.01
    meta.exposure.mid_time = meta.exposure.start_time + 0.0006
    meta.exposure.end_time = meta.exposure.start_time + 0.0012
    meta.observation.date = "2022-06-21"
    meta.observation.time = "12:00:00"
    meta.observation.program_number = program
    meta.observation.observation_number = observation
    meta.observation.visit_number = visit
    meta.observation.visit_group = "02"
    meta.observation.sequence_id = "1"
    meta.observation.activity_id = "01"
    meta.observation.exposure_number = f"{exposure:05d}"
    meta.bunit_data = "MJy/sr"
    meta.bunit_err = "MJy/sr"
    meta.wcs = wcs
    wcsinfo = meta.wcsinfo
    wcsinfo.ra_ref, wcsinfo.dec_ref = ra, dec
    wcsinfo.v2_ref, wcsinfo.v3_ref = 0.0, 0.0
    wcsinfo.v3yangle, wcsinfo.vparity = 0.0, -1
    wcsinfo.roll_ref = pa
    corners = wcs.footprint()
    wcsinfo.s_region = "POLYGON ICRS " + " ".join(f"{v:.9f}" for v in corners.ravel())
    meta.photometry.pixelarea_steradians = (scale / 206264.806) ** 2
    meta.photometry.pixelarea_arcsecsq = scale**2
    model.save(path)
    model.close()
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- asn


@pytest.fixture(scope="module")
def _cal_dir_once(tmp_path_factory):
    """2 visits x (F150W, F356W, F150W2+F162M) x 2 detectors x 2 dithers, tiny arrays."""
    directory = tmp_path_factory.mktemp("cal")
    truth = []
    for visit in ("001", "002"):
        for filter_name, pupil, detectors in (
            ("F150W", "CLEAR", ("NRCA1", "NRCA2")),
            ("F356W", "CLEAR", ("NRCALONG", "NRCBLONG")),
            ("F150W2", "F162M", ("NRCA1", "NRCA2")),
        ):
            for detector in detectors:
                for exposure in (1, 2):
                    band = filter_name.lower() if pupil == "CLEAR" else f"{filter_name}-{pupil}".lower()
                    name = f"jw01345001{visit}_{filter_name}{pupil}_{exposure:05d}_{detector.lower()}_cal.fits"
                    make_exposure(
                        directory / name,
                        filter_name=filter_name,
                        pupil=pupil,
                        detector=detector,
                        visit=visit,
                        exposure=exposure,
                    )
                    truth.append({"name": name, "visit": visit, "band": band, "detector": detector})
    return directory, truth


@pytest.fixture
def cal_dir(_cal_dir_once, tmp_path):
    """A private copy of the synthetic cal files (tests may add catalogs beside them)."""
    source, truth = _cal_dir_once
    directory = tmp_path / "cal"
    shutil.copytree(source, directory)
    return directory, truth


def _members(asn_path):
    asn = json.loads(asn_path.read_text())
    assert len(asn["products"]) == 1
    return asn["products"][0]["name"], asn["products"][0]["members"]


def test_asn_one_per_pointing_and_filter(cal_dir, tmp_path):
    directory, truth = cal_dir
    before = {p.name: _digest(p) for p in directory.iterdir()}
    out = tmp_path / "asn" / "nested"  # created by the command
    written = write_associations(directory, out, by="pointing", product="ceers_p1")

    bands = sorted({t["band"] for t in truth})
    assert [p.name for p in written] == [f"ceers_p1_{b}.json" for b in bands]
    for path, band in zip(written, bands, strict=True):
        product, members = _members(path)
        assert product == f"ceers_p1_{band}"
        expected = sorted(t["name"] for t in truth if t["band"] == band)
        got = sorted(m["expname"].rsplit("/", 1)[-1] for m in members)
        assert got == expected  # every exposure of the band, from both visits, nothing else
        for member in members:
            # relative to the association's directory, so ModelLibrary resolves it
            assert (out / member["expname"]).resolve().parent == directory.resolve()
            assert fits.getheader(out / member["expname"])["FILTER"] + "" in band.upper()
            assert "group_id" not in member and "tweakreg_catalog" not in member
    # inputs untouched
    assert {p.name: _digest(p) for p in directory.iterdir()} == before


def test_asn_by_visit_with_detector_groups_and_catalogs(cal_dir, tmp_path):
    directory, truth = cal_dir
    # catalogs for half of the F150W exposures
    with_catalog = sorted(t["name"] for t in truth if t["band"] == "f150w")[::2]
    for name in with_catalog:
        (directory / name.replace("_cal.fits", "_cat.ecsv")).write_text("# %ECSV 1.0\n---\nx y\n1 2\n")
    written = write_associations(
        str(directory / "*_cal.fits"), tmp_path, by="visit", group_by_detector=True, catalog_suffix="cat"
    )
    names = [p.name for p in written]
    assert len(names) == 2 * 3
    assert "jw01345-o001-v002_f150w2-f162m.json" in names
    for path in written:
        product, members = _members(path)
        visit = product.split("-v")[1][:3]
        band = product.split("_", 1)[1]
        expected = {t["name"]: t for t in truth if t["visit"] == visit and t["band"] == band}
        assert sorted(m["expname"] for m in members) == sorted(f"cal/{name}" for name in expected)
        for member in members:
            t = expected[member["expname"].removeprefix("cal/")]
            assert member["group_id"] == f"jw01345001{visit}_{t['detector'].lower()}"
            if member["expname"].removeprefix("cal/") in with_catalog:
                assert member["tweakreg_catalog"] == member["expname"].replace("_cal.fits", "_cat.ecsv")
            else:
                assert "tweakreg_catalog" not in member
        # two dithers per detector share a group; detectors differ
        groups = [m["group_id"] for m in members]
        assert sorted(groups.count(g) for g in set(groups)) == [2, 2]


@pytest.mark.filterwarnings("ignore:Input association file contains path information")
def test_asn_loads_in_model_library_with_group_ids(cal_dir, tmp_path):
    from jwst.datamodels import ModelLibrary

    directory, _ = cal_dir
    written = write_associations(directory, tmp_path / "asn", filters=["F356W"], group_by_detector=True)
    assert [p.name for p in written] == ["jw01345-o001_f356w.json"]
    library = ModelLibrary(str(written[0]), on_disk=True)
    assert len(library) == 8
    detectors = set()
    for i in range(len(library)):
        meta = library.read_metadata(i)
        assert meta["meta.instrument.filter"] == "F356W"
        detectors.add((meta["meta.observation.visit_number"], meta["meta.instrument.detector"]))
    assert len(library.group_names) == len(detectors) == 4


def test_asn_never_mixes_filters_even_with_same_ids(tmp_path):
    """The COSMOS-Web trap: same program/observation/visit/detector, two filters."""
    for i, filter_name in enumerate(("F115W", "F277W", "F115W", "F444W")):
        make_exposure(tmp_path / f"e{i}_cal.fits", filter_name=filter_name, exposure=i + 1)
    exposures = [read_exposure_info(p) for p in sorted(tmp_path.glob("*_cal.fits"))]
    groups = group_exposures(exposures)
    assert [(g.band, len(g.exposures)) for g in groups] == [("f115w", 2), ("f277w", 1), ("f444w", 1)]
    for g in groups:
        assert {e.filter for e in g.exposures} == {g.band.upper()}


def test_asn_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken_cal.fits"
    bad.write_bytes(b"not a fits file at all" * 10)
    with pytest.raises(CeersFileError, match="broken_cal.fits"):
        write_associations([bad], tmp_path)
    with pytest.raises(CeersFileError, match="missing_cal.fits"):
        write_associations([tmp_path / "missing_cal.fits"], tmp_path)
    nofilter = tmp_path / "nofilter_cal.fits"
    fits.PrimaryHDU(header=fits.Header([("PROGRAM", "01345"), ("OBSERVTN", "001"), ("VISIT", "001")])).writeto(
        nofilter
    )
    with pytest.raises(CeersFileError, match="nofilter_cal.fits.*FILTER"):
        write_associations([nofilter], tmp_path)
    make_exposure(tmp_path / "a_cal.fits", observation="001")
    make_exposure(tmp_path / "b_cal.fits", observation="002")
    with pytest.raises(CeersParameterError, match="product"):
        write_associations([tmp_path / "a_cal.fits", tmp_path / "b_cal.fits"], tmp_path, product="x")


@pytest.mark.parametrize("command", ["asn", "grid"])
def test_cli_error_exits_2_one_line_naming_file(command, tmp_path, capsys, monkeypatch):
    import jwst_ceers.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", {k: cli.COMMANDS[k] for k in ("asn", "grid")})
    bad = tmp_path / "corrupt_cal.fits"
    bad.write_bytes(b"\x00garbage" * 50)
    argv = [command, str(bad), "-o", str(tmp_path / "out")]
    if command == "grid":
        argv += ["--pixel-scale", "0.03"]
    status = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1
    assert "corrupt_cal.fits" in err and err.startswith(f"jwst-ceers {command}: error:")


def test_cli_asn_and_grid_write_files(cal_dir, tmp_path, capsys, monkeypatch):
    import jwst_ceers.cli as cli
    from jwst.resample import ResampleStep

    monkeypatch.setattr(cli, "COMMANDS", {k: cli.COMMANDS[k] for k in ("asn", "grid")})
    directory, _ = cal_dir
    assert cli.main(["asn", str(directory), "-o", str(tmp_path / "asn"), "--filters", "f150w"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "asn" / "jw01345-o001_f150w.json")]
    out = tmp_path / "grid.asdf"
    assert cli.main(["grid", str(directory), "-o", str(out), "--pixel-scale", "0.03", "--rotation", "20"]) == 0
    step = ResampleStep.from_config_file(str(out))
    assert step.pixel_scale == 0.03 and step.rotation == 20.0 and step.pixfrac == 1.0

    # whole reference mosaic at twice its scale, pipeline layout
    reference = _write_hst(_hst_header(crpix=(601.0, 500.5), shape=(1200, 1000)), tmp_path)
    out = tmp_path / "image3_grid.asdf"
    argv = ["grid", "--reference", str(reference), "--pixel-scale", "0.06", "--format", "pipeline", "-o", str(out)]
    assert cli.main(argv) == 0
    grid = read_grid_parameter_file(out)
    assert grid.output_shape == (600, 500) and grid.crpix == (299.75, 249.5)
    assert grid.crval == (214.9, 52.9) and grid.pixel_scale == pytest.approx(0.06, rel=1e-12)


# -------------------------------------------------------------------------- grid


def _hst_header(*, scale=0.03, pa=FIELD_PA, crpix=(2000.5, 1500.0), shape=(4000, 3000)):
    theta = math.radians(pa)
    cd = scale / 3600 * np.array([[-math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    header = fits.Header()
    header["NAXIS"] = 2
    header["NAXIS1"], header["NAXIS2"] = shape
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRPIX1"], header["CRPIX2"] = crpix
    header["CRVAL1"], header["CRVAL2"] = 214.9, 52.9
    for i in range(2):
        for j in range(2):
            header[f"CD{i + 1}_{j + 1}"] = cd[i, j]
    header["FILTER"] = "F160W"
    return header


def test_reference_grid_reproduces_header_and_scales_integer():
    from astropy.wcs import WCS

    header = _hst_header()
    ref = WCS(header)
    grid = grid_from_reference_header(header)
    assert grid.crval == (214.9, 52.9)
    assert grid.crpix == (1999.5, 1499.0)
    assert grid.output_shape == (4000, 3000)
    assert grid.pixel_scale == pytest.approx(0.03, rel=1e-12)
    assert grid.rotation == pytest.approx(FIELD_PA, abs=1e-10)
    np.testing.assert_allclose(grid.cd_matrix(), ref.wcs.cd, rtol=0, atol=1e-18)

    # 0.06"/px: each output pixel is a 2x2 block of reference pixels, edges shared
    coarse = grid_from_reference_header(header, pixel_scale=0.06)
    assert coarse.output_shape == (2000, 1500)
    corners = np.array([[-0.5, -0.5], [1999.5, 1499.5], [10.5, 733.5]])
    sky = coarse.to_fits_wcs().all_pix2world(corners, 0)
    np.testing.assert_allclose(ref.all_world2pix(sky, 0), 2 * (corners + 0.5) - 0.5, atol=1e-6)
    # 0.015"/px: each reference pixel split in 2x2
    fine = grid_from_reference_header(header, pixel_scale=0.015)
    assert fine.output_shape == (8000, 6000)
    sky = fine.to_fits_wcs().all_pix2world(corners, 0)
    np.testing.assert_allclose(ref.all_world2pix(sky, 0), (corners + 0.5) / 2 - 0.5, atol=1e-6)

    with pytest.raises(CeersParameterError, match="pixel_scale"):
        grid_from_reference_header(header, pixel_scale=0.04)
    skewed = header.copy()
    skewed["CD1_1"] = -skewed["CD1_1"]  # mirrored: resample cannot produce it
    with pytest.raises(CeersFileError, match="reference"):
        grid_from_reference_header(skewed)


def test_footprint_grid_covers_every_footprint(tmp_path):
    rng = np.random.default_rng(3)
    files = []
    for i in range(6):
        ra = FIELD_RA + rng.uniform(-0.01, 0.01)
        dec = FIELD_DEC + rng.uniform(-0.01, 0.01)
        files.append(make_exposure(tmp_path / f"e{i}_cal.fits", ra=ra, dec=dec, shape=(40, 60), scale=0.5))
    grid = pointing_grid(files, pixel_scale=0.1, margin=5)
    # rotation from the exposures' roll angles; tangent point rounded to 1e-4 deg
    assert grid.rotation == pytest.approx(FIELD_PA, abs=1e-9)
    for value in grid.crval:
        assert value / 1e-4 == pytest.approx(round(value / 1e-4), abs=1e-6)
    nx, ny = grid.output_shape
    from jwst_ceers.mosaic_grid import exposure_footprint

    all_x, all_y = [], []
    for path in files:
        with fits.open(path) as hdul:
            assert hdul["SCI"].header["S_REGION"]
        corners = exposure_footprint(path)
        x, y = sky_to_grid_pixels(grid, corners[:, 0], corners[:, 1])
        all_x.extend(x)
        all_y.extend(y)
    assert min(all_x) >= 5 - 0.5 and max(all_x) <= nx - 5 - 0.5
    assert min(all_y) >= 5 - 0.5 and max(all_y) <= ny - 5 - 0.5
    # tight: one more pixel of margin on each side would be too much
    assert min(all_x) < 6.5 and max(all_x) > nx - 7.5

    with pytest.raises(CeersParameterError):
        grid_from_footprints([], pixel_scale=0.03, rotation=0.0)

    # without S_REGION the footprint comes from the file's WCS
    no_sregion = tmp_path / "nosregion_cal.fits"
    shutil.copy(files[0], no_sregion)
    with fits.open(no_sregion, mode="update") as hdul:
        del hdul["SCI"].header["S_REGION"]
    np.testing.assert_allclose(exposure_footprint(no_sregion), exposure_footprint(files[0]), atol=1e-8)


@pytest.fixture(scope="module")
def two_filter_pointing(tmp_path_factory):
    """F150W (0.031"/px) and F356W (0.063"/px), two dithers each, one star at known RA/Dec."""
    directory = tmp_path_factory.mktemp("pointing")
    files = {"F150W": [], "F356W": []}
    dithers = [(0.0, 0.0), (1.1 / 3600, -0.7 / 3600)]
    for k, (dra, ddec) in enumerate(dithers):
        files["F150W"].append(
            make_exposure(
                directory / f"sw{k}_cal.fits", filter_name="F150W", detector="NRCA1", exposure=k + 1,
                shape=(150, 160), scale=0.031, ra=FIELD_RA + dra, dec=FIELD_DEC + ddec, star_flux=50.0, seed=k,
            )
        )
        files["F356W"].append(
            make_exposure(
                directory / f"lw{k}_cal.fits", filter_name="F356W", detector="NRCALONG", exposure=k + 1,
                shape=(75, 80), scale=0.063, ra=FIELD_RA + dra, dec=FIELD_DEC + ddec, star_flux=50.0, seed=10 + k,
            )
        )
    return directory, files


def _drizzle(files, grid_file, output_dir):
    from jwst.resample import ResampleStep

    step = ResampleStep.from_config_file(str(grid_file))
    return step.run([str(f) for f in files])


def _star_centroid(data, x0, y0, half=14):
    """Background-subtracted first moment in a box of +-``half`` pixels (> 4 sigma of the LW star)."""
    xc, yc = round(x0), round(y0)
    ys, xs = np.mgrid[yc - half : yc + half + 1, xc - half : xc + half + 1]
    stamp = np.nan_to_num(data[ys, xs])
    stamp = np.clip(stamp - np.median(data[np.isfinite(data)]), 0, None)
    return (stamp * xs).sum() / stamp.sum(), (stamp * ys).sum() / stamp.sum()


def test_two_filters_drizzle_onto_identical_grid(two_filter_pointing, tmp_path):
    directory, files = two_filter_pointing
    all_files = files["F150W"] + files["F356W"]
    grid = pointing_grid(all_files, pixel_scale=0.03, rotation=FIELD_PA, margin=4)
    grid_file = write_grid_parameter_file(grid, tmp_path / "grid.asdf")

    mosaics = {band: _drizzle(paths, grid_file, tmp_path) for band, paths in files.items()}
    sw, lw = mosaics["F150W"], mosaics["F356W"]
    expected_shape = grid.output_shape[::-1]
    assert sw.data.shape == lw.data.shape == expected_shape
    for attr in ("crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2", "pc1_1", "pc1_2", "pc2_1", "pc2_2"):
        assert getattr(sw.meta.wcsinfo, attr) == pytest.approx(getattr(lw.meta.wcsinfo, attr), rel=1e-12, abs=1e-15)
    # resample inverts the projection numerically: crpix agrees to ~1e-10 pixel
    assert sw.meta.wcsinfo.crpix1 == pytest.approx(grid.crpix[0] + 1, abs=1e-8)
    assert sw.meta.wcsinfo.crpix2 == pytest.approx(grid.crpix[1] + 1, abs=1e-8)
    ny, nx = expected_shape
    yy, xx = np.mgrid[0:ny:17, 0:nx:13]
    ra_sw, dec_sw = sw.meta.wcs(xx, yy, with_bounding_box=False)
    ra_lw, dec_lw = lw.meta.wcs(xx, yy, with_bounding_box=False)
    ra_grid, dec_grid = grid.to_fits_wcs().all_pix2world(xx, yy, 0)
    np.testing.assert_allclose(ra_sw, ra_lw, rtol=0, atol=1e-11)
    np.testing.assert_allclose(dec_sw, dec_lw, rtol=0, atol=1e-11)
    np.testing.assert_allclose(ra_sw, ra_grid, rtol=0, atol=1e-10)  # ~0.3 micro-arcsec
    np.testing.assert_allclose(dec_sw, dec_grid, rtol=0, atol=1e-10)

    # the injected star lands where the grid says, in both filters
    x_true, y_true = sky_to_grid_pixels(grid, STAR_RA, STAR_DEC)
    for mosaic in (sw, lw):
        x, y = _star_centroid(mosaic.data, float(x_true), float(y_true))
        assert math.hypot(x - x_true, y - y_true) < 0.15  # pixels of 0.03"


def test_reference_grid_drizzled_reproduces_reference_wcs(two_filter_pointing, tmp_path):
    from astropy.wcs import WCS

    _, files = two_filter_pointing
    header = _hst_header(crpix=(601.0, 500.5), shape=(1200, 1000))
    grid = pointing_grid(files["F356W"], reference=_write_hst(header, tmp_path), pixel_scale=0.03, margin=3)
    # integer shift of the reference lattice, cropped to the exposures
    shift = np.array(grid.crpix) - (np.array([601.0, 500.5]) - 1)
    np.testing.assert_array_equal(shift, np.round(shift))
    assert grid.output_shape[0] < 400 and grid.output_shape[1] < 400

    mosaic = _drizzle(files["F356W"], write_grid_parameter_file(grid, tmp_path / "g.asdf"), tmp_path)
    assert mosaic.data.shape == grid.output_shape[::-1]
    info = mosaic.meta.wcsinfo
    assert (info.crval1, info.crval2) == (header["CRVAL1"], header["CRVAL2"])
    assert info.crpix1 == pytest.approx(header["CRPIX1"] + shift[0], abs=1e-8)
    assert info.crpix2 == pytest.approx(header["CRPIX2"] + shift[1], abs=1e-8)
    cd = np.array([[info.pc1_1, info.pc1_2], [info.pc2_1, info.pc2_2]]) * np.array([[info.cdelt1], [info.cdelt2]])
    np.testing.assert_allclose(cd, WCS(header).wcs.cd, rtol=1e-12, atol=0)
    ny, nx = mosaic.data.shape
    yy, xx = np.mgrid[0:ny:11, 0:nx:7]
    ra, dec = mosaic.meta.wcs(xx, yy, with_bounding_box=False)
    x_ref, y_ref = WCS(header).all_world2pix(ra, dec, 0)
    np.testing.assert_allclose(x_ref, xx - shift[0], atol=1e-7)
    np.testing.assert_allclose(y_ref, yy - shift[1], atol=1e-7)


def _write_hst(header, tmp_path):
    """A small HST-like drizzled mosaic (empty uint8 image in SCI) with ``header``'s WCS."""
    path = tmp_path / "hst_f160w_drz.fits"
    image = fits.ImageHDU(np.zeros((header["NAXIS2"], header["NAXIS1"]), np.uint8), name="SCI")
    for key in ("CTYPE1", "CTYPE2", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        image.header[key] = header[key]
    fits.HDUList([fits.PrimaryHDU(), image]).writeto(path)
    return path


def test_parameter_files_load_in_stpipe(tmp_path):
    from jwst.pipeline import Image3Pipeline
    from jwst.resample import ResampleStep

    grid = OutputGrid(crpix=(5299.5, 2399.5), crval=(214.98, 52.98), rotation=-49.7, pixel_scale=0.03,
                      output_shape=(10600, 4800))
    step_file = write_grid_parameter_file(grid, tmp_path / "sub" / "resample_grid.asdf")
    step = ResampleStep.from_config_file(str(step_file))
    assert step.name == "resample"
    assert (step.crpix, step.crval, step.rotation, step.pixel_scale, step.output_shape) == (
        [5299.5, 2399.5], [214.98, 52.98], -49.7, 0.03, [10600, 4800])
    assert (step.pixfrac, step.weight_type) == (1.0, "ivm")
    assert read_grid_parameter_file(step_file) == grid

    # pipeline layout: checked with stock Image3Pipeline (same 'resample' step name)
    pipe_file = write_grid_parameter_file(
        grid, tmp_path / "image3_grid.asdf", file_format="pipeline",
        pipeline_class="jwst.pipeline.Image3Pipeline", pipeline_name="Image3Pipeline",
    )
    pipeline = Image3Pipeline.from_config_file(str(pipe_file))
    assert (pipeline.resample.crpix, pipeline.resample.output_shape) == ([5299.5, 2399.5], [10600, 4800])
    assert read_grid_parameter_file(pipe_file) == grid


def test_pipeline_file_loads_in_image3ceers(tmp_path):
    try:
        from jwst_ceers import Image3Ceers
    except (ImportError, AttributeError):
        pytest.skip("Image3Ceers not available yet")
    grid = OutputGrid(crpix=(10, 20), crval=(214.98, 52.98), rotation=0.0, pixel_scale=0.06, output_shape=(30, 40))
    pipeline = Image3Ceers.from_config_file(
        str(write_grid_parameter_file(grid, tmp_path / "p.asdf", file_format="pipeline"))
    )
    assert pipeline.resample.crpix == [10.0, 20.0] and pipeline.resample.pixel_scale == 0.06


# ------------------------------------------------------ simulated CEERS-like pointing


@pytest.fixture(scope="module")
def simulated_pointing(tmp_path_factory):
    simulate = pytest.importorskip("jwst_ceers.simulate")
    return simulate.simulate_pointing(
        tmp_path_factory.mktemp("sim"), filters=("F150W", "F356W"), sw_detectors=("NRCA1", "NRCB1"),
        lw_detectors=("NRCALONG",), n_dithers=2, n_visits=2, size=64, seed=7,
    )


def test_asn_and_grid_on_simulated_pointing(simulated_pointing, tmp_path):
    from jwst_ceers.mosaic_grid import exposure_footprint

    sim = simulated_pointing
    truth = {f"{t.root}_cal.fits": t for t in sim.truth.values()}
    assert sorted(truth) == sorted(p.name for p in sim.cal_files)

    # all files of one program, split only by filter, detector groups per visit
    written = write_associations(sim.cal_files, tmp_path, by="program", product="nircam1", group_by_detector=True)
    assert [p.name for p in written] == ["nircam1_f150w.json", "nircam1_f356w.json"]
    for path in written:
        band = path.stem.split("_")[1].upper()
        _, members = _members(path)
        names = [m["expname"].rsplit("/", 1)[-1] for m in members]
        assert sorted(names) == sorted(n for n, t in truth.items() if t.filter == band)
        # one group per (visit, detector), holding exactly that detector's dithers
        groups = {}
        for member, name in zip(members, names, strict=True):
            groups.setdefault(member["group_id"], set()).add((truth[name].visit, truth[name].detector))
        assert all(len(keys) == 1 for keys in groups.values())
        assert len(groups) == len({(t.visit, t.detector) for t in truth.values() if t.filter == band})

    # footprint grid at 0.03"/px covers every exposure of both filters
    grid = pointing_grid(sim.cal_files, pixel_scale=0.03, margin=2)
    nx, ny = grid.output_shape
    for path in sim.cal_files:
        corners = exposure_footprint(path)
        x, y = sky_to_grid_pixels(grid, corners[:, 0], corners[:, 1])
        assert x.min() >= 1.5 and y.min() >= 1.5 and x.max() <= nx - 2.5 and y.max() <= ny - 2.5
