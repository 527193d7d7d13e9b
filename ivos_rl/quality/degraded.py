"""Degraded copies of a round's output, so quality models see predictions that failed (issue #15).

The interactive loop's rows only hold what the backend produced, and a backend rarely produces an
all-empty or grossly wrong round. A model using relative signals (each signal minus its round's
mean, :mod:`ivos_rl.quality.context`) then calls every frame of an all-empty round "average" and
scores it like a good one. Sample generation (``samples.degraded`` of ``gen_quality_data``) can
therefore add, at a few rounds of each trajectory, rows of a spoiled copy of the round's output with
the TRUE J&F of that copy (scored against the ground truth like any round):

* ``empty``: no object on any frame (probabilities 0);
* ``full``: the object covers every pixel of every frame (probabilities 1);
* ``shift``: the probabilities moved ``shift_px`` pixels sideways (zero fill), annotated frames kept;
* ``erode`` / ``dilate``: grey-level erosion / dilation of the probabilities with a square of side
  ``2 * radius + 1``, annotated frames kept;
* ``partial``: one contiguous block of ``partial`` x T frames emptied, annotated frames kept.

Which (round, kind) pairs a trajectory gets is drawn from the names (sequence, initial scribble), not
from the trajectory's own random stream, so the original rows stay byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.utils.seed import name_rng

KINDS: tuple[str, ...] = ("empty", "full", "shift", "erode", "dilate", "partial")


@dataclass(frozen=True)
class DegradeConfig:
    """Which degraded rounds to add per trajectory and how strong each kind is (pixels of the output)."""

    kinds: tuple[str, ...] = KINDS
    rounds: tuple[int, ...] = (1, 3, 5, 8)  # rounds a degraded copy may be drawn for
    per_trajectory: int = 1  # (round, kind) pairs drawn per trajectory (without replacement)
    shift_px: int = 24
    radius: int = 6
    partial: float = 0.5  # fraction of the frames emptied by ``partial``
    seed: int = 0

    def __post_init__(self) -> None:
        kinds, rounds = tuple(self.kinds), tuple(self.rounds)
        if not kinds or set(kinds) - set(KINDS) or len(set(kinds)) != len(kinds):
            raise ConfigError(f"degraded.kinds must be distinct names from {KINDS}, got {list(kinds)}")
        if not rounds or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rounds):
            raise ConfigError(f"degraded.rounds must be a non-empty list of ints >= 1, got {list(rounds)}")
        for name in ("per_trajectory", "shift_px", "radius"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"degraded.{name} must be an int >= 1, got {value!r}")
        if not 0 < self.partial < 1:
            raise ConfigError(f"degraded.partial must be in (0, 1), got {self.partial!r}")
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "rounds", tuple(sorted(set(rounds))))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DegradeConfig:
        """From a config mapping (ConfigError naming an unknown field)."""
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown degraded-row options {unknown}")
        return cls(**dict(raw))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {**out, "kinds": list(self.kinds), "rounds": list(self.rounds)}


def plan(cfg: DegradeConfig, sequence: str, init: int, n_rounds: int) -> dict[int, list[str]]:
    """round -> degraded kinds of the trajectory of ``sequence`` from initial scribble ``init``."""
    pairs = [(r, k) for r in cfg.rounds if r <= n_rounds for k in cfg.kinds]
    if not pairs:
        return {}
    rng = name_rng(cfg.seed, "degraded", sequence, int(init))
    picked = rng.choice(len(pairs), size=min(cfg.per_trajectory, len(pairs)), replace=False)
    out: dict[int, list[str]] = {}
    for i in sorted(int(i) for i in picked):
        r, k = pairs[i]
        out.setdefault(r, []).append(k)
    return out


def _kept(t: int, history: Sequence[int]) -> np.ndarray:
    """(T,) bool: the annotated frames (their output was corrected by the user: kept as it is)."""
    keep = np.zeros(t, bool)
    keep[np.asarray(list(history), np.int64)] = True
    return keep


def degrade(
    probs: np.ndarray, history: Sequence[int], kind: str, cfg: DegradeConfig, key: Sequence[object] = ()
) -> np.ndarray:
    """A degraded copy (uint8 (T, K, H, W)) of a round's probabilities ``probs`` (see the module doc).

    ``history`` holds the annotated frames, kept as they are by every kind but ``empty`` / ``full``;
    ``key`` (e.g. sequence, initial scribble, round) seeds where ``partial``'s block starts.
    """
    if probs.dtype != np.uint8 or probs.ndim != 4:
        raise InputValidationError(
            f"degrade needs uint8 (T, K, H, W) probabilities, got {probs.dtype} {probs.shape}"
        )
    if kind not in KINDS:
        raise InputValidationError(f"unknown degraded kind {kind!r} (have {KINDS})")
    t, _k, _h, w = probs.shape
    if kind == "empty":
        return np.zeros_like(probs)
    if kind == "full":
        return np.full_like(probs, 255)
    out = probs.copy()
    change = ~_kept(t, history)
    if kind == "shift":
        d = min(cfg.shift_px, w - 1)
        out[change] = 0
        out[change, :, :, d:] = probs[change, :, :, : w - d]
    elif kind in ("erode", "dilate"):
        op = ndimage.grey_erosion if kind == "erode" else ndimage.grey_dilation
        size = (1, 1, 2 * cfg.radius + 1, 2 * cfg.radius + 1)
        out[change] = op(probs[change], size=size)
    else:  # partial: one contiguous block of frames
        n = max(1, round(cfg.partial * t))
        start = int(name_rng(cfg.seed, "partial", *key).integers(0, t - n + 1))
        block = np.zeros(t, bool)
        block[start : start + n] = True
        out[block & change] = 0
    return out


__all__ = ["KINDS", "DegradeConfig", "degrade", "plan"]
