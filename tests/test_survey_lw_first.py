"""``jwst-ceers survey`` aligns a pointing's LW filter first, then its SW filters to the LW sources.

Why: one SW detector's absolute shift, fitted to a CEERS-like HST catalogue, is
uncertain by ~1.2 mas; the LW sources cover four times the area (the demo's WCS rms
went from 1.97 to 0.80 mas aligning SW to LW). The survey makes this a dependency:
the SW products wait for the LW product's aligned sources and fall back to the
reference catalogue when those cannot be had.
"""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from jwst_ceers.associations import read_exposure_info
from jwst_ceers.survey import load_survey_config, plan_survey
from jwst_ceers.survey.plan import ALIGNED_SOURCES_SUFFIX
from jwst_ceers.survey.tasks import _align_to_upstream_sources
from jwst_ceers.tweakreg.aligned_catalog import exposures_short_of_sources


@pytest.fixture(scope="module")
def pointing(tmp_path_factory):
    """F150W (NRCA1, NRCA2) and F356W (NRCALONG), 2 dithers, 256^2, with its reference catalogue."""
    from jwst_ceers.simulate.exposures import simulate_pointing

    folder = tmp_path_factory.mktemp("lw_first") / "cal"
    sim = simulate_pointing(
        folder, filters=("F150W", "F356W"), sw_detectors=("NRCA1", "NRCA2"), lw_detectors=("NRCALONG",),
        n_dithers=2, size=256, seed=5, source_density_scale=5.0,  # enough LW matches in a 256^2 cut-out
    )
    return sim


def _root(sim):
    return sim.cal_files[0].parent.parent


def _sw_members(sim):
    return [str(p) for p in sim.cal_files if not read_exposure_info(p).detector.upper().endswith("LONG")]


def _config(root, *, refcat=True, extra=""):
    lines = ['output_root = "products"']
    if refcat:
        lines.append(f'abs_refcat = "{root / "cal" / "refcat.ecsv"}"')
    lines += [extra, "[[pointings]]", 'name = "p1"', f'inputs = ["{root / "cal"}/*_cal.fits"]']
    path = root / "survey.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_survey_config(path, check_steps=False)


def _tasks(config):
    return {task.key: task for task in plan_survey(config)}


def test_sw_products_depend_on_the_lw_product(pointing):
    root = _root(pointing)
    tasks = _tasks(_config(root))
    assert tasks["p1/F356W"].params["write_aligned_sources"] is True
    assert tasks["p1/F356W"].depends == ()
    assert tasks["p1/F150W"].depends == ("p1/F356W",)
    assert tasks["p1/F150W"].params["aligned_sources_from"] == "p1/F356W"
    assert tasks["p1/F150W"].partial_upstream  # an empty LW mosaic leaves the catalogue, not a failure
    assert tasks["p1/mosaic_bkg"].depends == ("p1/F150W", "p1/F356W")


@pytest.mark.parametrize(
    ("refcat", "extra"),
    [
        (True, "align_sw_to_lw = false"),
        (False, ""),  # nothing to align the LW filter to: every filter on its own
        (True, '[engine]\nimage3_task = "tests_module:other_task"'),  # a custom task does not know the parameters
    ],
)
def test_no_dependency_when_off_without_refcat_or_with_another_task(pointing, refcat, extra):
    root = _root(pointing)
    tasks = _tasks(_config(root, refcat=refcat, extra=extra))
    assert tasks["p1/F150W"].depends == ()
    assert "aligned_sources_from" not in tasks["p1/F150W"].params
    assert "write_aligned_sources" not in tasks["p1/F356W"].params


def test_bad_align_value_names_the_key(pointing):
    from jwst_ceers.errors import CeersParameterError

    root = _root(pointing)
    with pytest.raises(CeersParameterError, match="align_sw_to_lw: must be true or false"):
        _config(root, extra='align_sw_to_lw = "yes"')


