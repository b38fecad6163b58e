"""Tests of jwst_ceers.masking against injected sources and pure noise."""

import numpy as np
import pytest
import scipy.ndimage

from jwst_ceers.masking import (
    CEERS_EXPOSURE_TIERS,
    CEERS_NIRCAM_MOSAIC_TIERS,
    MaskTier,
    coarse_background,
    dilate_disk,
    source_bits_to_bool,
    tiered_source_mask,
)
from jwst_ceers.masking.fft_ops import block_any, block_mean

SHAPE = (512, 512)


def gaussian_blobs(shape, *, nsources, rng, peak=(2.0, 6.0), sigma=(1.5, 6.0), margin=20):
    """Sum of circular Gaussians; returns (image, list of (y, x, peak, sigma))."""
    image = np.zeros(shape, dtype=np.float32)
    truth = []
    yy, xx = np.indices(shape)
    for _ in range(nsources):
        y0 = rng.uniform(margin, shape[0] - margin)
        x0 = rng.uniform(margin, shape[1] - margin)
        amplitude = rng.uniform(*peak)
        width = rng.uniform(*sigma)
        image += (amplitude * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * width**2))).astype(np.float32)
        truth.append((y0, x0, amplitude, width))
    return image, truth


def test_mask_tier_validates():
    with pytest.raises(ValueError, match="nsigma"):
        MaskTier(kernel_fwhm=3, nsigma=0, npixels=1, dilate=2)
    with pytest.raises(ValueError, match="npixels"):
        MaskTier(kernel_fwhm=3, nsigma=2, npixels=0, dilate=2)
    with pytest.raises(ValueError, match="dilate"):
        MaskTier(kernel_fwhm=3, nsigma=2, npixels=1, dilate=-1)
    tier = MaskTier(kernel_fwhm=3, nsigma=2, npixels=1, dilate=2)
    with pytest.raises(AttributeError):
        tier.nsigma = 3  # frozen


def test_ceers_mosaic_tier_sizes():
    # CEERS Gaussian2DKernel stddevs 25, 15, 5, 2 px; npixels and dilation radii of issue 8
    sigmas = [t.kernel_fwhm / (2 * np.sqrt(2 * np.log(2))) for t in CEERS_NIRCAM_MOSAIC_TIERS]
    np.testing.assert_allclose(sigmas, [25, 15, 5, 2], rtol=1e-3)  # FWHMs rounded to 0.01 px
    assert [t.npixels for t in CEERS_NIRCAM_MOSAIC_TIERS] == [15, 10, 3, 1]
    assert [t.dilate for t in CEERS_NIRCAM_MOSAIC_TIERS] == [33, 25, 21, 19]


@pytest.mark.parametrize("coarse", [True, False])
def test_injected_sources_are_masked_and_noise_mostly_not(coarse):
    rng = np.random.default_rng(11)
    sources, truth = gaussian_blobs(SHAPE, nsources=15, rng=rng)
    noise = rng.normal(0.0, 1.0, SHAPE).astype(np.float32)
    bits = tiered_source_mask(
        sources + noise + 7.0, coverage=np.zeros(SHAPE, bool), tiers=CEERS_EXPOSURE_TIERS, coarse=coarse
    )
    assert bits.dtype == np.uint8
    assert not np.any(bits & 1), "bit 0 is reserved for the caller's coverage"
    masked = source_bits_to_bool(bits)
    # every pixel where the injected flux exceeds 0.5 sigma is masked
    bright = sources > 0.5
    assert masked[bright].mean() > 0.995
    for y0, x0, _, _ in truth:
        assert masked[int(round(y0)), int(round(x0))]
    # the area far from all sources is hardly masked (the 24 px FWHM tier legitimately
    # reaches ~30 px beyond where a bright source's flux drops below 0.01 sigma, + 15 px
    # dilation)
    far = scipy.ndimage.distance_transform_edt(sources < 0.01) > 50
    assert far.sum() > 0.1 * sources.size
    assert masked[far].mean() < 0.03


def test_pure_noise_masked_fraction_small_for_white_and_correlated_noise():
    rng = np.random.default_rng(5)
    white = rng.normal(0.0, 1.0, (1024, 1024)).astype(np.float32)
    correlated = scipy.ndimage.gaussian_filter(white, 1.5)  # drizzle-like correlation
    coverage = np.zeros(white.shape, bool)
    for image in (white, 3.0 * correlated):
        bits = tiered_source_mask(image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS)
        assert source_bits_to_bool(bits).mean() < 0.02


