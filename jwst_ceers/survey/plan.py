"""Turn a survey configuration into the product graph the engine runs.

Per pointing: one Image3 product per filter (``<pointing>/<FILTER>``, product
name ``<pointing>_<filter>``). With an ``abs_refcat`` and ``align_sw_to_lw`` on
(and the default Image3 task), the pointing's LW filter with the most exposures is
aligned to the catalogue first and writes its aligned sources
(``<product>_aligned_sources.ecsv``); its SW filters depend on it and are aligned
to those sources (to the catalogue when the LW product could not be made or its
sources miss an SW exposure). Then, when ``mosaic_background`` is on, one
MosaicBackground product (``<pointing>/mosaic_bkg``) that depends on all of them;
it is made from the filters that could be made when others could not be from
their data (an empty mosaic), and says which it went without.
Everything goes to ``<output_root>/<pointing>/``.
"""

import contextlib
import copy
from pathlib import Path

from jwst_ceers.survey.config import DEFAULT_IMAGE3_TASK  # the task that knows the alignment parameters
from jwst_ceers.survey.graph import ProductTask

__all__ = [
    "ALIGNED_SOURCES_SUFFIX",
    "MOSAIC_BKG_LABEL",
    "STEP_PARAMETER_FILE",
    "image3_product_name",
    "plan_survey",
    "sw_alignment_filter",
]

MOSAIC_BKG_LABEL = "mosaic_bkg"
STEP_PARAMETER_FILE = "step_parameter_file:"  # input role prefix, followed by the step name
ALIGNED_SOURCES_SUFFIX = "_aligned_sources.ecsv"  # the LW product's aligned sources, the SW products' abs_refcat


def image3_product_name(pointing, filt):
    """Product name (file stem of ``<name>_i2d.fits``) of one pointing and filter."""
    return f"{pointing}_{filt.lower()}"


def _merge(base, override):
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _bytes_of(paths):
    """Total size of the files (a proxy for the work of an Image3 product)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += Path(path).stat().st_size
    return float(total)


def _mosaic_bytes(grid, n_mosaics):
    """Bytes of the SCI arrays of ``n_mosaics`` float32 mosaics on the grid (0 if unknown)."""
    shape = (grid or {}).get("output_shape")
    if not shape:
        return 0.0
    return float(4 * int(shape[0]) * int(shape[1]) * n_mosaics)


def sw_alignment_filter(config, pointing):
    """
    The LW filter a pointing's SW filters are aligned to, or None.

    Only with ``align_sw_to_lw``, an absolute reference catalogue, the default Image3
    task, and both SW and LW filters in the pointing. The LW filter with the most
    exposures (ties: the first by name) is chosen: it covers the SW detectors best.
    """
    refcat = pointing.abs_refcat or config.abs_refcat
    if not config.align_sw_to_lw or refcat is None or config.image3_task != DEFAULT_IMAGE3_TASK:
        return None
    filters = list(pointing.members_by_filter)
    long_wave = [f for f in filters if f in pointing.long_wavelength_filters]
    if not long_wave or len(long_wave) == len(filters):
        return None
    return min(long_wave, key=lambda f: (-len(pointing.members_by_filter[f]), f))


def plan_survey(config):
    """
    Build the product graph of a survey.

    Parameters
    ----------
    config : SurveyConfig
        A validated configuration (:func:`jwst_ceers.survey.config.load_survey_config`).

    Returns
    -------
    list of ProductTask
        Image3 products first, each pointing's MosaicBackground after its filters.
    """
    tasks = []
    # how to run, not what to make: a memory budget never remakes a product
    run_options = {} if config.memory_budget_gb is None else {"memory_budget_gb": config.memory_budget_gb}
    for pointing in config.pointings:
        output_dir = str(config.output_root / pointing.name)
        image3_keys = []
        anchor = sw_alignment_filter(config, pointing)
        for filt, members in pointing.members_by_filter.items():
            per_filter = config.image3_filters.get(filt, {})
            steps = _merge(config.image3_steps, per_filter.get("steps", {}))
            if pointing.grid:
                steps = _merge(steps, {"resample": pointing.grid})
            parameter_file = per_filter.get("parameter_file") or config.image3_parameter_file
            inputs = {"members": [str(p) for p in members]}
            for step, pars in steps.items():  # per-step parameter files are inputs (content-hashed)
                if "parameter_file" in pars:
                    inputs[f"{STEP_PARAMETER_FILE}{step}"] = [pars.pop("parameter_file")]
            refcat = pointing.abs_refcat or config.abs_refcat
            if refcat is not None:
                inputs["abs_refcat"] = [str(refcat)]
            if parameter_file is not None:
                inputs["parameter_file"] = [str(parameter_file)]
            name = image3_product_name(pointing.name, filt)
            key = f"{pointing.name}/{filt}"
            params = {"product_name": name, "filter": filt, "steps": steps}
            depends = ()
            if anchor is not None and filt == anchor:
                params["write_aligned_sources"] = True
            elif anchor is not None and filt not in pointing.long_wavelength_filters:
                depends = (f"{pointing.name}/{anchor}",)
                params["aligned_sources_from"] = depends[0]
            tasks.append(
                ProductTask(
                    key=key,
                    pointing=pointing.name,
                    label=filt,
                    name=name,
                    function=config.image3_task,
                    output_dir=output_dir,
                    inputs=inputs,
                    params=params,
                    depends=depends,
                    cost=_bytes_of(members),
                    run_options=run_options,
                    # SW: an LW product that could not be made from its data leaves the reference catalogue
                    partial_upstream=bool(depends),
                )
            )
            image3_keys.append(key)
        if config.mosaic_background and image3_keys:
            inputs = {}
            if pointing.hst_mosaics:
                inputs["hst_mosaics"] = [str(p) for p in pointing.hst_mosaics]
            if pointing.edit_regions:
                inputs["edit_regions"] = [str(p) for p in pointing.edit_regions]
            if config.mosaic_bkg_parameter_file is not None:
                inputs["parameter_file"] = [str(config.mosaic_bkg_parameter_file)]
            tasks.append(
                ProductTask(
                    key=f"{pointing.name}/{MOSAIC_BKG_LABEL}",
                    pointing=pointing.name,
                    label=MOSAIC_BKG_LABEL,
                    name=f"{pointing.name}_{MOSAIC_BKG_LABEL}",
                    function=config.mosaic_bkg_task,
                    output_dir=output_dir,
                    inputs=inputs,
                    params={"pointing": pointing.name, "params": copy.deepcopy(config.mosaic_bkg_params)},
                    depends=tuple(image3_keys),
                    cost=_mosaic_bytes(pointing.grid, len(image3_keys)),
                    run_options=run_options,
                    # an empty filter (CeersDataError) must not cost the others their background
                    partial_upstream=True,
                )
            )
    return tasks