def test_lw_filter_with_most_exposures_is_the_reference(pointing, tmp_path):
    """Two LW filters: the one with more exposures is aligned first, the other stays independent."""
    from jwst_ceers.simulate.exposures import simulate_pointing

    root = tmp_path
    simulate_pointing(
        root / "cal", filters=("F150W", "F277W", "F444W"), sw_detectors=("NRCA1",), lw_detectors=("NRCALONG",),
        n_dithers=2, size=64, seed=6,
    )
    f277w = sorted(p for p in (root / "cal").glob("*_cal.fits") if read_exposure_info(p).filter == "F277W")
    f277w[0].unlink()
    tasks = _tasks(_config(root))
    assert tasks["p1/F150W"].depends == ("p1/F444W",)
    assert tasks["p1/F277W"].depends == ()
    assert tasks["p1/F444W"].params.get("write_aligned_sources") is True


def _write_catalog(path, ra, dec):
    Table({"RA": np.asarray(ra, float), "DEC": np.asarray(dec, float)}).write(path, format="ascii.ecsv")
    return str(path)


def _covering_catalog(path, members, per_member=12):
    """``per_member`` sources around the centre of each member's footprint."""
    from jwst_ceers.mosaic_grid.from_files import exposure_footprint

    rng = np.random.default_rng(3)
    ra, dec = [], []
    for member in members:
        corners = np.asarray(exposure_footprint(member), float)
        centre, half = corners.mean(axis=0), 0.2 * np.ptp(corners, axis=0)
        ra.extend(centre[0] + rng.uniform(-half[0], half[0], per_member))
        dec.extend(centre[1] + rng.uniform(-half[1], half[1], per_member))
    return _write_catalog(path, ra, dec)


def test_sw_uses_the_lw_sources_when_they_cover_every_member(pointing, tmp_path):
    members = _sw_members(pointing)
    catalog = _covering_catalog(tmp_path / f"p1_f356w{ALIGNED_SOURCES_SUFFIX}", members)
    steps = {"tweakreg": {"abs_refcat": str(pointing.refcat_path)}}
    params = {"product_name": "p1_f150w", "aligned_sources_from": "p1/F356W"}
    _align_to_upstream_sources(
        steps, params=params, inputs={"members": members}, upstream={"p1/F356W": [catalog]}, output_dir=str(tmp_path)
    )
    assert steps["tweakreg"]["abs_refcat"] == catalog
    # one member more, which the sources miss: the whole band goes to the reference catalogue
    steps = {"tweakreg": {"abs_refcat": str(pointing.refcat_path)}}
    lw_member = [str(p) for p in pointing.cal_files if str(p) not in members][0]
    _align_to_upstream_sources(
        steps, params=params, inputs={"members": [*members, lw_member]}, upstream={"p1/F356W": [catalog]},
        output_dir=str(tmp_path),
    )
    assert steps["tweakreg"]["abs_refcat"] == str(pointing.refcat_path)


def test_sw_falls_back_to_the_catalogue_when_a_member_is_not_covered(pointing, tmp_path, capsys):
    members = _sw_members(pointing)
    assert members
    # five sources far from every member
    catalog = _write_catalog(tmp_path / f"p1_f356w{ALIGNED_SOURCES_SUFFIX}", [10.0] * 5, [-30.0] * 5)
    steps = {"tweakreg": {"abs_refcat": "refcat.ecsv"}}
    params = {"product_name": "p1_f150w", "aligned_sources_from": "p1/F356W"}
    _align_to_upstream_sources(
        steps, params=params, inputs={"members": members}, upstream={"p1/F356W": [catalog]}, output_dir=str(tmp_path)
    )
    assert steps["tweakreg"]["abs_refcat"] == "refcat.ecsv"
    assert "only 0 of the aligned sources" in capsys.readouterr().out

    _align_to_upstream_sources(steps, params=params, inputs={"members": members}, upstream={}, output_dir=str(tmp_path))
    assert steps["tweakreg"]["abs_refcat"] == "refcat.ecsv"
    assert "wrote no aligned sources" in capsys.readouterr().out


