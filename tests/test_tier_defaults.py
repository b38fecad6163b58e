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
