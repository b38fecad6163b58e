"""
Benchmark of jwst_ceers.masking.tiered_source_mask: time and peak memory.

Run on demand: ``python benchmarks/bench_masking.py [--skip-reference]``, or
``python benchmarks/bench_masking.py --mosaics MOSAIC_i2d.fits ... [--workers N]``
for MosaicBackground's masking of real mosaics only (see `mosaic_masking`).

Prints, in one run:
- a 2048^2 exposure with CEERS_EXPOSURE_TIERS (goal < 1 s);
- a 10600 x 4800 mosaic with CEERS_NIRCAM_MOSAIC_TIERS, block-averaged ("coarse") and
  exact (goal: well under 10 s and < 3 GB peak);
- the baseline: a straightforward photutils implementation of the same tiers
  (astropy convolve_fft + detect_sources + make_source_mask(circular_footprint)) on the
  2048^2 image and on a 4000 x 2000 cut of the mosaic, with the speed ratio.
Peak memory is the tracemalloc peak of numpy allocations during the call. CPU time
(all threads) is printed beside wall time because the machine is often shared.
"""

import argparse
import time
import tracemalloc

import numpy as np

from jwst_ceers.masking import (
    CEERS_EXPOSURE_TIERS,
    CEERS_NIRCAM_MOSAIC_TIERS,
    tiered_source_mask,
)
from jwst_ceers.masking.fft_ops import FWHM_TO_SIGMA


