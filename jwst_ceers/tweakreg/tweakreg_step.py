"""The CatalogTweakReg step (alias ``ceers_tweakreg``): CEERS astrometric alignment.

Per exposure: a windowed-centroid source catalog (or the association member's
``tweakreg_catalog``). Per group (``group_by``; default: the dithers of one
detector in one visit and filter): a relative fit of the images to each other,
then one absolute fit of the group to ``abs_refcat``. Results go to a table
(``results_file``), aligned WCSs to ``<wcs_dir>/<exposure>_tweakreg.asdf``;
``use_saved_wcs`` re-applies those without fitting.
"""

import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
from jwst.stpipe.utilities import record_step_status

from jwst_ceers._step import CeersStep
from jwst_ceers.atomic_io import check_outputs_not_inputs, ensure_output_directory
from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.inputs import check_image_model, check_wcs, open_library
from jwst_ceers.parallel_exposures import map_exposures
from jwst_ceers.tweakreg.aligned_catalog import aligned_source_catalog, write_aligned_catalog
from jwst_ceers.tweakreg.alignment import AlignmentImage, FitParameters, align_groups, check_fit_parameters
from jwst_ceers.tweakreg.fit_results import FitRecord, write_results_table
from jwst_ceers.tweakreg.reference_catalog import load_reference_catalog
from jwst_ceers.tweakreg.saved_wcs import (
    check_solution_frame,
    exposure_root,
    fits_header_offset_mas,
    find_wcs_solution,
    load_wcs_solution,
    save_wcs_solution,
    solution_path,
)
from jwst_ceers.tweakreg.source_catalog import (
    artefact_regions_from_dq,
    exclusion_mask_from_dq,
    find_sources,
    read_source_catalog,
    spike_angles_from_wcs,
    write_source_catalog,
)

__all__ = ["CatalogTweakReg"]

log = logging.getLogger(__name__)

# a FITS/SIP header further than this from the applied gwcs is reported (milli-arcsec)
HEADER_TOLERANCE_MAS = 1.0


