"""Opening user inputs with errors that name the file and the problem."""

from pathlib import Path

from jwst_ceers.errors import CeersDataError, CeersFileError

__all__ = ["open_image_model", "check_image_model"]


def open_image_model(path):
    """
    Open ``path`` as an `~stdatamodels.jwst.datamodels.ImageModel`.

    Raises
    ------
    CeersFileError
        If the file is missing, unreadable or not a 2-D image model.
    """
    from stdatamodels.jwst import datamodels

    path = Path(path)
    if not path.is_file():
        raise CeersFileError(f"{path}: input file does not exist")
    try:
        model = datamodels.open(path)
    except Exception as exc:  # astropy/asdf raise many types for corrupt files
        raise CeersFileError(f"{path}: cannot be read as a JWST datamodel ({exc})") from exc
    if not isinstance(model, datamodels.ImageModel):
        name = type(model).__name__
        model.close()
        raise CeersFileError(f"{path}: expected a 2-D ImageModel (cal/crf/i2d), got {name}")
    return model


def check_image_model(model, *, what="input"):
    """
    Check that ``model`` holds a usable 2-D science array.

    Raises
    ------
    CeersDataError
        If the data are not 2-D or hold no finite pixel.
    """
    import numpy as np

    name = model.meta.filename or what
    if model.data is None or np.ndim(model.data) != 2:
        raise CeersDataError(f"{name}: science array is not 2-D")
    if not np.isfinite(model.data).any():
        raise CeersDataError(f"{name}: science array has no finite pixel")
    return model