def synthetic_image(shape, *, nsources, seed, border=0):
    """White noise (sigma 1) + Sersic-like exponential blobs + NaN border."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 1.0, shape).astype(np.float32)
    ny, nx = shape
    for _ in range(nsources):
        radius = float(rng.lognormal(np.log(2.5), 0.6))
        peak = float(rng.lognormal(np.log(2.0), 1.0))
        half = int(min(8 * radius, 150))
        y0, x0 = rng.integers(0, ny), rng.integers(0, nx)
        ys = slice(max(0, y0 - half), min(ny, y0 + half + 1))
        xs = slice(max(0, x0 - half), min(nx, x0 + half + 1))
        yy, xx = np.ogrid[ys, xs]
        image[ys, xs] += (peak * np.exp(-np.hypot(yy - y0, xx - x0) / radius)).astype(np.float32)
    coverage = np.zeros(shape, dtype=bool)
    if border:
        coverage[:border] = coverage[-border:] = True
        coverage[:, :border] = coverage[:, -border:] = True
        image[coverage] = np.nan
    return image, coverage


def measure(function, *args, **kwargs):
    """Run once; return (result, wall seconds, CPU seconds of all threads, peak GB)."""
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, (elapsed, cpu), peak / 2**30


def photutils_reference(image, coverage, tiers):
    """Plain photutils tiers (non-iterative, thresholds on the smoothed image's rms)."""
    from astropy.convolution import Gaussian2DKernel, convolve_fft
    from astropy.stats import biweight_location, biweight_scale
    from photutils.segmentation import detect_sources
    from photutils.utils import circular_footprint

    bits = np.zeros(image.shape, dtype=np.uint8)
    sample = image[~coverage][::17]
    filled = np.where(coverage, biweight_location(sample), image)
    for number, tier in enumerate(tiers, start=1):
        kernel = Gaussian2DKernel(tier.kernel_fwhm * FWHM_TO_SIGMA)
        smoothed = convolve_fft(filled, kernel, allow_huge=True)
        rms = biweight_scale(smoothed[~coverage][::17])
        segm = detect_sources(smoothed, tier.nsigma * rms, n_pixels=tier.npixels, mask=coverage)
        if segm is None:
            continue
        mask = segm.make_source_mask(footprint=circular_footprint(int(tier.dilate)))
        bits |= (mask & ~coverage).astype(np.uint8) << number
    return bits


def report(label, times, peak, masked=None):
    extra = "" if masked is None else f", {100 * masked:.1f}% of data pixels masked"
    wall, cpu = times
    print(f"{label:<60s} {wall:6.2f} s wall {cpu:6.2f} s CPU  peak {peak:5.2f} GB{extra}")


def _status_bytes(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return None


def mosaic_masking(paths, *, workers):
    """
    One MosaicBackground masking (``_mask_one``: ring median, detection ceiling, NIRCam
    tiers) per mosaic: wall, CPU, peak RSS increase (Linux: the high-water mark is reset
    before the call, so short FFT peaks count) in GB and bytes per pixel, and an MD5 of
    the bits (run the same command on another version of the code to compare them).
    """
    import hashlib

    from jwst_ceers.mosaic_bkg import mosaic_bkg_step
    from jwst_ceers.mosaic_bkg.mosaic_io import read_mosaic
    from jwst_ceers.mosaic_bkg.pointing_background import _mask_one, exclude_nonphysical

    defaults = mosaic_bkg_step.MosaicBackground()
    for path in paths:
        mosaic = read_mosaic(path)
        nodata = exclude_nonphysical(mosaic.data, mosaic.nodata)
        noise = None if mosaic.noise is None else np.asarray(mosaic.noise)
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # resets VmHWM to the current RSS
            base = _status_bytes("VmRSS:")
        except OSError:
            base = None
        start, cpu = time.perf_counter(), time.process_time()
        bits = _mask_one(
            mosaic.data, nodata, noise, CEERS_NIRCAM_MOSAIC_TIERS, defaults.ring_radius, defaults.ring_width,
            defaults.ring_clip_nsigma, workers, defaults.detection_ceiling_nsigma or None,
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = None if base is None else _status_bytes("VmHWM:") - base
        memory = "" if peak is None else f"peak +{peak / 1e9:.3f} GB = {peak / bits.size:.1f} B/px, "
        print(
            f"{path}: {bits.shape[1]}x{bits.shape[0]}, {workers} thread(s): {wall:.2f} s wall {cpu:.2f} s CPU, "
            f"{memory}bits md5 {hashlib.md5(np.ascontiguousarray(bits)).hexdigest()}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--skip-reference", action="store_true", help="skip the photutils baseline")
    parser.add_argument("--mosaics", nargs="+", help="only time MosaicBackground's masking of these i2d files")
    parser.add_argument("--workers", type=int, default=2, help="threads of one masking (with --mosaics)")
    args = parser.parse_args()
    if args.mosaics:
        mosaic_masking(args.mosaics, workers=args.workers)
        return

    image, coverage = synthetic_image((2048, 2048), nsources=300, seed=1, border=4)
    bits, t_exp, peak = measure(tiered_source_mask, image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS)
    report("2048^2 exposure, exposure tiers (goal < 1 s)", t_exp, peak, (bits > 0).mean())
    bits, t_exp_box, peak = measure(
        tiered_source_mask, image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS, background_box=128
    )
    report("2048^2 exposure, exposure tiers + per-tier background", t_exp_box, peak, (bits > 0).mean())
    if not args.skip_reference:
        _, t_ref, peak = measure(photutils_reference, image, coverage, CEERS_EXPOSURE_TIERS)
        report("2048^2 exposure, photutils baseline", t_ref, peak)
        print(f"    speed-up vs baseline (wall, CPU): {t_ref[0] / t_exp[0]:.1f}x, {t_ref[1] / t_exp[1]:.1f}x")

    image, coverage = synthetic_image((4800, 10600), nsources=6000, seed=2, border=200)
    ndata = np.count_nonzero(~coverage)
    bits, t_coarse, peak = measure(tiered_source_mask, image, coverage=coverage)
    report("10600x4800 mosaic, CEERS tiers, coarse (goal << 10 s, < 3 GB)", t_coarse, peak,
           np.count_nonzero(bits) / ndata)
    bits, t_exact, peak = measure(tiered_source_mask, image, coverage=coverage, coarse=False)
    report("10600x4800 mosaic, CEERS tiers, exact", t_exact, peak, np.count_nonzero(bits) / ndata)
    if not args.skip_reference:
        cut, cut_coverage = image[:2000, :4000], coverage[:2000, :4000]
        _, t_ours, _ = measure(tiered_source_mask, cut, coverage=cut_coverage)
        _, t_ref, peak = measure(photutils_reference, cut, cut_coverage, CEERS_NIRCAM_MOSAIC_TIERS)
        report("4000x2000 mosaic cut, photutils baseline", t_ref, peak)
        print(
            f"    speed-up vs baseline on the cut (wall, CPU): {t_ref[0] / t_ours[0]:.1f}x, "
            f"{t_ref[1] / t_ours[1]:.1f}x (ours {t_ours[0]:.2f} s wall)"
        )


if __name__ == "__main__":
    main()
