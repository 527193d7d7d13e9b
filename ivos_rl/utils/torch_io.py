"""Safe loading of torch files: tensors and plain data only, and a typed error for anything else.

``torch.load(weights_only=True)`` never executes pickled code, but what it raises on a file that is
not a checkpoint varies (``KeyError`` for a text file, ``EOFError`` for an empty one, an
``UnpicklingError`` whose message suggests the unsafe ``weights_only=False``...). Every checkpoint
reader goes through :func:`safe_torch_load` so a wrong file always ends in a
:class:`~ivos_rl.errors.CheckpointError` that names the file and never recommends unsafe loading.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ivos_rl.errors import CheckpointError

__all__ = ["safe_torch_load"]

#: what torch.load(weights_only=True) raises on files that are not (complete) torch checkpoints
_LOAD_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def _reason(exc: BaseException) -> str:
    """A short, safe explanation: never torch's advice to retry with ``weights_only=False``."""
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return "it holds Python objects other than tensors and plain data, which ivos-rl never unpickles"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def safe_torch_load(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; :class:`CheckpointError` naming ``path`` if it fails.

    ``what`` names the expected kind of file in messages (e.g. ``"quality"``, ``"agent policy"``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} checkpoint does not exist (not found): {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except _LOAD_ERRORS as exc:
        raise CheckpointError(
            f"{what} checkpoint {path} is truncated or corrupt, or not a checkpoint at all ({_reason(exc)})"
        ) from None
