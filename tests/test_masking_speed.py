"""The lean tiered masking (issue 16) gives the bits of the straightforward whole-image code.

The reference below is the previous algorithm written plainly: full-size valid /
excluded / background / clipped images, ``scipy.fft.irfft2`` on copies, padded
halvings, ``np.repeat`` expansions. The fast code (row chunks, bit 0 of the bits as the
unusable mask, in-place inverse transforms, spectra released at their last use, the
ring median made row by row) must give the same bits, for every block-factor path
(8, 4, 2 and 1), for ``coarse=False``, with NaNs, no-data borders, noise maps with bad
pixels, odd shapes, a kernel-free tier and a re-fitted background.
"""

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage

from jwst_ceers.masking import CEERS_EXPOSURE_TIERS, CEERS_NIRCAM_MOSAIC_TIERS, MaskTier, tiered_source_mask
from jwst_ceers.masking.background import coarse_background
from jwst_ceers.masking.fft_ops import FWHM_TO_SIGMA, FourierImage, _halve, block_any, dilate_disk
from jwst_ceers.masking.robust import robust_location_scale, sample_unmasked
from jwst_ceers.masking.tiers import _working_factors
from jwst_ceers.mosaic_bkg.grid_resampling import CubicUpsampler, upsample_cubic
from jwst_ceers.mosaic_bkg.pointing_background import _mask_one, _relative_noise
from jwst_ceers.mosaic_bkg.ring_median import _median_filter, ring_footprint, ring_median_background

# ---------------------------------------------------------------- plain reference


def _fast_len(n):
    return scipy.fft.next_fast_len(int(n), real=True)


def _ref_smooth(image, fwhm, max_fwhm):
    """Gaussian smoothing as the previous FourierImage did it (rfft2 / irfft2 on padded copies)."""
    pad = int(np.ceil(4 * max_fwhm * FWHM_TO_SIGMA)) + 1
    shape = tuple(_fast_len(n + pad) for n in image.shape)
    spectrum = scipy.fft.rfft2(image.astype(np.float32), s=shape)
    fy = scipy.fft.fftfreq(shape[0]).astype(np.float32)
    fx = scipy.fft.rfftfreq(shape[1]).astype(np.float32)
    factor = np.float32(-2.0 * np.pi**2 * (fwhm * FWHM_TO_SIGMA) ** 2)
    product = spectrum * np.exp(factor * fy**2)[:, None]
    product *= np.exp(factor * fx**2)[None, :]
    return scipy.fft.irfft2(product, s=shape)[: image.shape[0], : image.shape[1]]


def _ref_dilate(mask, radius):
    r = int(np.floor(radius))
    if r < 1 or not mask.any():
        return mask.copy()
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = xx * xx + yy * yy <= radius * radius
    # exact binary dilation by the disk (what the FFT threshold computes)
    return scipy.ndimage.binary_dilation(mask, structure=disk)


def _ref_halve(array, combine, dtype=None):
    ny, nx = array.shape
    array = np.pad(array, ((0, ny % 2), (0, nx % 2)))
    columns = combine(array[:, 0::2], array[:, 1::2], dtype=dtype)
    return combine(columns[0::2], columns[1::2], dtype=dtype)


def _ref_block_mean(image, valid, factor):
    total = np.where(valid, image, np.float32(0)).astype(np.float32)
    if factor == 1:
        return total, valid.astype(np.float32)
    count = valid.astype(np.uint8)
    while factor > 1:
        total = _ref_halve(total, np.add, np.float32)
        count = _ref_halve(count, np.add, np.uint8)
        factor //= 2
    counts = count.astype(np.float32)
    mean = np.divide(total, counts, out=np.zeros_like(total), where=counts > 0)
    return mean, counts


def _ref_block_any(mask, factor):
    out = mask.astype(bool)
    while factor > 1:
        out = _ref_halve(out, np.logical_or)
        factor //= 2
    return out


def _ref_expand(blocks, factor, shape):
    return np.repeat(np.repeat(blocks, factor, axis=0), factor, axis=1)[: shape[0], : shape[1]]


