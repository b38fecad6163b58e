"""Each per-exposure step on one small case per artefact family (issue 18's robustness matrix)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from jwst_ceers.simulate.nircam_geometry import detector_pointing, nircam_gwcs
from jwst_ceers.tweakreg.source_catalog import (
    artefact_regions_from_dq,
    near_artefacts,
    on_spike_light,
    spike_angles_from_wcs,
)

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
REAL_WCS_DIR = Path(__file__).parents[1].parent / "shared" / "data" / "ceers_dr05" / "tweakreg_wcs"
FAMILIES = ("none", "striping", "striping_unremoved", "spikes", "saturated_stars", "snowballs", "wisps",
            "persistence", "flat", "realistic", "real_geometry")
# families whose small case misses a goal today (measured; see the README robustness table):
# the pedestal's lower-envelope plane takes sky structure that is not positive for sky.
# Seed 0 is NRCA3/F150W, a wisp detector, so the wisp residual is in realistic and
# real_geometry too. Such a case is an expected failure only while it fails.
_WISP = ("a wisp residual (up to +-0.9 sigma over ~500 px) is neither a plane nor compact: positive ones are only "
         "partly rejected by the lower envelope, negative ones are taken for sky")
PEDESTAL_MISSES = {
    # after the stripes changing within a 64-px plane block are taken out of the working copy, their
    # drift over longer scales (alpha = 1) is still two-sided structure: -0.14 sigma (seed 0)
    "striping_unremoved": "1/f drift of unremoved stripes over > 64 rows: the block-median plane sinks into its "
                          "lower tail",
    "real_geometry": _WISP,
}
RNOISE_MISSES = {
    # seed 0 (NRCA3/F150W, 1024^2): +1.0% without artefacts; the wisp residual's structure on 60-90 px
    # scales leaks into the per-amplifier row means (partly passes the 32-row high-pass): +3.7%
    "wisps": "wisp structure on 60-90 px scales leaks into the row-offset share",
}


@pytest.fixture(scope="module")
def robustness():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import robustness
    finally:
        sys.path.remove(str(BENCHMARKS))
    return robustness


def test_spike_angles_follow_the_detector_axes():
    ra_ref, dec_ref, roll_ref = detector_pointing("NRCA1", ra=214.9, dec=52.9, pa_v3=130.0)
    angles = spike_angles_from_wcs(nircam_gwcs("NRCA1", ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref), (2048, 2048))
    # NRCA1: V3 within a degree of +y; spikes at V3, V3 +- 60 deg and V2
    np.testing.assert_allclose(np.sort(angles), [0.5, 30.5, 90.5, 150.5], atol=1.0)
    assert spike_angles_from_wcs(object(), (10, 10)) is None


def test_near_artefacts_geometry():
    star = [[500.0, 500.0, 4.0]]
    angles = [90.0, 30.0, 150.0, 0.0]
    x = np.array([500.0, 500.0, 500.0, 560.0, 700.0, 500.0 + 300 * np.cos(np.radians(30)), 620.0])
    y = np.array([540.0, 850.0, 950.0, 560.0, 700.0, 500.0 + 300 * np.sin(np.radians(30)), 640.0])
    near = near_artefacts(x, y, stars=star, spike_angles=angles)
    # halo (58 px), V3 spike at 350 px (reach 420 px), beyond the reach, off-spike, on the 30-deg spike
    assert near.tolist() == [True, True, False, False, False, True, False]
    snow = near_artefacts(np.array([100.0, 130.0]), np.array([100.0, 100.0]), snowballs=[[100.0, 100.0, 8.0]])
    assert snow.tolist() == [True, False]


def test_on_spike_light_measures_the_spike_width():
    rng = np.random.default_rng(5)
    image = rng.normal(0.0, 1.0, (600, 600)).astype(np.float32)
    yy, xx = np.mgrid[:600, :600]
    star = [[100.0, 300.0, 10.0]]
    # a spike along +x from the star: 3 sigma of light +-22 px wide (a bright star's, wider
    # than near_artefacts' fixed corridor of 6 + 0.03 d px), and a compact galaxy off it
    image += np.where((np.abs(yy - 300) <= 22) & (xx > 110), 3.0, 0.0).astype(np.float32)
    image += (40.0 * np.exp(-((xx - 400) ** 2 + (yy - 350) ** 2) / 8.0)).astype(np.float32)
    x = np.array([300.0, 300.0, 400.0, 300.0, 400.0])
    y = np.array([300.0, 319.0, 350.0, 380.0, 250.0])
    on = on_spike_light(image, x, y, noise=1.0, stars=star, spike_angles=[0.0, 90.0])
    # on the line, on its edge (19 px off; the fixed corridor reaches 12 px there), a
    # compact source 50 px off (its own light fills few samples), sky 80 px off, 50 px off
    assert on.tolist() == [True, True, False, False, False]
    assert not near_artefacts(x[1:2], y[1:2], stars=star, spike_angles=[0.0, 90.0])[0]
    # a noise map is read at each position; no spike directions or no stars: nothing
    noisy = on_spike_light(image, x, y, noise=np.full(image.shape, 10.0), stars=star, spike_angles=[0.0])
    assert not noisy.any()
    assert not on_spike_light(image, x, y, noise=1.0, stars=star, spike_angles=None).any()
    assert not on_spike_light(image, x, y, noise=1.0, stars=np.empty((0, 3)), spike_angles=[0.0]).any()
    # excluded pixels are not sampled: the spike's pixels excluded, nothing is on it
    excluded = np.abs(yy - 300) <= 22
    assert not on_spike_light(image, x[1:2], y[1:2], noise=1.0, stars=star, spike_angles=[0.0],
                              excluded=excluded).any()


def test_artefact_regions_from_dq():
    dq = np.zeros((200, 200), np.uint32)
    dq[50:60, 50:60] |= 2 | 1  # saturated core
    dq[150:156, 20:26] |= 4  # snowball core (36 px)
    dq[10, 10] |= 4  # a cosmic ray: not a snowball
    stars, snowballs = artefact_regions_from_dq(dq)
    np.testing.assert_allclose(stars, [[54.5, 54.5, np.sqrt(100 / np.pi)]])
    np.testing.assert_allclose(snowballs, [[22.5, 152.5, np.sqrt(36 / np.pi)]])


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_pedestal_per_family(robustness, family):
    if family == "real_geometry" and not REAL_WCS_DIR.is_dir():
        pytest.skip("real CEERS WCS solutions not available")
    pedestal_error, factor_error, _ = robustness.pedestal_case(family, 0, size=1024)
    misses = []
    if abs(pedestal_error) > robustness.GOALS["pedestal_sigma"]:
        misses.append((PEDESTAL_MISSES.get(family), f"pedestal {pedestal_error:+.3f} sigma"))
    if abs(factor_error) > robustness.GOALS["rnoise_percent"]:
        misses.append((RNOISE_MISSES.get(family), f"VAR_RNOISE {factor_error:+.1f}%"))
    assert all(why for why, _ in misses), misses
    if misses:
        pytest.xfail("; ".join(f"{why} ({number})" for why, number in misses))


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_tweakreg_per_family(robustness, family, tmp_path):
    if family == "real_geometry" and not REAL_WCS_DIR.is_dir():
        pytest.skip("real CEERS WCS solutions not available")
    errors, _ = robustness.tweakreg_case(family, 0, size=2048, workdir=tmp_path, sw_detectors=("NRCA3",))
    # LW aligned to the reference catalogue, SW to the LW sources: measured 0.57-1.22 mas on
    # seed 0 (SW fitted alone to the reference catalogue: 1.85-2.36 mas, its noise floor)
    assert max(errors.values()) <= robustness.GOALS["tweakreg_mas"], errors
