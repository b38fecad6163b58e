"""Task functions the survey runs (see :mod:`jwst_ceers.survey.execution` for the contract).

- :func:`image3_ceers`: one (pointing, filter) association through ``Image3Ceers``.
- :func:`mosaic_background`: one pointing's mosaics through ``MosaicBackground``.
- :func:`stock_image3` and :func:`stock_mosaic_background`: the same products made
  with stock jwst steps (outlier detection + resample) and a photutils 2-D
  background. They do real work of a similar shape and are used by the survey
  benchmark and as a fallback; they are not the CEERS reduction.

Every function writes only into ``output_dir`` (the engine's staging folder). Steps
run through :func:`run_step`: stpipe's ``Step.call`` without asking CRDS for parameter
references (the survey passes every parameter explicitly) and without stpipe's own
log handlers (the engine captures the product's log), so no process-wide setting is
changed. An Image3 product whose mosaic has no finite pixel is refused
(CeersDataError), so it is never published as done.
"""

import copy
import json
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from jwst_ceers.atomic_io import write_model_atomic, write_text_atomic
from jwst_ceers.errors import CeersDataError
from jwst_ceers.survey.plan import ALIGNED_SOURCES_SUFFIX, STEP_PARAMETER_FILE
from jwst_ceers.tweakreg.aligned_catalog import exposures_short_of_sources
from jwst_ceers.survey.worker_process import worker_memory_limit_gb, worker_threads

__all__ = [
    "WORKER_MEMORY_FRACTION",
    "check_mosaic_not_empty",
    "image3_ceers",
    "memory_budget_gb",
    "mosaic_background",
    "prepare_worker",
    "run_step",
    "stock_image3",
    "stock_mosaic_background",
    "worker_threads",
    "write_product_association",
]

# Share of a dask worker's memory limit given to its product as memory budget: dask
# pauses a worker at 80% of its limit and kills it at 95%, and the worker itself uses some.
WORKER_MEMORY_FRACTION = 0.7


def run_step(step_class, input_data, **parameters):
    """
    Run a step as ``step_class.call(input_data, **parameters)`` would, process-wide settings untouched.

    Unlike ``Step.call`` it asks CRDS for no parameter reference (no need for
    ``STPIPE_DISABLE_CRDS_STEPPARS``) and adds no log handler: the records propagate
    to the product's log.
    """
    config, config_file = step_class.build_config(None, **parameters)
    config.pop("class", None)
    step = step_class.from_config_section(config, name=config.get("name"), config_file=config_file)
    return step.run(input_data)


#: MosaicBackground's smallest ``memory_budget_gb``: its spec's minimum (tests/test_survey_memory_budget.py checks they agree).
_MOSAIC_BKG_MIN_BUDGET_GB = 0.5


def memory_budget_gb(run_options=None):
    """
    Memory budget of one product, GB: the configured one, else a share of the worker's limit.

    Returns
    -------
    float
        ``run_options["memory_budget_gb"]`` when given; otherwise
        ``WORKER_MEMORY_FRACTION`` x the dask worker's memory limit per thread; 0
        (no limit) outside a worker with a limit.
    """
    configured = (run_options or {}).get("memory_budget_gb")
    if configured is not None:
        return float(configured)
    limit = worker_memory_limit_gb()
    return 0.0 if limit is None else round(WORKER_MEMORY_FRACTION * limit, 2)


def check_mosaic_not_empty(path, *, rows=256):
    """
    Raise CeersDataError when the SCI array of the mosaic at ``path`` has no finite pixel.

    Reads the array by blocks of ``rows`` rows and stops at the first finite pixel.
    """
    with fits.open(path, memmap=True) as hdul:
        hdu = hdul["SCI"] if "SCI" in hdul else hdul[0]
        data = hdu.data
        if data is not None:
            for start in range(0, data.shape[0], rows):
                if np.isfinite(data[start : start + rows]).any():
                    return
    raise CeersDataError(
        f"{Path(path).name}: the mosaic has no finite pixel (empty mosaic: are all members NaN or flagged?)"
    )


def write_product_association(members, *, product_name, output_dir):
    """
    Write the Level-3 association of one (pointing, band) product.

    Uses :func:`jwst_ceers.associations.build_association` (as ``jwst-ceers asn``),
    with member names made absolute so that the association stays valid when
    the engine moves it from its staging folder into the pointing folder.

    Returns
    -------
    Path
        ``<output_dir>/<product_name>_asn.json``.
    """
    from jwst_ceers.associations import AssociationGroup, build_association, read_exposure_info

    output_dir = Path(output_dir)
    exposures = sorted((read_exposure_info(p) for p in members), key=lambda e: e.path.name)
    bands = {e.band for e in exposures}
    if len(bands) != 1:
        raise CeersDataError(f"{product_name}: members of several bands {sorted(bands)}")
    group = AssociationGroup(exposures[0].pointing_id, exposures[0].band, tuple(exposures))
    association = build_association(group, product_name, asn_dir=output_dir)
    for member in association["products"][0]["members"]:
        for field in ("expname", "tweakreg_catalog"):
            if field in member:
                member[field] = str((output_dir / member[field]).resolve())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*path information.*")
        _, text = association.dump(format="json")
    return write_text_atomic(text, output_dir / f"{product_name}_asn.json")


