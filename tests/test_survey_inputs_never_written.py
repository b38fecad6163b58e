"""The survey never writes onto an input (issue 14 section 1), checked at load and before publishing."""

import hashlib
import os

import pytest

from jwst_ceers.errors import CeersParameterError
from jwst_ceers.survey import ProductTask, load_survey_config, run_products
from test_survey import make_exposures, write_config


def standin_writes_its_input_name(*, inputs, upstream, output_dir, name, params):
    """A task whose output has the name of one of its inputs."""
    with open(os.path.join(output_dir, os.path.basename(inputs["members"][0])), "wb") as stream:
        stream.write(b"product")


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inputs_inside_a_pointing_output_folder_are_refused_at_load(tmp_path):
    make_exposures(tmp_path)
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('output_root = "products"', 'output_root = "cal"'))  # cal/p1 = p1's outputs
    with pytest.raises(CeersParameterError, match=r"pointings\[0\]: input .*cal/p1/.* is in the output folder"):
        load_survey_config(path)


def test_an_output_named_like_an_input_is_not_published(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    folder = tmp_path / "shared"
    folder.mkdir()
    member = folder / "exposure_asn.json"  # not FITS: nothing else stops the rename
    member.write_bytes(b"input data")
    before = _sha(member)
    task = ProductTask(
        "p/a", "p", "a", "p_a", "test_survey_inputs_never_written:standin_writes_its_input_name", str(folder),
        inputs={"members": [str(member)]},
    )
    [result] = run_products([task], stream=False)
    assert result.status == "failed" and "would overwrite the input" in result.reason
    assert _sha(member) == before
    assert not (folder / "p_a.manifest.json").exists()
