"""The MosaicBackground step (alias ``ceers_mosaic_bkg``): one run per pointing."""

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.wcs import WCS
from stdatamodels.jwst.datamodels import ImageModel

from jwst_ceers._step import CeersStep
from jwst_ceers.atomic_io import check_outputs_not_inputs
from jwst_ceers.errors import CeersDataError, CeersFileError, CeersParameterError
from jwst_ceers.inputs import read_association
from jwst_ceers.masking.tier_parameters import tier_list_bounds, tier_spec_lines, tiers_from_step
from jwst_ceers.masking.tiers import CEERS_HST_MOSAIC_TIERS, CEERS_NIRCAM_MOSAIC_TIERS
from jwst_ceers.mosaic_bkg.filter_tiers import read_filter_tiers
from jwst_ceers.mosaic_bkg.mosaic_io import check_same_grid, read_mosaic, write_mosaic_bkgsub, write_image_fits
from jwst_ceers.mosaic_bkg.pointing_background import GalaxyModelling, pointing_background
from jwst_ceers.mosaic_bkg.region_edits import apply_region_edits, read_region_edits
from jwst_ceers.mosaic_bkg.sersic import header_cards

__all__ = ["MosaicBackground", "algorithm_options", "check_bkg_box_size"]

log = logging.getLogger(__name__)

#: Suffix of the background-subtracted mosaics (``--suffix`` replaces it).
BKGSUB_SUFFIX = "bkgsub"


