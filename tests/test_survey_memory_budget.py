"""The survey gives each Image3 product a memory budget (issue 16): configured, or from its worker.

Image3Ceers' ``memory_budget_gb`` (GB, 0 = no limit) gets the config's
``memory_budget_gb`` when set, else 70% of the dask worker's memory limit per
thread, else 0. The budget is how to run, not what to make: changing it remakes
nothing.
"""

import os

import pytest

from jwst_ceers.survey import load_survey_config, plan_survey, run_products
from test_survey import make_exposures, standin_image3, write_config


def standin_image3_budget(*, inputs, upstream, output_dir, name, params, run_options=None):
    """Writes the memory budget it was given next to the i2d of test_survey.standin_image3."""
    from jwst_ceers.survey.tasks import memory_budget_gb

    standin_image3(inputs=inputs, upstream=upstream, output_dir=output_dir, name=name, params=params)
    with open(os.path.join(os.path.dirname(output_dir), "..", "..", f"{name}.budget"), "w") as stream:
        stream.write(repr(memory_budget_gb(run_options)))


def _config(root, budget_line=""):
    path = write_config(root, extra=budget_line)
    path.write_text(path.read_text().replace("test_survey:standin_image3", "test_survey_memory_budget:standin_image3_budget"))
    return path


def _budgets(root):
    return {p.stem: float(p.read_text()) for p in (root / "products").glob("*.budget")}


def test_configured_budget_reaches_every_image3_product_and_remakes_nothing(tmp_path):
    make_exposures(tmp_path)
    path = _config(tmp_path, "memory_budget_gb = 3.5")
    results = run_products(plan_survey(load_survey_config(path)), stream=False)
    assert {r.status for r in results} == {"done"}
    assert _budgets(tmp_path) == {f"{p}_{f}": 3.5 for p in ("p1", "p2") for f in ("f150w", "f356w")}
    # another budget: same products, nothing remade
    path = _config(tmp_path, "memory_budget_gb = 7.0")
    assert {r.status for r in run_products(plan_survey(load_survey_config(path)), stream=False)} == {"skipped"}


def test_budget_defaults_to_a_share_of_the_worker_memory_limit(tmp_path):
    distributed = pytest.importorskip("distributed")
    from jwst_ceers.survey.tasks import WORKER_MEMORY_FRACTION, memory_budget_gb

    assert memory_budget_gb() == 0.0  # serial, nothing configured: no limit
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", memory_limit="2GB"
    ) as cluster, distributed.Client(cluster) as client:
        assert client.submit(memory_budget_gb, pure=False).result() == pytest.approx(WORKER_MEMORY_FRACTION * 2.0)
        assert client.submit(memory_budget_gb, {"memory_budget_gb": 0.0}, pure=False).result() == 0.0


def test_image3_ceers_gets_the_budget_as_its_parameter(tmp_path, monkeypatch):
    """With the pipeline's ``memory_budget_gb`` parameter (added by issue 16), the task sets it."""
    import json

    import numpy as np
    from stdatamodels.jwst import datamodels

    from jwst_ceers.pipeline.image3_ceers import Image3Ceers
    from jwst_ceers.survey.tasks import image3_ceers

    if "memory_budget_gb" not in Image3Ceers.load_spec_file():
        spec = Image3Ceers.spec + "\n    memory_budget_gb = float(min=0, default=0)  # GB; 0: no limit\n"
        monkeypatch.setattr(Image3Ceers, "spec", spec)
    seen = {}

    def process(self, input_data):
        seen["budget"] = self.memory_budget_gb
        with open(input_data) as stream:
            product = json.load(stream)["products"][0]["name"]
        datamodels.ImageModel(np.ones((4, 4), np.float32)).save(os.path.join(self.output_dir, f"{product}_i2d.fits"))

    monkeypatch.setattr(Image3Ceers, "process", process)
    make_exposures(tmp_path)
    members = sorted(str(p) for p in (tmp_path / "cal" / "p1").glob("*_02101_*_cal.fits"))
    params = {"product_name": "p1_f150w", "filter": "F150W", "steps": {}}
    image3_ceers(
        inputs={"members": members}, upstream={}, output_dir=str(tmp_path), name="p1_f150w", params=params,
        run_options={"memory_budget_gb": 6.5},
    )
    assert seen["budget"] == 6.5


def test_negative_budget_is_refused(tmp_path):
    from jwst_ceers.errors import CeersParameterError

    make_exposures(tmp_path)
    with pytest.raises(CeersParameterError, match="memory_budget_gb: must be >= 0"):
        load_survey_config(_config(tmp_path, "memory_budget_gb = -1"))


def test_mosaic_background_gets_the_budget_too(tmp_path, monkeypatch):
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground
    from jwst_ceers.survey import tasks

    spec_min = float(MosaicBackground.load_spec_file()["memory_budget_gb"].split("min=")[1].split(",")[0])
    assert spec_min == tasks._MOSAIC_BKG_MIN_BUDGET_GB  # one value, the spec's
    calls = []
    monkeypatch.setattr(tasks, "run_step", lambda step, listing, **kwargs: calls.append(kwargs))
    common = {"upstream": {"p1/F150W": [str(tmp_path / "p1_f150w_i2d.fits")]}, "output_dir": str(tmp_path),
              "name": "p1_mosaic_bkg", "params": {"pointing": "p1", "params": {}}}
    tasks.mosaic_background(inputs={}, run_options={"memory_budget_gb": 6.0}, **common)
    tasks.mosaic_background(inputs={}, run_options={"memory_budget_gb": 0.2}, **common)
    tasks.mosaic_background(inputs={}, run_options={"memory_budget_gb": 0}, **common)  # 0: the step's default
    tasks.mosaic_background(inputs={"parameter_file": ["mb.asdf"]}, run_options={"memory_budget_gb": 6.0}, **common)
    assert [c.get("memory_budget_gb") for c in calls] == [6.0, spec_min, None, None]


def test_plan_gives_the_budget_to_every_product(tmp_path):
    make_exposures(tmp_path)
    path = _config(tmp_path, "memory_budget_gb = 3.5")
    tasks = plan_survey(load_survey_config(path))
    from jwst_ceers.survey.plan import MOSAIC_BKG_LABEL

    assert {t.label for t in tasks} >= {"F150W", "F356W", MOSAIC_BKG_LABEL}
    assert all(t.run_options == {"memory_budget_gb": 3.5} for t in tasks)
