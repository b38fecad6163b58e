"""Peak-memory estimate of an Image3Ceers run, and the in-memory / on-disk choice.

Image3Ceers estimates its peak resident memory from the association (exposure
sizes, number of exposures, the resample grid) before any step runs, logs it, and
keeps the exposures in memory (fastest) only when that fits ``memory_budget_gb``;
otherwise the ModelLibrary keeps them on disk between steps (stock
``in_memory=False``: one exposure in memory at a time per thread, on-disk median
in outlier_detection).

The model has three phases; the peak is the largest:

- per-exposure steps (tweakreg catalogs, skymatch, pedestal, varfill, blotting):
  the library (in memory) plus the working arrays of ``threads`` exposures;
- outlier_detection (`jwst_ceers.outlier`): one exposure group drizzled onto the full
  grid at a time, and of every group only its drizzled pixels (float32 values and a bit
  mask of their bounding box) kept for the median, in memory or in temporary files;
- the final resample: the mosaic's science, weight, context, error and variance
  arrays and their drizzle accumulators.

Coefficients were fitted to three stock calwebb_image3 peaks (24 x 256^2 onto 24 Mpix:
1.58 GB and 48 x 1024^2 onto 35 Mpix: 3.68 GB, both ``benchmarks/bench_pointing.py``;
24 x 2048^2 onto 49 Mpix: 5.95 GB, issue 16); the outlier_detection terms were measured
on CeersOutlierDetection (48 x 1024^2, 6 groups, 32.8 Mpix grid: 0.58 GB over the
library, of which 0.21 GB kept group pixels; stock's full-grid stack: 1.31 GB,
``benchmarks/bench_outlier.py``) and the final resample's on Image3Ceers' own
``CutoutResample`` (lower than stock's). They are estimates, good to ~20%. pedestal and varfill write into
the arrays the library holds (`jwst_ceers._step.set_array_in_place`), so Image3Ceers adds
no per-exposure term to stock's (48 x 1024^2: the library grows by 0.065 GB over both
steps, against 0.45 GB when they assigned new arrays).
"""

import ctypes
import ctypes.util
import functools
import gc
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jwst.datamodels import ModelLibrary

from jwst_ceers.errors import CeersFileError
from jwst_ceers.mosaic_grid.from_files import exposure_footprint
from jwst_ceers.mosaic_grid.output_grid import grid_from_footprints

__all__ = [
    "InputSummary",
    "MemoryEstimate",
    "MemoryPlan",
    "choose_strategy",
    "estimate_peak_memory",
    "mosaic_pixels_for",
    "plan_image3_memory",
    "HeapTrimmingLibrary",
    "release_free_memory",
    "summarize_inputs",
    "trim_heap",
]

log = logging.getLogger(__name__)

GB = 2**30

