"""Errors a user can cause. The CLI prints their message without a traceback."""


class RadialogError(Exception):
    """Base class: the message says what went wrong and what to do."""

    exit_code = 2


class InvalidImageError(RadialogError):
    """The file is not a readable image (corrupt, empty, wrong format, unsupported)."""


class InvalidInputError(RadialogError):
    """A data file (CSV/JSONL/config) is malformed; the message names the row and the problem."""


class ModelNotFoundError(RadialogError):
    """A model name or directory could not be resolved, or a required base model is missing."""


class CheckpointError(RadialogError):
    """A checkpoint has the wrong layout or shape."""


class MissingDependencyError(RadialogError):
    """An optional package or hardware (e.g. bitsandbytes, CUDA) that a requested option needs."""
