"""MosaicBackground as an stpipe step: which stpipe parameters apply, and inputs never written.

Documented (class docstring): ``output_dir`` and ``suffix`` apply, ``save_results`` has
no effect (the products are the result, always written), ``output_file`` is rejected.
Inputs are hashed before and after every run.
"""

import hashlib
import json
from pathlib import Path

import pytest

from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.simulate.mosaics import simulate_mosaics

SHAPE = (384, 384)


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory):
    root = tmp_path_factory.mktemp("mbkg_stpipe")
    sim = simulate_mosaics(root / "in", shape=SHAPE, seed=3, filters=("F150W", "F356W"), pointing="p9")
    paths = [sim.paths[f] for f in ("F150W", "F356W")]
    asn = root / "in" / "p9_asn.json"
    asn.write_text(json.dumps({"asn_type": "mosaic_bkg", "products": [
        {"name": "p9", "members": [{"expname": p.name, "exptype": "science"} for p in paths]}]}))
    return {"paths": paths, "asn": asn, "root": root}


def _strun(*args):
    """What ``strun ceers_mosaic_bkg ...`` does, in this process."""
    from stpipe._cmdline import step_from_cmdline

    return step_from_cmdline(["ceers_mosaic_bkg", *map(str, args)])


def test_strun_honours_output_dir_and_suffix(mosaics, tmp_path):
    hashes = {p: _md5(p) for p in mosaics["paths"]}
    out = tmp_path / "d"
    _strun(mosaics["asn"], "--output_dir", out, "--suffix", "skysub")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "p9_f150w_skysub.fits", "p9_f150w_bkg.fits", "p9_f150w_tiermask.fits",
        "p9_f356w_skysub.fits", "p9_f356w_bkg.fits", "p9_f356w_tiermask.fits",
        "p9_merged_mask.fits",
    ]), names
    assert {p: _md5(p) for p in mosaics["paths"]} == hashes
    # nothing was written beside the inputs
    assert not list(mosaics["paths"][0].parent.glob("*_skysub.fits"))


def test_default_suffix_is_bkgsub_and_save_results_false_still_writes(mosaics, tmp_path):
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    result = MosaicBackground.call([str(p) for p in mosaics["paths"]], output_dir=str(tmp_path), save_results=False)
    assert [Path(p).name for p in result["bkgsub"]] == ["p9_f150w_bkgsub.fits", "p9_f356w_bkgsub.fits"]
    assert all(Path(p).is_file() for kind in ("bkgsub", "bkg", "tiermask") for p in result[kind])


def test_output_file_is_rejected_before_any_work(mosaics, tmp_path):
    with pytest.raises(CeersParameterError, match="output_file"):
        _strun(mosaics["asn"], "--output_dir", tmp_path, "--output_file", tmp_path / "x.fits")
    assert not list(tmp_path.iterdir())


def test_second_pass_over_bkgsub_products_never_overwrites_them(mosaics, tmp_path):
    """Issue 14: a run over ``*_bkgsub.fits`` in their own directory replaced its inputs."""
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    first = MosaicBackground(output_dir=str(tmp_path)).run([str(p) for p in mosaics["paths"]])
    inputs = [Path(p) for p in first["bkgsub"]]
    hashes = {p: _md5(p) for p in inputs}
    second = MosaicBackground(output_dir=str(tmp_path)).run([str(p) for p in inputs])
    assert {p: _md5(p) for p in inputs} == hashes
    written = [Path(p).resolve() for kind in ("bkgsub", "bkg", "tiermask") for p in second[kind]]
    assert not set(written) & {p.resolve() for p in inputs}


def test_a_suffix_naming_the_inputs_is_refused_before_any_work(mosaics, tmp_path):
    """Inputs ``x_i2d.fits`` and ``--suffix i2d`` in their own directory would overwrite them."""
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    src = tmp_path / "src"
    src.mkdir()
    copies = []
    for p in mosaics["paths"]:
        target = src / p.name  # p9_<filter>_i2d.fits: product p9_<filter>, output p9_<filter>_i2d.fits
        target.write_bytes(p.read_bytes())
        copies.append(target)
    hashes = {p: _md5(p) for p in copies}
    with pytest.raises(CeersFileError, match="overwrite the input"):
        MosaicBackground(suffix="i2d", output_dir=str(src)).run([str(p) for p in copies])
    assert {p: _md5(p) for p in copies} == hashes
    assert sorted(p.name for p in src.iterdir()) == sorted(p.name for p in copies)
