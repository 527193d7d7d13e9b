"""Every checkpoint reader loads with weights_only=True and turns a wrong file into a CheckpointError.

The error names the file, says it is not a (complete) checkpoint, and never suggests the unsafe
``weights_only=False`` that torch's own message recommends.
"""

from __future__ import annotations

import collections
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from ivos_rl.agents.checkpoint import load_policy, load_training_checkpoint
from ivos_rl.errors import CheckpointError
from ivos_rl.quality.checkpoint import load_checkpoint
from ivos_rl.utils.torch_io import safe_torch_load


class _Foreign:
    """A class torch would have to unpickle: refused by the weights-only unpickler."""


def _wrong_files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pt" for name in ("text", "empty", "pickled_set", "object")}
    files["text"].write_text("this is a README, not a checkpoint\n")
    files["empty"].write_bytes(b"")
    with open(files["pickled_set"], "wb") as f:
        pickle.dump(collections.OrderedDict(a={1, 2}), f)
    torch.save({"x": _Foreign()}, files["object"])
    return files


LOADERS: list[tuple[str, Callable[[Path], Any]]] = [
    ("safe_torch_load", lambda p: safe_torch_load(p, "test")),
    ("quality", load_checkpoint),
    ("agent policy", load_policy),
    ("agent training", load_training_checkpoint),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("name", "loader"), LOADERS, ids=[n for n, _ in LOADERS])
def test_non_checkpoint_files_get_a_typed_error_without_unsafe_hint(
    tmp_path: Path, name: str, loader: Callable[[Path], Any]
) -> None:
    for kind, path in _wrong_files(tmp_path).items():
        with pytest.raises(CheckpointError, match="not a checkpoint") as exc:
            loader(path)
        msg = str(exc.value)
        assert str(path) in msg, (kind, msg)
        assert "weights_only" not in msg, (kind, msg)
        assert exc.value.__cause__ is None  # torch's message (with its hint) is not chained either


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist") as exc:
        safe_torch_load(tmp_path / "absent.pt", "quality")
    assert "absent.pt" in str(exc.value)


def test_plain_tensors_load(tmp_path: Path) -> None:
    torch.save({"w": torch.arange(3)}, tmp_path / "ok.pt")
    assert safe_torch_load(tmp_path / "ok.pt", "test")["w"].tolist() == [0, 1, 2]
