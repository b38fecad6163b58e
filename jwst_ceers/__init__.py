"""
jwst_ceers: the CEERS NIRCam Stage 3 reduction as JWST pipeline (stpipe) steps.

The step classes are resolved lazily so that ``import jwst_ceers`` does not import
jwst, while ``strun jwst_ceers.Image3Ceers assoc.json`` and
``from jwst_ceers import CatalogTweakReg`` work as usual.
"""

from importlib import import_module

from jwst_ceers._registry import STEPS
from jwst_ceers.errors import (
    CeersDataError,
    CeersEmptyProductError,
    CeersError,
    CeersFileError,
    CeersParameterError,
)

__version__ = "0.1.0"

# public class name -> module, derived from the stpipe registry (one source of truth)
_LAZY_CLASSES = {path.rsplit(".", 1)[1]: path.rsplit(".", 1)[0] for path, _, _ in STEPS}

__all__ = [
    "CeersDataError",
    "CeersEmptyProductError",
    "CeersError",
    "CeersFileError",
    "CeersParameterError",
    "__version__",
    *sorted(_LAZY_CLASSES),
]


def __getattr__(name):
    module = _LAZY_CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module 'jwst_ceers' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
