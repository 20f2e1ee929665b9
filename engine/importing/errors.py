"""Errors of the import layer."""

from __future__ import annotations

from engine.runtime.errors import MageError


class CheckpointError(MageError):
    """A checkpoint file is unreadable, of an unknown layout, or has a wrong key or shape."""


class ExportError(MageError):
    """Writing a bundle failed, or its graphs disagree with the reference beyond fp32 noise."""