def _steps_with_files(params, inputs):
    """The ``steps`` argument of Image3Ceers: parameters plus refcat and per-step parameter files."""
    steps = copy.deepcopy(params.get("steps", {}))
    for role, paths in inputs.items():
        if role.startswith(STEP_PARAMETER_FILE):
            steps.setdefault(role.removeprefix(STEP_PARAMETER_FILE), {})["config_file"] = paths[0]
    if inputs.get("abs_refcat"):
        steps.setdefault("tweakreg", {})["abs_refcat"] = inputs["abs_refcat"][0]
    return steps


def _align_to_upstream_sources(steps, *, params, inputs, upstream, output_dir):
    """
    Point ``steps["tweakreg"]`` at the LW aligned sources (SW) or make it write them (LW).

    An SW product is aligned to the sources of ``params["aligned_sources_from"]`` when
    that product wrote them and they fall on every member (else to ``abs_refcat``, said
    in the log with the reason); the chosen LW product gets ``aligned_catalog``.
    """
    tweakreg = steps.setdefault("tweakreg", {})
    if params.get("write_aligned_sources"):
        tweakreg["aligned_catalog"] = str(Path(output_dir) / f"{params['product_name']}{ALIGNED_SOURCES_SUFFIX}")
    source = params.get("aligned_sources_from")
    if not source:
        return
    catalogs = [p for p in (upstream or {}).get(source, []) if p.endswith(ALIGNED_SOURCES_SUFFIX)]
    fallback = f"aligned to the reference catalogue {tweakreg.get('abs_refcat')}"
    if not catalogs:
        print(f"jwst_ceers survey: {source} wrote no aligned sources (not made); {fallback}")
        return
    short = exposures_short_of_sources(catalogs[0], inputs["members"])
    if short:
        name, count = short[0]
        print(
            f"jwst_ceers survey: only {count} of the aligned sources of {source} fall on {name} "
            f"({len(short)} member(s) short); {fallback}"
        )
        return
    tweakreg["abs_refcat"] = catalogs[0]
    print(f"jwst_ceers survey: aligned to the LW aligned sources {Path(catalogs[0]).name} of {source}")


def prepare_worker():
    """Import jwst and the steps the task functions use (called once per dask worker)."""
    import jwst.outlier_detection  # noqa: F401
    import jwst.resample  # noqa: F401

    import jwst_ceers.mosaic_bkg.mosaic_bkg_step  # noqa: F401
    import jwst_ceers.pipeline.image3_ceers  # noqa: F401


def _require(path, what):
    if not Path(path).is_file():
        raise CeersDataError(f"{what} did not write {Path(path).name}")
    return path


def image3_ceers(*, inputs, upstream, output_dir, name, params, run_options=None):
    """
    Make ``<product>_i2d.fits`` of one (pointing, band) with ``Image3Ceers``.

    ``inputs``: ``members`` (cal files), optional ``abs_refcat``,
    ``parameter_file`` and ``step_parameter_file:<step>``; ``params``: ``product_name`` and ``steps`` (per-step
    parameters, the pointing grid already in ``steps.resample``), optional ``write_aligned_sources`` /
    ``aligned_sources_from`` (LW first, then SW: see :mod:`jwst_ceers.survey.plan`); ``run_options``: optional
    ``memory_budget_gb`` (see :func:`memory_budget_gb`), given to Image3Ceers' parameter of that name.
    """
    from jwst_ceers.pipeline.image3_ceers import Image3Ceers  # imports jwst: only where products are made

    asn = write_product_association(inputs["members"], product_name=params["product_name"], output_dir=output_dir)
    steps = _steps_with_files(params, inputs)
    _align_to_upstream_sources(steps, params=params, inputs=inputs, upstream=upstream, output_dir=output_dir)
    kwargs = {"output_dir": output_dir, "save_results": True, "steps": steps}
    if inputs.get("parameter_file"):
        kwargs["config_file"] = inputs["parameter_file"][0]
    budget = memory_budget_gb(run_options)
    if "memory_budget_gb" in Image3Ceers.load_spec_file():
        kwargs["memory_budget_gb"] = budget
        print(f"jwst_ceers survey: memory budget of {name}: {budget:g} GB (0: no limit)")
    run_step(Image3Ceers, str(asn), **kwargs)
    i2d = _require(Path(output_dir) / f"{params['product_name']}_i2d.fits", "Image3Ceers")
    check_mosaic_not_empty(i2d)


def _upstream_mosaics(upstream):
    return sorted(p for paths in upstream.values() for p in paths if p.endswith("_i2d.fits"))


