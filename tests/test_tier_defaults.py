"""One source of truth per tier default: step specs == parameter files == constants.

The tier constants of jwst_ceers.masking.tiers once said nsigma 3.5/3.5/4.0/4.5 while the
MosaicBackground spec and parameter file said 3.0/3.0/3.5/4.0; the old constants test
skipped nsigma. Every field is compared here, for every step that has tiers.
"""

from pathlib import Path

import asdf
import pytest

from jwst_ceers.masking.tier_parameters import TIER_FIELDS
from jwst_ceers.masking.tiers import CEERS_EXPOSURE_TIERS, CEERS_HST_MOSAIC_TIERS, CEERS_NIRCAM_MOSAIC_TIERS

PARAMETER_FILES = Path(__file__).parents[1] / "parameter_files"

CASES = [
    ("jwst_ceers.mosaic_bkg.mosaic_bkg_step", "MosaicBackground", "ceers_mosaic_bkg.asdf", "nircam",
     CEERS_NIRCAM_MOSAIC_TIERS),
    ("jwst_ceers.mosaic_bkg.mosaic_bkg_step", "MosaicBackground", "ceers_mosaic_bkg.asdf", "hst",
     CEERS_HST_MOSAIC_TIERS),
    ("jwst_ceers.pedestal.pedestal_step", "PedestalSkySub", "ceers_pedestal.asdf", "tier", CEERS_EXPOSURE_TIERS),
]


def _step_class(module, name):
    import importlib

    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("module", "name", "parameter_file", "prefix", "constant"), CASES)
def test_spec_defaults_parameter_file_and_constants_agree(module, name, parameter_file, prefix, constant):
    cls = _step_class(module, name)
    from_spec = cls()
    with asdf.open(PARAMETER_FILES / parameter_file) as af:
        from_file = dict(af.tree["parameters"])
    for field in TIER_FIELDS:
        key = f"{prefix}_{field}"
        expected = [getattr(t, field) for t in constant]
        assert list(getattr(from_spec, key)) == expected, (name, key, "spec default vs constant")
        assert list(from_file[key]) == expected, (parameter_file, key, "parameter file vs constant")
    # and the validated tier sets are the constants themselves
    from jwst_ceers.masking.tier_parameters import tiers_from_step

    assert tiers_from_step(from_spec, prefix) == tuple(constant)
    assert tiers_from_step(cls.from_config_file(str(PARAMETER_FILES / parameter_file)), prefix) == tuple(constant)


def test_mosaic_parameter_file_holds_exactly_the_spec_parameters():
    """No stale key (removed parameters) and no value differing from the spec default."""
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

    defaults = MosaicBackground()
    with asdf.open(PARAMETER_FILES / "ceers_mosaic_bkg.asdf") as af:
        from_file = dict(af.tree["parameters"])
    spec_keys = {line.split("=")[0].strip() for line in MosaicBackground.spec.splitlines() if "=" in line}
    assert set(from_file) <= spec_keys, set(from_file) - spec_keys
    for key, value in from_file.items():
        current = getattr(defaults, key)
        assert (list(current) if isinstance(current, list | tuple) else current) == value, key


@pytest.mark.parametrize(
    ("module", "name", "parameter", "values", "bad_index"),
    [
        ("jwst_ceers.pedestal.pedestal_step", "PedestalSkySub", "tier_nsigma", [3.5, -1.0, 3.5, 4.0], 1),
        ("jwst_ceers.pedestal.pedestal_step", "PedestalSkySub", "tier_dilate", [15.0, 9.0, 5.0, 1e9], 3),
        ("jwst_ceers.mosaic_bkg.mosaic_bkg_step", "MosaicBackground", "nircam_npixels", [15, 0, 3, 1], 1),
        ("jwst_ceers.mosaic_bkg.mosaic_bkg_step", "MosaicBackground", "hst_kernel_fwhm", [-58.0, 35.0, 11.0, 4.0], 0),
    ],
)
def test_each_value_of_a_tier_list_is_bounded(tmp_path, module, name, parameter, values, bad_index):
    """The spec's min/max bound a list's length; every VALUE is checked when the step is made.

    Both ways a user sets it: a keyword (Step.call, --steps.x.y) and an asdf parameter file.
    """
    from jwst_ceers.errors import CeersParameterError

    cls = _step_class(module, name)
    with pytest.raises(CeersParameterError, match=rf"{parameter}\[{bad_index}\] = .* out of bounds"):
        cls(**{parameter: values})
    path = tmp_path / "pars.asdf"
    asdf.AsdfFile({"class": f"{module}.{name}", "name": name, "parameters": {parameter: values}}).write_to(path)
    with pytest.raises(CeersParameterError, match=rf"{parameter}\[{bad_index}\]"):
        cls.from_config_file(str(path))
    good = list(values)
    good[bad_index] = 2  # in bounds for every tier field
    assert list(getattr(cls(**{parameter: good}), parameter)) == good
