"""The agent's observation: per-frame segmentation quality and recommendation history (Eq. 1).

The paper concatenates ``q_t`` (quality in [0, 1]) and ``h_t`` (how often each frame was annotated)
into a (N, 2) state. The ablation of Table 6 drops one of the two; here the dropped channel is
zeroed rather than removed, so every Q-network has the same (N, 2) input and the state mode only
changes what the network can see. The mode is stored in checkpoints: an agent trained on q-only
states would silently misbehave on full states, so loaders refuse the mismatch.

It lives in the core package, not the environment's: the environment, the agent's strategy and
the recommender all build this state, and importing it costs NumPy only.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from ivos_rl.errors import ConfigError, InputValidationError


class StateMode(str, Enum):
    """Which channels of the (q, h) state are visible to the agent (Table 6)."""

    BOTH = "both"
    Q_ONLY = "q_only"
    H_ONLY = "h_only"

    @classmethod
    def parse(cls, value: str | StateMode) -> StateMode:
        """Accept the enum or its string value; name the valid values otherwise."""
        if isinstance(value, StateMode):
            return value
        try:
            return cls(str(value))
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ConfigError(f"state_mode must be one of {valid}, got {value!r}") from None


def history_counts(annotated_frames: list[int] | tuple[int, ...], n_frames: int) -> np.ndarray:
    """h_t of Eq. 1: number of times each frame was annotated, (N,) float32.

    The initially annotated frame counts, as in the reference implementation, so that the first
    recommendation is already discouraged from re-annotating it (Eq. 4).
    """
    if n_frames < 1:
        raise InputValidationError(f"n_frames must be >= 1, got {n_frames}")
    idx = np.asarray(list(annotated_frames), dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_frames):
        raise InputValidationError(f"annotated_frames {list(annotated_frames)} outside [0, {n_frames})")
    return np.bincount(idx, minlength=n_frames).astype(np.float32)


def build_state(
    quality: np.ndarray, counts: np.ndarray, mode: StateMode | str = StateMode.BOTH
) -> np.ndarray:
    """Stack (q, h) into the (N, 2) float32 observation, zeroing the channel ``mode`` hides."""
    mode = StateMode.parse(mode)
    q = np.asarray(quality, dtype=np.float32)
    h = np.asarray(counts, dtype=np.float32)
    if q.ndim != 1 or h.shape != q.shape:
        raise InputValidationError(f"quality {q.shape} and counts {h.shape} must both be (N,)")
    if not np.all(np.isfinite(q)) or q.min(initial=0.0) < 0.0 or q.max(initial=0.0) > 1.0:
        raise InputValidationError(f"quality must be finite and in [0, 1], got range [{q.min()}, {q.max()}]")
    state = np.stack([q, h], axis=1)
    if mode is StateMode.Q_ONLY:
        state[:, 1] = 0.0
    elif mode is StateMode.H_ONLY:
        state[:, 0] = 0.0
    return state