class MosaicBackground(CeersStep):
    """
    Remove the remaining background of all mosaics of one pointing (CEERS sec. 3.3.3).

    Input: an association (``.json``) or a list of mosaics of ONE pointing on ONE pixel
    grid: jwst ``*_i2d.fits`` ImageModels and/or plain FITS (e.g. HST) mosaics. Per
    mosaic: a ring-median pre-filter, tiered source masks (NIRCam or HST tier set);
    the source masks of all mosaics are OR-ed into one merged mask, edited with DS9
    regions (``edit_regions``: plain shapes add, ``-`` shapes remove). Large bright
    galaxies, whose faint wings reach hundreds of pixels past any mask, are fitted with
    Sersic models (``galaxy_*``); the masks are remade around them on the
    model-subtracted mosaics, and the rest sees the data minus the models (the outputs
    keep the galaxies). A smooth background is fitted to the unmasked pixels of every
    mosaic and subtracted (off-footprint pixels become 0): ``bkg_box_size`` boxes joined
    by a weighted thin-plate smoothing spline (``bkg_smoothing``), which follows the
    background closely where pixels are plentiful and smooths more where masks leave
    few (one surface, no switch between measured boxes and filled holes). Pixels that cannot be
    physical (non-finite, or ``|SCI| > 1e6`` MJy/sr) are treated as no data and
    reported once per mosaic.

    Outputs, written atomically, each with a FITS WCS and FILTER:

    - ``<product>_<suffix>.fits`` (``suffix`` default ``bkgsub``): the
      background-subtracted mosaic, in the format of its input
      (``meta.cal_step.ceers_mosaic_bkg`` or keyword CMBKGSTP set);
    - ``<product>_bkg.fits`` (float32 background; header NGALMOD/GALMODk: the Sersic
      models that steered it);
    - ``<product>_tiermask.fits`` (uint8/uint16: bit 0 no data, bit k tier k, bit n+1
      the cores of modelled galaxies);
    - ``<pointing>_merged_mask.fits`` (uint8, 1 = masked).

    ``<product>`` is the input's name without ``_i2d``/``_drz``/``_drc``/``_sci``/``_img``.

    stpipe parameters: ``output_dir`` is where everything is written (default: the
    first input's directory); ``suffix`` names the background-subtracted mosaics. The
    products ARE the step's result, so they are always written: ``save_results`` has
    no effect, and ``output_file`` (one name for several products) is rejected with a
    CeersParameterError. Before any work, every output path is compared with every
    input path (resolved): a run that would overwrite an input stops with a
    CeersFileError. Inputs are never modified, and files opened here are closed on
    every exit path. ``process`` returns a dict of the written paths (``bkgsub``,
    ``bkg``, ``tiermask``: lists in input order; ``merged_mask``; ``plot`` with
    ``save_plots``).

    Mosaics are masked in parallel (``threads``) only while the estimated peak memory
    stays below ``memory_budget_gb`` (two 10600 x 4800 mosaics at once under 4 GB).
    """

    class_alias = "ceers_mosaic_bkg"

    spec = (
        """
    pointing_name = string(default=None)  # Name for <pointing>_merged_mask.fits (default: association product name or common prefix)
"""
        + tier_spec_lines("nircam", CEERS_NIRCAM_MOSAIC_TIERS, label="NIRCam tiers")
        + tier_spec_lines("hst", CEERS_HST_MOSAIC_TIERS, label="HST tiers")
        + """
    filter_tiers = input_file(default=None)  # ASDF file {filter_tiers: {FILTER: {kernel_fwhm, nsigma, npixels, dilate}}} overriding nircam_*/hst_* for those filters (e.g. from jwst-ceers import-ceers)
    ring_radius = float(min=4, max=1000, default=80.0)  # Ring-median pre-filter: ring radius, pixels
    ring_width = float(min=1, max=100, default=4.0)  # Ring-median pre-filter: ring width, pixels
    ring_clip_nsigma = float(min=1, max=100, default=5.0)  # Ceiling (sigma over a coarse background) applied before the ring median
    detection_ceiling_nsigma = float(min=0, max=1000000, default=10.0)  # Pixels more than this many sigma above the ring median are clipped to it before the tiers smooth them (compact bright sources do not spread over the wide kernels); 0: off
    galaxy_models = boolean(default=True)  # Fit Sersic models of large bright galaxies; the remade masks and the background fit see the data minus them
    galaxy_core_nsigma = float(min=0.5, max=10000, default=10.0)  # Keep masked where a galaxy model exceeds this many pixel sigma
    bkg_box_size = integer(min=4, max=2048, default=32)  # Background fit: box size, pixels (even)
    bkg_smoothing = float(min=0, max=1000, default=1.0)  # Background fit: bending weight of the thin-plate smoothing spline through the boxes (0: thin-plate filling + median filter)
    bkg_filter_size = integer(min=1, max=15, default=3)  # Background fit: median filter size, boxes (odd; only with bkg_smoothing 0)
    bkg_clip_sigma = float(min=1, max=10, default=3.0)  # Background fit: sigma-clipping threshold
    edit_regions = string_list(default=list())  # DS9 region files editing the merged mask: plain shapes add, '-' shapes remove
    save_plots = boolean(default=False)  # Write <pointing>_mosaic_bkg.png previews
    threads = integer(min=1, max=16, default=2)  # CPU threads: mosaics read, masked and written in parallel (masking as memory_budget_gb allows); above 1, galaxy fits on as many worker processes
    memory_budget_gb = float(min=0.5, max=1024, default=4.0)  # Process mosaics in parallel only while the estimated peak memory stays below this
    """  # noqa: E501
    )
    list_value_bounds = tier_list_bounds("nircam") | tier_list_bounds("hst")

    def default_suffix(self):
        """Suffix of the background-subtracted mosaics: ``bkgsub``."""
        return BKGSUB_SUFFIX

    def tier_sets(self):
        """The NIRCam and HST tier sets of this step's parameters (validated)."""
        return {"nircam": tiers_from_step(self, "nircam"), "hst": tiers_from_step(self, "hst")}

    def _members(self, input_data):
        """Input -> (list of paths or models, default pointing name, default output dir)."""
        if isinstance(input_data, (str, Path)):
            path = Path(input_data)
            if path.suffix.lower() == ".json":
                asn = read_association(path)
                product = asn["products"][0]
                members = [
                    path.parent / m["expname"]
                    for m in product["members"]
                    if str(m.get("exptype", "science")).lower() == "science"
                ]
                return members, product.get("name"), path.parent
            return [path], None, path.parent
        if isinstance(input_data, ImageModel):
            return [input_data], None, None
        items = list(input_data)
        first_dir = next((Path(i).parent for i in items if isinstance(i, (str, Path))), None)
        return items, None, first_dir

    def _validate(self):
        """Parameter checks that need no data (before anything is read)."""
        if self.output_file:
            raise CeersParameterError(
                f"ceers_mosaic_bkg: output_file={self.output_file!r} cannot name the products of a pointing "
                "(one background-subtracted mosaic, background and tier mask per filter, one merged mask); "
                "use output_dir and suffix"
            )
        check_bkg_box_size(self.bkg_box_size)
        if self.bkg_filter_size % 2 == 0:
            raise CeersParameterError(f"ceers_mosaic_bkg: bkg_filter_size must be odd, got {self.bkg_filter_size}")
        suffix = self.suffix or BKGSUB_SUFFIX
        if not suffix or "/" in suffix or suffix in ("bkg", "tiermask"):
            raise CeersParameterError(
                f"ceers_mosaic_bkg: suffix {suffix!r} would collide with another product (bkg, tiermask) or is not a name"
            )
        return suffix

    def process(self, input_data):
        """Run the algorithm on all mosaics of the pointing; see the class docstring."""
        start = time.perf_counter()
        suffix = self._validate()
        tier_sets = self.tier_sets()
        per_filter = read_filter_tiers(self.filter_tiers) if self.filter_tiers else {}
        options = algorithm_options(self)
        edits = read_region_edits(self.edit_regions)
        members, asn_name, default_dir = self._members(input_data)
        if not members:
            raise CeersFileError("ceers_mosaic_bkg: no input mosaics")
        mosaics = []
        try:
            mosaics = _map_threads(read_mosaic, members, threads=self.threads)  # I/O and byte swapping release the GIL
            check_same_grid(mosaics)
            names = [m.name for m in mosaics]
            if len(set(names)) != len(names):
                raise CeersFileError(f"ceers_mosaic_bkg: two inputs have the same product name: {names}")
            out_dir = Path(self.output_dir) if self.output_dir else (default_dir or Path("."))
            if not out_dir.is_dir():
                raise CeersFileError(f"{out_dir}: output_dir does not exist")
            pointing = self.pointing_name or asn_name or _common_prefix(names)
            paths = _output_paths(out_dir, names, pointing, suffix=suffix, plot=self.save_plots)
            check_outputs_not_inputs(
                [p for v in paths.values() for p in (v if isinstance(v, list) else [v])],
                [m for m in members if isinstance(m, (str, Path))],
                what="ceers_mosaic_bkg output",
            )
            wcs = WCS(mosaics[0].header)
            edit = (lambda merged: apply_region_edits(merged, edits, wcs=wcs)) if edits else None
            tiers = [
                per_filter.get(m.filter.upper(), tier_sets["nircam"] if m.is_jwst else tier_sets["hst"]) for m in mosaics
            ]
            log.info(
                "ceers_mosaic_bkg: %d mosaics (%s) of pointing %s, grid %s",
                len(mosaics),
                ", ".join(f"{m.filter}/{m.telescope}" for m in mosaics),
                pointing,
                mosaics[0].data.shape,
            )
            try:
                result = pointing_background(
                    [m.data for m in mosaics],
                    nodata=[m.nodata for m in mosaics],
                    tiers=tiers,
                    noise=[m.noise for m in mosaics],
                    names=names,
                    edit_mask=edit,
                    parallel_mosaics=_parallel_mosaics(self.threads, self.memory_budget_gb, [m.data.size for m in mosaics]),
                    **options,
                )
            except ValueError as exc:
                if isinstance(exc, CeersParameterError | CeersFileError):
                    raise
                raise CeersDataError(
                    f"ceers_mosaic_bkg: {exc} ({', '.join(m.source for m in mosaics)}; "
                    f"bkg_box_size={self.bkg_box_size})"
                ) from exc
            outputs = self._write(mosaics, result, paths, tiers)
            if self.save_plots:
                # matplotlib is imported only when previews are asked for (~0.5 s)
                from jwst_ceers.mosaic_bkg.previews import save_previews

                outputs["plot"] = save_previews(paths["plot"], mosaics, result)
        finally:
            for mosaic in mosaics:
                if mosaic.hdul is not None:
                    mosaic.hdul.close()
        log.info("ceers_mosaic_bkg: done in %.1f s; outputs in %s", time.perf_counter() - start, out_dir)
        return outputs

    def _write(self, mosaics, result, paths, tiers):
        """
        Write every product: each mosaic's bkgsub, bkg and tiermask, and the merged mask.

        The files are written concurrently on ``threads`` threads (disk writes and byte
        swapping release the GIL), one mosaic's too. At most ``threads``
        background-subtracted copies (4 bytes per pixel each) exist at once.
        """
        merged = result.merged_mask
        threads = max(1, int(self.threads))
        copies = threading.BoundedSemaphore(threads)

        def write_bkgsub(index, bkgsub):
            try:
                return write_mosaic_bkgsub(paths["bkgsub"][index], bkgsub, mosaics[index])
            finally:
                copies.release()

        def write_tiermask(index):
            mosaic = mosaics[index]
            bit_doc = {"BIT0": "no data"}
            for k, tier in enumerate(tiers[index], start=1):
                bit_doc[f"BIT{k}"] = f"tier fwhm {tier.kernel_fwhm:g} nsig {tier.nsigma:g} npix {tier.npixels} dil {tier.dilate:g}"
            bit_doc[f"BIT{len(tiers[index]) + 1}"] = "modelled galaxy cores (all filters)"
            path = write_image_fits(paths["tiermask"][index], result.tiermasks[index], mosaic, extra=bit_doc)
            good = ~mosaic.nodata
            fraction = np.count_nonzero(merged & good) / max(1, np.count_nonzero(good))
            log.info("%s: merged mask covers %.1f%% of its footprint", mosaic.name, 100 * fraction)
            return path

        def write_merged():
            return write_image_fits(
                paths["merged_mask"],
                merged.astype(np.uint8),
                mosaics[0],
                extra={"FILTER": "+".join(m.filter for m in mosaics)[:68], "MASKVAL": "1 = masked source (all filters)"},
            )

        jobs = {"bkgsub": [], "bkg": [], "tiermask": []}
        with ThreadPoolExecutor(max_workers=threads) as pool:
            # the large bkgsub mosaics first, the smaller files after them (longest jobs first)
            for index, (mosaic, background) in enumerate(zip(mosaics, result.backgrounds, strict=True)):
                copies.acquire()  # released once that copy is written
                try:
                    # in FITS byte order (big-endian), so that it is written without being swapped
                    dtype = np.result_type(mosaic.data, background).newbyteorder(">")
                    bkgsub = np.subtract(mosaic.data, background, out=np.empty(mosaic.data.shape, dtype))
                    np.copyto(bkgsub, 0, where=mosaic.nodata)
                except BaseException:
                    copies.release()
                    raise
                jobs["bkgsub"].append(pool.submit(write_bkgsub, index, bkgsub))
                del bkgsub
            # submitted only now: astropy byte-swaps an array in place while writing it, so
            # the backgrounds are written after the subtractions above have read them
            for index, (mosaic, background) in enumerate(zip(mosaics, result.backgrounds, strict=True)):
                jobs["bkg"].append(pool.submit(
                    write_image_fits, paths["bkg"][index], background.astype(np.float32, copy=False), mosaic,
                    extra=header_cards(result.galaxy_models[index]),  # the Sersic models that steered the fit
                ))
                jobs["tiermask"].append(pool.submit(write_tiermask, index))
            merged_job = pool.submit(write_merged)
        outputs = {kind: [job.result() for job in kind_jobs] for kind, kind_jobs in jobs.items()}
        outputs["merged_mask"] = merged_job.result()
        return outputs


