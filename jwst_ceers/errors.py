"""Exceptions raised for user errors (bad files, bad parameters, missing columns).

Every message names the file or the parameter at fault, so that a user running
hundreds of files knows which one to look at.
"""

__all__ = ["CeersError", "CeersFileError", "CeersParameterError", "CeersDataError"]


class CeersError(ValueError):
    """Base class of all user errors raised by jwst_ceers."""


class CeersFileError(CeersError, OSError):
    """A file is missing, unreadable, or not of the expected kind or content."""


class CeersParameterError(CeersError):
    """A step or command parameter is invalid or out of range."""


class CeersDataError(CeersError):
    """Input data cannot be processed (e.g. wrong units, no usable pixels)."""
