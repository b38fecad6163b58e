"""MosaicBackground's remasking cut-outs and larger-box blending (issue 16).

The remasking around galaxy models runs on cut-outs merged only where that saves work,
several at once even for one mosaic; the larger-box fit around unmodelled galaxies is
blended in box by box. Both must give the results of the plain computation.
"""

import numpy as np
import pytest

from jwst_ceers.mosaic_bkg.background_fit import fit_background
from jwst_ceers.mosaic_bkg.box_fit import fit_boxes
from jwst_ceers.mosaic_bkg.sersic import SersicComponent, evaluate_components


def _plain_blend(data, exclude, sources, *, box_size=128, large_box=256, inner=1.0, outer=3.0, **options):
    """The larger-box blend over the whole image: one weight map, full-resolution fits."""
    small, _ = fit_boxes(data, exclude, box_size=box_size, **options)
    large, _ = fit_boxes(data, exclude, box_size=large_box, **options)
    rows, cols = np.indices(np.shape(data), dtype=np.float32)
    weight = np.zeros(np.shape(data), dtype=np.float32)
    for y, x, radius in sources:
        ramp = np.hypot(rows - np.float32(y), cols - np.float32(x))
        np.maximum(weight, np.clip((np.float32(outer * radius) - ramp) / np.float32((outer - inner) * radius), 0, 1),
                   out=weight)
    return small + weight * (large - small)


@pytest.mark.parametrize("smoothing", [None, 1.0])
def test_blend_box_by_box_equals_the_whole_image_blend(smoothing):
    rng = np.random.default_rng(21)
    shape = (1500, 2300)
    data = rng.normal(0, 1, shape).astype(np.float32)
    data += np.float32(0.5) * np.sin(np.indices(shape)[1] / 300.0).astype(np.float32)
    data[:, :9] = np.nan
    exclude = np.zeros(shape, dtype=bool)
    exclude[600:700, 900:1000] = True
    # overlapping discs (merged boxes), one reaching past the edge, one off the image
    sources = [(400.0, 500.0, 120.0), (520.0, 700.0, 100.0), (1450.5, 2250.2, 140.0), (-900.0, 100.0, 100.0),
               (900.0, 1600.0, 90.0)]
    options = {"smoothing": smoothing} if smoothing else {}
    box = 32 if smoothing else 128
    got, _ = fit_background(data, exclude, box_size=box, large_sources=sources, **options)
    want = _plain_blend(data, exclude, sources, box_size=box, **options)
    assert np.array_equal(got, want)
    without, _ = fit_background(data, exclude, box_size=box, large_sources=[], **options)
    assert not np.array_equal(got, without)


def test_cutouts_far_apart_stay_apart_and_overlapping_regions_merge():
    from jwst_ceers.mosaic_bkg.pointing_background import _merged_cutouts

    shape = (1000, 4000)
    boxes = [(slice(50, 60), slice(50, 60)), (slice(50, 60), slice(400, 410)),  # 8 px blocks: 400-480, 3200-3280
             (slice(40, 48), slice(40, 48))]  # 320-384 x 320-384: near the first, not overlapping it
    cutouts = _merged_cutouts(boxes, block=8, margin=100, shape=shape)
    inner = sorted(c[0] for c in cutouts)
    # far apart (cut-outs disjoint): kept apart
    assert (400, 480, 3200, 3280) in inner
    # the first and third regions: their cut-outs overlap and one box around both
    # (360^2 px with the margin) is smaller than the two cut-outs (280^2 + 264^2): merged
    assert (320, 480, 320, 480) in inner and len(inner) == 2
    for (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) in cutouts:
        assert (cy0, cx0) == (max(0, y0 - 100), max(0, x0 - 100)) and (cy1, cx1) == (min(1000, y1 + 100), x1 + 100)
    # diagonal neighbours: their cut-outs overlap, but one box around both (580^2 px)
    # is larger than the two cut-outs (2 x 380^2): kept apart
    diagonal = _merged_cutouts([(slice(50, 60), slice(50, 60)), (slice(75, 85), slice(75, 85))], block=8, margin=150,
                               shape=(4000, 4000))
    assert sorted(c[0] for c in diagonal) == [(400, 480, 400, 480), (600, 680, 600, 680)]
    # overlapping regions always merge (each pixel's mask from one cut-out)
    one = _merged_cutouts([(slice(10, 40), slice(10, 40)), (slice(30, 60), slice(30, 60))], block=8, margin=0,
                          shape=(4000, 4000))
    assert [c[0] for c in one] == [(80, 480, 80, 480)]


def test_cutouts_remasked_at_once_equal_one_after_the_other(monkeypatch):
    import importlib

    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground, algorithm_options

    pb = importlib.import_module("jwst_ceers.mosaic_bkg.pointing_background")
    rng = np.random.default_rng(22)
    shape = (1280, 3072)
    galaxies = [SersicComponent(640.0, 520.0, 30.0, 50.0, 1.0, 0.8, 0.3), SersicComponent(620.0, 2560.0, 30.0, 50.0,
                                                                                         1.0, 0.7, -0.5)]
    image = evaluate_components(galaxies, shape) + rng.normal(0, 1, shape).astype(np.float32)
    for y, x in rng.uniform((0, 0), shape, (60, 2)):
        image[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] += np.float32(30)
    nodata = np.zeros(shape, dtype=bool)
    nodata[:, :20] = True
    image[nodata] = np.nan
    seen = []
    merged_cutouts = pb._merged_cutouts
    monkeypatch.setattr(pb, "_merged_cutouts", lambda *a, **k: seen.append(merged_cutouts(*a, **k)) or seen[-1])
    step = MosaicBackground()
    results = []
    for threads in (1, 2):
        options = algorithm_options(step)
        options.update(threads=threads, parallel_mosaics=threads)
        results.append(pb.pointing_background([image], nodata=[nodata], tiers=[step.tier_sets()["nircam"]],
                                              noise=[None], **options))
    serial, parallel = results
    assert all(len(g) == 2 for g in (serial.galaxy_models[0], parallel.galaxy_models[0]))
    assert len(seen[0]) == 2  # two cut-outs, not the whole mosaic
    assert np.array_equal(serial.merged_mask, parallel.merged_mask)
    assert np.array_equal(serial.tiermasks[0], parallel.tiermasks[0])
    assert np.array_equal(serial.backgrounds[0], parallel.backgrounds[0])