#: Python, jwst, astropy, gwcs and the pipeline's objects before any array is read.
BASE_BYTES = 0.32 * GB
#: One exposure held by the library: SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE, VAR_FLAT (4 bytes
#: each) and what stays allocated with them (measured: 33, not 24).
EXPOSURE_BYTES_PER_PIXEL = 33
#: Working arrays while one exposure is processed (masks, convolved images, pixel maps, blot).
EXPOSURE_WORK_BYTES_PER_PIXEL = 80
#: outlier_detection, per input pixel: its drizzled float32 value kept for the median.
MEDIAN_BYTES_PER_INPUT_PIXEL = 4.0
#: outlier_detection, per median group and mosaic pixel: the bit mask of the group's kept pixels.
MEDIAN_MASK_BYTES_PER_GROUP_PIXEL = 0.125
#: outlier_detection, per mosaic pixel: the drizzled group being added (data, weight, accumulators).
DRIZZLE_BYTES_PER_MOSAIC_PIXEL = 12
#: Final resample, per mosaic pixel: SCI, WHT, ERR, three variances and their running sums.
#: Measured with ``benchmarks/bench_resample.py --exposures 48 --save`` (48 x 1024^2 onto
#: 35 Mpix, i2d written): CutoutResample rises 39.7 B/px over its input library, context
#: (2 planes) included; stock ResampleStep 67.6 B/px (this term was 52, fitted to stock).
RESAMPLE_BYTES_PER_MOSAIC_PIXEL = 32
#: Final resample context image: one int32 plane per 32 exposures.
CONTEXT_BYTES_PER_PLANE = 4
#: On disk, per exposure of the library: what stays in memory of every member while the
#: exposures themselves are on disk (metadata, WCS objects, catalogs, the library's
#: records). Fitted to two on-disk Image3Ceers peaks of 48 exposures
#: (``benchmarks/bench_pointing.py``): 2048^2 onto 50.5 Mpix 3.37 GB measured (at the
#: final resample) against 2.46 GB without this term; 1024^2 onto 35 Mpix 2.58 GB against
#: 1.79 GB; 18 MiB per exposure brings both within 3%.
ON_DISK_BYTES_PER_EXPOSURE = 18 * 2**20
#: Assumed exposure size when a library member's size is not in its metadata.
FULL_FRAME_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class InputSummary:
    """
    What the memory estimate needs to know about the exposures of one association.

    Attributes
    ----------
    exposure_pixels : tuple of int
        Pixels of each exposure.
    n_exposure_groups : int
        Distinct exposures (the detectors of one exposure form one group):
        outlier_detection's median groups.
    footprints : tuple of ndarray
        (RA, Dec) polygons (deg) of the exposures whose S_REGION is known.
    pixel_scale : float or None
        Input pixel scale (arcsec) from PIXAR_A2, when known.
    """

    exposure_pixels: tuple
    n_exposure_groups: int
    footprints: tuple = ()
    pixel_scale: float | None = None


@dataclass(frozen=True)
class MemoryEstimate:
    """
    Estimated peak resident memory (GB = 2^30 bytes) of one Image3Ceers run.

    Attributes
    ----------
    n_exposures, n_exposure_groups : int
        Exposures and outlier_detection median groups.
    mosaic_pixels : int
        Pixels of the resample grid (0 if unknown: mosaic terms left out).
    threads : int
        Exposures processed at once by the per-exposure steps.
    in_memory_gb, on_disk_gb : float
        Peak with the exposures kept in memory, and kept on disk between steps.
    """

    n_exposures: int
    n_exposure_groups: int
    mosaic_pixels: int
    threads: int
    in_memory_gb: float
    on_disk_gb: float

    def describe(self):
        """One line for the log."""
        mosaic = f"{self.mosaic_pixels / 1e6:.1f} Mpix mosaic" if self.mosaic_pixels else "mosaic size unknown"
        return (
            f"{self.n_exposures} exposures in {self.n_exposure_groups} exposure group(s), {mosaic}, "
            f"{self.threads} thread(s): estimated peak {self.in_memory_gb:.2f} GB in memory, "
            f"{self.on_disk_gb:.2f} GB with exposures on disk"
        )


@dataclass(frozen=True)
class MemoryPlan:
    """
    The strategy chosen for a run.

    Attributes
    ----------
    estimate : MemoryEstimate
    in_memory : bool
        Keep the exposures in memory (else the library keeps them on disk).
    budget_gb : float
        The budget (0 = none).
    peak_gb : float
        Estimated peak of the chosen strategy.
    reason : str
        Why (for the log).
    """

    estimate: MemoryEstimate
    in_memory: bool
    budget_gb: float
    peak_gb: float
    reason: str


