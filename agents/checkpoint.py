"""Checkpoints of the frame-recommendation agent.

Two kinds of file:

* a **training checkpoint** (:func:`save_training_checkpoint`): policy, target, optimiser, replay
  buffer, every random state (Python, NumPy global, the component generators, torch) and the
  counters, so that a run killed at any moment and resumed from its last checkpoint finishes with
  the same weights as an uninterrupted run (on CPU);
* a **policy file** (:func:`save_policy`): the Q-network weights and what it was trained on (network
  config, state mode, horizon...). :func:`load_policy` refuses a file whose state mode differs from
  the caller's: an agent trained on q-only states reads the h channel as zeros and would misbehave
  silently on full states.

Files are written atomically and loaded with ``torch.load(weights_only=True)``; NumPy arrays are
stored as tagged tensors so no arbitrary pickle is ever executed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos_rl.agents.qnet import QNetwork
from ivos_rl.errors import CheckpointError
from ivos_rl.utils.io import atomic_path
from ivos_rl.utils.torch_io import safe_torch_load

FORMAT_VERSION = 1
_NP_TAG = "__ndarray__"


def _pack(obj: Any) -> Any:
    """Replace NumPy arrays by tagged tensors (recursively) so the file loads with weights_only."""
    if isinstance(obj, np.ndarray):
        return {_NP_TAG: torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        packed = [_pack(v) for v in obj]
        return packed if isinstance(obj, list) else tuple(packed)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def _unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_NP_TAG}:
            return obj[_NP_TAG].numpy()
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_unpack(v) for v in obj)
    return obj


def _save(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(_pack(payload), tmp)
    return path


def _load(path: str | Path, kind: str) -> dict[str, Any]:
    path = Path(path)
    payload = safe_torch_load(path, kind, map_location="cpu")
    if not isinstance(payload, dict) or payload.get("kind") != kind:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not a {kind} checkpoint (kind={found!r})")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {payload.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    return _unpack(payload)


def global_rng_state() -> dict[str, Any]:
    """Python, NumPy-global and torch RNG states (third-party code may draw from them)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - saving legacy global state
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 - restoring legacy global state
    torch.set_rng_state(state["torch"])


def save_training_checkpoint(path: str | Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``state`` (learner/buffer/actor/... state dicts and counters) with its ``meta``."""
    payload = {
        "kind": "ivos_rl.agent.training",
        "format_version": FORMAT_VERSION,
        "meta": meta,
        "state": state,
        "global_rng": global_rng_state(),
    }
    return _save(path, payload)


def load_training_checkpoint(path: str | Path, expected_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load a training checkpoint; refuse one written for a different configuration.

    ``expected_meta`` entries must match the stored ones exactly (network, state mode, horizon,
    subsequence length...): resuming with another setting would mix incompatible experience.
    """
    payload = _load(path, "ivos_rl.agent.training")
    if expected_meta is not None:
        _check_meta(path, payload["meta"], expected_meta)
    return payload


def _check_meta(path: str | Path, stored: dict[str, Any], expected: dict[str, Any]) -> None:
    diffs = [
        f"{k}: checkpoint {stored.get(k)!r} vs requested {v!r}"
        for k, v in expected.items()
        if stored.get(k) != v
    ]
    if diffs:
        raise CheckpointError(f"checkpoint {path} was saved for another configuration: " + "; ".join(diffs))


def save_policy(path: str | Path, qnet: QNetwork, meta: dict[str, Any]) -> Path:
    """Write the Q-network alone, with its constructor config and training meta (state_mode...)."""
    if "state_mode" not in meta:
        raise CheckpointError("policy meta must record 'state_mode'")
    payload = {
        "kind": "ivos_rl.agent.policy",
        "format_version": FORMAT_VERSION,
        "qnet_config": qnet.config(),
        "meta": dict(meta),
        "weights": qnet.state_dict(),
    }
    return _save(path, payload)


def load_policy(
    path: str | Path, state_mode: str | None = None, device: str | torch.device = "cpu"
) -> tuple[QNetwork, dict[str, Any]]:
    """Rebuild the Q-network of a policy file; refuse it if trained on another ``state_mode``."""
    payload = _load(path, "ivos_rl.agent.policy")
    meta = payload["meta"]
    if state_mode is not None and meta.get("state_mode") != str(getattr(state_mode, "value", state_mode)):
        raise CheckpointError(
            f"policy {path} was trained with state_mode={meta.get('state_mode')!r}, "
            f"refusing to use it with state_mode={getattr(state_mode, 'value', state_mode)!r}"
        )
    qnet = QNetwork(**payload["qnet_config"])
    try:
        qnet.load_state_dict(payload["weights"])
    except RuntimeError as err:
        raise CheckpointError(f"policy {path} weights do not match its network config: {err}") from err
    qnet.to(device).eval()
    return qnet, meta
