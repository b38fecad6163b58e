"""Tests of ``jwst-ceers survey``: configuration, manifests, resume, failures, dask.

The engine is exercised with light stand-in task functions defined here (they
average the member images and subtract a median), so that every product has a
known truth computed from the injected data.
"""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.survey import load_survey_config, plan_survey, run_products
from jwst_ceers.survey.manifest import read_manifest

SHAPE = (24, 20)
FILTERS = ("F150W", "F356W")
POINTINGS = ("p1", "p2")
N_MEMBERS = 3


# ---------------------------------------------------------------- stand-in tasks
def standin_image3(*, inputs, upstream, output_dir, name, params):
    """Mean of the members times ``steps.standin.scale``; may sleep, write a partial file, or fail."""
    options = params["steps"].get("standin", {})
    if options.get("partial_then_sleep"):
        Path(output_dir, f"{params['product_name']}_i2d.fits").write_bytes(b"SIMPLE  =   partial")
        time.sleep(options["partial_then_sleep"])
    time.sleep(options.get("sleep", 0.0))
    if options.get("fail"):
        raise RuntimeError("injected failure\nsecond line is the reason")
    stack = [fits.getdata(p) for p in sorted(inputs["members"])]
    mean = np.mean(stack, axis=0) * options.get("scale", 1.0)
    header = fits.Header({"FILTER": params["filter"]})
    hdul = fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(mean.astype(np.float32), name="SCI")])
    hdul.writeto(Path(output_dir, f"{params['product_name']}_i2d.fits"), overwrite=True)
    print("stand-in image3 wrote", params["product_name"])


def standin_bkg(*, inputs, upstream, output_dir, name, params):
    """Writes ``<root>_bkgsub.fits`` = mosaic - median for every upstream i2d."""
    for path in sorted(p for paths in upstream.values() for p in paths if p.endswith("_i2d.fits")):
        data = fits.getdata(path, "SCI")
        root = Path(path).name.removesuffix("_i2d.fits")
        fits.PrimaryHDU(data - np.median(data)).writeto(Path(output_dir, f"{root}_bkgsub.fits"))


def prepare_worker():
    """Hook run by ``prepare_workers`` on every worker."""
    os.environ["CEERS_TEST_WORKER_PREPARED"] = "yes"


def standin_sleep(*, inputs, upstream, output_dir, name, params):
    """Appends its name to ``params['log']``, then sleeps ``params['sleep']`` seconds."""
    with open(params["log"], "a") as log:
        log.write(name + "\n")
    time.sleep(params["sleep"])
    Path(output_dir, f"{name}.txt").write_text(name)


# ---------------------------------------------------------------- helpers
def make_exposures(root, seed=1):
    """Write N_MEMBERS exposures per (pointing, filter); return the injected arrays."""
    rng = np.random.default_rng(seed)
    truth = {}
    for obs, pointing in enumerate(POINTINGS, start=1):
        folder = root / "cal" / pointing
        folder.mkdir(parents=True)
        for k, filt in enumerate(FILTERS):
            truth[(pointing, filt)] = []
            for dither in range(N_MEMBERS):
                data = rng.normal(10.0 * (k + 1), 1.0, SHAPE).astype(np.float32)
                header = fits.Header(
                    {
                        "PROGRAM": "01345",
                        "OBSERVTN": f"{obs:03d}",
                        "VISIT": "001",
                        "FILTER": filt,
                        "PUPIL": "CLEAR",
                        "DETECTOR": "NRCA1",
                        "EXP_TYPE": "NRC_IMAGE",
                    }
                )
                path = folder / f"jw01345{obs:03d}001_0{k + 2}101_0000{dither + 1}_nrca1_cal.fits"
                fits.PrimaryHDU(data, header=header).writeto(path)
                truth[(pointing, filt)].append(data)
    return truth


