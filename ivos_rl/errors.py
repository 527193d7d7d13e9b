"""Typed errors used across ivos-rl.

Every error raised on bad input derives from :class:`IvosError`, so callers can catch the
whole family, and from the matching builtin (``ValueError``, ``FileNotFoundError``...), so code
that already catches builtins keeps working. Messages name the offending file or argument.
"""

from __future__ import annotations

from pathlib import Path


class IvosError(Exception):
    """Base class of every error raised by ivos-rl on bad input or state."""


class DatasetError(IvosError, ValueError):
    """A dataset folder, file or its content does not follow the expected layout."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{message} [{self.path}]" if path is not None else message)


class MissingDataError(DatasetError, FileNotFoundError):
    """A file or folder the dataset layout requires does not exist."""


class CorruptFileError(DatasetError):
    """A file exists but cannot be decoded (truncated image, invalid JSON...)."""


class MaskFormatError(DatasetError):
    """A mask has the wrong mode, shape, dtype or object ids."""


class ScribbleError(IvosError, ValueError):
    """Scribbles or clicks are malformed or inconsistent with their sequence."""


class InputValidationError(IvosError, ValueError):
    """An array or argument passed to an API has the wrong shape, dtype, range or value."""


class SessionError(IvosError, RuntimeError):
    """An interactive session was driven out of order (e.g. submit before get_scribbles)."""


class BackendError(IvosError, RuntimeError):
    """A VOS backend failed or was used incorrectly."""


class CheckpointError(IvosError, ValueError):
    """A checkpoint is missing, truncated, or was saved for another model/config."""


class ConfigError(IvosError, ValueError):
    """A configuration value or registry name is invalid."""


class OutputError(IvosError, OSError):
    """An output folder cannot be created or written (read-only, a file in the way...)."""
