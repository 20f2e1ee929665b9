"""Errors that reach the user as one line: what went wrong and why, never a traceback."""


class MageError(Exception):
    """Base class: `str(error)` is a complete one-line message for the user."""


class ImageError(MageError):
    """An image could not be read or does not fit what was asked."""


class MaskError(MageError):
    """A mask is missing, empty, or does not match its image."""


class BundleError(MageError):
    """A model bundle is missing, damaged or of an unknown format."""


class OutputError(MageError):
    """A result could not be written (folder missing, read-only, disk full, same as input)."""
