"""The PedestalSkySub step (alias ``ceers_pedestal``)."""

import logging
import os
from pathlib import Path

import numpy as np

from jwst_ceers._step import ExposureStep, set_array_in_place
from jwst_ceers.atomic_io import fits_safe_text
from jwst_ceers.errors import CeersFileError
from jwst_ceers.inputs import UNPHYSICAL_SURFACE_BRIGHTNESS, unphysical_pixels
from jwst_ceers.masking.tier_parameters import tier_list_bounds, tier_spec_lines, tiers_from_step
from jwst_ceers.masking.tiers import CEERS_EXPOSURE_TIERS
from jwst_ceers.pedestal.exposure_sky import measure_exposure_sky
from jwst_ceers.pedestal.mask_files import exposure_root, find_mask_file, read_mask_file
from jwst_ceers.pedestal.products import write_exposure_bkgsub, write_histogram_plot

__all__ = ["PedestalSkySub"]

log = logging.getLogger(__name__)

# DQ bits that make a pixel unusable for the sky (as jwst skymatch's default good bits)
_BAD_DQ = 1 | 512  # DO_NOT_USE | NON_SCIENCE
# fewer usable pixels than this: no meaningful pedestal (the step records SKIPPED)
MIN_USABLE_PIXELS = 100
# fewer sky-plane blocks at the sky level than this fraction: warn. Measured on simulated
# deep fields: 0.37-0.9, also 0.38-0.40 where one galaxy's halo covers the WHOLE 1024^2
# detector (> 0.05 sigma on ~90% of the pixels; the pedestal is then up to 0.08 sigma
# high and no block statistic can tell), so this only catches extreme cases.
LOW_SKY_BLOCK_FRACTION = 0.25
# warn above this fraction of the 7x7 sky variance in 1/f row offsets: residual striping after
# CEERS-style removal carries 4-8% (simulated), unremoved striping 60-70%
UNREMOVED_STRIPING_SHARE = 0.5