def algorithm_options(step):
    """
    The keyword arguments of :func:`~jwst_ceers.mosaic_bkg.pointing_background.pointing_background`
    that ``step``'s parameters set (all but the per-mosaic arrays, tiers and edits).

    The one mapping from parameters to the algorithm: the step, the tests and the
    benchmarks call it, so they run the same algorithm.
    """
    return {
        "ring_radius": step.ring_radius,
        "ring_width": step.ring_width,
        "clip_nsigma": step.ring_clip_nsigma,
        "detection_ceiling": step.detection_ceiling_nsigma or None,
        "box_size": step.bkg_box_size,
        "filter_size": step.bkg_filter_size,
        "clip_sigma": step.bkg_clip_sigma,
        "smoothing": step.bkg_smoothing or None,
        "galaxy_modelling": GalaxyModelling(enabled=step.galaxy_models, core_nsigma=step.galaxy_core_nsigma),
        "threads": step.threads,
    }


def _output_paths(out_dir, names, pointing, *, suffix, plot):
    """Every path the run writes, by kind (lists in input order)."""
    paths = {
        "bkgsub": [out_dir / f"{name}_{suffix}.fits" for name in names],
        "bkg": [out_dir / f"{name}_bkg.fits" for name in names],
        "tiermask": [out_dir / f"{name}_tiermask.fits" for name in names],
        "merged_mask": out_dir / f"{pointing}_merged_mask.fits",
    }
    if plot:
        paths["plot"] = out_dir / f"{pointing}_mosaic_bkg.png"
    return paths