def write_config(root, extra="", per_filter=""):
    text = f"""
output_root = "products"
{extra}
[engine]
image3_task = "test_survey:standin_image3"
mosaic_bkg_task = "test_survey:standin_bkg"
{per_filter}
"""
    for pointing in POINTINGS:
        text += f"""
[[pointings]]
name = "{pointing}"
inputs = ["cal/{pointing}/*_cal.fits"]
[pointings.grid]
crval = [214.9, 52.9]
pixel_scale = 0.03
"""
    path = root / "survey.toml"
    path.write_text(text)
    return path


def run_serial(config_path, **kwargs):
    config = load_survey_config(config_path)
    results = run_products(plan_survey(config), client=None, stream=False, **kwargs)
    return {r.key: r for r in results}, config


def i2d_path(root, pointing, filt):
    return root / "products" / pointing / f"{pointing}_{filt.lower()}_i2d.fits"


def assert_products_match_truth(root, truth, scales=None):
    for (pointing, filt), stack in truth.items():
        expected = np.mean(stack, axis=0) * (scales or {}).get((pointing, filt), 1.0)
        got = fits.getdata(i2d_path(root, pointing, filt), "SCI")
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        bkgsub = fits.getdata(root / "products" / pointing / f"{pointing}_{filt.lower()}_bkgsub.fits")
        np.testing.assert_allclose(bkgsub, got - np.median(got), rtol=1e-6, atol=1e-6)


@pytest.fixture
def survey(tmp_path):
    truth = make_exposures(tmp_path)
    return tmp_path, truth


# ---------------------------------------------------------------- configuration
BAD_CONFIGS = [
    ('inputs = 1\n', CeersParameterError, "output_root"),  # missing required key first
    ('output_root = "o"\nfoo = 1\n', CeersParameterError, "foo: unknown key"),
    ('output_root = "o"\n', CeersParameterError, "pointings: missing"),
    ('output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["none/*.fits"]\n', CeersFileError, "pointings[0].inputs"),
    (
        'output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["cal/p1/*.fits"]\nfliters = ["F150W"]\n',
        CeersParameterError,
        "pointings[0].fliters: unknown key",
    ),
    (
        'output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["cal/p1/*.fits"]\nfilters = ["F200W"]\n',
        CeersParameterError,
        "pointings[0].filters: F200W not among",
    ),
    (
        'output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["cal/p1/*.fits"]\n[pointings.grid]\npixel_scale = -0.03\n',
        CeersParameterError,
        "pointings[0].grid.pixel_scale",
    ),
    (
        'output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["cal/p1/*.fits"]\n[pointings.grid]\noutput_shape = [10, 0]\n',
        CeersParameterError,
        "pointings[0].grid.output_shape",
    ),
    (
        'output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["cal/p1/*"]\n[[pointings]]\nname = "a"\ninputs = ["cal/p2/*"]\n',
        CeersParameterError,
        "pointings[1].name",
    ),
    ('output_root = "o"\nabs_refcat = "missing.ecsv"\n', CeersFileError, "abs_refcat: file not found"),
    ('output_root = "o"\nmosaic_background = "yes"\n', CeersParameterError, "mosaic_background"),
    ('output_root = "o"\n[engine]\nimage3_task = "not a name"\n', CeersParameterError, "engine.image3_task"),
    ('output_root = = "o"\n', CeersParameterError, "not valid TOML"),
]


@pytest.mark.parametrize(("text", "error", "message"), BAD_CONFIGS)
def test_bad_config_names_file_and_key(survey, text, error, message):
    root, _ = survey
    path = root / "bad.toml"
    path.write_text(text)
    with pytest.raises(error) as info:
        load_survey_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_config_file_is_a_file_error(tmp_path):
    with pytest.raises(CeersFileError, match="nope.toml"):
        load_survey_config(tmp_path / "nope.toml")


