"""Quality-net checkpoints: self-describing, atomic, validated on load.

A checkpoint holds the model config (backbone, input size, stem, crop geometry), the weights, and
for training checkpoints the optimizer/scheduler state, step, epoch, RNG states and metrics, and the
video split it was trained with (``split``; absent from older files). Loading
never silently builds a random model: a missing, truncated or foreign file raises
:class:`~ivos_rl.errors.CheckpointError`.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ivos_rl.backends.base import VOSBackend
from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.data.splits import SPLIT_KEY
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.quality.model import QualityNet, QualityNetConfig
from ivos_rl.utils.io import atomic_path
from ivos_rl.utils.torch_io import safe_torch_load

FORMAT = "ivos_rl.quality"
VERSION = 1
BACKENDS_KEY = "backends"  # fingerprints of the backends whose samples trained the net (absent: older files)
_WARNED: set[tuple[str, str]] = set()


def _identity(fingerprint: str) -> str:
    """A backend fingerprint without cache-location settings (they do not change the outputs)."""
    try:
        info = json.loads(fingerprint)
    except json.JSONDecodeError:
        return fingerprint
    if isinstance(info, dict) and isinstance(info.get("config"), dict):
        info["config"] = {k: v for k, v in info["config"].items() if "cache" not in k}
    return json.dumps(info, sort_keys=True)


def warn_other_backend(name: str, trained: Sequence[str], backend: VOSBackend | str) -> bool:
    """True when ``backend`` (object or fingerprint) is one of the ``trained`` fingerprints of the
    quality model ``name``; otherwise warn once per (model, backend), naming both, and return False.

    A quality model learns one backend's masks: used with another it may be off (issue 15). Settings
    that only decide where results are cached (``*cache*`` fields) are ignored.
    """
    fp = backend if isinstance(backend, str) else backend_fingerprint(backend)
    if _identity(fp) in {_identity(b) for b in trained}:
        return True
    key = (name, fp)
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(
            f"quality model {name} was trained on backend(s) {list(trained)} "
            f"but is used with backend {fp}: its estimates may be off",
            UserWarning,
            stacklevel=3,
        )
    return False


def save_checkpoint(
    path: str | Path,
    model: QualityNet,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    step: int = 0,
    epoch: int = 0,
    metrics: dict[str, Any] | None = None,
    rng_state: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
    half: bool = False,
    backends: Sequence[str] | None = None,
) -> Path:
    """Write a checkpoint atomically; ``half=True`` stores floating weights as float16 (shipping).

    ``split`` (:func:`ivos_rl.data.splits.split_record`) names the training and held-out videos, so
    a Wild run can refuse reporting on videos the net was trained on; ``backends`` the fingerprints
    of the backends whose samples trained it (:func:`warn_other_backend`).
    """
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "model": state,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "step": int(step),
        "epoch": int(epoch),
        "metrics": dict(metrics or {}),
        "rng": rng_state,
        "train_config": train_config,
        SPLIT_KEY: split,
        BACKENDS_KEY: None if backends is None else sorted(set(map(str, backends))),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint file; raise :class:`CheckpointError` naming what is wrong."""
    path = Path(path)
    payload = safe_torch_load(path, "quality", map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not an ivos_rl quality checkpoint (format {fmt!r})")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {payload.get('version')!r}")
    for key in ("model_config", "model"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    try:
        QualityNetConfig.from_dict(payload["model_config"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid model config {payload['model_config']}: {exc}") from exc
    return payload


def load_weights(model: QualityNet, payload: dict[str, Any], path: str | Path = "<checkpoint>") -> None:
    """Copy checkpoint weights into ``model`` after checking it was saved for the same architecture."""
    saved = QualityNetConfig.from_dict(payload["model_config"])
    if saved.backbone != model.config.backbone or saved.stem != model.config.stem:
        raise CheckpointError(
            f"{path} was saved for backbone {saved.backbone!r} (stem {saved.stem!r}), but the model is "
            f"{model.config.backbone!r} (stem {model.config.stem!r})"
        )
    if saved != model.config:
        raise CheckpointError(f"{path}: model config {saved} differs from the model's {model.config}")
    own = model.state_dict()
    state = payload["model"]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(
            f"{path}: weights do not fit {saved.backbone}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shape {bad[:3]}"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_model(
    path: str | Path, *, backbone: str | None = None, map_location: str | torch.device = "cpu"
) -> tuple[QualityNet, dict[str, Any]]:
    """Build the model a checkpoint describes and load its weights (float32).

    ``backbone``: when given, a checkpoint for another backbone is rejected with a
    :class:`CheckpointError` instead of being loaded.
    """
    payload = load_checkpoint(path, map_location=map_location)
    saved = payload["model_config"]["backbone"]
    if backbone is not None and saved != backbone:
        raise CheckpointError(f"{path} holds a {saved!r} quality net, expected backbone {backbone!r}")
    model = QualityNet.from_config(payload["model_config"])
    load_weights(model, payload, path)
    return model, payload


def export_half(src: str | Path, dst: str | Path, sd_scale: float | None = None) -> Path:
    """Write a shipping copy of ``src``: float16 weights, config, metrics, split and backends; no
    optimizer state. ``sd_scale`` sets a fusion net's uncertainty scale (from its recipe's
    out-of-fold residuals, :mod:`ivos_rl.quality.cv_report`)."""
    model, payload = load_model(src)
    if sd_scale is not None:
        if not model.fused or not sd_scale > 0:
            raise CheckpointError(f"{src}: sd_scale {sd_scale!r} needs a fusion net and a value > 0")
        model.sd_scale.fill_(float(sd_scale))
    return save_checkpoint(
        dst,
        model,
        step=payload["step"],
        epoch=payload["epoch"],
        metrics=payload["metrics"],
        train_config=payload.get("train_config"),
        split=payload.get(SPLIT_KEY),
        half=True,
        backends=payload.get(BACKENDS_KEY),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m ivos_rl.quality.checkpoint SRC DST``: write a float16 shipping copy of SRC."""
    parser = argparse.ArgumentParser(
        prog="ivos-rl export-quality",
        description="Export a quality checkpoint for shipping (float16 weights).",
    )
    parser.add_argument("src", type=Path, help="training checkpoint (e.g. outputs/.../last.pt)")
    parser.add_argument("dst", type=Path, help="output file (e.g. checkpoints/quality/<name>.pt)")
    parser.add_argument("--sd-scale", type=float, default=None, help="a fusion net's uncertainty scale")
    args = parser.parse_args(argv)
    try:
        out = export_half(args.src, args.dst, args.sd_scale)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    payload = load_checkpoint(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {payload['model_config']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
