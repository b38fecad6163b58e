"""
Speed of the NIRCam simulator (run on demand: ``python benchmarks/bench_simulate.py``).

Goals: ~1000 sources on 2048^2 in < 1 s; ~15,000 sources on a 10600x4800 mosaic-sized
image well under a minute; one full-frame 2048^2 exposure (simulate + write) a few
seconds. Times are also printed as ratios to a baseline measured in the same run
(drawing 2048^2 Gaussian deviates), so runs on different machines compare.
"""

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from jwst_ceers.atomic_io import write_model_atomic
from jwst_ceers.simulate import (
    detector_pointing,
    make_source_population,
    render_sources,
    simulate_exposure,
)

__all__ = ["main"]


def _timed(func, *args, **kwargs):
    t0 = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - t0


def main():
    rng = np.random.default_rng(0)
    _, base = _timed(rng.standard_normal, (2048, 2048), dtype=np.float32)
    print(f"baseline (2048^2 normal deviates): {base:.3f} s")

    # mosaic-sized field: 10600 x 4800 pixels of 0.03"
    field = make_source_population(ra=214.9, dec=52.9, width_arcsec=318.0, height_arcsec=144.0, seed=1,
                                   density_scale=10.0, n_large_galaxies=3)
    n = len(field)
    x = rng.uniform(0, 10600, n)
    y = rng.uniform(0, 4800, n)
    flux = 10 ** (-0.4 * (np.asarray(field["mag"]) - 28.0))
    kw = dict(r_eff_pix=np.asarray(field["r_eff"]) / 0.03, sersic_n=field["sersic_n"],
              axis_ratio=field["axis_ratio"], pa_deg=field["pa"], psf_fwhm_pix=2.0)
    img, t_big = _timed(render_sources, (4800, 10600), x, y, flux, **kw)
    print(f"render {n} sources on 10600x4800: {t_big:.2f} s ({t_big / base:.0f} x baseline); "
          f"flux kept {img.sum() / flux.sum():.4f} (sources near edges lose some)")

    sel = slice(0, 1000)
    x2, y2 = rng.uniform(0, 2048, (2, 1000))
    kw2 = {k: (np.asarray(v)[sel] if np.ndim(v) else v) for k, v in kw.items()}
    kw2["r_eff_pix"] = np.asarray(field["r_eff"])[sel] / 0.031
    _, t_small = _timed(render_sources, (2048, 2048), x2, y2, flux[sel], **kw2)
    print(f"render 1000 sources on 2048^2: {t_small:.3f} s ({t_small / base:.1f} x baseline)")

    ra_ref, dec_ref, roll_ref = detector_pointing("NRCA1", ra=214.9, dec=52.9, pa_v3=130.0)
    src = make_source_population(ra=214.9, dec=52.9, width_arcsec=200.0, height_arcsec=200.0, seed=2,
                                 n_large_galaxies=1)
    args = dict(filter_name="F150W", detector="NRCA1", ra_ref=ra_ref, dec_ref=dec_ref, roll_ref=roll_ref,
                sources=src, seed=3, one_over_f=0.5)
    simulate_exposure(**args)  # warm-up (imports, SIAF)
    (model, _), t_exp = _timed(simulate_exposure, **args)
    with tempfile.TemporaryDirectory() as tmp:
        _, t_write = _timed(write_model_atomic, model, Path(tmp) / "x_cal.fits")
    print(f"one 2048^2 exposure: simulate {t_exp:.2f} s + write {t_write:.2f} s "
          f"({(t_exp + t_write) / base:.0f} x baseline)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (RSS): {peak:.0f} MB")


if __name__ == "__main__":
    main()
