"""VarianceHoleFill: exact zeros become +inf, nothing else changes, any input kind works."""

import numpy as np
import pytest
from jwst.datamodels import ModelLibrary
from stdatamodels.jwst import datamodels

from jwst_ceers import VarianceHoleFill
from jwst_ceers.errors import CeersParameterError
from jwst_ceers.varfill import fill_zero_variance

ARRAYS = ("var_rnoise", "var_poisson", "var_flat")


def make_model(seed, shape=(64, 80), name="jw01345001001_02101_00001_nrca1_cal.fits"):
    """An ImageModel with known zero-variance pixels in each variance array."""
    rng = np.random.default_rng(seed)
    model = datamodels.ImageModel(shape)
    model.meta.filename = name
    model.data = rng.normal(0.2, 0.01, shape).astype(np.float32)
    holes = {}
    for array_name in ARRAYS:
        var = rng.uniform(1e-5, 2e-4, shape).astype(np.float32)
        zero = rng.random(shape) < 0.01
        var[zero] = 0.0
        setattr(model, array_name, var)
        holes[array_name] = zero
    model.err = np.sqrt(model.var_rnoise + model.var_poisson + model.var_flat)
    return model, holes


def check_filled(result, original, holes, arrays=ARRAYS):
    for array_name in ARRAYS:
        out = getattr(result, array_name)
        before = getattr(original, array_name)
        if array_name in arrays:
            assert np.all(np.isposinf(out[holes[array_name]]))
            assert np.array_equal(out[~holes[array_name]], before[~holes[array_name]])
        else:
            assert np.array_equal(out, before)
        assert out.dtype.kind == "f" and out.dtype.itemsize == 4  # float32 stays float32
    # SCI, ERR and DQ never change
    assert np.array_equal(result.data, original.data)
    assert np.array_equal(result.err, original.err)
    assert np.array_equal(result.dq, original.dq)


def test_fill_zero_variance_function():
    variance = np.array([[0.0, 1.0], [2.0, 0.0]], dtype=np.float32)
    filled, nfilled = fill_zero_variance(variance)
    assert nfilled == 2
    assert np.isposinf(filled[0, 0]) and np.isposinf(filled[1, 1])
    assert filled[0, 1] == 1.0 and filled[1, 0] == 2.0
    assert variance[0, 0] == 0.0  # input untouched


def test_single_model_not_mutated():
    model, holes = make_model(1)
    original = model.copy()
    result = VarianceHoleFill().run(model)
    check_filled(result, original, holes)
    assert result.meta.cal_step.ceers_varfill == "COMPLETE"
    # the caller's model is unchanged
    for array_name in ARRAYS:
        assert np.array_equal(getattr(model, array_name), getattr(original, array_name))
    assert model.meta.cal_step.instance.get("ceers_varfill") is None


def test_only_requested_arrays():
    model, holes = make_model(2)
    original = model.copy()
    result = VarianceHoleFill(arrays=["var_rnoise"]).run(model)
    check_filled(result, original, holes, arrays=("var_rnoise",))


def test_unknown_array_name_is_a_clear_error():
    model, _ = make_model(3)
    with pytest.raises(CeersParameterError, match="var_bogus"):
        VarianceHoleFill(arrays=["var_bogus"]).run(model)


def test_fixes_ceers_script_bug_var_flat_not_flat():
    """The CEERS script wrote the filled VAR_FLAT to model.flat; VAR_FLAT must change."""
    model, holes = make_model(4)
    result = VarianceHoleFill().run(model)
    assert np.all(np.isposinf(result.var_flat[holes["var_flat"]]))
    assert not result.hasattr("flat") or result.flat is None