def test_noise_map_makes_detection_follow_signal_to_noise():
    rng = np.random.default_rng(8)
    rms = np.ones(SHAPE, dtype=np.float32)
    rms[:, SHAPE[1] // 2 :] = 4.0  # right half 4x shallower
    image = rng.normal(0.0, 1.0, SHAPE).astype(np.float32) * rms
    coverage = np.zeros(SHAPE, bool)
    without = source_bits_to_bool(tiered_source_mask(image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS))
    with_map = source_bits_to_bool(
        tiered_source_mask(image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS, noise=rms)
    )
    right = np.s_[:, SHAPE[1] // 2 + 20 :]
    assert without[right].mean() > 0.2  # the shallow half is mistaken for sources
    assert with_map[right].mean() < 0.03
    assert with_map[:, : SHAPE[1] // 2 - 20].mean() < 0.03


def test_tier_detecting_nothing_and_constant_image():
    rng = np.random.default_rng(2)
    image = rng.normal(0.0, 1.0, SHAPE).astype(np.float32)
    image[200:210, 200:210] += 20.0
    tiers = (
        MaskTier(kernel_fwhm=4, nsigma=1e6, npixels=1, dilate=3),  # detects nothing
        MaskTier(kernel_fwhm=2, nsigma=5, npixels=3, dilate=2),
    )
    bits = tiered_source_mask(image, coverage=np.zeros(SHAPE, bool), tiers=tiers)
    assert not np.any(bits & 0b010)
    assert np.all(bits[200:210, 200:210] & 0b100)
    # no noise at all: nothing can be measured, nothing is masked, no crash
    flat = tiered_source_mask(np.ones(SHAPE, np.float32), coverage=np.zeros(SHAPE, bool))
    assert not flat.any()
    # everything is coverage
    empty = tiered_source_mask(image, coverage=np.ones(SHAPE, bool))
    assert not empty.any()


def test_coverage_pixels_are_never_sources():
    rng = np.random.default_rng(4)
    image = rng.normal(0.0, 1.0, SHAPE).astype(np.float32)
    coverage = np.zeros(SHAPE, bool)
    coverage[:, :100] = True
    image[:, :50] = np.nan
    image[200:230, 60:95] = 1000.0  # garbage inside the coverage region
    coverage[300, 300] = True
    image[300, 300] = 1e6
    bits = tiered_source_mask(image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS)
    assert not bits[coverage].any()
    # the garbage did not create detections that spill out of the coverage region
    assert source_bits_to_bool(bits)[180:250, 100:140].mean() < 0.05
    assert not source_bits_to_bool(bits)[295:306, 295:306].any()


def test_gradient_handled_with_background_box():
    rng = np.random.default_rng(9)
    yy, xx = np.indices(SHAPE)
    gradient = (6.0 * xx / SHAPE[1] + 3.0 * np.sin(yy / 90.0)).astype(np.float32)
    sources, truth = gaussian_blobs(SHAPE, nsources=12, rng=rng)
    image = rng.normal(0.0, 1.0, SHAPE).astype(np.float32) + gradient + sources
    coverage = np.zeros(SHAPE, bool)
    plain = source_bits_to_bool(tiered_source_mask(image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS))
    boxed = source_bits_to_bool(
        tiered_source_mask(image, coverage=coverage, tiers=CEERS_EXPOSURE_TIERS, background_box=64)
    )
    bright = sources > 0.5
    far = scipy.ndimage.distance_transform_edt(sources < 0.01) > 50
    # a global level leaves the gradient in the smoothed images: their rms is inflated
    # and faint sources are lost; re-fitting a smooth background per tier recovers them
    assert boxed[bright].mean() > 0.99
    assert boxed[bright].mean() > plain[bright].mean() + 0.05
    assert boxed[far].mean() < 0.03


@pytest.mark.parametrize("radius", [2.5, 4, 7.5, 19])
def test_dilate_disk_is_exact(radius):
    rng = np.random.default_rng(int(radius * 10))
    mask = rng.random((200, 230)) > 0.998
    mask[0, 5] = mask[199, 229] = True  # edges
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = xx**2 + yy**2 <= radius**2
    expected = scipy.ndimage.binary_dilation(mask, structure=disk)
    np.testing.assert_array_equal(dilate_disk(mask, radius=radius), expected)


@pytest.mark.parametrize("factor", [2, 3, 8])
def test_block_mean_and_any_match_brute_force(factor):
    rng = np.random.default_rng(factor)
    image = rng.normal(size=(45, 61)).astype(np.float32)
    valid = rng.random(image.shape) > 0.3
    mean, fraction = block_mean(image, valid, factor=factor)
    anyv = block_any(valid & (image > 1.5), factor=factor)
    for by in range(mean.shape[0]):
        for bx in range(mean.shape[1]):
            box = np.s_[by * factor : (by + 1) * factor, bx * factor : (bx + 1) * factor]
            v = valid[box]
            expected = image[box][v].mean() if v.any() else 0.0
            assert mean[by, bx] == pytest.approx(expected, abs=1e-5)
            assert fraction[by, bx] == pytest.approx(v.sum() / factor**2)
            assert anyv[by, bx] == (v & (image[box] > 1.5)).any()


def test_coarse_background_recovers_smooth_gradient():
    rng = np.random.default_rng(12)
    yy, xx = np.indices((400, 600))
    truth = (2.0 + 0.004 * xx - 0.003 * yy).astype(np.float32)
    image = truth + rng.normal(0.0, 1.0, truth.shape).astype(np.float32)
    exclude = np.zeros(truth.shape, bool)
    image[100:200, 100:250] += 50.0
    exclude[100:200, 100:250] = True
    background = coarse_background(image, exclude=exclude, box=50)
    error = np.abs(background - truth)
    away = scipy.ndimage.distance_transform_edt(~exclude) > 50
    assert np.median(error[away]) < 0.02  # block medians of 2500 pixels: ~0.025 each
    assert error[away].max() < 0.15  # worst at the edges (linear extrapolation)
    assert error[exclude].max() < 0.4  # holes take the nearest measured blocks
    assert coarse_background(image, exclude=np.ones(truth.shape, bool), box=50) is None
