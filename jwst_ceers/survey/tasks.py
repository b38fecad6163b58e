"""Task functions the survey runs (see :mod:`jwst_ceers.survey.engine` for the contract).

- :func:`image3_ceers`: one (pointing, filter) association through ``Image3Ceers``.
- :func:`mosaic_background`: one pointing's mosaics through ``MosaicBackground``.
- :func:`stock_image3` and :func:`stock_mosaic_background`: the same products made
  with stock jwst steps (outlier detection + resample) and a photutils 2-D
  background. They do real work of a similar shape and are used by the survey
  benchmark and as a fallback; they are not the CEERS reduction.

Every function writes only into ``output_dir`` (the engine's staging folder).
"""

import copy
import json
import os
import warnings
from pathlib import Path

from jwst_ceers.atomic_io import write_model_atomic, write_text_atomic
from jwst_ceers.errors import CeersDataError
from jwst_ceers.survey.plan import STEP_PARAMETER_FILE

__all__ = [
    "image3_ceers",
    "mosaic_background",
    "prepare_worker",
    "stock_image3",
    "stock_mosaic_background",
    "worker_threads",
    "write_product_association",
]


def _offline_stpipe():
    # Step.call asks CRDS for parameter references unless told not to; the survey
    # passes every parameter explicitly, so it never needs them.
    os.environ.setdefault("STPIPE_DISABLE_CRDS_STEPPARS", "true")


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


def prepare_worker():
    """Import jwst and the steps the task functions use (called once per dask worker)."""
    _offline_stpipe()
    import jwst.outlier_detection  # noqa: F401
    import jwst.resample  # noqa: F401

    import jwst_ceers.mosaic_bkg.mosaic_bkg_step  # noqa: F401
    import jwst_ceers.pipeline.image3_ceers  # noqa: F401


def worker_threads():
    """
    Threads of the dask worker running the current task, or None outside a worker.

    A task uses this many threads at most, so that N workers x T threads never
    oversubscribe the cores the cluster was sized for.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(worker, "state", worker)
    threads = getattr(state, "nthreads", None)
    return int(threads) if threads else None


def _require(path, what):
    if not Path(path).is_file():
        raise CeersDataError(f"{what} did not write {Path(path).name}")
    return path


def image3_ceers(*, inputs, upstream, output_dir, name, params):
    """
    Make ``<product>_i2d.fits`` of one (pointing, band) with ``Image3Ceers``.

    ``inputs``: ``members`` (cal files), optional ``abs_refcat``,
    ``parameter_file`` and ``step_parameter_file:<step>``; ``params``: ``product_name`` and ``steps`` (per-step
    parameters, the pointing grid already in ``steps.resample``).
    """
    _offline_stpipe()
    from jwst_ceers.pipeline.image3_ceers import Image3Ceers

    asn = write_product_association(inputs["members"], product_name=params["product_name"], output_dir=output_dir)
    kwargs = {"output_dir": output_dir, "save_results": True, "steps": _steps_with_files(params, inputs)}
    if inputs.get("parameter_file"):
        kwargs["config_file"] = inputs["parameter_file"][0]
    Image3Ceers.call(str(asn), **kwargs)
    _require(Path(output_dir) / f"{params['product_name']}_i2d.fits", "Image3Ceers")


def _upstream_mosaics(upstream):
    return sorted(p for paths in upstream.values() for p in paths if p.endswith("_i2d.fits"))


def mosaic_background(*, inputs, upstream, output_dir, name, params):
    """
    Run ``MosaicBackground`` on the i2d mosaics of one pointing (plus HST mosaics).

    ``inputs``: optional ``hst_mosaics``, ``edit_regions``, ``parameter_file``;
    ``params``: ``pointing`` and ``params`` (MosaicBackground parameters).
    """
    _offline_stpipe()
    from jwst_ceers.mosaic_bkg.mosaic_bkg_step import MosaicBackground

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
    if inputs.get("edit_regions"):
        kwargs["edit_regions"] = list(inputs["edit_regions"])
    if inputs.get("parameter_file"):
        kwargs["config_file"] = inputs["parameter_file"][0]
    MosaicBackground.call(str(listing), **kwargs)


def stock_image3(*, inputs, upstream, output_dir, name, params):
    """
    Stand-in Image3 with stock jwst steps: outlier detection, then resample.

    Honours ``steps.outlier_detection`` and ``steps.resample`` of ``params``
    (the pointing grid); writes ``<product>_asn.json`` and ``<product>_i2d.fits``.
    """
    _offline_stpipe()
    from jwst.outlier_detection import OutlierDetectionStep
    from jwst.resample import ResampleStep

    product = params["product_name"]
    asn = write_product_association(inputs["members"], product_name=product, output_dir=output_dir)
    steps = params.get("steps", {})
    flagged = OutlierDetectionStep.call(str(asn), **steps.get("outlier_detection", {}))
    mosaic = ResampleStep.call(flagged, **steps.get("resample", {}))
    write_model_atomic(mosaic, Path(output_dir) / f"{product}_i2d.fits")
    mosaic.close()


def stock_mosaic_background(*, inputs, upstream, output_dir, name, params):
    """
    Stand-in MosaicBackground: a sigma-clipped photutils 2-D background per mosaic.

    Writes ``<mosaic>_bkg.fits`` and ``<mosaic>_bkgsub.fits`` per input mosaic.
    ``params.params`` may give ``box_size`` (default 64) and ``filter_size`` (3).
    """
    import numpy as np
    from astropy.io import fits
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