def estimate_peak_memory(*, exposure_pixels, n_exposure_groups, mosaic_pixels, threads=1):
    """
    Estimate the peak resident memory of Image3Ceers in memory and on disk.

    Parameters
    ----------
    exposure_pixels : sequence of int
        Pixels of each exposure.
    n_exposure_groups : int
        outlier_detection median groups (distinct exposures).
    mosaic_pixels : int
        Pixels of the output grid (0 if unknown).
    threads : int, optional
        Exposures processed at once by the per-exposure steps.

    Returns
    -------
    MemoryEstimate
    """
    exposure_pixels = [int(p) for p in exposure_pixels]
    n = len(exposure_pixels)
    threads = max(1, min(int(threads), max(n, 1)))
    largest = sorted(exposure_pixels, reverse=True)[:threads]
    working = sum(largest) * EXPOSURE_WORK_BYTES_PER_PIXEL
    borrowed = sum(largest) * EXPOSURE_BYTES_PER_PIXEL
    library = sum(exposure_pixels) * EXPOSURE_BYTES_PER_PIXEL
    mosaic = int(mosaic_pixels)
    groups = n_exposure_groups if n > 1 else 0  # a single exposure skips outlier_detection
    kept = MEDIAN_BYTES_PER_INPUT_PIXEL * sum(exposure_pixels) if groups else 0
    median_stack = kept + groups * MEDIAN_MASK_BYTES_PER_GROUP_PIXEL * mosaic
    drizzle = DRIZZLE_BYTES_PER_MOSAIC_PIXEL * mosaic if groups else 0
    resample = (RESAMPLE_BYTES_PER_MOSAIC_PIXEL + CONTEXT_BYTES_PER_PLANE * math.ceil(max(n, 1) / 32)) * mosaic

    in_memory = BASE_BYTES + library + max(working, median_stack + drizzle, resample)
    on_disk = BASE_BYTES + n * ON_DISK_BYTES_PER_EXPOSURE + borrowed + max(working, drizzle, resample)
    return MemoryEstimate(
        n_exposures=n,
        n_exposure_groups=int(n_exposure_groups),
        mosaic_pixels=mosaic,
        threads=threads,
        in_memory_gb=in_memory / GB,
        on_disk_gb=on_disk / GB,
    )


def choose_strategy(estimate, *, budget_gb, in_memory_requested=True):
    """
    Keep exposures in memory only when asked and within ``budget_gb``.

    Parameters
    ----------
    estimate : MemoryEstimate
    budget_gb : float
        Memory budget in GB (2^30 bytes); 0 = no limit (``in_memory_requested`` decides).
    in_memory_requested : bool, optional
        The pipeline's ``in_memory`` parameter: False always keeps them on disk.

    Returns
    -------
    MemoryPlan
    """
    if not in_memory_requested:
        return MemoryPlan(estimate, False, budget_gb, estimate.on_disk_gb, "in_memory=False")
    if not budget_gb or budget_gb <= 0:
        return MemoryPlan(estimate, True, 0.0, estimate.in_memory_gb, "no memory budget")
    if estimate.in_memory_gb <= budget_gb:
        return MemoryPlan(estimate, True, budget_gb, estimate.in_memory_gb, f"fits memory_budget_gb={budget_gb:g}")
    return MemoryPlan(
        estimate, False, budget_gb, estimate.on_disk_gb,
        f"in memory ({estimate.in_memory_gb:.2f} GB) exceeds memory_budget_gb={budget_gb:g}",
    )


def summarize_inputs(input_data):
    """
    Exposure sizes, exposure groups and footprints of an Image3 input, without reading pixels.

    Parameters
    ----------
    input_data : dict, str, Path, list or ModelLibrary
        An association dictionary (absolute member names), a file, a list of files
        or models, or a library.

    Returns
    -------
    InputSummary

    Raises
    ------
    CeersFileError
        For a member file whose header cannot be read (named in the message).
    """
    if isinstance(input_data, ModelLibrary):
        return _summarize_library(input_data)
    if isinstance(input_data, dict):
        members = input_data["products"][0]["members"]
        items = [m["expname"] for m in members if str(m.get("exptype", "science")).lower() == "science"]
    elif isinstance(input_data, (str, Path)):
        items = [input_data]
    elif isinstance(input_data, (list, tuple)):
        items = list(input_data)
    else:
        items = [input_data]
    pixels, groups, footprints, scales = [], set(), [], []
    for index, item in enumerate(items):
        if isinstance(item, (str, Path)):
            shape, group, footprint, scale = _file_summary(Path(item))
        else:  # an open model
            shape = np.shape(item.data)
            group = getattr(item.meta, "group_id", None) or _observation_group(_model_keywords(item)) or f"member{index}"
            footprint = np.asarray(item.meta.wcs.footprint(), dtype=float) if item.meta.wcs is not None else None
            scale = None
        pixels.append(int(np.prod(shape)))
        groups.add(group or f"member{index}")
        if footprint is not None:
            footprints.append(footprint)
        if scale:
            scales.append(scale)
    return InputSummary(
        exposure_pixels=tuple(pixels),
        n_exposure_groups=len(groups),
        footprints=tuple(footprints),
        pixel_scale=float(np.median(scales)) if scales else None,
    )


