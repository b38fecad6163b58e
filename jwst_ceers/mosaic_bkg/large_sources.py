"""Large bright galaxies of a mosaic: those whose faint wings reach far past any mask.

:func:`find_large_bright_sources` finds them on block means of the residual from a
background fit; :mod:`.galaxy_models` fits Sersic models to them and
:mod:`.background_fit` uses larger boxes around those it could not model.
"""

import logging
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import label

from jwst_ceers.masking.fft_ops import block_any, block_mean
from jwst_ceers.masking.robust import robust_location_scale
from jwst_ceers.mosaic_bkg.box_fit import fit_boxes
from jwst_ceers.mosaic_bkg.sersic import evaluate_components

__all__ = ["BRIGHT_NSIGMA", "SearchInputs", "find_large_bright_sources", "search_inputs"]

log = logging.getLogger(__name__)

#: Threshold (pixel sigma, on block means) of the regions that make a large bright galaxy.
BRIGHT_NSIGMA = 1.0

#: Most pixels sampled for a search's noise estimate (a robust scale: 2 M samples give it
#: to ~0.1%; every 4th pixel of a 10600 x 4800 mosaic, 3.2 M, took 0.2 s per search).
NOISE_SAMPLES = 2_000_000


@dataclass(frozen=True)
class SearchInputs:
    """
    What :func:`find_large_bright_sources` derives from a mosaic and its masks, made
    once by :func:`search_inputs` for repeated searches (with different models
    subtracted): its full-resolution passes are then not repeated.

    Attributes
    ----------
    shape : tuple of int
        Full-resolution shape.
    block : int
        Block size.
    blocks, fraction : ndarray
        Block means of the valid pixels and their valid fractions.
    excluded : ndarray of bool
        Blocks the background does not use (any excluded pixel, or under half valid).
    samples : ndarray
        The mosaic's pixels every ``step`` pixels (the noise estimate's grid).
    keep : ndarray of bool
        Which of them are valid and not excluded.
    step : int
        That grid's spacing: ``block // 2``, or up to ``block`` on mosaics so large that
        it would hold more than `NOISE_SAMPLES` pixels.
    """

    shape: tuple
    block: int
    blocks: np.ndarray
    fraction: np.ndarray
    excluded: np.ndarray
    samples: np.ndarray
    keep: np.ndarray
    step: int


def search_inputs(data, exclude, *, nodata=None, block=8, blocks=None):
    """:class:`SearchInputs` of a mosaic (arguments as :func:`find_large_bright_sources`)."""
    data = np.asarray(data)
    valid = np.isfinite(data)
    if nodata is not None:
        valid &= ~np.asarray(nodata, dtype=bool)
    exclude = np.asarray(exclude, dtype=bool)
    if blocks is None:
        means, fraction = block_mean(data, valid, factor=block)
    else:
        means, fraction = blocks
    excluded = block_any(exclude & valid, factor=block) | ~(fraction >= 0.5)
    step = max(1, block // 2)
    while step < block and -(-data.shape[0] // step) * -(-data.shape[1] // step) > NOISE_SAMPLES:
        step *= 2
    keep = valid[::step, ::step] & ~exclude[::step, ::step]
    return SearchInputs(tuple(data.shape), int(block), means, fraction, excluded, data[::step, ::step], keep, step)


def find_large_bright_sources(
    data, exclude, *, nodata=None, box_size=128, filter_size=3, block=8, bright_nsigma=BRIGHT_NSIGMA, min_radius=120.0,
    components=(), blocks=None, prepared=None,
):
    """
    Centres and sizes of large bright galaxies (whose faint wings reach far past masks).

    On ``block`` x ``block`` block means, a background is fitted (boxes of
    ``box_size``, blocks with any excluded pixel ignored) and the residual is divided
    by the pixel noise (robust scale of unmasked pixels about that background). A
    large bright galaxy is a connected region of blocks above ``bright_nsigma`` with
    an equivalent radius (sqrt(area / pi)) of at least ``min_radius`` pixels: its
    surface brightness stays above ~1 pixel sigma over a region that size (measured:
    a mag ~16-17 galaxy of the calibrated simulation, r_eff 1-1.5", gives 200-350 px
    in F150W/F356W; the largest ordinary sources and blends of 2000^2 fields 80-100 px).

    Parameters
    ----------
    data : ndarray
        2-D mosaic.
    exclude : ndarray of bool
        Pixels not to use in the background (sources, no data).
    nodata : ndarray of bool, optional
        Pixels without data (default: the non-finite pixels).
    box_size, filter_size : int
        Background fit (pixels, boxes).
    block : int
        Block size (a power of two).
    bright_nsigma : float
        Threshold on the block-mean residual, in pixel sigma.
    min_radius : float
        Smallest equivalent radius (pixels) of a region.
    components : sequence of `~jwst_ceers.mosaic_bkg.sersic.SersicComponent`
        Galaxy models subtracted first (already modelled galaxies are not found again).
    blocks : (ndarray, ndarray), optional
        The ``block`` x ``block`` block means of the valid pixels of ``data`` and their
        valid fractions, when the caller has them (:func:`block_mean`).
    prepared : SearchInputs, optional
        :func:`search_inputs` of these arguments, made once for several searches
        (``data``, ``exclude``, ``nodata``, ``block`` and ``blocks`` are then not read).

    Returns
    -------
    list of (float, float, float)
        ``(y, x, radius)`` in pixels: residual-weighted centre and equivalent radius.
    """
    if prepared is None:
        prepared = search_inputs(data, exclude, nodata=nodata, block=block, blocks=blocks)
    block = prepared.block
    blocks, fraction, excluded = np.array(prepared.blocks, dtype=np.float32), prepared.fraction, prepared.excluded
    if len(components):
        blocks -= evaluate_components(components, prepared.shape, block=block)
    usable = fraction >= 0.5
    if (~excluded).sum() < 16:
        return []
    try:
        background, _ = fit_boxes(
            np.where(usable, blocks, np.float32(np.nan)), excluded, box_size=max(2, int(round(box_size / block))),
            filter_size=filter_size, sigma=3.0, stride=1, min_fraction=0.1,
        )
    except ValueError:
        return []
    # pixel noise: robust scale of unmasked pixels about the block background
    step = prepared.step
    samples, keep = prepared.samples, prepared.keep
    local = np.repeat(np.repeat(background, block // step, axis=0), block // step, axis=1)[
        : samples.shape[0], : samples.shape[1]]
    _, scale = robust_location_scale(samples[keep] - local[keep])
    if not (np.isfinite(scale) and scale > 0):
        return []
    residual = np.where(usable, blocks - background, np.float32(0)) / np.float32(scale)
    labels, nlabels = label((residual > bright_nsigma) & usable, structure=np.ones((3, 3), dtype=bool))
    if nlabels == 0:
        return []
    radius = np.sqrt(np.bincount(labels.ravel(), minlength=nlabels + 1) * float(block * block) / np.pi)
    sources = []
    for index in np.flatnonzero(radius >= min_radius):
        if index == 0:
            continue
        rows, cols = np.nonzero(labels == index)
        weight = residual[rows, cols]
        y = (float(np.sum(rows * weight) / weight.sum()) + 0.5) * block - 0.5
        x = (float(np.sum(cols * weight) / weight.sum()) + 0.5) * block - 0.5
        sources.append((y, x, float(radius[index])))
    if sources:
        log.info(
            "%d large bright source(s) found (equivalent radii %s px)",
            len(sources), ", ".join(f"{r:.0f}" for _, _, r in sources),
        )
    return sources