class CatalogTweakReg(CeersStep):
    """
    Align exposures in groups and each group to an absolute reference catalog.

    CEERS (Bagley et al. 2023, sec. 3.3.1) first aligns the dithers of each
    detector to each other (shift only), then each detector group to an HST
    catalog (rshift for SW, rscale for LW). Stock tweakreg fits all groups to
    the absolute catalog as one rigid body, which leaves per-detector offsets
    of tens of mas; here every group gets its own absolute solution (a shift
    by default, which measured more accurate than rshift/rscale per detector;
    ``abs_visit_fitgeometry`` adds one rotation/scale common to the visit).

    Input: an association, a list of models/files or a ModelLibrary. Returns a
    ModelLibrary with updated ``meta.wcs``, FITS/SIP ``meta.wcsinfo`` and
    ``meta.cal_step.ceers_tweakreg`` (COMPLETE, or SKIPPED for exposures that
    kept their WCS because their group could not be fitted).
    """

    class_alias = "ceers_tweakreg"

    spec = """
    abs_refcat = string(default='')  # Absolute reference catalog file (ECSV/FITS with RA/DEC[, MAG]); '' = relative alignment only
    abs_mag_range = float_list(min=2, max=2, default=None)  # Keep reference sources with MAG in [min, max] (needs a MAG column)
    group_by = option('detector', 'exposure', 'visit', default='detector')  # Relative-alignment group: one detector's dithers, one file, or a whole visit (per filter)
    use_saved_wcs = boolean(default=False)  # Apply <wcs_dir>/<exposure>_tweakreg.asdf solutions instead of fitting
    wcs_dir = string(default='')  # Directory of <exposure>_tweakreg.asdf WCS solutions ('' = do not save)
    results_file = string(default='')  # ECSV table of all fits, one row per fit ('' = do not write)
    aligned_catalog = string(default='')  # ECSV of the aligned sources (RA, DEC; dithers merged) to use as a later run's abs_refcat, e.g. LW first, then SW to it ('' = do not write)
    save_catalogs = boolean(default=False)  # Write each exposure's source catalog (<exposure>_cat.ecsv in output_dir)
    save_plots = boolean(default=False)  # Write a residual-vector PNG per group (<group>_tweakreg.png in output_dir)
    use_custom_catalogs = boolean(default=True)  # Use association members' tweakreg_catalog entries when present
    snr_threshold = float(min=0.1, default=5.0)  # Detection threshold in units of the RMS map
    npixels = integer(min=1, default=5)  # Minimum connected pixels above threshold
    kernel_fwhm = float(min=0, max=20, default=2.0)  # FWHM (pixels) of the Gaussian detection filter; 0 = none
    deblend = boolean(default=False)  # Deblend blended detections
    brightest = integer(min=0, default=1000)  # Keep the N brightest sources per exposure (0 = all)
    max_peak_fraction = float(min=0.05, max=1.0, default=0.7)  # Reject sources whose peak pixel holds more than this fraction of their flux (cosmic rays)
    reject_artefacts = boolean(default=True)  # Reject detections on saturated stars' halos and diffraction spikes and on snowball halos (from DQ SATURATED / large JUMP_DET regions)
    max_sharpness = float(min=0.1, max=1.0, default=0.9)  # Reject sources whose peak pixel exceeds its 4 neighbours' mean by more than this fraction (cosmic rays)
    edge_width = integer(min=0, max=200, default=8)  # Reject sources within this many pixels of the image edge
    flagged_radius = integer(min=0, max=50, default=2)  # Reject sources within this many pixels of a DQ-flagged (DO_NOT_USE) pixel
    bkg_boxsize = integer(min=8, default=128)  # Background mesh size in pixels
    flat_rms = boolean(default=False)  # Detect against one flat RMS (the background RMS, as CEERS) instead of the ERR array
    searchrad = float(min=0, default=0.5)  # Relative: search radius for a match (arcsec)
    separation = float(min=0, default=0.3)  # Relative: minimum object separation (arcsec)
    tolerance = float(min=0, default=0.1)  # Relative: matching tolerance (arcsec)
    use2dhist = boolean(default=True)  # Relative: use a 2-D histogram to find the initial offset
    refine_tolerance = float(min=0, default=0.0)  # Relative: matching tolerance of the re-matching passes around the fitted solution (arcsec; 0 = tolerance)
    refine_iterations = integer(min=0, max=20, default=5)  # Relative: re-match around the fitted solution and refit up to this many times, until it moves < 0.05 mas (0 = stock: one match around the 2-D histogram guess)
    fitgeometry = option('shift', 'rshift', 'rscale', 'general', default='shift')  # Relative: fitting geometry
    nclip = integer(min=0, default=3)  # Relative: number of clipping iterations
    sigma = float(min=0.1, default=3.0)  # Relative: clipping limit in units of the fit rms
    minobj = integer(min=1, default=10)  # Relative: minimum number of matched objects
    abs_searchrad = float(min=0, default=2.0)  # Absolute: search radius for a match (arcsec)
    abs_separation = float(min=0, default=0.3)  # Absolute: minimum object separation (arcsec)
    abs_tolerance = float(min=0, default=0.1)  # Absolute: matching tolerance (arcsec)
    abs_use2dhist = boolean(default=True)  # Absolute: use a 2-D histogram to find the initial offset
    abs_fitgeometry = option('shift', 'rshift', 'rscale', 'general', default='shift')  # Absolute: fitting geometry per group (shift: per-detector offsets are translations)
    abs_nclip = integer(min=0, default=3)  # Absolute: number of clipping iterations
    abs_sigma = float(min=0.1, default=3.0)  # Absolute: clipping limit in units of the fit rms
    abs_minobj = integer(min=1, default=10)  # Absolute: minimum number of matched objects per group
    abs_merge_radius = float(min=0, default=0.05)  # Absolute: average a source's detections in a group's dithers closer than this (arcsec; 0 = no merging)
    abs_refine_tolerance = float(min=0, default=0.0)  # Absolute: matching tolerance of the re-matching passes around the fitted solution (arcsec; 0 = abs_tolerance)
    abs_refine_iterations = integer(min=0, max=20, default=5)  # Absolute: re-match around the fitted solution and refit up to this many times, until it moves < 0.05 mas (0 = stock: one match around the 2-D histogram guess)
    abs_visit_fitgeometry = option('none', 'rshift', 'rscale', default='none')  # Absolute: one rotation (+scale) per visit and filter fitted to all its groups ('none' = per-group geometry only)
    sip_approx = boolean(default=True)  # Update the FITS WCS + SIP approximation in meta.wcsinfo
    sip_max_pix_error = float(min=0, default=0.01)  # SIP: maximum forward error (pixels)
    sip_degree = integer(min=1, max=6, default=None)  # SIP: forward degree (None = lowest that fits)
    sip_max_inv_pix_error = float(min=0, default=0.01)  # SIP: maximum inverse error (pixels)
    sip_inv_degree = integer(min=1, max=6, default=None)  # SIP: inverse degree (None = lowest that fits)
    sip_npoints = integer(min=3, default=12)  # SIP: sample points per axis
    in_memory = boolean(default=True)  # Keep all exposures in memory (False: ModelLibrary on disk)
    threads = integer(min=1, max=64, default=2)  # Exposures whose source catalogs are built at once (threads); results do not depend on it
    """  # noqa: E501

    reference_file_types: list = []

    # ------------------------------------------------------------------ process
    def process(self, input_data):
        """Align the exposures; see the class docstring."""
        output = self.prepare_output(input_data, open_models=False)
        library = open_library(output, on_disk=not self.in_memory)
        if len(library) == 0:
            raise CeersParameterError("ceers_tweakreg: the input holds no exposure")
        self._check_output_folders(library)

        if self.use_saved_wcs:
            records = self._apply_saved_solutions(library)
        else:
            records = self._fit_and_apply(library)

        if self.results_file:
            path = write_results_table(records, self.results_file)
            log.info("Wrote alignment results table %s (%d fits)", path, len(records))
        return library

    def _check_output_folders(self, library):
        """Create ``wcs_dir`` and the folder of ``results_file`` now, before any catalog or fit."""
        inputs = [self.abs_refcat.strip()] if self.abs_refcat else []
        asn_dir = getattr(library, "asn_dir", None)
        inputs += [Path(asn_dir or ".") / str(m.get("expname", "")) for m in library.asn["products"][0]["members"]]
        if self.wcs_dir and not self.use_saved_wcs:
            ensure_output_directory(self.wcs_dir, what="wcs_dir")
            _check_writable(Path(self.wcs_dir), what="wcs_dir")
        if self.results_file:
            _check_output_file(Path(self.results_file), inputs, what="results_file", example="fits.ecsv")
        if self.aligned_catalog and not self.use_saved_wcs:
            _check_output_file(Path(self.aligned_catalog), inputs, what="aligned_catalog", example="lw_sources.ecsv")

    # ------------------------------------------------------------ saved WCS
    def _apply_saved_solutions(self, library):
        """Apply ``<wcs_dir>`` solutions; exposures without one are SKIPPED with a warning."""
        if not self.wcs_dir:
            raise CeersParameterError("ceers_tweakreg: use_saved_wcs=True needs wcs_dir")
        wcs_dir = Path(self.wcs_dir)
        if not wcs_dir.is_dir():
            raise CeersFileError(f"wcs_dir {wcs_dir}: directory of saved WCS solutions does not exist")
        asn = getattr(library, "asn", None) or {}
        asn_ids = [str(asn["asn_id"])] if asn.get("asn_id") else []
        # find every file first: a wrong wcs_dir fails before any model is touched
        found = []
        for filename in _member_filenames(library):
            path, looked_for = find_wcs_solution(wcs_dir, filename, asn_ids=asn_ids)
            found.append((path, looked_for))
        if all(path is None for path, _ in found):
            first = found[0][1][0]
            raise CeersFileError(
                f"{first}: saved WCS solution does not exist, nor any for the other {len(found) - 1} exposure(s) "
                f"(looked for {' and '.join(Path(p).name for p in found[0][1])} in {wcs_dir}); "
                "use_saved_wcs=True needs them"
            )
        records = []
        with library:
            for index, model in enumerate(library):
                name = exposure_root(model.meta.filename or f"exposure{index}")
                path, looked_for = found[index]
                if path is None:
                    log.warning(
                        "%s: no saved WCS solution (looked for %s); exposure SKIPPED, its WCS left unchanged",
                        name, ", ".join(looked_for),
                    )
                    record_step_status(model, self.class_alias, status="SKIPPED")
                    records.append(FitRecord.without_fit("saved", "", name, f"NO SOLUTION: {looked_for[0]}"))
                    library.shelve(model, index, modify=True)
                    continue
                try:
                    wcs, wcsinfo, provenance = _read_solution(path)
                    check_solution_frame(wcs, model.data.shape, solution=path, exposure=model.meta.filename or name)
                except BaseException:
                    library.shelve(model, index, modify=False)
                    raise
                model.meta.wcs = wcs
                self._restore_wcsinfo(model, wcs, wcsinfo, name)
                _update_s_region(model)
                offset = fits_header_offset_mas(model.meta.wcsinfo.instance, wcs, model.data.shape)
                if offset > HEADER_TOLERANCE_MAS:
                    log.warning(
                        "%s: the FITS/SIP header (meta.wcsinfo) differs from the applied gwcs by up to %.1f mas "
                        "(sip_approx=%s); tools reading the header (DS9, astropy) are off by that much",
                        name, offset, self.sip_approx,
                    )
                status = "COMPLETE" if provenance.get("status", "COMPLETE") == "COMPLETE" else "SKIPPED"
                record_step_status(model, self.class_alias, status=status)
                records.append(FitRecord.without_fit("saved", provenance.get("group", ""), name, f"APPLIED: {path}"))
                log.info("%s: applied saved WCS solution %s", name, path)
                library.shelve(model, index, modify=True)
        return records

    def _restore_wcsinfo(self, model, wcs, saved, name):
        """
        meta.wcsinfo for an applied solution: the saved one if its FITS/SIP header matches
        the gwcs (files written here), else the saved pointing keys plus a FITS/SIP header
        recomputed from the gwcs (CEERS's files carry the pre-alignment header, 200-400 mas off).
        """
        merged = {**model.meta.wcsinfo.instance, **saved}
        header_ok = saved.get("crval1") is not None and (
            fits_header_offset_mas(merged, wcs, model.data.shape) <= HEADER_TOLERANCE_MAS
        )
        if header_ok:
            model.meta.wcsinfo.instance.clear()
            model.meta.wcsinfo.instance.update(merged)
            return
        model.meta.wcsinfo.instance.update(_pointing_wcsinfo(saved))
        if self.sip_approx:
            log.info("%s: FITS/SIP header recomputed from the saved gwcs", name)
            _update_fits_wcsinfo(model, self)

    # --------------------------------------------------------------- fitting
    def _fit_parameters(self):
        relative = FitParameters(
            searchrad=self.searchrad,
            separation=self.separation,
            tolerance=self.tolerance,
            use2dhist=self.use2dhist,
            fitgeometry=self.fitgeometry,
            nclip=self.nclip,
            sigma=self.sigma,
            minobj=self.minobj,
            refine_tolerance=self.refine_tolerance,
            refine_iterations=self.refine_iterations,
        )
        absolute = FitParameters(
            searchrad=self.abs_searchrad,
            separation=self.abs_separation,
            tolerance=self.abs_tolerance,
            use2dhist=self.abs_use2dhist,
            fitgeometry=self.abs_fitgeometry,
            nclip=self.abs_nclip,
            sigma=self.abs_sigma,
            minobj=self.abs_minobj,
            refine_tolerance=self.abs_refine_tolerance,
            refine_iterations=self.abs_refine_iterations,
            merge_radius=self.abs_merge_radius,
        )
        check_fit_parameters(relative)
        check_fit_parameters(absolute, prefix="abs_")
        return relative, absolute

    def _fit_and_apply(self, library):
        relative, absolute = self._fit_parameters()
        refcat = None
        if self.abs_refcat and self.abs_refcat.strip():
            refcat = load_reference_catalog(self.abs_refcat.strip(), mag_range=self.abs_mag_range)
        member_catalogs = _association_catalogs(library) if self.use_custom_catalogs else {}

        images = map_exposures(  # catalogs of several exposures at once (same catalogs as one by one)
            library, lambda model, index: self._alignment_image(model, index, member_catalogs),
            threads=self.threads, modify=False,
        )

        groups = defaultdict(list)
        for index, image in enumerate(images):
            groups[image.group].append(index)
        log.info("Aligning %d exposures in %d group(s) (group_by=%s)", len(images), len(groups), self.group_by)
        if refcat is None and all(len(members) < 2 for members in groups.values()):
            log.warning(
                "ceers_tweakreg: no abs_refcat and no group with two exposures: nothing to align "
                "(all exposures SKIPPED)"
            )

        outcomes = [None] * len(images)
        aligned_groups, records = align_groups(
            {group: [images[i] for i in members] for group, members in groups.items()},
            refcat=refcat,
            relative=relative,
            absolute=absolute,
            visit_fitgeometry=self.abs_visit_fitgeometry,
        )
        for record in records:
            log.info(
                "%s fit %s [%s]: nmatch=%d rmse=%.2f mas shift=(%.2f, %.2f) mas rot=%.5f deg: %s",
                record.kind, record.image, record.group, record.nmatch, 1000 * record.rmse,
                1000 * record.xshift, 1000 * record.yshift, record.rotation, record.status,
            )
        for group, members in groups.items():
            group_images = [images[i] for i in members]
            aligned = aligned_groups[group]
            for i, result in zip(members, aligned, strict=True):
                outcomes[i] = result
            if self.save_plots and refcat is not None:
                self._plot_group(group, group_images, aligned, refcat)

        with library:
            for index, model in enumerate(library):
                self._apply_outcome(model, outcomes[index], images[index])
                library.shelve(model, index, modify=True)
        if self.aligned_catalog:
            self._write_aligned_catalog(images, outcomes, absolute_fit=refcat is not None)
        return records

    def _write_aligned_catalog(self, images, outcomes, *, absolute_fit):
        if not absolute_fit:
            log.warning(
                "aligned_catalog %s: no abs_refcat, so its positions are only as absolute as the "
                "headers (relative alignment only)", self.aligned_catalog,
            )
        wcses = [outcome.wcs for outcome in outcomes]
        table = aligned_source_catalog(
            [image.catalog for image in images], wcses,
            merge_radius_arcsec=self.abs_merge_radius or self.tolerance / 2.0,
        )
        n_aligned = sum(wcs is not None for wcs in wcses)
        if n_aligned < len(wcses):
            log.warning(
                "aligned_catalog %s: %d of %d exposures were not aligned and are left out",
                self.aligned_catalog, len(wcses) - n_aligned, len(wcses),
            )
        path = write_aligned_catalog(table, Path(self.aligned_catalog), abs_refcat=self.abs_refcat)
        log.info("Wrote %d aligned sources of %d exposures to %s", len(table), n_aligned, path)

    def _alignment_image(self, model, index, member_catalogs):
        check_image_model(model, what=f"exposure {index}")
        check_wcs(model, what=f"exposure {index}")
        name = exposure_root(model.meta.filename or f"exposure{index}")
        catalog_path = member_catalogs.get(model.meta.filename)
        if catalog_path is None and self.use_custom_catalogs:
            own = getattr(model.meta, "tweakreg_catalog", None)
            if own and own.strip() and Path(own).is_file():
                catalog_path = own
        if catalog_path:
            catalog = read_source_catalog(catalog_path)
            log.info("%s: %d sources from catalog %s", name, len(catalog), catalog_path)
        else:
            catalog = self._build_catalog(model, name)
        catalog.meta["name"] = name
        wcsinfo = model.meta.wcsinfo
        return AlignmentImage(
            name=name,
            group=self._group_name(model, name),
            visit=self._group_name(model, name, level="visit"),
            wcs=model.meta.wcs,
            wcsinfo={"v2_ref": wcsinfo.v2_ref, "v3_ref": wcsinfo.v3_ref, "roll_ref": wcsinfo.roll_ref},
            catalog=catalog,
        )

    def _build_catalog(self, model, name):
        excluded = exclusion_mask_from_dq(model.dq) if model.dq is not None and model.dq.shape == model.data.shape else None
        rms = None
        if not self.flat_rms and model.err is not None and model.err.shape == model.data.shape:
            rms = model.err
        stars = snowballs = ()
        spike_angles = None
        if self.reject_artefacts and excluded is not None:
            stars, snowballs = artefact_regions_from_dq(model.dq)
            spike_angles = spike_angles_from_wcs(model.meta.wcs, model.data.shape) if len(stars) else None
        catalog = find_sources(
            model.data,
            rms=rms,
            excluded=excluded,
            snr_threshold=self.snr_threshold,
            npixels=self.npixels,
            kernel_fwhm=self.kernel_fwhm,
            deblend=self.deblend,
            brightest=self.brightest,
            edge_width=self.edge_width,
            flagged_radius=self.flagged_radius,
            max_peak_fraction=self.max_peak_fraction,
            max_sharpness=self.max_sharpness,
            bkg_boxsize=self.bkg_boxsize,
            stars=stars,
            snowballs=snowballs,
            spike_angles=spike_angles,
        )
        log.info(
            "%s: %d sources kept of %d detected (rejected: %s)",
            name, len(catalog), catalog.meta.get("n_detected", 0), catalog.meta.get("rejected", {}),
        )
        if self.save_catalogs:
            path = write_source_catalog(catalog, self._output_path(f"{name}_cat.ecsv"))
            log.info("%s: wrote source catalog %s", name, path)
        return catalog

    def _group_name(self, model, name, level=None):
        level = level or self.group_by
        if level == "exposure":
            return name
        observation = model.meta.observation
        visit = "jw{}{}{}".format(
            observation.program_number or "", observation.observation_number or "", observation.visit_number or ""
        )
        if visit == "jw":
            visit = str(getattr(model.meta, "group_id", None) or "visit")
        instrument = model.meta.instrument
        band = "-".join(b for b in (instrument.filter, instrument.pupil) if b and b.upper() != "CLEAR") or "nofilter"
        if level == "visit":
            return f"{visit}_{band}"
        return f"{visit}_{band}_{(instrument.detector or 'nodetector').lower()}"

    def _apply_outcome(self, model, outcome, image):
        provenance = {"group": outcome.group, "status": outcome.status, "abs_refcat": str(self.abs_refcat)}
        if outcome.wcs is not None:
            wcs = outcome.wcs
            if self.abs_refcat:
                wcs.name = f"FIT-LVL3-{Path(self.abs_refcat).name}"
            model.meta.wcs = wcs
            _update_s_region(model)
            if self.sip_approx:
                _update_fits_wcsinfo(model, self)
            record_step_status(model, self.class_alias, status="COMPLETE")
        else:
            log.warning("%s: WCS left unchanged (%s)", image.name, outcome.reason)
            record_step_status(model, self.class_alias, status="SKIPPED")
            provenance["reason"] = outcome.reason
        if self.wcs_dir:
            path = solution_path(self.wcs_dir, image.name)
            save_wcs_solution(path, model.meta.wcs, model.meta.wcsinfo.instance, provenance=provenance)
            log.info("%s: saved WCS solution %s", image.name, path)

    def _plot_group(self, group, group_images, aligned, refcat):
        from jwst_ceers.tweakreg.diagnostics import match_residuals, plot_residual_vectors

        ra_before, dec_before, ra_after, dec_after = [], [], [], []
        for image, result in zip(group_images, aligned, strict=True):
            if len(image.catalog) == 0:
                continue
            x = np.asarray(image.catalog["x"])
            y = np.asarray(image.catalog["y"])
            ra, dec = image.wcs(x, y)
            ra_before.append(ra)
            dec_before.append(dec)
            ra, dec = (result.wcs or image.wcs)(x, y)
            ra_after.append(ra)
            dec_after.append(dec)
        if not ra_before:
            return
        ra_b, dec_b = np.concatenate(ra_before), np.concatenate(dec_before)
        center = (float(np.nanmean(ra_b)), float(np.nanmean(dec_b)))
        tolerance = max(self.abs_tolerance, 0.05)
        # "before" matched with the search radius: the initial offset may exceed the tolerance
        before = match_residuals(ra_b, dec_b, refcat["RA"], refcat["DEC"], tolerance=self.abs_searchrad, center=center)
        after = match_residuals(
            np.concatenate(ra_after), np.concatenate(dec_after), refcat["RA"], refcat["DEC"],
            tolerance=tolerance, center=center,
        )
        path = plot_residual_vectors(self._output_path(f"{group}_tweakreg.png"), before, after, title=group)
        log.info("Wrote residual plot %s", path)

    def _output_path(self, filename):
        directory = Path(self.output_dir) if self.output_dir else Path.cwd()
        return directory / filename