# Measured on 10600 x 4800 mosaics (benchmarks/bench_mosaic_bkg.py, tracemalloc): the
# inputs held for the whole run (data, noise, no-data mask; a jwst file's ERR/WHT are
# mapped again only to write the output) take ~9 bytes per pixel per mosaic. Each
# mosaic being masked adds 10.5-12.0 bytes per pixel while it is processed (peak RSS
# increase of one _mask_one, VmHWM reset before it, both sim mosaics, 1 or 2 threads:
# benchmarks/bench_masking.py --mosaics; 35 before issue 16): the residual in its
# FFT-padded workspace (4) and the tier bits (1), then the full-resolution spectrum
# (4) and its inverse (4) once the residual is released; the ring median and the
# clipping are made row by row. When galaxy models are found, the masks are remade on
# the mosaic minus its models: the model and that difference (4 + 4) are held during
# that masking. 13 + 8 = 21 keeps a margin; two 10600 x 4800 mosaics then mask at once
# under memory_budget_gb=4.
_HELD_BYTES_PER_PIXEL = 9.0
_WORKING_BYTES_PER_PIXEL = 21.0
# With threads > 1 the galaxy fits run on ``threads`` worker processes (fit_workers):
# 0.12 GB each measured (Python, numpy, scipy; the block means they fit are small).
_FIT_WORKER_BYTES = 0.15 * 1024**3