def _ref_keep_large(detected, npixels):
    if npixels <= 1 or not detected.any():
        return detected
    labels, n = scipy.ndimage.label(detected, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= npixels
    keep[0] = False
    return keep[labels]


def reference_tiered_mask(data, coverage, tiers, *, noise=None, background=None, background_box=None, coarse=True):
    """The previous tiered_source_mask, whole images at every step."""
    bits = np.zeros(data.shape, dtype=np.uint8)
    valid = ~coverage & np.isfinite(data)
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float32)
        valid &= np.isfinite(noise) & (noise > 0)
    if background is not None:
        background = np.asarray(background, dtype=np.float32)
        valid &= np.isfinite(background)
    if not valid.any():
        return bits
    with np.errstate(all="ignore"):
        work = data.astype(np.float32)
        if background is not None:
            work = work - background
        if noise is not None:
            work = work / noise
    work = np.where(valid, work, np.float32(0))
    if background is None and background_box is None:
        level, _ = robust_location_scale(sample_unmasked(work, ~valid))
        work = np.where(valid, work - np.float32(level), np.float32(0))
    excluded = ~valid
    factors = [_working_factors(t, coarse) for t in tiers]
    max_fwhm = {}
    for tier, (f, _) in zip(tiers, factors):
        max_fwhm[f] = max(max_fwhm.get(f, 0.0), tier.kernel_fwhm / f)
    for number, (tier, (factor, dilate_factor)) in enumerate(zip(tiers, factors), start=1):
        if background_box is not None:
            smooth = coarse_background(work, exclude=excluded, box=int(background_box))
            if smooth is not None:
                work = np.where(valid, work - smooth, np.float32(0))
        image, counts = _ref_block_mean(work, valid, factor)
        usable = valid if factor == 1 else counts / np.float32(factor * factor) >= 0.5
        if tier.kernel_fwhm > 0:
            smoothed = _ref_smooth(image, tier.kernel_fwhm / factor, max_fwhm[factor])
        else:
            smoothed = image
        unmasked = ~usable | _ref_block_any(excluded, factor) if factor > 1 else excluded
        location, scale = robust_location_scale(sample_unmasked(smoothed, unmasked))
        if not (np.isfinite(scale) and scale > 0):
            continue
        detected = (smoothed > location + tier.nsigma * scale) & usable
        detected = _ref_keep_large(detected, int(np.ceil(tier.npixels / factor**2)))
        if not detected.any():
            continue
        if dilate_factor > factor:
            detected = _ref_block_any(detected, dilate_factor // factor)
        elif dilate_factor < factor:
            grid = (-(-data.shape[0] // dilate_factor), -(-data.shape[1] // dilate_factor))
            detected = _ref_expand(detected, factor // dilate_factor, grid)
        detected = _ref_dilate(detected, tier.dilate / dilate_factor)
        pixels = _ref_expand(detected, dilate_factor, data.shape) & valid
        bits[pixels] |= np.uint8(1 << number)
        excluded = excluded | pixels
    return bits


def reference_detection_ceiling(data, nodata, noise, background, nsigma):
    """The previous whole-image clipping: data clipped at background + nsigma x the robust rms (x noise)."""
    relative = _relative_noise(noise)
    step = max(1, int(np.sqrt(np.size(data) / 300_000)))
    every = (slice(None, None, step), slice(None, None, step))
    residual = np.asarray(data, dtype=np.float32)[every] - np.asarray(background)[every]
    if relative is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            residual = residual / relative[every]
    _, scale = robust_location_scale(sample_unmasked(residual, np.asarray(nodata)[every], max_samples=residual.size))
    if not (np.isfinite(scale) and scale > 0):
        return data
    if relative is not None:
        ceiling = relative * np.float32(nsigma * scale)
        ceiling += background
    else:
        ceiling = np.float32(nsigma * scale) * np.float32(1) + background
    clipped = np.array(data, dtype=np.result_type(data, ceiling))
    with np.errstate(invalid="ignore"):
        np.copyto(clipped, ceiling, where=data > ceiling)
    return clipped


def reference_mask_one(data, nodata, noise, tiers, ceiling_nsigma):
    """The previous _mask_one: full ring median, clipped copy, then the tiers."""
    background = ring_median_background(data, nodata, radius=80, width=4, clip_nsigma=5.0)
    if ceiling_nsigma:
        data = reference_detection_ceiling(data, nodata, noise, background, ceiling_nsigma)
    bits = reference_tiered_mask(data, nodata, tiers, noise=_relative_noise(noise), background=background)
    return bits | nodata.astype(np.uint8)


# ---------------------------------------------------------------- scenes


def _scene(shape, seed, *, nsources=40, border=12, with_noise_map=True):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    noise = (1.0 + 0.8 * rng.random(shape)).astype(np.float32)
    data = (rng.normal(0, 1, shape) * noise).astype(np.float32)
    yy, xx = np.indices(shape)
    data += np.float32(0.3) * (xx / nx + 0.5 * yy / ny).astype(np.float32)  # a gradient
    for y, x, size, flux in zip(
        rng.uniform(0, ny, nsources), rng.uniform(0, nx, nsources), rng.lognormal(1.0, 0.8, nsources),
        rng.lognormal(1.5, 1.0, nsources), strict=True,
    ):
        data += (flux * np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / size**2)).astype(np.float32)
    data[ny // 3, nx // 4] = 1e4  # a hot pixel for the ceiling
    coverage = np.zeros(shape, dtype=bool)
    coverage[:border] = True
    coverage[:, -border:] = True
    data[coverage] = np.nan
    data[rng.integers(0, ny, 30), rng.integers(0, nx, 30)] = np.nan  # NaNs inside the footprint
    coverage |= ~np.isfinite(data)
    noise[5 + border, 40] = np.nan  # bad noise pixels: not usable
    noise[ny // 2, nx // 2] = 0.0
    return data, coverage, (noise if with_noise_map else None)


TIER_SETS = {
    "nircam (factors 8, 2, 1)": CEERS_NIRCAM_MOSAIC_TIERS,
    "exposure (factors 4, 2, 1)": CEERS_EXPOSURE_TIERS,
    "with a kernel-free tier": CEERS_EXPOSURE_TIERS[:2] + (MaskTier(0.0, 5.0, 2, 3.0),),
    # full resolution first: the residual must outlive its FFT for the block means after it
    "nircam reversed (factors 1, 2, 8)": CEERS_NIRCAM_MOSAIC_TIERS[::-1],
}


@pytest.mark.parametrize("name", list(TIER_SETS))
@pytest.mark.parametrize("coarse", [True, False])
@pytest.mark.parametrize("workers", [1, 2])
def test_tiered_mask_equals_the_whole_image_reference(name, coarse, workers):
    tiers = TIER_SETS[name]
    data, coverage, noise = _scene((331, 457), seed=5)
    background = np.full(data.shape, 0.1, dtype=np.float32)
    background[200, 300] = np.nan  # a non-finite background pixel: not usable
    fast = tiered_source_mask(data, coverage=coverage, tiers=tiers, noise=noise, background=background,
                              coarse=coarse, workers=workers)
    expected = reference_tiered_mask(data, coverage, tiers, noise=noise, background=background, coarse=coarse)
    assert np.array_equal(fast, expected)
    # every tier masks something: each factor path is exercised
    for number in range(1, len(tiers) + 1):
        assert np.any(fast & (1 << number)), number
    assert not np.any(fast & 1)


@pytest.mark.parametrize("background_box", [None, 64])
def test_tiered_mask_without_background_or_with_refitted_background_equals_the_reference(background_box):
    data, coverage, _ = _scene((300, 389), seed=8, with_noise_map=False)
    fast = tiered_source_mask(data, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS, background_box=background_box,
                              workers=2)
    expected = reference_tiered_mask(data, coverage, CEERS_EXPOSURE_TIERS, background_box=background_box)
    assert np.array_equal(fast, expected)
    assert np.count_nonzero(fast) > 0.02 * fast.size


@pytest.mark.parametrize("with_noise_map", [True, False])
@pytest.mark.parametrize("ceiling_nsigma", [None, 10.0])
def test_mask_one_equals_ring_median_clipped_copy_and_tiers(with_noise_map, ceiling_nsigma):
    data, coverage, noise = _scene((420, 515), seed=11, nsources=60, with_noise_map=with_noise_map)
    fast = _mask_one(data, coverage, noise, CEERS_NIRCAM_MOSAIC_TIERS, 80.0, 4.0, 5.0, 2, ceiling_nsigma)
    expected = reference_mask_one(data, coverage, noise, CEERS_NIRCAM_MOSAIC_TIERS, ceiling_nsigma)
    assert np.array_equal(fast, expected)
    assert np.array_equal(fast & 1, coverage.astype(np.uint8))


def test_no_usable_pixel_gives_no_bits():
    data = np.full((64, 80), np.nan, dtype=np.float32)
    bits = tiered_source_mask(data, coverage=np.zeros(data.shape, bool), tiers=CEERS_EXPOSURE_TIERS)
    assert bits.dtype == np.uint8 and not bits.any()


# ---------------------------------------------------------------- building blocks


def test_ring_median_rows_equal_the_full_map():
    data, coverage, _ = _scene((400, 530), seed=3)
    full = ring_median_background(data, coverage)
    rows = ring_median_background(data, coverage, rows=True)
    assert isinstance(rows, CubicUpsampler)
    assert np.array_equal(rows(), full)
    assert np.array_equal(rows(slice(37, 211)), full[37:211])
    assert np.array_equal(rows(slice(None, None, 3)), full[::3])
    # the ring median's bands on threads (block 2: a grid of 200 rows, bands with halos)
    banded = ring_median_background(data, coverage, block=2, threads=3)
    assert np.array_equal(banded, ring_median_background(data, coverage, block=2))
    grid = np.random.default_rng(1).normal(size=(7, 9)).astype(np.float32)
    assert np.array_equal(CubicUpsampler(grid, shape=(50, 70), box=8)(), upsample_cubic(grid, shape=(50, 70), box=8))


@pytest.mark.parametrize("radius, width", [(10, 0.5), (3, 1), (20, 2)])
@pytest.mark.parametrize("threads", [1, 2])
def test_ring_median_filter_equals_scipy_median_filter(radius, width, threads):
    rng = np.random.default_rng(9)
    footprint = ring_footprint(radius, width)
    for shape in [(150, 233), (9, 300), (40, 41)]:
        grid = rng.normal(size=shape).astype(np.float32)
        grid[::7, ::5] = 0.25  # ties
        expected = scipy.ndimage.median_filter(grid, footprint=footprint, mode="reflect")
        assert np.array_equal(_median_filter(grid, footprint, threads=threads), expected)
    grid[3, 4] = np.nan  # not finite: scipy's own filter
    expected = scipy.ndimage.median_filter(grid, footprint=footprint, mode="reflect")
    assert np.array_equal(_median_filter(grid, footprint, threads=threads), expected, equal_nan=True)


@pytest.mark.parametrize("shape", [(64, 80), (333, 257)])
def test_fourier_image_smoothing_in_place_equals_irfft2(shape):
    image = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    reference = _ref_smooth(image, 3.0, 5.0)
    fourier = FourierImage(image, max_fwhm=5.0, workers=2)
    assert np.array_equal(fourier.smoothed(3.0), reference)
    assert np.array_equal(fourier.smoothed(3.0, last=True), reference)
    with pytest.raises(ValueError, match="released"):
        fourier.smoothed(3.0)
    padded = np.zeros(fourier.shape, dtype=np.float32)
    padded[: shape[0], : shape[1]] = image
    assert np.array_equal(FourierImage(padded, max_fwhm=5.0, image_shape=shape).smoothed(3.0), reference)


@pytest.mark.parametrize("radius", [3.0, 9.5, 16.5])
def test_dilate_disk_equals_binary_dilation(radius):
    mask = np.random.default_rng(4).random((201, 173)) > 0.998
    assert np.array_equal(dilate_disk(mask, radius=radius, workers=2), _ref_dilate(mask, radius))


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (517, 1031)])
@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_halving_and_block_any_equal_the_padded_whole_array_code(shape, threads):
    rng = np.random.default_rng(6)
    values = rng.normal(size=shape).astype(np.float32)
    values[0, 0] = -0.0
    assert np.array_equal(_halve(values, np.add, np.float32, threads=threads), _ref_halve(values, np.add, np.float32))
    bits = (rng.random(shape) > 0.97).astype(np.uint8) << 2
    for factor in (1, 2, 8):
        assert np.array_equal(block_any(bits, factor=factor, threads=threads), _ref_block_any(bits != 0, factor))
        assert np.array_equal(block_any(bits != 0, factor=factor, threads=threads), _ref_block_any(bits != 0, factor))