def test_plan_groups_by_filter_and_merges_parameters(survey):
    root, truth = survey
    refcat = root / "ref.ecsv"
    refcat.write_text("# %ECSV 1.0\nra dec\n1 2\n")
    (root / "sky.asdf").write_text("#ASDF 1.0.0\n")
    path = write_config(
        root,
        extra='abs_refcat = "ref.ecsv"\n[image3.steps.tweakreg]\nabs_tolerance = 0.1\nsearchrad = 2.0\n'
        '[image3.steps.skymatch]\nparameter_file = "sky.asdf"',
        per_filter="[image3.filters.F356W.steps.tweakreg]\nsearchrad = 3.0",
    )
    tasks = {t.key: t for t in plan_survey(load_survey_config(path))}
    assert sorted(tasks) == ["p1/F150W", "p1/F356W", "p1/mosaic_bkg", "p2/F150W", "p2/F356W", "p2/mosaic_bkg"]
    assert tasks["p1/mosaic_bkg"].depends == ("p1/F150W", "p1/F356W")
    members = tasks["p2/F356W"].inputs["members"]
    assert len(members) == N_MEMBERS and all("_03101_" in Path(m).name for m in members)
    assert tasks["p2/F356W"].inputs["abs_refcat"] == [str(refcat)]
    own = root / "cal" / "p1" / "own.ecsv"
    own.write_text("# %ECSV 1.0\nra dec\n3 4\n")
    path.write_text(path.read_text().replace('inputs = ["cal/p1/*_cal.fits"]', 'inputs = ["cal/p1/*_cal.fits"]\nabs_refcat = "cal/p1/own.ecsv"'))
    per_pointing = {t.key: t for t in plan_survey(load_survey_config(path))}
    assert per_pointing["p1/F150W"].inputs["abs_refcat"] == [str(own)]
    assert per_pointing["p2/F150W"].inputs["abs_refcat"] == [str(refcat)]
    assert tasks["p1/F150W"].params["steps"]["tweakreg"] == {"abs_tolerance": 0.1, "searchrad": 2.0}
    assert tasks["p1/F356W"].params["steps"]["tweakreg"] == {"abs_tolerance": 0.1, "searchrad": 3.0}
    assert tasks["p1/F356W"].params["steps"]["resample"] == {"crval": [214.9, 52.9], "pixel_scale": 0.03}
    assert tasks["p1/F356W"].inputs["step_parameter_file:skymatch"] == [str(root / "sky.asdf")]

    from jwst_ceers.survey.tasks import _steps_with_files

    steps = _steps_with_files(tasks["p1/F356W"].params, tasks["p1/F356W"].inputs)
    assert steps["skymatch"] == {"config_file": str(root / "sky.asdf")}
    assert steps["tweakreg"]["abs_refcat"] == str(refcat)


# ---------------------------------------------------------------- runs
def test_serial_run_products_provenance_and_skip(survey):
    root, truth = survey
    path = write_config(root)
    results, _ = run_serial(path)
    assert {r.status for r in results.values()} == {"done"}
    assert_products_match_truth(root, truth)

    i2d = i2d_path(root, "p1", "F150W")
    manifest = read_manifest(root / "products" / "p1" / "p1_f150w.manifest.json")
    header = fits.getheader(i2d, 0)
    assert header["CEERSPAR"] == manifest["params_digest"][:32]
    assert header["CEERSINP"] == manifest["inputs_digest"][:32]
    assert header["CEERSPRD"] == "p1/F150W"
    assert header["CEERSJWV"] == manifest["versions"]["jwst"]
    assert [o["path"] for o in manifest["outputs"]] == ["p1_f150w_i2d.fits"]
    assert len(manifest["inputs"]) == N_MEMBERS and all(r["role"] == "members" for r in manifest["inputs"])
    log = (root / "products" / "p1" / "logs" / "p1_f150w.log").read_text()
    assert "stand-in image3 wrote p1_f150w" in log
    assert not list((root / "products" / "p1" / ".staging").iterdir())

    mtime = i2d.stat().st_mtime_ns
    again, _ = run_serial(path)
    assert {r.status for r in again.values()} == {"skipped"}
    assert i2d.stat().st_mtime_ns == mtime


