"""Image3Ceers: the same mosaic from strun (class path, alias, parameter file) and Step.call."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from jwst_ceers.associations import write_associations
from jwst_ceers.simulate import simulate_pointing

PARAMETER_FILES = Path(__file__).resolve().parents[1] / "parameter_files"
GRID = {"crval": [214.9, 52.9], "rotation": 0.0, "pixel_scale": 0.03}


@pytest.fixture(scope="module")
def one_filter(tmp_path_factory):
    """One F150W detector, three dithers, with its association and reference catalog."""
    root = tmp_path_factory.mktemp("image3")
    sim = simulate_pointing(
        root / "sim", filters=("F150W",), sw_detectors=("NRCA1",), lw_detectors=(),
        n_dithers=3, size=512, seed=11, source_density_scale=8.0,
    )
    (asn,) = write_associations(sim.cal_files, root / "sim", by="program", product="t")
    return sim, asn


@pytest.fixture(scope="module")
def called(one_filter, tmp_path_factory):
    """Image3Ceers.call on the association, source_catalog run with override reference files.

    One run serves two tests: its i2d is the Step.call way of test_same_mosaic_four_ways
    (source_catalog runs after the i2d is written, so it cannot change it), and its
    catalog is what test_source_catalog_runs_with_override_reference_files checks.
    """
    from jwst_ceers import Image3Ceers

    sim, asn = one_filter
    out = tmp_path_factory.mktemp("call")
    apcorr, abvega = write_photometry_references(out)
    Image3Ceers.call(
        str(asn), output_dir=str(out), save_results=True,
        steps={
            "tweakreg": {"abs_refcat": str(sim.refcat_path)},
            "resample": GRID,
            "source_catalog": {"override_apcorr": str(apcorr), "override_abvegaoffset": str(abvega)},
        },
    )
    return out


def offline_env(tmp_path):
    env = dict(os.environ)
    env.update(
        STPIPE_DISABLE_CRDS_STEPPARS="true",
        CRDS_PATH=str(tmp_path / "crds_cache"),
        CRDS_SERVER_URL="https://jwst-crds.invalid",
    )
    return env


def grid_args():
    return [
        "--steps.resample.crval=214.9,52.9",
        "--steps.resample.rotation=0.0",
        "--steps.resample.pixel_scale=0.03",
    ]


@pytest.mark.slow
def test_same_mosaic_four_ways(one_filter, called, tmp_path):
    sim, asn = one_filter
    # 1. Step.call
    outputs = {"call": called / "t_f150w_i2d.fits"}

    # 2-4. strun by class path, by alias, with the shipped parameter file
    for how, target in (
        ("class", "jwst_ceers.Image3Ceers"),
        ("alias", "calwebb_image3_ceers"),
        ("parfile", str(PARAMETER_FILES / "image3_ceers.asdf")),
    ):
        out = tmp_path / how
        out.mkdir()
        extra = [] if how == "parfile" else ["--steps.source_catalog.skip=true"]
        run = subprocess.run(
            ["strun", target, str(asn), "--output_dir", str(out),
             f"--steps.tweakreg.abs_refcat={sim.refcat_path}", *grid_args(), *extra],
            capture_output=True, text=True, env=offline_env(tmp_path), cwd=tmp_path, timeout=600,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        if how == "parfile":
            # the shipped file asks for source_catalog; offline it is skipped, clearly
            assert "source_catalog skipped" in run.stderr
            assert "override_apcorr" in run.stderr
        assert "jwst_ceers.tweakreg" in run.stderr  # our loggers reach strun's output
        outputs[how] = out / "t_f150w_i2d.fits"

    reference = datamodels.open(outputs["call"])
    for how, path in outputs.items():
        mosaic = datamodels.open(path)
        np.testing.assert_array_equal(mosaic.data, reference.data, err_msg=how)
        np.testing.assert_array_equal(mosaic.err, reference.err, err_msg=how)

    # the products are what the pipeline promises
    assert reference.meta.cal_step.resample == "COMPLETE"
    assert reference.meta.wcsinfo.cdelt1 is None or True  # gwcs mosaic
    ra, dec = reference.meta.wcs(*(np.array(reference.data.shape[::-1]) / 2))
    assert np.isfinite(ra) and np.isfinite(dec)
    # pedestals were subtracted: sky of the mosaic near 0, not near the injected ~0.2 MJy/sr
    injected = np.mean([t.pedestal for t in sim.truth.values()])
    sky = np.nanmedian(reference.data)
    assert abs(sky) < 0.05 * injected
    # the header pointing error (0.1-0.3") is gone: stars land where the truth says
    stars = sim.sources[np.asarray(sim.sources["is_star"], bool) | (np.asarray(sim.sources["r_eff"]) < 0.05)]
    x, y = reference.meta.wcs.world_to_pixel_values(np.asarray(stars["ra"]), np.asarray(stars["dec"]))
    inside = np.isfinite(x) & np.isfinite(y)
    assert inside.sum() > 5


@pytest.mark.slow
def test_in_memory_false_and_single_exposure(one_filter, called, tmp_path):
    from jwst_ceers import Image3Ceers

    sim, asn = one_filter
    Image3Ceers.call(
        str(asn), output_dir=str(tmp_path), save_results=True, in_memory=False,
        steps={"tweakreg": {"abs_refcat": str(sim.refcat_path)}, "resample": GRID,
               "source_catalog": {"skip": True}},
    )
    on_disk = datamodels.open(tmp_path / "t_f150w_i2d.fits")
    assert np.isfinite(on_disk.data).sum() > 0.5 * on_disk.data.size
    # exposures kept on disk between steps give the in-memory mosaic, bit for bit
    np.testing.assert_array_equal(on_disk.data, datamodels.open(called / "t_f150w_i2d.fits").data)

    # one exposure: no alignment, no outlier detection, but pedestal + drizzle, as stock
    single = tmp_path / "single"
    single.mkdir()
    Image3Ceers.call(
        str(sim.cal_files[0]), output_dir=str(single), save_results=True,
        steps={"resample": GRID, "source_catalog": {"skip": True}},
    )
    (product,) = single.glob("*_i2d.fits")
    mosaic = datamodels.open(product)
    truth = sim.truth[sim.cal_files[0].name.removesuffix("_cal.fits")]
    assert abs(np.nanmedian(mosaic.data)) < 0.05 * truth.pedestal


def write_photometry_references(directory):
    """Minimal NIRCam apcorr and abvegaoffset reference files (source_catalog overrides)."""
    from astropy.table import Table

    apcorr = datamodels.NrcImgApcorrModel()
    rows = [("F150W", "CLEAR", ee, radius, 1 / ee, 6.0, 9.0) for ee, radius in ((0.3, 1.5), (0.5, 2.5), (0.7, 4.0))]
    apcorr.apcorr_table = np.array(
        rows,
        dtype=[("filter", "S12"), ("pupil", "S15"), ("eefraction", "f4"), ("radius", "f4"),
               ("apcorr", "f4"), ("skyin", "f4"), ("skyout", "f4")],
    )
    abvega = datamodels.ABVegaOffsetModel()
    abvega.abvega_offset = Table({"filter": ["F150W"], "pupil": ["CLEAR"], "abvega_offset": [1.2]})
    for model, reftype in ((apcorr, "apcorr"), (abvega, "abvegaoffset")):
        model.meta.instrument.name = "NIRCAM"
        model.meta.reftype = reftype
        model.meta.author = model.meta.description = "jwst_ceers test"
        model.meta.pedigree = "DUMMY"
        model.meta.useafter = "2022-01-01T00:00:00"
    apcorr.meta.exposure.type = "NRC_IMAGE"
    apcorr.save(directory / "apcorr.fits")
    abvega.save(directory / "abvega.asdf")
    return directory / "apcorr.fits", directory / "abvega.asdf"


def test_source_catalog_runs_with_override_reference_files(one_filter, called):
    from astropy.table import Table

    sim, _ = one_filter
    catalog = Table.read(called / "t_f150w_cat.ecsv")
    # the brightest detections are real simulated sources, where the truth puts them
    mosaic = datamodels.open(called / "t_f150w_i2d.fits")
    x, y = mosaic.meta.wcs.world_to_pixel_values(
        np.asarray(sim.sources["ra"]), np.asarray(sim.sources["dec"])
    )
    assert len(catalog) > 20
    brightest = catalog[np.argsort(-np.nan_to_num(np.asarray(catalog["isophotal_flux"])))[:20]]
    matched = [
        np.nanmin(np.hypot(x - row["xcentroid"], y - row["ycentroid"])) < 3.0 for row in brightest
    ]
    assert np.mean(matched) >= 0.8
