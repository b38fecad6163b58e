"""MosaicBackground's reading and writing: the fast paths give what the datamodel path gave.

read_mosaic maps a file and converts its arrays once; the reference here is the previous
reading, through a fully read stdatamodels ImageModel (or astropy for plain FITS), done in
the test. The step writes one mosaic's products and the merged mask concurrently; the
reference is the same products written one after the other by the public writers.
"""

import types

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst.datamodels import CubeModel, ImageModel

from jwst_ceers.atomic_io import write_model_atomic
from jwst_ceers.errors import CeersDataError, CeersFileError
from jwst_ceers.masking.tiers import CEERS_NIRCAM_MOSAIC_TIERS
from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground, _output_paths
from jwst_ceers.mosaic_bkg.mosaic_io import read_mosaic, write_image_fits, write_mosaic_bkgsub
from jwst_ceers.mosaic_bkg.sersic import header_cards

SHAPE = (200, 260)


@pytest.fixture(scope="module")
def pointing(tmp_path_factory):
    """A simulated jwst F150W i2d with awkward pixels, and an HST-like plain FITS mosaic."""
    from jwst_ceers.simulate.mosaics import simulate_mosaics

    root = tmp_path_factory.mktemp("mosaic_io")
    sim = simulate_mosaics(root / "sim", shape=SHAPE, seed=11, filters=("F150W",), mag_limit=26)
    rng = np.random.default_rng(5)
    with ImageModel(str(sim.paths["F150W"])) as model:
        pick = rng.random(SHAPE)
        model.data[pick < 0.01] = np.nan  # non-finite science
        model.data[(pick > 0.5) & (pick < 0.51)] = np.inf
        model.wht[(pick > 0.2) & (pick < 0.21)] = 0.0  # no weight
        model.wht[(pick > 0.3) & (pick < 0.305)] = np.nan
        model.err[(pick > 0.4) & (pick < 0.41)] = 0.0  # ERR <= 0 -> unknown noise
        model.err[(pick > 0.6) & (pick < 0.605)] = -1.0
        model.err[(pick > 0.7) & (pick < 0.705)] = np.nan
        jwst = write_model_atomic(model, root / "p_f150w_i2d.fits")
    with fits.open(jwst) as hdul:  # HST-like: PRIMARY + SCI + float64 WHT, FILTER in the primary header
        primary = fits.PrimaryHDU(header=fits.Header([("TELESCOP", "HST"), ("FILTER", "F606W")]))
        sci = fits.ImageHDU(hdul["SCI"].data, header=hdul["SCI"].header, name="SCI")
        wht = fits.ImageHDU(hdul["WHT"].data.astype(np.float64), name="WHT")
        wht.data[0, :5] = [1e-300, -1.0, 0.0, np.inf, 1e-40]  # positive only in float64, negative, ...
        fits.HDUList([primary, sci, wht]).writeto(root / "p_f606w_drz.fits")
    return {"jwst": jwst, "hst": root / "p_f606w_drz.fits", "root": root}


def _reference_jwst(path):
    """The previous reading: a fully read ImageModel, ERR -> noise, WHT -> no data."""
    with ImageModel(str(path)) as model:
        data = np.asarray(model.data, dtype=np.float32)
        nodata = ~np.isfinite(data) | ~(np.asarray(model.wht) > 0)
        noise = np.array(model.err, dtype=np.float32)
        noise[~(noise > 0)] = np.nan
        return data.copy(), nodata, noise, model.meta.instrument.filter


def _assert_same_array(actual, expected):
    assert actual.dtype == expected.dtype and actual.dtype.isnative
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected, equal_nan=True)