def test_input_and_parameter_changes_redo_only_what_depends_on_them(survey):
    root, truth = survey
    path = write_config(root)
    run_serial(path)

    # touching an input (new mtime, same content) changes nothing
    member = sorted((root / "cal" / "p2").glob("*_02101_*_cal.fits"))[0]
    os.utime(member, ns=(time.time_ns(), time.time_ns() + 10**9))
    results, _ = run_serial(path)
    assert {r.status for r in results.values()} == {"skipped"}

    # new content in one p2/F150W member: that product and p2's background are redone
    with fits.open(member) as hdul:
        data = hdul[0].data + 5.0
        header = hdul[0].header
    fits.PrimaryHDU(data, header=header).writeto(member, overwrite=True)
    truth[("p2", "F150W")][0] = data
    planned, _ = run_serial(path, dry_run=True)
    assert {k: r.status for k, r in planned.items() if r.status != "skipped"} == {
        "p2/F150W": "out-of-date",
        "p2/mosaic_bkg": "out-of-date",
    }
    assert planned["p2/mosaic_bkg"].reason == "after p2/F150W"
    results, _ = run_serial(path)
    redone = sorted(k for k, r in results.items() if r.status == "done")
    assert redone == ["p2/F150W", "p2/mosaic_bkg"]
    assert "inputs changed" in results["p2/F150W"].reason and member.name in results["p2/F150W"].reason
    assert_products_match_truth(root, truth)

    # a parameter change for one filter
    path = write_config(root, per_filter="[image3.filters.F356W.steps.standin]\nscale = 2.0")
    results, _ = run_serial(path)
    redone = sorted(k for k, r in results.items() if r.status == "done")
    assert redone == ["p1/F356W", "p1/mosaic_bkg", "p2/F356W", "p2/mosaic_bkg"]
    assert results["p1/F356W"].reason == "parameters changed"
    assert_products_match_truth(root, truth, scales={("p1", "F356W"): 2.0, ("p2", "F356W"): 2.0})

    # an edited product is not trusted
    with fits.open(i2d_path(root, "p1", "F150W"), mode="update") as hdul:
        hdul[0].header["EDITED"] = True
    results, _ = run_serial(path)
    assert results["p1/F150W"].status == "done" and "output modified" in results["p1/F150W"].reason


def test_package_version_change_redoes(survey, monkeypatch):
    from jwst_ceers.survey import execution, provenance

    root, _ = survey
    path = write_config(root)
    run_serial(path)
    real = provenance.package_versions()
    monkeypatch.setattr(execution, "package_versions", lambda: {**real, "jwst": "99.0.0"})
    results, _ = run_serial(path)
    assert all(r.status == "done" for r in results.values())
    assert results["p1/F150W"].reason == "package versions changed (jwst)"
    assert fits.getheader(i2d_path(root, "p1", "F150W"))["CEERSJWV"] == "99.0.0"


def test_code_change_redoes(survey):
    root, _ = survey
    path = write_config(root)
    run_serial(path)
    manifest_file = root / "products" / "p1" / "p1_f150w.manifest.json"
    manifest = json.loads(manifest_file.read_text())
    assert "atomic_io.py" in manifest["code"]  # the package code loaded when the product was made
    assert not any(name.startswith(("survey/execution", "cli/")) for name in manifest["code"])
    manifest["code"]["atomic_io.py"] = "0" * 64  # as if atomic_io.py had been edited since
    manifest_file.write_text(json.dumps(manifest))
    results, _ = run_serial(path)
    assert results["p1/F150W"].status == "done"
    assert results["p1/F150W"].reason == "jwst_ceers code changed (atomic_io.py)"
    assert results["p2/F150W"].status == "skipped"


