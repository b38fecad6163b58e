"""An empty mosaic is never published as done, and costs the other filters nothing.

Image3Ceers raises CeersDataError for a product with no finite pixel; the survey's
task checks the written i2d itself as well. The survey then reports that filter as
failed (with its reason), and the pointing's MosaicBackground is still made from
the other filters, saying which one it went without.
"""

import json
import os

import numpy as np
import pytest
from astropy.io import fits

from jwst_ceers.errors import CeersDataError
from jwst_ceers.survey import format_summary, load_survey_config, plan_survey, run_products
from test_survey import i2d_path, make_exposures, standin_image3, write_config


def standin_image3_or_empty(*, inputs, upstream, output_dir, name, params):
    """As test_survey.standin_image3, but raises as Image3Ceers does when ``standin.empty`` is set."""
    if params["steps"].get("standin", {}).get("empty"):
        raise CeersDataError(f"{params['product_name']}: the mosaic has no finite pixel (empty mosaic)")
    standin_image3(inputs=inputs, upstream=upstream, output_dir=output_dir, name=name, params=params)


def _config(root, empty):
    per_filter = "[image3.filters.F356W.steps.standin]\nempty = true\n" if empty else ""
    path = write_config(root, per_filter=per_filter)
    path.write_text(path.read_text().replace("test_survey:standin_image3", "test_survey_empty_mosaic:standin_image3_or_empty"))
    return path


def _run(path):
    return {r.key: r for r in run_products(plan_survey(load_survey_config(path)), stream=False)}


def test_empty_filter_fails_and_background_runs_on_the_others(tmp_path):
    truth = make_exposures(tmp_path)
    path = _config(tmp_path, empty=True)
    results = _run(path)
    for pointing in ("p1", "p2"):
        empty = results[f"{pointing}/F356W"]
        assert empty.status == "failed" and "no finite pixel" in empty.reason
        assert not (tmp_path / "products" / pointing / f"{pointing}_f356w.manifest.json").exists()
        assert not i2d_path(tmp_path, pointing, "F356W").exists()
        background = results[f"{pointing}/mosaic_bkg"]
        assert background.status == "done", background.reason
        assert f"without {pointing}/F356W" in background.reason and "no finite pixel" in background.reason
        folder = tmp_path / "products" / pointing
        assert sorted(p.name for p in folder.glob("*_bkgsub.fits")) == [f"{pointing}_f150w_bkgsub.fits"]
        got = fits.getdata(folder / f"{pointing}_f150w_bkgsub.fits")
        i2d = fits.getdata(i2d_path(tmp_path, pointing, "F150W"), "SCI")
        np.testing.assert_allclose(got, i2d - np.median(i2d), rtol=1e-6, atol=1e-6)
        log = (folder / "logs" / f"{pointing}_mosaic_bkg.log").read_text()
        assert f"made without {pointing}/F356W" in log
    summary = format_summary(results.values())
    assert "without p1/F356W" in summary and "2 failed" in summary

    # again with the same data: the empty filter fails again, the background is up to date
    again = _run(path)
    assert again["p1/F356W"].status == "failed" and again["p1/mosaic_bkg"].status == "skipped"
    assert "without p1/F356W" in format_summary(again.values())

    # the filter's data fixed: it is made, and the background is remade with both filters
    fixed = _run(_config(tmp_path, empty=False))
    assert fixed["p1/F356W"].status == "done" and fixed["p1/mosaic_bkg"].status == "done"
    assert "without" not in fixed["p1/mosaic_bkg"].reason
    assert len(list((tmp_path / "products" / "p1").glob("*_bkgsub.fits"))) == 2
    del truth


def test_other_failures_still_stop_the_background(tmp_path):
    make_exposures(tmp_path)
    path = write_config(tmp_path, per_filter="[image3.filters.F356W.steps.standin]\nfail = true")
    results = _run(path)
    assert results["p1/F356W"].status == "failed"
    assert results["p1/mosaic_bkg"].status == "failed-dependency"  # a crash may be transient: no partial product


def test_every_filter_empty_makes_no_background(tmp_path):
    make_exposures(tmp_path)
    path = _config(tmp_path, empty=True)
    path.write_text(path.read_text().replace("[image3.filters.F356W.steps.standin]", "[image3.steps.standin]"))
    results = _run(path)
    assert results["p1/mosaic_bkg"].status == "failed-dependency"


# ---------------------------------------------------------------- the task itself, on the written i2d
@pytest.fixture
def fake_image3(monkeypatch):
    """Image3Ceers whose process writes the i2d given by ``fake_image3['sci']`` (no jwst processing)."""
    from stdatamodels.jwst import datamodels

    from jwst_ceers.pipeline.image3_ceers import Image3Ceers

    state = {"sci": np.ones((8, 8), np.float32), "seen": {}}

    def process(self, input_data):
        state["seen"]["memory_budget_gb"] = getattr(self, "memory_budget_gb", None)
        state["seen"]["crds_env"] = os.environ.get("STPIPE_DISABLE_CRDS_STEPPARS")
        with open(input_data) as stream:
            product = json.load(stream)["products"][0]["name"]
        model = datamodels.ImageModel(state["sci"].copy())
        model.save(os.path.join(self.output_dir, f"{product}_i2d.fits"))

    monkeypatch.setattr(Image3Ceers, "process", process)
    return state


def _members(tmp_path):
    make_exposures(tmp_path)
    return sorted(str(p) for p in (tmp_path / "cal" / "p1").glob("*_02101_*_cal.fits"))


def test_image3_task_refuses_an_all_nan_i2d(tmp_path, fake_image3):
    from jwst_ceers.survey.tasks import image3_ceers

    members = _members(tmp_path)
    out = tmp_path / "stage"
    out.mkdir()
    params = {"product_name": "p1_f150w", "filter": "F150W", "steps": {}}
    image3_ceers(inputs={"members": members}, upstream={}, output_dir=str(out), name="p1_f150w", params=params)
    fake_image3["sci"] = np.full((8, 8), np.nan, np.float32)
    with pytest.raises(CeersDataError, match="p1_f150w_i2d.fits.*no finite pixel"):
        image3_ceers(inputs={"members": members}, upstream={}, output_dir=str(out), name="p1_f150w", params=params)


def test_image3_task_sets_no_environment_variable(tmp_path, fake_image3, monkeypatch):
    from jwst_ceers.survey.tasks import image3_ceers

    members = _members(tmp_path)
    monkeypatch.delenv("STPIPE_DISABLE_CRDS_STEPPARS", raising=False)
    monkeypatch.setenv("CRDS_SERVER_URL", "https://jwst-crds.invalid")  # any CRDS request would fail
    params = {"product_name": "p1_f150w", "filter": "F150W", "steps": {}}
    image3_ceers(inputs={"members": members}, upstream={}, output_dir=str(tmp_path), name="p1_f150w", params=params)
    assert "STPIPE_DISABLE_CRDS_STEPPARS" not in os.environ
    assert fake_image3["seen"]["crds_env"] is None