def test_jwst_file_reads_as_through_the_datamodel(pointing):
    data, nodata, noise, filter_name = _reference_jwst(pointing["jwst"])
    mosaic = read_mosaic(pointing["jwst"])
    _assert_same_array(mosaic.data, data)
    _assert_same_array(mosaic.nodata, nodata)
    _assert_same_array(mosaic.noise, noise)
    assert nodata.sum() > 0.02 * nodata.size and np.isnan(noise).sum() > 0.02 * noise.size  # the injected pixels
    assert mosaic.filter == filter_name == "F150W" and mosaic.is_jwst and mosaic.telescope == "JWST"
    with fits.open(pointing["jwst"]) as hdul:
        assert mosaic.header == hdul["SCI"].header
    # nothing of the file is held: arrays are own copies, no model or HDUList kept open
    assert mosaic.model is None and mosaic.hdul is None and mosaic.reopen == str(pointing["jwst"])
    for array in (mosaic.data, mosaic.noise, mosaic.nodata):
        assert array.base is None or not isinstance(array.base, np.memmap)


def test_jwst_model_input_reads_as_its_file(pointing):
    from_file = read_mosaic(pointing["jwst"])
    with ImageModel(str(pointing["jwst"])) as model:
        from_model = read_mosaic(model)
        for name in ("data", "nodata", "noise"):
            _assert_same_array(getattr(from_model, name), getattr(from_file, name))
        assert from_model.filter == from_file.filter and from_model.model is model