def mosaic_pixels_for(summary, *, output_shape=None, pixel_scale=None, pixel_scale_ratio=1.0, rotation=None):
    """
    Pixels of the resample grid: ``output_shape`` if given, else the footprints' bounding grid.

    Returns 0 when neither is known.
    """
    if output_shape:
        return int(output_shape[0]) * int(output_shape[1])
    scale = pixel_scale or (summary.pixel_scale * (pixel_scale_ratio or 1.0) if summary.pixel_scale else None)
    if not summary.footprints or not scale:
        return 0
    grid = grid_from_footprints(list(summary.footprints), pixel_scale=scale, rotation=rotation or 0.0, crval_step=0)
    return int(grid.output_shape[0]) * int(grid.output_shape[1])


def _summarize_library(library):
    """Sizes from the members' metadata (full frames when unknown); no footprints."""
    pixels = []
    with library:
        for index in range(len(library)):
            meta = library.read_metadata(index)
            xsize, ysize = meta.get("meta.subarray.xsize"), meta.get("meta.subarray.ysize")
            pixels.append(int(xsize) * int(ysize) if xsize and ysize else FULL_FRAME_PIXELS)
    return InputSummary(tuple(pixels), len(library.group_indices))


def _file_summary(path):
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            primary = hdul[0].header
            sci = hdul["SCI"].header if "SCI" in hdul else primary
            shape = (int(sci.get("NAXIS2", 0)), int(sci.get("NAXIS1", 0)))
            area = sci.get("PIXAR_A2") or primary.get("PIXAR_A2")
    except Exception as exc:  # astropy raises many types for corrupt files
        raise CeersFileError(f"{path}: cannot read FITS header ({exc})") from exc
    keywords = {k: primary.get(k) for k in _GROUP_KEYWORDS}
    scale = math.sqrt(float(area)) if area else None
    return shape, _observation_group(keywords), exposure_footprint(path), scale


#: The observation keywords stock jwst builds an exposure's group id from.
_GROUP_KEYWORDS = ("PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID", "ACT_ID", "EXPOSURE")


def _observation_group(keywords):
    values = [keywords.get(k) for k in _GROUP_KEYWORDS]
    if any(v is None for v in values):
        return None
    return "_".join(str(v) for v in values)


def _model_keywords(model):
    observation = model.meta.observation
    names = ("program_number", "observation_number", "visit_number", "visit_group", "sequence_id",
             "activity_id", "exposure_number")
    return dict(zip(_GROUP_KEYWORDS, (getattr(observation, n, None) for n in names), strict=True))


