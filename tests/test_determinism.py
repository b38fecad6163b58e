"""Results must not depend on how many threads the BLAS library uses.

dask workers start with OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1, a serial run does
not: a survey's products made on workers must still be bitwise equal to a serial
run's. A multi-threaded BLAS matrix product rounds differently with its thread count
(it made one exposure's pedestal mask differ by 0.3% of its pixels), so the
algorithms avoid BLAS where the result feeds thresholds. Each case runs in two
fresh interpreters, since OpenBLAS reads its thread count when it loads.
"""

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import hashlib, sys
import numpy as np
from jwst_ceers.masking import coarse_background, tiered_source_mask
from jwst_ceers.pedestal.exposure_sky import measure_exposure_sky

rng = np.random.default_rng(7)
ny, nx = 1100, 1300
yy, xx = np.mgrid[:ny, :nx]
image = (0.2 + 1e-4 * xx - 5e-5 * yy + rng.normal(0, 0.01, (ny, nx))).astype(np.float32)
for _ in range(60):
    y0, x0, r = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(1, 12)
    image += (0.2 * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * r * r))).astype(np.float32)
bad = np.zeros((ny, nx), bool)
bad[:, :40] = True
digest = hashlib.sha256()
digest.update(coarse_background(image, exclude=bad, box=64).tobytes())
digest.update(tiered_source_mask(image, coverage=bad).tobytes())
sky = measure_exposure_sky(image, bad, var_rnoise=np.full((ny, nx), 1e-4, np.float32))
digest.update(repr(sky.pedestal).encode())
print(digest.hexdigest())
"""


def _digest(tmp_path, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip().splitlines()[-1]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for a multi-threaded BLAS")
def test_masks_and_pedestal_do_not_depend_on_blas_threads(tmp_path):
    assert _digest(tmp_path, 1) == _digest(tmp_path, 2)


def test_mosaic_background_does_not_depend_on_threads():
    import numpy as np

    from jwst_ceers.masking import MaskTier
    from jwst_ceers.mosaic_bkg.pointing_background import pointing_background

    rng = np.random.default_rng(11)
    ny, nx = 700, 900
    yy, xx = np.mgrid[:ny, :nx]
    images, nodata = [], []
    for slope in (1e-4, -2e-4):
        image = (slope * xx + rng.normal(0, 0.01, (ny, nx))).astype(np.float32)
        for y0, x0, r in ((200, 300, 8), (500, 650, 20)):
            image += (0.3 * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * r * r))).astype(np.float32)
        images.append(image)
        bad = np.zeros((ny, nx), bool)
        bad[:30] = True
        nodata.append(bad)
    tiers = [(MaskTier(5.0, 1.5, 10, 9.0), MaskTier(2.0, 1.5, 3, 5.0))] * 2
    results = [
        pointing_background(images, nodata=nodata, tiers=tiers, box_size=64, threads=threads)
        for threads in (1, 2, 4)
    ]
    for other in results[1:]:
        assert other.merged_mask.tobytes() == results[0].merged_mask.tobytes()
        for a, b in zip(results[0].backgrounds + results[0].tiermasks, other.backgrounds + other.tiermasks, strict=True):
            assert a.tobytes() == b.tobytes()


GALAXY_SCRIPT = r"""
import numpy as np
from jwst_ceers.mosaic_bkg.galaxy_models import large_galaxy_models
from jwst_ceers.mosaic_bkg.sersic import SersicComponent, evaluate_components

true = SersicComponent(y=530.3, x=470.8, intensity=1.5, r_eff=40.0, n=3.5, axis_ratio=0.7, theta=0.5)
rng = np.random.default_rng(5)
shape = (1024, 1024)
image = (evaluate_components([true], shape) + rng.normal(0, 0.05, shape)).astype(np.float32)
exclude = evaluate_components([true], shape) > 0.15
print(repr(large_galaxy_models(image, exclude).components))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 CPUs for a multi-threaded BLAS")
def test_galaxy_model_fit_does_not_depend_on_blas_threads(tmp_path):
    """The Sersic fit (least squares: LAPACK, BLAS) gives bitwise the same model."""

    def run(threads):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads))
        out = subprocess.run([sys.executable, "-c", GALAXY_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    one = run(1)
    assert "SersicComponent" in one
    assert one == run(2)