def test_failure_is_isolated_and_reported(survey, capsys, monkeypatch):
    import jwst_ceers.cli as cli

    root, truth = survey
    path = write_config(root, per_filter="[image3.filters.F356W.steps.standin]\nfail = true")
    config = load_survey_config(path)
    # only p1 fails: give p2 its own task list without the failure
    tasks = plan_survey(config)
    tasks = [
        dataclasses.replace(t, params={**t.params, "steps": {}}) if t.key == "p2/F356W" else t for t in tasks
    ]
    results = {r.key: r for r in run_products(tasks, stream=False)}
    assert results["p1/F356W"].status == "failed"
    assert results["p1/F356W"].reason == "RuntimeError: second line is the reason"
    assert results["p1/mosaic_bkg"].status == "failed-dependency"
    assert "p1/F356W" in results["p1/mosaic_bkg"].reason
    assert {results[k].status for k in ("p1/F150W", "p2/F150W", "p2/F356W", "p2/mosaic_bkg")} == {"done"}
    log = (root / "products" / "p1" / "logs" / "p1_f356w.log").read_text()
    assert "Traceback" in log and "injected failure" in log
    assert not (root / "products" / "p1" / "p1_f356w.manifest.json").exists()

    # through the command: exit status 1 and a summary naming the reason
    monkeypatch.setattr(cli, "COMMANDS", {"survey": cli.COMMANDS["survey"]})
    assert cli.main(["survey", str(path), "--serial"]) == 1
    out = capsys.readouterr().out
    assert "p1/F356W" in out and "second line is the reason" in out and "failed-dependency" in out
    assert (root / "products" / "survey_summary.txt").read_text().count("failed") >= 2