def plan_image3_memory(input_data, *, budget_gb, in_memory, threads, resample):
    """
    Estimate an Image3Ceers run's peak memory, choose where exposures live, and log both.

    Parameters
    ----------
    input_data : dict, str, Path, list or ModelLibrary
        The (normalised) input; see :func:`summarize_inputs`.
    budget_gb : float
        ``memory_budget_gb`` (0 = no limit).
    in_memory : bool
        The pipeline's ``in_memory`` parameter.
    threads : int
        Exposures processed at once by the per-exposure steps.
    resample : Step
        The pipeline's resample step (its grid parameters size the mosaic).

    Returns
    -------
    MemoryPlan
    """
    summary = summarize_inputs(input_data)
    mosaic = mosaic_pixels_for(
        summary,
        output_shape=getattr(resample, "output_shape", None),
        pixel_scale=getattr(resample, "pixel_scale", None),
        pixel_scale_ratio=getattr(resample, "pixel_scale_ratio", 1.0),
        rotation=getattr(resample, "rotation", None),
    )
    estimate = estimate_peak_memory(
        exposure_pixels=summary.exposure_pixels,
        n_exposure_groups=summary.n_exposure_groups,
        mosaic_pixels=mosaic,
        threads=threads,
    )
    log.info("Memory: %s", estimate.describe())
    if isinstance(input_data, ModelLibrary):  # its on_disk is already fixed
        peak = estimate.on_disk_gb if input_data.on_disk else estimate.in_memory_gb
        plan = MemoryPlan(estimate, not input_data.on_disk, budget_gb, peak, "the input library's own on_disk")
    else:
        plan = choose_strategy(estimate, budget_gb=budget_gb, in_memory_requested=in_memory)
    where = "in memory" if plan.in_memory else "on disk between steps"
    log.info("Memory: exposures kept %s (%s); estimated peak %.2f GB", where, plan.reason, plan.peak_gb)
    if plan.budget_gb and plan.peak_gb > plan.budget_gb:
        log.warning(
            "Memory: estimated peak %.2f GB exceeds memory_budget_gb=%g with exposures %s "
            "(mosaic %.1f Mpix, %d thread(s)); fewer threads or a smaller output grid would lower it",
            plan.peak_gb, plan.budget_gb, where, estimate.mosaic_pixels / 1e6, estimate.threads,
        )
    return plan


def release_free_memory():
    """
    Collect garbage and give freed heap memory back to the system (glibc; else only gc).

    The per-exposure steps run on worker threads, and glibc keeps what a thread freed in
    that thread's own arena, where the main thread's next allocations (resample's mosaic
    arrays) cannot reuse it: the process's peak then carries it on top of stock's.

    Returns
    -------
    bool
        True if ``malloc_trim`` was called.
    """
    gc.collect()
    return trim_heap()


def trim_heap():
    """
    Give the free pages of every malloc arena back to the system (glibc ``malloc_trim(0)``).

    Exposure-sized arrays come from the heap once glibc's mmap threshold has grown (up to
    32 MB), and what they leave free between longer-lived allocations stays resident:
    reading 24 exposures of 1024^2 one at a time through PedestalSkySub left the process
    at 0.78 GB, 0.20 GB after trimming. Costs milliseconds.

    Returns
    -------
    bool
        True if ``malloc_trim`` was called (False off glibc).
    """
    malloc_trim = _malloc_trim()
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, looked up once (None off glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None


class HeapTrimmingLibrary(ModelLibrary):
    """
    A ModelLibrary that, on disk, frees the exposures it is done with as it goes.

    With exposures on disk every step reads one exposure at a time, but a shelved
    datamodel is not freed when its last reference goes: it sits in reference cycles,
    and its arrays wait for the cyclic garbage collector, which a process holding jwst's
    many long-lived objects runs rarely (measured: a pass over 16 full frames through
    VarianceHoleFill peaked at 0.91 GB, 0.50 GB when collected at every read). A full
    collection costs ~0.1-0.3 s there, so it runs before every
    ``COLLECT_EVERY``-th exposure is read: at most that many wait to be freed. After
    each exposure is shelved the heap is trimmed (what saving it freed). In memory it
    behaves exactly as ModelLibrary.
    """

    #: Exposures read between two garbage collections (on disk).
    COLLECT_EVERY = 4

    def borrow(self, index):
        """Borrow as ModelLibrary does; on disk, first free the exposures shelved before."""
        if self.on_disk:
            self._borrowed_since_collection = getattr(self, "_borrowed_since_collection", 0) + 1
            if self._borrowed_since_collection >= self.COLLECT_EVERY:
                self._borrowed_since_collection = 0
                release_free_memory()
        return super().borrow(index)

    def shelve(self, model, index=None, modify=True):
        """Shelve as ModelLibrary does, then trim the heap when the library is on disk."""
        super().shelve(model, index, modify=modify)
        if self.on_disk:
            trim_heap()