def mosaic_background(*, inputs, upstream, output_dir, name, params, run_options=None):
    """
    Run ``MosaicBackground`` on the i2d mosaics of one pointing (plus HST mosaics).

    ``inputs``: optional ``hst_mosaics``, ``edit_regions``, ``parameter_file``;
    ``params``: ``pointing`` and ``params`` (MosaicBackground parameters); ``run_options``:
    optional ``memory_budget_gb`` (see :func:`memory_budget_gb`), given to MosaicBackground's
    parameter of that name unless the parameters or a parameter file set it.
    """
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground  # imports jwst: only where products are made

    mosaics = _upstream_mosaics(upstream) + list(inputs.get("hst_mosaics", []))
    if not mosaics:
        raise CeersDataError(f"{name}: no mosaic to process")
    listing = Path(output_dir) / f"{params['pointing']}_mosaics_asn.json"
    association = {
        "asn_type": "mosaic_bkg",
        "asn_rule": "jwst_ceers_survey",
        "asn_pool": "none",
        "products": [
            {"name": params["pointing"], "members": [{"expname": m, "exptype": "science"} for m in mosaics]}
        ],
    }
    write_text_atomic(json.dumps(association, indent=1), listing)
    kwargs = {"output_dir": output_dir, "save_results": True, **copy.deepcopy(params.get("params", {}))}
    threads = worker_threads()
    if threads is not None and "threads" not in kwargs and not inputs.get("parameter_file"):
        kwargs["threads"] = threads
    budget = memory_budget_gb(run_options)
    if budget > 0 and "memory_budget_gb" not in kwargs and not inputs.get("parameter_file"):
        kwargs["memory_budget_gb"] = max(budget, _MOSAIC_BKG_MIN_BUDGET_GB)
    if inputs.get("edit_regions"):
        kwargs["edit_regions"] = list(inputs["edit_regions"])
    if inputs.get("parameter_file"):
        kwargs["config_file"] = inputs["parameter_file"][0]
    run_step(MosaicBackground, str(listing), **kwargs)


def stock_image3(*, inputs, upstream, output_dir, name, params):
    """
    Stand-in Image3 with stock jwst steps: outlier detection, then resample.

    Honours ``steps.outlier_detection`` and ``steps.resample`` of ``params``
    (the pointing grid); writes ``<product>_asn.json`` and ``<product>_i2d.fits``.
    """
    from jwst.outlier_detection import OutlierDetectionStep  # imports jwst: only where products are made
    from jwst.resample import ResampleStep

    product = params["product_name"]
    asn = write_product_association(inputs["members"], product_name=product, output_dir=output_dir)
    steps = params.get("steps", {})
    flagged = run_step(OutlierDetectionStep, str(asn), **steps.get("outlier_detection", {}))
    mosaic = run_step(ResampleStep, flagged, **steps.get("resample", {}))
    i2d = write_model_atomic(mosaic, Path(output_dir) / f"{product}_i2d.fits")
    mosaic.close()
    check_mosaic_not_empty(i2d)


def stock_mosaic_background(*, inputs, upstream, output_dir, name, params):
    """
    Stand-in MosaicBackground: a sigma-clipped photutils 2-D background per mosaic.

    Writes ``<mosaic>_bkg.fits`` and ``<mosaic>_bkgsub.fits`` per input mosaic.
    ``params.params`` may give ``box_size`` (default 64) and ``filter_size`` (3).
    """
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground

    from jwst_ceers.atomic_io import write_fits_atomic

    settings = params.get("params", {})
    box = int(settings.get("box_size", 64))
    filter_size = int(settings.get("filter_size", 3))
    mosaics = _upstream_mosaics(upstream) + list(inputs.get("hst_mosaics", []))
    if not mosaics:
        raise CeersDataError(f"{name}: no mosaic to process")
    for path in mosaics:
        with fits.open(path) as hdul:
            hdu = hdul["SCI"] if "SCI" in hdul else hdul[0]
            data = np.asarray(hdu.data, dtype=np.float64)
            header = hdu.header.copy()
            header["FILTER"] = hdul[0].header.get("FILTER", header.get("FILTER", ""))
        coverage = ~np.isfinite(data)
        background = Background2D(
            np.where(coverage, 0.0, data),
            box,
            filter_size=filter_size,
            coverage_mask=coverage,
            sigma_clip=SigmaClip(sigma=3.0),
            bkg_estimator=MedianBackground(),
        ).background
        background = np.where(coverage, np.nan, background).astype(np.float32)
        root = Path(path).name.removesuffix(".fits").removesuffix("_i2d")
        for suffix, array in (("bkg", background), ("bkgsub", (data - background).astype(np.float32))):
            write_fits_atomic(
                fits.HDUList([fits.PrimaryHDU(array, header=header)]), Path(output_dir) / f"{root}_{suffix}.fits"
            )