def check_bkg_box_size(value):
    """Raise CeersParameterError unless ``bkg_box_size`` is even (the spec checks its range only)."""
    if value % 2:
        raise CeersParameterError(f"ceers_mosaic_bkg: bkg_box_size must be even, got {value}")


def _map_threads(function, items, *, threads):
    """``[function(item) for item in items]`` on up to ``threads`` threads (in order)."""
    items = list(items)
    workers = max(1, min(int(threads), len(items)))
    if workers == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def _parallel_mosaics(threads, memory_budget_gb, sizes):
    """Number of mosaics to process at once so that the estimated peak stays below the limit."""
    held = _HELD_BYTES_PER_PIXEL * sum(sizes) + (int(threads) * _FIT_WORKER_BYTES if int(threads) > 1 else 0)
    working = _WORKING_BYTES_PER_PIXEL * max(sizes)
    fits = int((memory_budget_gb * 1024**3 - held) // max(working, 1.0))
    chosen = max(1, min(int(threads), fits))
    if chosen < threads:
        log.info("ceers_mosaic_bkg: %d mosaic(s) at a time to stay below %.1f GB", chosen, memory_budget_gb)
    return chosen


def _common_prefix(names):
    names = list(names)
    prefix = os.path.commonprefix(names)
    if len(names) > 1 and not all(len(n) == len(prefix) or n[len(prefix)] in "_-" for n in names):
        prefix = prefix.rsplit("_", 1)[0] if "_" in prefix else ""
    return prefix.rstrip("_-") or "pointing"
