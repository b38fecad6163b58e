"""Test configuration: everything runs offline, without CRDS, under tmp dirs."""

import os
from pathlib import Path

import pytest

# Must be the word "true": stpipe ignores "1". Set before any stpipe import.
os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "true"
os.environ.setdefault("CRDS_SERVER_URL", "https://jwst-crds.invalid")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HST_REFCAT = SHARED_DATA / "CEERS_EGS_HST_v1.9_cat_radecmag.ecsv"


@pytest.fixture(autouse=True)
def _offline_crds(tmp_path, monkeypatch):
    """Give every test its own empty CRDS cache and no CRDS server."""
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "crds_cache"))
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")


@pytest.fixture
def hst_refcat():
    """The real CEERS HST F160W reference catalog from ../shared/data (skip if absent)."""
    if not HST_REFCAT.is_file():
        pytest.skip(f"{HST_REFCAT} not present")
    return HST_REFCAT
