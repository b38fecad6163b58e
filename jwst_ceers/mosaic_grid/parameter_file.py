"""Grid parameter files that ``strun`` accepts.

The files follow stpipe's ASDF parameter-file layout (what ``Step.export_config``
writes): a tree with ``class``, ``name`` and ``parameters``, and for a pipeline a
``steps`` list of such trees. Only the grid and the CEERS drizzle choices
(pixfrac 1, inverse-variance weights) are written; every other resample
parameter keeps its default.
"""

import warnings
from pathlib import Path

from jwst_ceers.atomic_io import atomic_output
from jwst_ceers.errors import CeersFileError, CeersParameterError
from jwst_ceers.mosaic_grid.output_grid import OutputGrid

__all__ = [
    "RESAMPLE_CLASS",
    "PIPELINE_CLASS",
    "grid_parameter_tree",
    "write_grid_parameter_file",
    "read_grid_parameter_file",
    "read_drizzle_parameters",
]

RESAMPLE_CLASS = "jwst.resample.resample_step.ResampleStep"
PIPELINE_CLASS = "jwst_ceers.Image3Ceers"
PIPELINE_NAME = "Image3Ceers"
RESAMPLE_NAME = "resample"  # step name of resample inside Image3Ceers (DESIGN.md)
FORMATS = ("step", "pipeline")


def grid_parameter_tree(
    grid,
    *,
    file_format="step",
    pixfrac=1.0,
    weight_type="ivm",
    pipeline_class=PIPELINE_CLASS,
    pipeline_name=PIPELINE_NAME,
    step_name=RESAMPLE_NAME,
):
    """
    The ASDF tree of a resample (or pipeline) parameter file for ``grid``.

    Parameters
    ----------
    grid : OutputGrid
    file_format : {'step', 'pipeline'}, optional
        ``step``: a ``ResampleStep`` file (``strun resample_grid.asdf asn.json``);
        ``pipeline``: the same values under ``steps: [resample]`` of ``pipeline_class``.
    pixfrac : float, optional
        Drizzle pixfrac (CEERS: 1.0).
    weight_type : {'ivm', 'exptime'}, optional
        Drizzle weighting (CEERS: inverse variance).
    pipeline_class, pipeline_name, step_name : str, optional
        Pipeline class path and name, and the name of its resample step.

    Returns
    -------
    dict
    """
    if file_format not in FORMATS:
        raise CeersParameterError(f"format={file_format!r}: must be one of {', '.join(FORMATS)}")
    if not 0.0 <= pixfrac <= 1.0:
        raise CeersParameterError(f"pixfrac={pixfrac}: must be within [0, 1]")
    if weight_type not in ("ivm", "exptime"):
        raise CeersParameterError(f"weight_type={weight_type!r}: must be 'ivm' or 'exptime'")
    parameters = grid.resample_parameters()
    parameters["pixfrac"] = float(pixfrac)
    parameters["weight_type"] = weight_type
    step_tree = {"class": RESAMPLE_CLASS, "name": step_name, "parameters": parameters}
    if file_format == "step":
        return step_tree
    return {"class": pipeline_class, "name": pipeline_name, "parameters": {}, "steps": [step_tree]}


def write_grid_parameter_file(grid, path, **kwargs):
    """
    Write ``grid`` as an ASDF parameter file (atomically).

    Parameters
    ----------
    grid : OutputGrid
    path : str or Path
        Output file (``.asdf``); its directory is created if needed.
    **kwargs
        Passed to :func:`grid_parameter_tree` (``file_format``, ``pixfrac`` ...).

    Returns
    -------
    Path
    """
    import asdf

    tree = grid_parameter_tree(grid, **kwargs)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CeersFileError(f"{path.parent}: cannot create output directory ({exc.strerror or exc})") from exc
    with atomic_output(path) as tmp:
        asdf.AsdfFile(tree).write_to(tmp)
    return path


def _resample_parameters(path, step_name):
    """The parameters holding the grid: top level, or the ``steps`` entry named ``step_name``."""
    import asdf

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with asdf.open(path, lazy_load=False) as af:
                tree = {"parameters": dict(af.tree.get("parameters", {})), "steps": list(af.tree.get("steps", []))}
    except Exception as exc:  # asdf raises many types for bad files
        raise CeersFileError(f"{path}: cannot read ASDF parameter file ({exc})") from exc
    parameters = tree["parameters"]
    if parameters.get("crval") is None:
        for step in tree["steps"]:
            if step.get("name") == step_name:
                parameters = dict(step.get("parameters", {}))
    return parameters


def read_drizzle_parameters(path, *, step_name=RESAMPLE_NAME):
    """
    ``pixfrac`` and ``weight_type`` of a resample or pipeline parameter file (those present).

    Returns
    -------
    dict
    """
    parameters = _resample_parameters(path, step_name)
    return {key: parameters[key] for key in ("pixfrac", "weight_type") if parameters.get(key) is not None}


def read_grid_parameter_file(path, *, step_name=RESAMPLE_NAME):
    """
    Read the grid back from a resample or pipeline parameter file.

    Parameters
    ----------
    path : str or Path
        An ASDF parameter file with the five grid parameters either at top level
        or in the ``steps`` entry named ``step_name``.

    Returns
    -------
    OutputGrid

    Raises
    ------
    CeersFileError
        If the file cannot be read or holds no complete grid.
    """
    path = Path(path)
    parameters = _resample_parameters(path, step_name)
    try:
        return OutputGrid.from_mapping(parameters)
    except CeersParameterError as exc:
        raise CeersFileError(f"{path}: {exc}") from exc
