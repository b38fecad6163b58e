"""The MosaicBackground step (alias ``ceers_mosaic_bkg``): one run per pointing."""

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from jwst_ceers._step import CeersStep
from jwst_ceers.errors import CeersDataError, CeersFileError, CeersParameterError

__all__ = ["MosaicBackground", "check_bkg_box_size"]

log = logging.getLogger(__name__)

_TIER_PARAMS = ("kernel_fwhm", "nsigma", "npixels", "dilate")


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
    keep the galaxies). Optionally (``wing_iterations`` > 0, off by default) the merged
    mask is grown over remaining faint wings (``wing_*``, all filters together). A
    smooth background is fitted to the unmasked pixels of every mosaic and subtracted
    (off-footprint pixels become 0).

    Outputs in ``output_dir`` (default: the first input's directory), written
    atomically, each with a FITS WCS and FILTER: ``<product>_bkgsub.fits`` (same format
    as the input; ``meta.cal_step.ceers_mosaic_bkg`` or keyword CMBKGSTP set),
    ``<product>_bkg.fits`` (float32), ``<product>_tiermask.fits`` (uint8/uint16: bit 0
    no data, bit k tier k, bit n+1 wing / size-dependent growth and the cores of
    modelled galaxies; the tiers are remade on the model-subtracted mosaic around
    them) and
    ``<pointing>_merged_mask.fits`` (uint8, 1 = masked). Inputs are never modified.
    Mosaics are masked in parallel (``threads``) only while the estimated peak memory
    stays below ``max_memory_gb`` (a 10600 x 4800 pointing runs them one at a time).
    ``process`` returns a dict of the output paths.
    """

    class_alias = "ceers_mosaic_bkg"

    spec = """
    pointing_name = string(default=None)  # Name for <pointing>_merged_mask.fits (default: association product name or common prefix)
    nircam_kernel_fwhm = float_list(min=1, max=15, default=list(58.87, 35.32, 11.77, 4.71))  # NIRCam tiers: Gaussian FWHM, pixels (CEERS sigmas 25, 15, 5, 2)
    nircam_nsigma = float_list(min=1, max=15, default=list(3.0, 3.0, 3.5, 4.0))  # NIRCam tiers: threshold in sigma of each smoothed image
    nircam_npixels = int_list(min=1, max=15, default=list(15, 10, 3, 1))  # NIRCam tiers: minimum connected pixels
    nircam_dilate = float_list(min=1, max=15, default=list(33.0, 25.0, 21.0, 19.0))  # NIRCam tiers: dilation disk radius, pixels
    hst_kernel_fwhm = float_list(min=1, max=15, default=list(58.87, 35.32, 11.77, 4.71))  # HST tiers: Gaussian FWHM, pixels
    hst_nsigma = float_list(min=1, max=15, default=list(3.0, 3.0, 3.5, 4.5))  # HST tiers: threshold in sigma of each smoothed image
    hst_npixels = int_list(min=1, max=15, default=list(15, 10, 5, 2))  # HST tiers: minimum connected pixels
    hst_dilate = float_list(min=1, max=15, default=list(33.0, 25.0, 21.0, 19.0))  # HST tiers: dilation disk radius, pixels
    filter_tiers = input_file(default=None)  # ASDF file {filter_tiers: {FILTER: {kernel_fwhm, nsigma, npixels, dilate}}} overriding nircam_*/hst_* for those filters (e.g. from jwst-ceers import-ceers)
    ring_radius = float(min=4, max=1000, default=80.0)  # Ring-median pre-filter: ring radius, pixels
    ring_width = float(min=1, max=100, default=4.0)  # Ring-median pre-filter: ring width, pixels
    ring_clip_nsigma = float(min=1, max=100, default=5.0)  # Ceiling (sigma over a coarse background) applied before the ring median
    grow_factor = float(min=0, max=10, default=0.0)  # Grow each merged-mask region by this times its equivalent radius beyond 40 px (0: off)
    wing_iterations = integer(min=0, max=20, default=0)  # Wing growth of the merged mask: fit/detect/grow cycles (0: off; galaxy_models handle large galaxies' wings)
    wing_kernel_fwhm = float(min=8, max=1024, default=64.0)  # Wing growth: Gaussian FWHM of the smoothed 8x8-block residual, pixels
    wing_nsigma = float(min=0.5, max=10, default=1.5)  # Wing growth: threshold in sigma of the smoothed residual (hysteresis from the mask)
    wing_box_size = integer(min=32, max=4096, default=128)  # Wing growth: background box of the fits made while growing, pixels
    wing_seed_nsigma = float(min=0, max=100, default=3.0)  # Wing growth: a mask region grows only while the mean residual in a ring around it is this significant
    galaxy_models = boolean(default=True)  # Fit Sersic models of large bright galaxies; the mask growth and background fit see the data minus them
    galaxy_core_nsigma = float(min=0.5, max=10000, default=10.0)  # Keep masked where a galaxy model exceeds this many pixel sigma
    bkg_box_size = integer(min=4, max=2048, default=128)  # Background fit: box size, pixels (even)
    bkg_filter_size = integer(min=1, max=15, default=3)  # Background fit: median filter size, boxes (odd)
    bkg_clip_sigma = float(min=1, max=10, default=3.0)  # Background fit: sigma-clipping threshold
    edit_regions = string_list(default=list())  # DS9 region files editing the merged mask: plain shapes add, '-' shapes remove
    save_plots = boolean(default=False)  # Write <pointing>_mosaic_bkg.png previews
    threads = integer(min=1, max=16, default=2)  # CPU threads: mosaics read, masked and written in parallel (masking as max_memory_gb allows)
    max_memory_gb = float(min=0.5, max=1024, default=4.0)  # Process mosaics in parallel only while the estimated peak memory stays below this
    """  # noqa: E501

    def _tiers(self, prefix):
        from jwst_ceers.masking import MaskTier

        values = [list(getattr(self, f"{prefix}_{name}")) for name in _TIER_PARAMS]
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            names = ", ".join(f"{prefix}_{n}={len(v)}" for n, v in zip(_TIER_PARAMS, values, strict=True))
            raise CeersParameterError(f"ceers_mosaic_bkg: tier lists must have equal lengths ({names})")
        try:
            return tuple(MaskTier(float(f), float(s), int(p), float(d)) for f, s, p, d in zip(*values, strict=True))
        except ValueError as exc:
            raise CeersParameterError(f"ceers_mosaic_bkg: {prefix} tiers: {exc}") from exc

    def _members(self, input_data):
        """Input -> (list of paths or models, default pointing name, default output dir)."""
        from stdatamodels.jwst.datamodels import ImageModel

        if isinstance(input_data, (str, Path)):
            path = Path(input_data)
            if path.suffix.lower() == ".json":
                if not path.is_file():
                    raise CeersFileError(f"{path}: association file does not exist")
                try:
                    asn = json.loads(path.read_text())
                    product = asn["products"][0]
                    members = [path.parent / m["expname"] for m in product["members"]]
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    raise CeersFileError(f"{path}: not a usable association ({exc})") from exc
                return members, product.get("name"), path.parent
            return [path], None, path.parent
        if isinstance(input_data, ImageModel):
            return [input_data], None, None
        items = list(input_data)
        first_dir = next((Path(i).parent for i in items if isinstance(i, (str, Path))), None)
        return items, None, first_dir

    def process(self, input_data):
        """Run the algorithm on all mosaics of the pointing; see the class docstring."""
        from jwst_ceers.mosaic_bkg.filter_tiers import read_filter_tiers
        from jwst_ceers.mosaic_bkg.mosaic_io import check_same_grid, read_mosaic
        from jwst_ceers.mosaic_bkg.region_edits import apply_region_edits, read_region_edits

        start = time.perf_counter()
        nircam_tiers = self._tiers("nircam")
        hst_tiers = self._tiers("hst")
        per_filter = read_filter_tiers(self.filter_tiers) if self.filter_tiers else {}
        check_bkg_box_size(self.bkg_box_size)
        members, asn_name, default_dir = self._members(input_data)
        if not members:
            raise CeersFileError("ceers_mosaic_bkg: no input mosaics")
        mosaics = _map_threads(read_mosaic, members, threads=self.threads)  # I/O and byte swapping release the GIL
        check_same_grid(mosaics)
        names = [m.name for m in mosaics]
        if len(set(names)) != len(names):
            raise CeersFileError(f"ceers_mosaic_bkg: two inputs have the same product name: {names}")
        out_dir = Path(self.output_dir) if self.output_dir else (default_dir or Path("."))
        if not out_dir.is_dir():
            raise CeersFileError(f"{out_dir}: output_dir does not exist")
        pointing = self.pointing_name or asn_name or _common_prefix(names)
        edits = read_region_edits(self.edit_regions)
        from astropy.wcs import WCS

        wcs = WCS(mosaics[0].header)
        edit = (lambda merged: apply_region_edits(merged, edits, wcs=wcs)) if edits else None
        tiers = [per_filter.get(m.filter.upper(), nircam_tiers if m.is_jwst else hst_tiers) for m in mosaics]
        log.info(
            "ceers_mosaic_bkg: %d mosaics (%s) of pointing %s, grid %s",
            len(mosaics),
            ", ".join(f"{m.filter}/{m.telescope}" for m in mosaics),
            pointing,
            mosaics[0].data.shape,
        )
        try:
            result = self._run_algorithm(mosaics, tiers, edit)
        except ValueError as exc:
            if isinstance(exc, CeersParameterError | CeersFileError):
                raise
            raise CeersDataError(
                f"ceers_mosaic_bkg: {exc} ({', '.join(m.source for m in mosaics)}; "
                f"bkg_box_size={self.bkg_box_size})"
            ) from exc
        outputs = self._write(mosaics, result, out_dir, pointing, tiers)
        if self.save_plots:
            from jwst_ceers.mosaic_bkg.previews import save_previews

            outputs["plot"] = save_previews(out_dir / f"{pointing}_mosaic_bkg.png", mosaics, result)
        for mosaic, item in zip(mosaics, members, strict=True):
            if mosaic.hdul is not None:
                mosaic.hdul.close()
            if mosaic.model is not None and isinstance(item, (str, Path)):
                mosaic.model.close()
        log.info("ceers_mosaic_bkg: done in %.1f s; outputs in %s", time.perf_counter() - start, out_dir)
        return outputs

    def _run_algorithm(self, mosaics, tiers, edit):
        """Call the array algorithm with this step's parameters."""
        from jwst_ceers.mosaic_bkg.pointing_background import GalaxyModelling, WingGrowth, pointing_background

        return pointing_background(
            [m.data for m in mosaics],
            nodata=[m.nodata for m in mosaics],
            tiers=tiers,
            noise=[m.noise for m in mosaics],
            edit_mask=edit,
            ring_radius=self.ring_radius,
            ring_width=self.ring_width,
            clip_nsigma=self.ring_clip_nsigma,
            box_size=self.bkg_box_size,
            filter_size=self.bkg_filter_size,
            clip_sigma=self.bkg_clip_sigma,
            grow_factor=self.grow_factor,
            wing_growth=WingGrowth(
                iterations=self.wing_iterations,
                kernel_fwhm=self.wing_kernel_fwhm,
                nsigma=self.wing_nsigma,
                box_size=self.wing_box_size,
                seed_nsigma=self.wing_seed_nsigma,
            ),
            galaxy_modelling=GalaxyModelling(enabled=self.galaxy_models, core_nsigma=self.galaxy_core_nsigma),
            threads=self.threads,
            parallel_mosaics=_parallel_mosaics(self.threads, self.max_memory_gb, [m.data.size for m in mosaics]),
        )

    def _write(self, mosaics, result, out_dir, pointing, tiers):
        from jwst_ceers.mosaic_bkg.galaxy_models import header_cards
        from jwst_ceers.mosaic_bkg.mosaic_io import write_bkgsub, write_image_fits

        outputs = {"bkgsub": [], "bkg": [], "tiermask": [], "merged_mask": None}
        merged = result.merged_mask

        def write_one(mosaic, background, bits, tier_set, components):
            bkgsub = mosaic.data - background
            bkgsub[mosaic.nodata] = 0
            bkgsub_path = write_bkgsub(out_dir / f"{mosaic.name}_bkgsub.fits", bkgsub, mosaic)
            del bkgsub
            bkg_path = write_image_fits(
                out_dir / f"{mosaic.name}_bkg.fits", background.astype(np.float32, copy=False), mosaic,
                extra=header_cards(components),  # the Sersic models that steered the fit
            )
            bit_doc = {"BIT0": "no data"}
            for k, tier in enumerate(tier_set, start=1):
                bit_doc[f"BIT{k}"] = f"tier fwhm {tier.kernel_fwhm:g} nsig {tier.nsigma:g} npix {tier.npixels} dil {tier.dilate:g}"
            bit_doc[f"BIT{len(tier_set) + 1}"] = "wing/size growth, modelled galaxy cores (all)"
            mask_path = write_image_fits(out_dir / f"{mosaic.name}_tiermask.fits", bits, mosaic, extra=bit_doc)
            good = ~mosaic.nodata
            fraction = np.count_nonzero(merged & good) / max(1, np.count_nonzero(good))
            log.info("%s: merged mask covers %.1f%% of its footprint", mosaic.name, 100 * fraction)
            return bkgsub_path, bkg_path, mask_path

        # files are written in parallel: the disk writes and array conversions release the GIL
        written = _map_threads(
            lambda args: write_one(*args),
            list(zip(mosaics, result.backgrounds, result.tiermasks, tiers, result.galaxy_models, strict=True)),
            threads=self.threads,
        )
        for bkgsub_path, bkg_path, mask_path in written:
            outputs["bkgsub"].append(bkgsub_path)
            outputs["bkg"].append(bkg_path)
            outputs["tiermask"].append(mask_path)
        outputs["merged_mask"] = write_image_fits(
            out_dir / f"{pointing}_merged_mask.fits",
            merged.astype(np.uint8),
            mosaics[0],
            extra={"FILTER": "+".join(m.filter for m in mosaics)[:68], "MASKVAL": "1 = masked source (all filters)"},
        )
        return outputs


# Measured on 10600 x 4800 mosaics (benchmarks/bench_mosaic_bkg.py): the inputs held for
# the whole run (data, noise, no-data mask and the model's ERR/WHT for the output) take
# ~17 bytes per pixel per mosaic, and each mosaic being masked adds ~30 bytes per pixel
# (smoothed images, spectra, dilations) while it is processed.
_HELD_BYTES_PER_PIXEL = 17.0
_WORKING_BYTES_PER_PIXEL = 30.0


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
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def _parallel_mosaics(threads, max_memory_gb, sizes):
    """Number of mosaics to process at once so that the estimated peak stays below the limit."""
    held = _HELD_BYTES_PER_PIXEL * sum(sizes)
    working = _WORKING_BYTES_PER_PIXEL * max(sizes)
    fits = int((max_memory_gb * 1024**3 - held) // max(working, 1.0))
    chosen = max(1, min(int(threads), fits))
    if chosen < threads:
        log.info("ceers_mosaic_bkg: %d mosaic(s) at a time to stay below %.1f GB", chosen, max_memory_gb)
    return chosen


def _common_prefix(names):
    names = list(names)
    prefix = os.path.commonprefix(names)
    if len(names) > 1 and not all(len(n) == len(prefix) or n[len(prefix)] in "_-" for n in names):
        prefix = prefix.rsplit("_", 1)[0] if "_" in prefix else ""
    return prefix.rstrip("_-") or "pointing"