def test_plain_fits_reads_as_before(pointing):
    with fits.open(pointing["hst"]) as hdul:
        data = np.asarray(hdul["SCI"].data, dtype=np.float32)
        wht = np.asarray(hdul["WHT"].data, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            noise = np.where(wht > 0, 1.0 / np.sqrt(wht), np.nan).astype(np.float32)
        nodata = ~np.isfinite(data) | ~(np.asarray(hdul["WHT"].data) > 0)
        assert "ERR" not in hdul
    mosaic = read_mosaic(pointing["hst"])
    try:
        _assert_same_array(mosaic.data, data)
        _assert_same_array(mosaic.nodata, nodata)
        _assert_same_array(mosaic.noise, noise)
        assert not mosaic.is_jwst and mosaic.filter == "F606W"
    finally:
        mosaic.hdul.close()


def test_err_without_a_positive_value_falls_back_to_wht(pointing, tmp_path):
    path = tmp_path / "q_f150w_i2d.fits"
    with ImageModel(str(pointing["jwst"])) as model:
        model.err[:] = 0.0
        wht = np.array(model.wht, dtype=np.float32)
        write_model_atomic(model, path)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(wht > 0, 1.0 / np.sqrt(wht), np.nan).astype(np.float32)
    _assert_same_array(read_mosaic(path).noise, expected)


def _write_bad(pointing, tmp_path, name, edit):
    path = tmp_path / name
    with ImageModel(str(pointing["jwst"])) as model:
        edit(model)
        write_model_atomic(model, path)
    return path


@pytest.mark.parametrize(
    ("edit", "error", "words"),
    [
        (lambda m: m.data.__setitem__(slice(None), np.nan), CeersDataError, "no usable pixel"),
        (lambda m: setattr(m.meta.instrument, "filter", None), CeersFileError, "meta.instrument.filter is not set"),
        (lambda m: setattr(m.meta.wcsinfo, "crpix1", None), CeersFileError, "no FITS-like wcsinfo"),
    ],
)
def test_bad_jwst_mosaic_errors_name_the_file(pointing, tmp_path, edit, error, words):
    path = _write_bad(pointing, tmp_path, "bad_f150w_i2d.fits", edit)
    with pytest.raises(error, match=words) as info:
        read_mosaic(path)
    assert "bad_f150w_i2d.fits" in str(info.value)


def test_cube_and_truncated_jwst_files_are_refused(pointing, tmp_path):
    cube = CubeModel(np.ones((2, *SHAPE), np.float32))
    cube.meta.telescope = "JWST"
    cube.meta.instrument.name = "NIRCAM"
    cube.meta.instrument.filter = "F150W"
    write_model_atomic(cube, tmp_path / "cube_f150w_i2d.fits")
    with pytest.raises(CeersFileError, match="cube_f150w_i2d.fits.*expected a 2-D ImageModel.*CubeModel"):
        read_mosaic(tmp_path / "cube_f150w_i2d.fits")
    whole = pointing["jwst"].read_bytes()
    for keep in (0.5, 0.99):  # cut in the arrays, cut in the ASDF extension
        cut = tmp_path / f"cut{keep}_f150w_i2d.fits"
        cut.write_bytes(whole[: int(keep * len(whole))])
        with pytest.raises(CeersFileError, match=f"cut{keep}_f150w_i2d.fits"):
            read_mosaic(cut)


def _fake_result(mosaics, rng):
    shape = mosaics[0].data.shape
    backgrounds = [rng.normal(0.01 * (i + 1), 1e-3, shape).astype(np.float32) for i in range(len(mosaics))]
    tiermasks = [rng.integers(0, 8, shape, dtype=np.uint8) for _ in mosaics]
    return types.SimpleNamespace(
        merged_mask=tiermasks[0] > 3, backgrounds=backgrounds, tiermasks=tiermasks,
        galaxy_models=[[] for _ in mosaics],
    )


def _serial_reference(mosaics, result, paths, tiers):
    """The products written one after the other, as MosaicBackground wrote them before."""
    for index, mosaic in enumerate(mosaics):
        background = result.backgrounds[index]
        bkgsub = mosaic.data - background
        bkgsub[mosaic.nodata] = 0
        write_mosaic_bkgsub(paths["bkgsub"][index], bkgsub, mosaic)
        write_image_fits(paths["bkg"][index], background.astype(np.float32, copy=False), mosaic,
                         extra=header_cards(result.galaxy_models[index]))
        bit_doc = {"BIT0": "no data"}
        for k, tier in enumerate(tiers[index], start=1):
            bit_doc[f"BIT{k}"] = f"tier fwhm {tier.kernel_fwhm:g} nsig {tier.nsigma:g} npix {tier.npixels} dil {tier.dilate:g}"
        bit_doc[f"BIT{len(tiers[index]) + 1}"] = "modelled galaxy cores (all filters)"
        write_image_fits(paths["tiermask"][index], result.tiermasks[index], mosaic, extra=bit_doc)
    write_image_fits(paths["merged_mask"], result.merged_mask.astype(np.uint8), mosaics[0],
                     extra={"FILTER": "+".join(m.filter for m in mosaics)[:68], "MASKVAL": "1 = masked source (all filters)"})


def _assert_same_product(actual, expected):
    """Byte for byte, but for the write time of a datamodel (DATE, meta.date and the header hash)."""
    a, b = actual.read_bytes(), expected.read_bytes()
    if a == b:
        return
    with fits.open(actual) as x, fits.open(expected) as y:
        assert [h.name for h in x] == [h.name for h in y]
        for hx, hy in zip(x, y, strict=True):
            if hx.name == "ASDF":
                continue
            assert {k: v for k, v in hx.header.items() if k != "DATE"} == {k: v for k, v in hy.header.items() if k != "DATE"}
            assert hx.data is None or np.array_equal(hx.data, hy.data, equal_nan=True)
            assert hx.data is None or hx.data.dtype == hy.data.dtype
    with ImageModel(str(actual)) as x, ImageModel(str(expected)) as y:
        fx, fy = x.to_flat_dict(include_arrays=False), y.to_flat_dict(include_arrays=False)
        for flat in (fx, fy):
            flat.pop("meta.date"), flat.pop("_fits_hash", None)
        assert {k: str(v) for k, v in fx.items()} == {k: str(v) for k, v in fy.items()}


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_concurrent_writes_give_the_serial_products(pointing, tmp_path, threads):
    rng = np.random.default_rng(threads)
    mosaics = [read_mosaic(pointing["jwst"]), read_mosaic(pointing["hst"])]
    try:
        result = _fake_result(mosaics, rng)
        saved = [b.copy() for b in result.backgrounds]
        tiers = [CEERS_NIRCAM_MOSAIC_TIERS] * 2
        names = [m.name for m in mosaics]
        for folder in ("serial", "step"):
            (tmp_path / folder).mkdir()
        reference = _output_paths(tmp_path / "serial", names, "p", suffix="bkgsub", plot=False)
        _serial_reference(mosaics, result, reference, tiers)
        paths = _output_paths(tmp_path / "step", names, "p", suffix="bkgsub", plot=False)
        written = MosaicBackground(output_dir=str(tmp_path / "step"), threads=threads)._write(mosaics, result, paths, tiers)
    finally:
        for mosaic in mosaics:
            if mosaic.hdul is not None:
                mosaic.hdul.close()
    assert written == paths
    for kind in ("bkgsub", "bkg", "tiermask"):
        for actual, expected in zip(paths[kind], reference[kind], strict=True):
            _assert_same_product(actual, expected)
    _assert_same_product(paths["merged_mask"], reference["merged_mask"])
    for before, after in zip(saved, result.backgrounds, strict=True):  # written, not left byte-swapped
        _assert_same_array(after, before)
    with fits.open(paths["bkgsub"][0]) as hdul:
        expected = np.where(mosaics[0].nodata, np.float32(0), mosaics[0].data - saved[0])
        assert np.array_equal(hdul["SCI"].data, expected)


def test_jwst_arrays_are_not_read_through_datamodels_open(pointing, monkeypatch):
    """The slow path (every array of the file read into memory, then converted) is not taken."""
    import stdatamodels.jwst.datamodels as datamodels

    def refuse(*args, **kwargs):
        raise AssertionError("datamodels.open reads every array of the file")

    monkeypatch.setattr(datamodels, "open", refuse)
    assert read_mosaic(pointing["jwst"]).filter == "F150W"


def test_one_mosaics_files_are_written_concurrently(pointing, tmp_path, monkeypatch):
    """With threads=2 the background is written while the bkgsub mosaic is (serially: timeout)."""
    import threading

    import jwst_ceers.mosaic_bkg.mosaic_bkg_step as step_module

    bkg_started = threading.Event()
    real_bkgsub, real_fits = step_module.write_mosaic_bkgsub, step_module.write_image_fits

    def bkgsub_waiting_for_bkg(path, *args, **kwargs):
        assert bkg_started.wait(timeout=20), "the bkg file was not written beside the bkgsub mosaic"
        return real_bkgsub(path, *args, **kwargs)

    def fits_signalling(path, *args, **kwargs):
        if str(path).endswith("_bkg.fits"):
            bkg_started.set()
        return real_fits(path, *args, **kwargs)

    monkeypatch.setattr(step_module, "write_mosaic_bkgsub", bkgsub_waiting_for_bkg)
    monkeypatch.setattr(step_module, "write_image_fits", fits_signalling)
    mosaics = [read_mosaic(pointing["jwst"])]
    result = _fake_result(mosaics, np.random.default_rng(0))
    paths = _output_paths(tmp_path, [mosaics[0].name], "p", suffix="bkgsub", plot=False)
    written = MosaicBackground(output_dir=str(tmp_path), threads=2)._write(mosaics, result, paths, [CEERS_NIRCAM_MOSAIC_TIERS])
    assert all(p.is_file() for p in written["bkgsub"] + written["bkg"] + written["tiermask"] + [written["merged_mask"]])


def test_jwst_file_without_datamodl_reads_alike(pointing, tmp_path):
    """No DATAMODL keyword: datamodels.open guesses the model (the slow path), same Mosaic."""
    with fits.open(pointing["jwst"]) as hdul:
        del hdul[0].header["DATAMODL"]
        hdul.writeto(tmp_path / "nodm_f150w_i2d.fits")
    reference = read_mosaic(pointing["jwst"])
    mosaic = read_mosaic(tmp_path / "nodm_f150w_i2d.fits")
    for name in ("data", "nodata", "noise"):
        _assert_same_array(getattr(mosaic, name), getattr(reference, name))
    assert mosaic.filter == "F150W" and mosaic.is_jwst
