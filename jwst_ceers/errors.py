"""Exceptions raised for user errors (bad files, bad parameters, missing columns).

Every message names the file or the parameter at fault, so that a user running
hundreds of files knows which one to look at.
"""

__all__ = ["CeersError", "CeersFileError", "CeersParameterError", "CeersDataError", "CeersEmptyProductError"]


class CeersError(ValueError):
    """Base class of all user errors raised by jwst_ceers."""


class CeersFileError(CeersError, OSError):
    """A file is missing, unreadable, or not of the expected kind or content."""


class CeersParameterError(CeersError):
    """A step or command parameter is invalid or out of range."""


class CeersDataError(CeersError):
    """Input data cannot be processed (e.g. wrong units, no usable pixels)."""


class CeersEmptyProductError(CeersDataError):
    """
    A product would hold no usable pixel (e.g. an i2d from all-NaN members).

    Raised instead of writing (or publishing) an empty mosaic; the message names the
    product and why it is empty. Callers running many products (the survey) catch this
    type to mark the product failed/empty and go on with the others.
    """