def test_cli_bad_config_exits_2(tmp_path, capsys, monkeypatch):
    import jwst_ceers.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", {"survey": cli.COMMANDS["survey"]})
    bad = tmp_path / "bad.toml"
    bad.write_text('output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["nothing/*.fits"]\n')
    assert cli.main(["survey", str(bad), "--serial"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "pointings[0].inputs" in err and len(err.strip().splitlines()) == 1


def test_resume_after_kill_finishes_only_missing_products(survey):
    root, truth = survey
    path = write_config(root, per_filter="[image3.steps.standin]\npartial_then_sleep = 1.5")
    command = (
        "import sys, jwst_ceers.cli as c; c.COMMANDS = {'survey': c.COMMANDS['survey']}; "
        "sys.exit(c.main(sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", command, "survey", str(path), "--serial"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    manifests = root / "products"
    deadline = time.monotonic() + 60
    # kill while p2/F150W (4th product, after all of p1) is half-written in its staging folder
    while not list(manifests.glob("p2/.staging/*/p2_f150w_i2d.fits")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name.removesuffix(".manifest.json") for p in manifests.glob("*/*.manifest.json")}
    assert finished == {"p1_f150w", "p1_f356w", "p1_mosaic_bkg"}
    assert not i2d_path(root, "p2", "F150W").exists()  # the partial file was never published

    results, _ = run_serial(path)  # same configuration: resume
    skipped = {k.replace("/", "_").lower() for k, r in results.items() if r.status == "skipped"}
    done = {k for k, r in results.items() if r.status == "done"}
    assert skipped == finished
    assert done == {"p2/F150W", "p2/F356W", "p2/mosaic_bkg"}
    assert_products_match_truth(root, truth)
    assert not list(manifests.glob("*/.staging/*"))


def test_two_workers_give_the_same_products_as_serial(survey, tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    root, truth = survey
    serial_root = tmp_path_factory.mktemp("serial")
    make_exposures(serial_root)
    run_serial(write_config(serial_root))

    path = write_config(root)
    config = load_survey_config(path)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="2GB"
    ) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        client.run(lambda p: sys.path.insert(0, p), str(Path(__file__).parent))
        results = run_products(plan_survey(config), client=client, stream=False)
    assert {r.status for r in results} == {"done"}
    assert len({r.worker for r in results}) == 2  # both workers did work
    for pointing in POINTINGS:
        for product in sorted((serial_root / "products" / pointing).glob("*.fits")):
            parallel = root / "products" / pointing / product.name
            assert parallel.read_bytes() == product.read_bytes(), product.name  # bitwise identical
    assert_products_match_truth(root, truth)


def test_graph_errors_are_reported():
    from jwst_ceers.survey.graph import ProductTask, order_tasks

    def task(key, depends=(), name=None):
        return ProductTask(key, "p", key, name or key.replace("/", "_"), "m:f", "/tmp/x", depends=depends)

    with pytest.raises(ValueError, match="cycle"):
        order_tasks([task("a", ("b",)), task("b", ("a",))])
    with pytest.raises(ValueError, match="unknown product 'c'"):
        order_tasks([task("a", ("c",))])
    with pytest.raises(ValueError, match="duplicate"):
        order_tasks([task("a"), task("a", name="other")])
    with pytest.raises(ValueError, match="two products named"):
        order_tasks([task("a", name="same"), task("b", name="same")])
    assert [t.key for t in order_tasks([task("b", ("a",)), task("a")])] == ["a", "b"]


def test_scheduling_priorities_start_the_longest_chains_first():
    from jwst_ceers.survey.graph import ProductTask, order_tasks, scheduling_priorities

    def task(key, cost, depends=()):
        return ProductTask(key, key.split("/")[0], key, key.replace("/", "_"), "m:f", "/tmp/x", depends=depends, cost=cost)

    # two pointings: a big and a small filter each, then the pointing's background
    tasks = [
        task("p1/small", 3.0),
        task("p1/big", 6.0),
        task("p1/bkg", 1.0, ("p1/small", "p1/big")),
        task("p2/small", 3.0),
        task("p2/big", 5.0),
        task("p2/bkg", 1.0, ("p2/small", "p2/big")),
    ]
    priority = scheduling_priorities(order_tasks(tasks))
    # both big products before either small one, every background after its inputs
    assert min(priority["p1/big"], priority["p2/big"]) > max(priority["p1/small"], priority["p2/small"])
    assert priority["p1/big"] > priority["p2/big"]
    for pointing in ("p1", "p2"):
        assert priority[f"{pointing}/bkg"] < priority[f"{pointing}/small"]
    # costs unknown (0): every product gets the same priority, dask's own order decides
    flat = scheduling_priorities(order_tasks([dataclasses.replace(t, cost=0.0) for t in tasks]))
    assert set(flat.values()) == {0}


def test_cluster_starts_the_big_products_first(tmp_path):
    distributed = pytest.importorskip("distributed")
    from jwst_ceers.survey.graph import ProductTask
    from jwst_ceers.survey.worker_process import prepare_workers

    log = tmp_path / "started.txt"

    def task(key, cost, depends=()):
        return ProductTask(
            key, key.split("/")[0], key, key.replace("/", "_"), "test_survey:standin_sleep", str(tmp_path / "out"),
            params={"log": str(log), "sleep": 0.3}, depends=depends, cost=cost,
        )

    tasks = [
        task("p1/big", 6.0), task("p1/small", 3.0), task("p1/bkg", 1.0, ("p1/big", "p1/small")),
        task("p2/big", 6.0), task("p2/small", 3.0), task("p2/bkg", 1.0, ("p2/big", "p2/small")),
    ]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="1GB"
    ) as cluster, distributed.Client(cluster) as client:
        client.run(lambda p: sys.path.insert(0, p), str(Path(__file__).parent))
        prepare_workers(client, tasks)
        prepared = client.run(lambda: os.environ.get("CEERS_TEST_WORKER_PREPARED"))
        results = run_products(tasks, client=client, stream=False)
    assert list(prepared.values()) == ["yes"]
    assert {r.status for r in results} == {"done"}, [r.reason for r in results]
    started = log.read_text().split()
    # submitted in dependency order, the same graph started p1_big, p2_small, p1_small, p2_big
    assert set(started[:2]) == {"p1_big", "p2_big"}, started


def test_plan_costs_follow_the_input_sizes(survey):
    root, _ = survey
    tasks = {t.key: t for t in plan_survey(load_survey_config(write_config(root)))}
    for task in tasks.values():
        if task.inputs.get("members"):
            assert task.cost == sum(Path(p).stat().st_size for p in task.inputs["members"])
    assert all(t.cost > 0 for t in tasks.values() if t.inputs.get("members"))


# ---------------------------------------------------------------- simulated NIRCam survey
def _simulated_survey(root, output_root):
    """2 pointings x (F150W, F356W), 1 detector x 2 dithers each, 256^2; stock jwst + real MosaicBackground."""
    from jwst_ceers.mosaic_grid import pointing_grid
    from jwst_ceers.simulate.exposures import simulate_pointing

    lines = [
        f'output_root = "{output_root}"',
        "[mosaic_bkg.params]",
        "bkg_box_size = 16",
        "ring_radius = 20.0",
        "[engine]",
        'image3_task = "jwst_ceers.survey.tasks:stock_image3"',
        'mosaic_bkg_task = "jwst_ceers.survey.tasks:mosaic_background"',
    ]
    for name, ra, seed in (("n1", 214.90, 21), ("n2", 214.96, 22)):
        folder = root / "cal" / name
        if not folder.exists():
            sim = simulate_pointing(
                folder, filters=("F150W", "F356W"), sw_detectors=("NRCA1",), lw_detectors=("NRCALONG",),
                n_dithers=2, size=256, seed=seed, ra=ra, dec=52.9, write_refcat=False,
            )
            grid = pointing_grid(sim.cal_files, pixel_scale=0.063)
            (folder / "grid.json").write_text(json.dumps(dataclasses.asdict(grid)))
        grid = json.loads((folder / "grid.json").read_text())
        lines += [
            "[[pointings]]", f'name = "{name}"', f'inputs = ["cal/{name}/*_cal.fits"]', "[pointings.grid]",
            *(f"{key} = {json.dumps(value)}" for key, value in grid.items()),
        ]
    path = root / f"{output_root}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _fits_arrays(folder):
    arrays = {}
    for path in sorted(Path(folder).glob("*/*.fits")):
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None:
                    arrays[(path.relative_to(folder).as_posix(), hdu.name)] = np.array(hdu.data)
    return arrays


@pytest.mark.slow
def test_simulated_survey_two_workers_bitwise_equal_to_serial(tmp_path):
    distributed = pytest.importorskip("distributed")
    serial_cfg = _simulated_survey(tmp_path, "serial")
    serial = {r.key: r for r in run_products(plan_survey(load_survey_config(serial_cfg)), stream=False)}
    assert {r.status for r in serial.values()} == {"done"}, [r.reason for r in serial.values()]

    parallel_cfg = _simulated_survey(tmp_path, "parallel")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="4GB"
    ) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        parallel = run_products(plan_survey(load_survey_config(parallel_cfg)), client=client, stream=False)
    assert {r.status for r in parallel} == {"done"}
    assert len({r.worker for r in parallel}) == 2

    a, b = _fits_arrays(tmp_path / "serial"), _fits_arrays(tmp_path / "parallel")
    assert set(a) == set(b) and len({k[0] for k in a}) == 2 * (2 + 3 * 2) + 2  # i2d, crf x2 (per filter); bkg
    for key in a:
        assert a[key].tobytes() == b[key].tobytes(), key  # bitwise identical
    # against the simulation: every exposure went into its filter's mosaic, and the
    # background-subtracted sky is flat at zero (the simulated sky was ~0.1-0.3 MJy/sr)
    for name in ("n1", "n2"):
        for band in ("f150w", "f356w"):
            n_members = fits.getheader(tmp_path / "serial" / name / f"{name}_{band}_i2d.fits", 0)["NDRIZ"]
            assert n_members == 2
            bkgsub = a[(f"{name}/{name}_{band}_bkgsub.fits", "SCI")]
            mask = a[(f"{name}/{name}_merged_mask.fits", "PRIMARY")].astype(bool)
            sky = bkgsub[~mask & (bkgsub != 0) & np.isfinite(bkgsub)]
            assert sky.size > 1000 and abs(np.median(sky)) < 0.01


def test_cli_dry_run_and_lock(survey, capsys, monkeypatch):
    import fcntl

    import jwst_ceers.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", {"survey": cli.COMMANDS["survey"]})
    root, _ = survey
    path = write_config(root)
    assert cli.main(["survey", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("out-of-date") >= 6 and "no manifest" in out
    assert not list((root / "products").glob("*/*.manifest.json"))  # nothing made

    with open(root / "products" / ".survey.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another run would
        assert cli.main(["survey", str(path), "--serial"]) == 2
    assert "another jwst-ceers survey is running" in capsys.readouterr().err
    assert cli.main(["survey", str(path), "--serial"]) == 0


def test_step_and_parameter_names_are_checked(survey):
    from jwst_ceers.survey import check_step_parameters

    root, _ = survey
    base = 'output_root = "o"\n[[pointings]]\nname = "a"\ninputs = ["cal/p1/*.fits"]\n'
    cases = [
        ("[image3.steps.tweekreg]\nsearchrad = 1.0\n", "image3.steps.tweekreg: unknown step"),
        ("[image3.steps.tweakreg]\nserchrad = 1.0\n", "image3.steps.tweakreg.serchrad: unknown parameter"),
        ("[image3.filters.F150W.steps.resample]\npixfrak = 1.0\n", "image3.filters.F150W.steps.resample.pixfrak"),
        ("[mosaic_bkg.params]\nbkg_box = 64\n", "mosaic_bkg.params.bkg_box: unknown parameter"),
    ]
    for extra, message in cases:
        path = root / "steps.toml"
        path.write_text(base + extra)
        with pytest.raises(CeersParameterError, match=re.escape(message)) as info:
            check_step_parameters(load_survey_config(path))
        assert str(path) in str(info.value)
    path.write_text(base + "[image3.steps.tweakreg]\nabs_searchrad = 1.0\n[mosaic_bkg.params]\nbkg_box_size = 32\n")
    check_step_parameters(load_survey_config(path))  # valid names pass


def test_tasks_use_the_threads_of_their_worker():
    from distributed import Client, LocalCluster

    from jwst_ceers.survey.tasks import worker_threads

    assert worker_threads() is None  # not in a worker: the steps' own defaults apply
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            assert client.submit(worker_threads, pure=False).result() == 1


FAULTS_SCRIPT = r"""
import resource, sys
import numpy as np
from jwst_ceers.survey.worker_process import use_large_array_malloc
if sys.argv[1] == "tuned":
    assert use_large_array_malloc()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    a = np.ones((1024, 1024), dtype=np.float32)  # 4 MB, as one exposure-sized array
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_workers_reuse_memory_for_large_arrays(tmp_path):
    # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: every MB-sized array
    # is then a fresh mmap that the kernel must fault in and zero
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")

    def faults(mode):
        run = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, mode], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-1000:]
        return int(run.stdout.split()[-1])

    dask_default, tuned = faults("default"), faults("tuned")
    assert dask_default > 50_000  # ~1000 page faults per 4 MB array
    assert tuned < dask_default / 10


def test_cli_local_cluster_makes_the_products(survey, capsys, monkeypatch):
    import jwst_ceers.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", {"survey": cli.COMMANDS["survey"]})
    # spawned workers import the stand-in task functions of this module
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    root, truth = survey
    path = write_config(root)
    assert cli.main(["survey", str(path), "--workers", "2", "--memory-limit", "2GB"]) == 0
    out = capsys.readouterr().out
    assert "local cluster: 2 workers x 1 thread" in out
    assert "6 done, 0 skipped, 0 failed" in out.replace("products: ", "")
    assert_products_match_truth(root, truth)