class PedestalSkySub(ExposureStep):
    """
    Subtract one sky pedestal per exposure and rescale VAR_RNOISE to the sky variance.

    CEERS (Bagley et al. 2023, sec. 3.3.2): sources are masked (with
    ``<exposure-root>_<mask_suffix>.fits`` segmentation/boolean maps found beside the
    input, or with internal tiered source masks), DQ-flagged and NaN pixels excluded;
    a sky plane is fitted to the lower envelope of ``flatten_box`` block medians, blocks
    raised by extended emission (galaxy wings no mask reaches) are rejected, and a
    Gaussian fitted (mostly to the negative side of the peak) to the histogram of the
    remaining sky pixels, gradient removed, gives the pedestal, which is subtracted and
    recorded in ``meta.background`` (``level``, ``subtracted=True``, ``method='local'``).
    If the fit fails, a biweight location is used, logged and recorded.

    With ``rescale_rnoise``, VAR_RNOISE is multiplied by the factor that makes its
    robust mean over sky pixels equal the sky variance on the 7x7-pixel block scale
    (variance of 7x7 sums / 49 of the noise relative to the local sky, measured so that
    smooth sky structure does not enter it: :mod:`jwst_ceers.pedestal.rnoise_scale`), so
    that drizzle's ivm weights (1/VAR_RNOISE) follow the real sky noise. Details go to
    ``meta.ceers_pedestal`` (saved with the model), including ``sky_block_fraction``
    (blocks at the sky level), the fitted gradient ``gradient_x``/``gradient_y`` (sky
    change across the array, not subtracted) and ``row_offset_fraction`` (share of the
    sky variance in 1/f row offsets; above ``UNREMOVED_STRIPING_SHARE`` a warning says
    the striping looks unremoved).

    The plane and the pedestal are measured on a working copy without the 1/f row offsets
    that change within a ``flatten_box`` block (per readout amplifier); the data keep
    their stripes.

    Limits: a halo that covers the whole detector above ~0.05 sigma leaves no block at
    the sky level; the pedestal then includes part of that halo. Smooth sky structure
    that goes both ways (flat-field residuals, wisp residuals, the drift of unremoved
    striping over > ``flatten_box`` rows) pulls the lower-envelope plane down: up to
    -0.15 sigma (flat), -0.11 (realistic preset on the real CEERS geometry), -0.19
    (unremoved striping) on simulated 1024^2 exposures.
    """

    class_alias = "ceers_pedestal"

    spec = (
        """
    mask_suffix = string(default='1fmask')  # Use <exposure-root>_<suffix>.fits source masks when present ('' = always internal masks)
    mask_dir = string(default=None)  # Directory searched first for mask files (then the input's directory, then the current one)
    add_internal_masks = boolean(default=True)  # With a mask file, also mask what the internal tiers detect (union)
    rescale_rnoise = boolean(default=True)  # Rescale VAR_RNOISE so its robust sky mean equals the 7x7-block sky variance
    save_bkgsub = boolean(default=False)  # Write <root>_bkgsub.fits (SCI - pedestal - 2D background, BKG, MASK) to output_dir
    save_plots = boolean(default=False)  # Write <root>_pedestal.png (sky histogram with the fit) to output_dir
    flatten_box = integer(min=0, max=4096, default=64)  # Block size (px) of the sky-plane fit; blocks above the plane (extended emission) are not used; 0 = none
"""
        + tier_spec_lines("tier", CEERS_EXPOSURE_TIERS, label="Internal mask tiers", max_tiers=12)
        + """
    min_sky_fraction = float(min=0, max=1, default=0.05)  # Fewer unmasked good pixels than this fraction: use all good pixels
    """  # noqa: E501
    )
    list_value_bounds = tier_list_bounds("tier")

    _tiers = tiers_from_step  # the tier_* lists as MaskTiers, validated (shared with ceers_mosaic_bkg)

    def check_parameters(self):
        """Tier lists of one length; ``mask_dir``, when given, an existing folder."""
        self._tiers()
        if self.mask_dir and not Path(self.mask_dir).is_dir():
            what = "is a regular file, not a folder" if Path(self.mask_dir).exists() else "does not exist"
            raise CeersFileError(f"ceers_pedestal: mask_dir {self.mask_dir} {what}")

    def extra_output_paths(self, input_path):
        """``<root>_bkgsub.fits`` and ``<root>_pedestal.png`` when requested."""
        root = exposure_root(Path(input_path).name)
        paths = []
        if self.save_bkgsub:
            paths.append(self._product_dir() / f"{root}_bkgsub.fits")
        if self.save_plots:
            paths.append(self._product_dir() / f"{root}_pedestal.png")
        return paths

    def _product_dir(self):
        directory = self.search_attr("output_dir") or os.getcwd()
        return Path(directory)

    def _mask_directories(self):
        return [self.mask_dir, self.input_dir or None, os.getcwd()]

    def process_exposure(self, model):
        """Measure and subtract the pedestal of one exposure; see the class docstring."""
        tiers = self._tiers()
        name = model.meta.filename or "model"
        data = np.asarray(model.data, dtype=np.float32)
        bad = unphysical_pixels(data)
        unphysical = int(np.count_nonzero(bad & np.isfinite(data)))
        if unphysical:
            log.warning(
                "%s: %d pixel(s) with |SCI| > %.0e MJy/sr (not physical: artefacts) excluded from every "
                "statistic (masks, pedestal, VAR_RNOISE scale); their values are left as they are",
                name, unphysical, UNPHYSICAL_SURFACE_BRIGHTNESS,
            )
        if model.dq is not None and np.shape(model.dq) == data.shape:
            bad |= (np.asarray(model.dq) & _BAD_DQ) != 0
        if bad.all():
            log.warning("%s: no usable pixel (all NaN or DQ-flagged); pedestal not measured", name)
            return "SKIPPED"
        if np.count_nonzero(~bad) < MIN_USABLE_PIXELS:
            log.warning(
                "%s: only %d usable pixels (< %d); pedestal not measured, exposure left unchanged",
                name, np.count_nonzero(~bad), MIN_USABLE_PIXELS,
            )
            return "SKIPPED"

        source_mask, mask_label = None, "internal tiered masks"
        if self.mask_suffix:
            mask_path = find_mask_file(name, self.mask_suffix, self._mask_directories())
            if mask_path is not None:
                source_mask = read_mask_file(mask_path, data.shape)
                mask_label = f"file {mask_path}" + (" + internal tiers" if self.add_internal_masks else "")
        log.info("%s: source mask: %s", name, mask_label)

        has_rnoise = model.hasattr("var_rnoise") and np.shape(model.var_rnoise) == data.shape
        sky = measure_exposure_sky(
            data, bad, source_mask=source_mask, add_internal_masks=self.add_internal_masks, tiers=tiers,
            var_rnoise=model.var_rnoise if (self.rescale_rnoise and has_rnoise) else None,
            flatten_box=self.flatten_box, min_sky_fraction=self.min_sky_fraction,
            first_column=_first_column(model),
        )
        fit = sky.pedestal
        if not np.isfinite(fit.level):
            log.warning("%s: pedestal could not be measured (%s); exposure left unchanged", name, fit.message)
            return "SKIPPED"
        if fit.method != "gaussian_fit":
            log.warning("%s: pedestal from the %s fallback: %s", name, fit.method, fit.message)
        plane = sky.plane
        if plane is not None and plane.accepted_fraction < LOW_SKY_BLOCK_FRACTION:
            log.warning(
                "%s: only %.0f%% of the %d-px sky blocks are at the sky level: extended emission "
                "(e.g. a large galaxy's halo) may cover most of the detector and bias the pedestal high",
                name, 100.0 * plane.accepted_fraction, plane.box,
            )
        log.info(
            "%s: pedestal %.6g (%s, sigma %.4g, %d sky pixels = %.1f%% of the good ones)",
            name, fit.level, fit.method, fit.sigma, fit.npix, 100.0 * sky.sky.sum() / max(1, (~bad).sum()),
        )

        previous = model.meta.background.level if model.meta.background.subtracted else None
        total = fit.level + (float(previous) if previous is not None else 0.0)
        if previous is not None:
            log.info("%s: background %.6g was already subtracted; recorded level is now %.6g", name, previous, total)
        model.meta.background.level = float(total)
        model.meta.background.subtracted = True
        model.meta.background.method = "local"

        rescaled = False
        if self.rescale_rnoise:
            if not has_rnoise:
                log.warning("%s: no VAR_RNOISE array; nothing to rescale", name)
            elif np.isfinite(sky.rnoise_factor) and sky.rnoise_factor > 0:
                rescaled = True
                log.info(
                    "%s: VAR_RNOISE x %.4f (7x7-block sky variance %.4g, mean VAR_RNOISE was %.4g, %d blocks)",
                    name, sky.rnoise_factor, sky.sky_variance, sky.mean_rnoise, sky.nblocks,
                )
            else:
                log.warning(
                    "%s: VAR_RNOISE not rescaled: sky variance %.4g from %d blocks, mean VAR_RNOISE %.4g",
                    name, sky.sky_variance, sky.nblocks, sky.mean_rnoise,
                )

        row_share = _row_offset_share(sky)
        if row_share > UNREMOVED_STRIPING_SHARE:
            log.warning(
                "%s: 1/f row offsets add %.0f%% to the 7x7 sky variance (after CEERS-style striping removal "
                "typically < 10%%): the striping looks unremoved; the pedestal can then be off by up to ~0.2 sigma "
                "(simulated exposures); remove the 1/f striping first",
                name, 100.0 * row_share / (1.0 - row_share) if row_share < 1 else float("inf"),
            )

        model.meta.ceers_pedestal = {
            "level": float(fit.level),
            "method": fit.method,
            "fallback_reason": fit.message,
            "sigma": float(fit.sigma),
            "bin_width": float(fit.bin_width) if np.isfinite(fit.bin_width) else -1.0,
            "n_sky_pixels": int(fit.npix),
            "sky_selection": sky.sky_selection,
            "source_fraction": float(sky.source_mask[~bad].mean()),
            "mask": mask_label,
            "rnoise_rescaled": rescaled,
            "rnoise_scale": float(sky.rnoise_factor) if rescaled else 1.0,
            "sky_variance_7x7": float(sky.sky_variance) if np.isfinite(sky.sky_variance) else -1.0,
            "rnoise_mean_before": float(sky.mean_rnoise) if np.isfinite(sky.mean_rnoise) else -1.0,
            "n_blocks_7x7": int(sky.nblocks),
            "row_offset_fraction": float(row_share) if np.isfinite(row_share) else -1.0,
            "sky_block_fraction": float(plane.accepted_fraction) if plane is not None else -1.0,
            "gradient_x": float(plane.slope_x) if plane is not None else 0.0,
            "gradient_y": float(plane.slope_y) if plane is not None else 0.0,
        }

        root = exposure_root(name)
        if self.save_bkgsub:
            path = write_exposure_bkgsub(
                self._product_dir() / f"{root}_bkgsub.fits", data=data, background=sky.background,
                pedestal=fit.level, tier_bits=sky.tier_bits, source_mask=sky.source_mask, bad=bad,
                header_cards=[
                    ("FILENAME", fits_safe_text(f"{root}_bkgsub.fits"), "this file"),
                    ("INPUT", fits_safe_text(str(name))[:68], "exposure"),
                    ("PEDESTAL", float(fit.level), "subtracted pedestal"),
                    ("PEDMETH", fit.method, "pedestal method"),
                    ("RNSCALE", float(sky.rnoise_factor) if rescaled else 1.0, "VAR_RNOISE factor"),
                ],
            )
            log.info("%s: wrote %s", name, path)
        if self.save_plots:
            path = write_histogram_plot(self._product_dir() / f"{root}_pedestal.png", fit=fit, title=str(name))
            log.info("%s: wrote %s", name, path)
        # the arrays change last (the bkgsub product above shows the data before the
        # subtraction), in the model's own buffers: no second full-size array per exposure
        set_array_in_place(model, "data", (data - np.float32(fit.level)).astype(np.float32))
        if rescaled:
            rnoise = np.asarray(model.var_rnoise)
            set_array_in_place(model, "var_rnoise", (rnoise * np.float32(sky.rnoise_factor)).astype(np.float32))
        return "COMPLETE"


def _first_column(model):
    """Full-frame column (0-based) of the array's first column: SUBSTRT1 - 1 (0 when not recorded)."""
    xstart = getattr(model.meta.subarray, "xstart", None)
    return int(xstart) - 1 if isinstance(xstart, (int, np.integer)) and xstart >= 1 else 0


def _row_offset_share(sky):
    """Fraction of the 7x7 sky variance carried by the 1/f row offsets (NaN when not measured)."""
    if not (np.isfinite(sky.row_offset_variance) and sky.sky_variance > 0):
        return float("nan")
    return float(sky.row_offset_variance / sky.sky_variance)
