"""Smooth 2-D background of a mosaic from robust block statistics of its unmasked pixels.

Equivalent in spirit to photutils ``Background2D`` (sigma-clipped statistic per box,
median filter over boxes, smooth interpolation) but O(N) and memory-lean for 50-megapixel
mosaics: box statistics use the means of ``stride`` x ``stride`` pixel blocks (one pass
over the image; the clipping and medians then sort ``stride**2`` times fewer values), clipping and medians run with bottleneck
along one axis, and the box grid is brought back to full resolution with a separable
cubic interpolation (:func:`~jwst_ceers.mosaic_bkg.grid_resampling.upsample_cubic`). The box fit
itself is :func:`~jwst_ceers.mosaic_bkg.box_fit.fit_boxes`; here it is blended with a
larger-box fit around large bright galaxies that no Sersic model describes.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jwst_ceers.masking.fft_ops import block_means
from jwst_ceers.mosaic_bkg.box_fit import fit_boxes, sample_stride
from jwst_ceers.mosaic_bkg.large_sources import find_large_bright_sources

__all__ = ["fit_background"]

log = logging.getLogger(__name__)


def fit_background(
    data,
    exclude,
    *,
    box_size=128,
    filter_size=3,
    sigma=3.0,
    stride=None,
    min_fraction=0.1,
    large_source_box=256,
    large_source_blend=(1.0, 3.0),
    nodata=None,
    components=(),
    large_sources=None,
    smoothing=None,
    search_box=128,
    threads=1,
):
    """
    Fit a smooth background to the pixels of ``data`` not in ``exclude``.

    Around large bright galaxies (:func:`find_large_bright_sources`) the fit with
    ``box_size`` boxes is blended into one with larger boxes (``large_source_box``):
    the faint wings of such a galaxy reach hundreds of pixels past any mask, and the
    few unmasked pixels left in the small boxes at the edge of its (large) masked hole
    carry them; the boxes follow them and the surface filling the hole extrapolates
    them inwards (over-subtraction, e.g. +0.4 sigma under a mag-16 galaxy's mask in
    F356W). Larger boxes there mix in more distant sky. Away from such galaxies the
    small boxes are kept (larger boxes everywhere cannot follow the background's
    bumps: measured rms 0.048 -> 0.081 on a 2000^2 field without bright galaxies).

    Parameters
    ----------
    data : ndarray
        2-D mosaic.
    exclude : ndarray of bool
        True for pixels not to use (sources, no data). NaNs are excluded too.
    box_size : int
        Box size in pixels (a multiple of ``stride``).
    filter_size : int
        Size of the median filter applied to the grid of box values (odd; 1 = none).
    sigma : float
        Clipping threshold.
    stride : int, optional
        The statistics' samples are means of ``stride`` x ``stride`` pixel blocks;
        default: ``box_size // 64`` (``box_size // 16`` with ``smoothing``; at least
        1, a divisor of ``box_size``), i.e. up to 64 x 64 (16 x 16) samples per box.
    min_fraction : float
        Boxes with fewer usable pixels than this fraction (of their pixels inside the
        image) are filled from their
        neighbours by a thin-plate surface (:func:`~jwst_ceers.mosaic_bkg.grid_resampling.fill_invalid_smooth`).
    large_source_box : int or None
        Box size (pixels) of the fit used around large bright galaxies; None or not
        larger than ``box_size``: no blending (and no search for such galaxies).
    large_source_blend : (float, float)
        The larger-box fit is used within the first number times a galaxy's equivalent
        radius from its centre, the small-box fit beyond the second, linearly in between.
    nodata : ndarray of bool, optional
        Pixels without data (for the galaxy search; default: the non-finite pixels).
    components : sequence of `~jwst_ceers.mosaic_bkg.sersic.SersicComponent`
        Models of large galaxies, subtracted from the data before everything else
        (the fit is of the background under them).
    large_sources : list of (float, float, float), optional
        ``(y, x, radius)`` of the large bright galaxies to blend the larger-box fit
        around (e.g. those a model could not be fitted to); default: searched with
        :func:`find_large_bright_sources`.
    search_box : int
        Background box (pixels) of the search for large bright sources.
    smoothing : float, optional
        Fit the box grid with a weighted thin-plate smoothing spline of this bending
        weight (:func:`~jwst_ceers.mosaic_bkg.box_fit.fit_boxes`) instead of thin-plate
        filling plus a median filter.
    threads : int
        Threads for the full-resolution block means, and (above 1) to fit the two box
        sizes at once.

    Returns
    -------
    background : ndarray
        New float32 full-resolution background (finite everywhere).
    grid : ndarray
        Box values after filling and filtering.
    """
    sources = []
    if large_source_box and large_source_box > box_size:
        if large_sources is None:
            sources = find_large_bright_sources(
                data, exclude, nodata=nodata, box_size=search_box, filter_size=filter_size, components=components
            )
        else:
            sources = list(large_sources)
    inner, outer = (float(v) for v in large_source_blend)
    if sources and not outer > inner >= 0:
        raise ValueError("fit_background: large_source_blend must be (inner, outer) with 0 <= inner < outer")
    strides = {"small": stride or sample_stride(box_size, smoothing)}
    if sources:
        strides["large"] = sample_stride(int(large_source_box), smoothing)
    blocks = {key: None for key in strides}
    factors = set(strides.values())
    if len(factors) > 1 and all(f > 1 and not f & (f - 1) for f in factors):
        # both fits' block means from one chain of halvings (bitwise the same values;
        # the full-resolution pass made once: 0.6 s on a 10469 x 4824 mosaic)
        data32 = np.asarray(data, dtype=np.float32)
        pyramid = block_means(data32, ~np.asarray(exclude, dtype=bool) & np.isfinite(data32), factors=factors,
                              threads=threads)
        blocks = {key: pyramid[f] for key, f in strides.items()}
        del pyramid, data32
    def fit_small():
        return fit_boxes(
            data, exclude, box_size=box_size, filter_size=filter_size, sigma=sigma, stride=strides["small"],
            min_fraction=min_fraction, components=components, smoothing=smoothing, blocks=blocks.pop("small"),
        )

    if not sources:
        return fit_small()
    log.info("background: %d px boxes blended in around %d large bright source(s)", large_source_box, len(sources))
    with ThreadPoolExecutor(max_workers=2 if threads > 1 else 1) as pool:
        # the two fits at once (independent; their box statistics and interpolation
        # release the GIL for most of their time)
        small_job = pool.submit(fit_small)
        large, _ = fit_boxes(
            data, exclude, box_size=int(large_source_box), filter_size=filter_size, sigma=sigma,
            stride=strides["large"], min_fraction=min_fraction, components=components, smoothing=smoothing,
            blocks=blocks.pop("large"), full_resolution=False,
        )
        small = small_job.result()
    # blend weight: 1 within inner * radius of a source, 0 beyond outer * radius: made
    # and applied only in the boxes around the discs (overlapping boxes merged), the
    # larger-box fit only in their rows (bit for bit its full map's values): over the
    # whole mosaic this cost 2.3 s for 7 sources on a 10469 x 4824 pointing
    ny, nx = np.shape(data)
    discs = [(y, x, radius, outer * radius) for y, x, radius in sources]
    boxes = [
        (max(0, int(y - r)), min(ny, int(np.ceil(y + r)) + 1), max(0, int(x - r)), min(nx, int(np.ceil(x + r)) + 1))
        for y, x, _, r in discs
    ]
    background = small[0]
    for by0, by1, bx0, bx1 in _merged_boxes([b for b in boxes if b[1] > b[0] and b[3] > b[2]]):
        weight = np.zeros((by1 - by0, bx1 - bx0), dtype=np.float32)
        rows = np.arange(by0, by1, dtype=np.float32)[:, None]
        cols = np.arange(bx0, bx1, dtype=np.float32)[None, :]
        for (y, x, radius, _), (sy0, sy1, sx0, sx1) in zip(discs, boxes, strict=True):
            if not (by0 <= sy0 < sy1 <= by1 and bx0 <= sx0 < sx1 <= bx1):
                continue
            ramp = np.hypot(rows[sy0 - by0:sy1 - by0] - np.float32(y), cols[:, sx0 - bx0:sx1 - bx0] - np.float32(x))
            ramp = np.clip((np.float32(outer * radius) - ramp) / np.float32((outer - inner) * radius), 0, 1)
            window = weight[sy0 - by0:sy1 - by0, sx0 - bx0:sx1 - bx0]
            np.maximum(window, ramp, out=window)
        window = background[by0:by1, bx0:bx1]
        window += weight * (large(slice(by0, by1))[:, bx0:bx1] - window)
    return background, small[1]


def _merged_boxes(boxes):
    """``(y0, y1, x0, x1)`` boxes, those that overlap merged into their bounding box (repeatedly)."""
    boxes = [tuple(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]:
                    boxes[i] = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                    boxes.pop(j)
                    merged = True
                    break
            if merged:
                break
    return boxes
