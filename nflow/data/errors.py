"""The errors a data set a user points nflow at can raise: wrong shape, wrong type, damaged or missing files.

Both derive from :class:`nflow.errors.NflowError` (the command line prints them as one line) and from the
built-in class that fits (``ValueError`` for bad content; ``FileNotFoundError`` as well for absent files), so
callers may catch either. Each message names the file or folder, what was expected and what was found.
(:class:`~nflow.data.mnist.MNISTError` and :class:`~nflow.data.idx.IDXError` keep their own classes.)
"""
from nflow.errors import NflowError


class DataError(NflowError, ValueError):
    """A data file or folder holds something other than the images (and labels) it should."""


class DataNotFoundError(DataError, FileNotFoundError):
    """Data files are absent (and could not be downloaded); the message says where to put them."""