def test_the_lw_product_writes_its_sources_into_its_folder(tmp_path):
    steps = {}
    _align_to_upstream_sources(
        steps, params={"product_name": "p1_f356w", "write_aligned_sources": True}, inputs={}, upstream={},
        output_dir=str(tmp_path),
    )
    assert steps["tweakreg"]["aligned_catalog"] == os.path.join(tmp_path, f"p1_f356w{ALIGNED_SOURCES_SUFFIX}")


def test_coverage_counts_sources_inside_each_footprint(pointing, tmp_path):
    """Against the footprint itself: its centre is inside, points 1 degree away are not."""
    from jwst_ceers.mosaic_grid.from_files import exposure_footprint

    member = pointing.cal_files[0]
    corners = np.asarray(exposure_footprint(member), float)
    centre = corners.mean(axis=0)
    catalog = _write_catalog(
        tmp_path / "c.ecsv", [centre[0]] * 12 + [centre[0] + 1.0] * 12, [centre[1]] * 12 + [centre[1]] * 12
    )
    assert exposures_short_of_sources(catalog, [member]) == []
    assert exposures_short_of_sources(catalog, [member], min_sources=13) == [(member.name, 12)]


def test_coverage_is_counted_per_detector_over_its_dithers(pointing, tmp_path):
    """tweakreg fits each detector's dithers together: their sources add up."""
    nrca1 = [p for p in _sw_members(pointing) if read_exposure_info(p).detector.upper() == "NRCA1"]
    assert len(nrca1) == 2
    catalog = _covering_catalog(tmp_path / "c.ecsv", nrca1, per_member=6)
    counts = [count for _, count in exposures_short_of_sources(catalog, nrca1, min_sources=10**6)]
    assert all(count >= 6 for count in counts)  # each dither has its own 6 (and some of the other's)
    total = sum(counts)
    assert exposures_short_of_sources(catalog, nrca1, min_sources=total) == []
    assert [c for _, c in exposures_short_of_sources(catalog, nrca1, min_sources=total + 1)] == counts
    # one dither alone is short of what both together have
    assert exposures_short_of_sources(catalog, nrca1[:1], min_sources=total) == [(Path(nrca1[0]).name, counts[0])]


@pytest.mark.slow
def test_serial_survey_runs_lw_first_and_sw_after_it(pointing, tmp_path):
    """
    The real Image3Ceers: the LW product writes its aligned sources, then the SW product runs.

    At 256^2 the centred LW cut-out does not reach the SW cut-outs (as in the demo at
    512^2), so the SW product must say so and use the reference catalogue.
    """
    from jwst_ceers.mosaic_grid import pointing_grid
    from jwst_ceers.survey import run_products

    grid = pointing_grid(pointing.cal_files, pixel_scale=0.063)
    root = _root(pointing)
    text = "\n".join([
        f'output_root = "{tmp_path / "products"}"',
        f'abs_refcat = "{pointing.refcat_path}"',
        "mosaic_background = false",
        "[image3.steps.source_catalog]",
        "skip = true",
        "[[pointings]]", 'name = "p1"', f'inputs = ["{root / "cal"}/*_cal.fits"]', "[pointings.grid]",
        *(f"{key} = {json.dumps(value)}" for key, value in dataclasses.asdict(grid).items()),
    ]) + "\n"
    path = tmp_path / "survey.toml"
    path.write_text(text)
    results = run_products(plan_survey(load_survey_config(path)), stream=False)
    assert [(r.key, r.status) for r in results] == [("p1/F356W", "done"), ("p1/F150W", "done")]
    sources = tmp_path / "products" / "p1" / f"p1_f356w{ALIGNED_SOURCES_SUFFIX}"
    assert len(Table.read(sources, format="ascii.ecsv")) >= 10
    log = (tmp_path / "products" / "p1" / "logs" / "p1_f150w.log").read_text()
    assert "of the aligned sources of p1/F356W fall on" in log
    assert "aligned to the reference catalogue" in log