def test_list_association_and_library(tmp_path):
    models, holes, paths = [], [], []
    for i in range(3):
        name = f"jw01345001001_02101_0000{i + 1}_nrca1_cal.fits"
        model, hole = make_model(10 + i, name=name)
        model.save(tmp_path / name)
        models.append(model)
        holes.append(hole)
        paths.append(tmp_path / name)

    # list of models
    result = VarianceHoleFill().run(models)
    with result:
        for i, out in enumerate(result):
            check_filled(out, models[i], holes[i])
            assert out.meta.cal_step.ceers_varfill == "COMPLETE"
            result.shelve(out, i, modify=False)

    # association file
    from jwst.associations.asn_from_list import asn_from_list
    from jwst.associations.lib.rules_level3_base import DMS_Level3_Base

    asn = asn_from_list([p.name for p in paths], rule=DMS_Level3_Base, product_name="test")
    asn_path = tmp_path / "asn.json"
    asn_path.write_text(asn.dump()[1])
    result = VarianceHoleFill().run(str(asn_path))
    with result:
        for i, out in enumerate(result):
            check_filled(out, models[i], holes[i])
            result.shelve(out, i, modify=False)

    # ModelLibrary, on disk
    library = ModelLibrary(str(asn_path), on_disk=True)
    result = VarianceHoleFill().run(library)
    with result:
        for i, out in enumerate(result):
            check_filled(out, models[i], holes[i])
            result.shelve(out, i, modify=False)


def test_filled_exposures_drizzle_without_err_holes(tmp_path):
    """
    Zero-variance pixels must carry no drizzle weight and leave no ERR hole.

    Truth: the mosaic of filled exposures equals the mosaic in which those same
    pixels are flagged DO_NOT_USE (i.e. excluded), and its ERR is positive and
    finite wherever SCI is finite.

    With jwst >= 3.0 stcal already gives non-finite inverse variances zero weight, so
    the mosaic WITHOUT the fill is the same: that is asserted too, because the README
    states it ("Zero-variance pixels and drizzle"). This test therefore guards the
    chain's outcome and the documented stcal behaviour; what the step itself does to
    each exposure is asserted by ``check_filled`` above and by
    test_properties.test_hole_fill_step_fills_exactly_the_zeros_of_the_chosen_arrays.
    """
    from jwst.resample import ResampleStep
    from stdatamodels.jwst.datamodels import dqflags

    from jwst_ceers.demo.quality import err_holes
    from jwst_ceers.simulate import simulate_pointing

    sim = simulate_pointing(
        tmp_path / "sim", filters=("F150W",), sw_detectors=("NRCA1",), lw_detectors=(),
        n_dithers=3, size=256, seed=5, zero_variance_fraction=3e-3, write_refcat=False,
    )
    exposures = [datamodels.open(path) for path in sim.cal_files]
    zero = [m.var_rnoise == 0 for m in exposures]
    assert sum(int(z.sum()) for z in zero) > 300

    flagged = []
    for model, z in zip(exposures, zero, strict=True):
        model = model.copy()
        model.dq[z] |= dqflags.pixel["DO_NOT_USE"]
        flagged.append(model)

    grid = {"pixel_scale": 0.03, "rotation": 0.0}
    filled = ResampleStep(**grid).run(VarianceHoleFill().run([m.copy() for m in exposures]))
    excluded = ResampleStep(**grid).run(flagged)

    assert err_holes(filled.data, filled.err) == 0
    np.testing.assert_allclose(filled.data, excluded.data, rtol=1e-6, atol=0, equal_nan=True)
    np.testing.assert_allclose(filled.err, excluded.err, rtol=1e-6, atol=0, equal_nan=True)
    # the README's measured statement: without the fill, jwst 3.0 gives the same mosaic
    unfilled = ResampleStep(**grid).run([m.copy() for m in exposures])
    np.testing.assert_allclose(unfilled.data, excluded.data, rtol=1e-6, atol=0, equal_nan=True)
    np.testing.assert_allclose(unfilled.err, excluded.err, rtol=1e-6, atol=0, equal_nan=True)