def _read_solution(path):
    """Saved WCS, wcsinfo and provenance of one exposure (CeersFileError if missing)."""
    import asdf

    wcs, wcsinfo = load_wcs_solution(path)
    with asdf.open(path, lazy_load=False, memmap=False) as handle:
        provenance = dict(handle.tree.get("provenance", {}))
    return wcs, wcsinfo, provenance


# wcsinfo keys of a saved solution that describe the pointing, not its FITS approximation
_POINTING_KEYS = ("v2_ref", "v3_ref", "vparity", "v3yangle", "ra_ref", "dec_ref", "roll_ref", "velosys")


def _check_output_file(path, inputs, *, what, example):
    """Create the folder of output file ``path``; CeersFileError if it is a folder, not writable, or an input."""
    if path.is_dir():
        raise CeersFileError(f"{what} {path}: is a directory; give a file name (e.g. {example})")
    folder = ensure_output_directory(path.parent if str(path.parent) else Path("."), what=f"{what} folder")
    _check_writable(folder, what=f"{what} {path}: folder")
    check_outputs_not_inputs([path], inputs, what=what)


def _check_writable(folder, *, what):
    """CeersFileError unless files can be created in ``folder``."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CeersFileError(f"{what} {folder}: not writable")


def _pointing_wcsinfo(wcsinfo):
    """The pointing keys of a saved ``wcsinfo`` (the FITS/SIP keys are recomputed from the gwcs)."""
    return {key: wcsinfo[key] for key in _POINTING_KEYS if wcsinfo.get(key) is not None}


def _member_filenames(library):
    """File name of every exposure of ``library``, in order, from its association (no model is opened)."""
    members = library.asn["products"][0]["members"]
    return [Path(str(member.get("expname") or f"exposure{index}")).name for index, member in enumerate(members)]


def _association_catalogs(library):
    """``{expname: catalog path}`` from the association members' ``tweakreg_catalog``."""
    catalogs = {}
    asn = getattr(library, "asn", None)
    asn_dir = library.asn_dir if getattr(library, "asn_dir", None) is not None else None
    if not asn or asn_dir is None:
        return catalogs
    for product in asn.get("products", []):
        for member in product.get("members", []):
            entry = member.get("tweakreg_catalog")
            if entry and str(entry).strip():
                catalogs[Path(member["expname"]).name] = str(Path(asn_dir) / str(entry).strip())
    return catalogs


def _update_s_region(model):
    from jwst.assign_wcs.util import update_s_region_imaging

    try:
        update_s_region_imaging(model)
    except Exception as exc:  # footprint failures must not lose a good alignment
        log.warning("%s: could not update S_REGION (%s)", model.meta.filename, exc)


def _update_fits_wcsinfo(model, step):
    from jwst.assign_wcs.util import update_fits_wcsinfo

    try:
        update_fits_wcsinfo(
            model,
            max_pix_error=step.sip_max_pix_error,
            degree=step.sip_degree,
            max_inv_pix_error=step.sip_max_inv_pix_error,
            inv_degree=step.sip_inv_degree,
            npoints=step.sip_npoints,
            crpix=None,
        )
    except (ValueError, RuntimeError) as exc:
        log.warning("%s: FITS SIP approximation of the aligned WCS failed: %s", model.meta.filename, exc)
