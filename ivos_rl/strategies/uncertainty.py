"""Least-confident: the frame whose masks the segmenter is least sure about.

Training-free and ground-truth free: the mean of ``1 - |2p - 1|`` over the pixels where any
object's probability is in (low, high) measures how much of the frame sits on the decision
boundary, normalised by the object area so that large objects are not favoured.
"""

from __future__ import annotations

import numpy as np

from ivos_rl.errors import InputValidationError
from ivos_rl.strategies.base import Strategy, StrategyState, first_unvisited, register_strategy


def frame_uncertainty(probs: np.ndarray) -> np.ndarray:
    """Per-frame uncertainty in [0, 1] from (T, K, H, W) uint8 or float probabilities."""
    p = probs.astype(np.float32) / 255.0 if probs.dtype == np.uint8 else probs.astype(np.float32)
    if p.ndim != 4:
        raise InputValidationError(f"probs must be (T, K, H, W), got shape {p.shape}")
    unsure = 1.0 - np.abs(2.0 * p - 1.0)  # 1 at p = 0.5, 0 at p in {0, 1}
    area = (p > 0.5).sum(axis=(2, 3)).astype(np.float32)  # (T, K)
    per_obj = unsure.sum(axis=(2, 3)) / np.maximum(area, 1.0)
    return per_obj.mean(axis=1)


@register_strategy("uncertainty")
class UncertaintyStrategy(Strategy):
    """Annotate the most uncertain frame not yet annotated."""

    needs_probs = True

    def select(self, state: StrategyState) -> int:
        if state.probs is None:
            raise InputValidationError("strategy 'uncertainty' needs StrategyState.probs")
        if state.probs.shape[0] != state.n_frames:
            raise InputValidationError(
                f"probs has {state.probs.shape[0]} frames, state has {state.n_frames}"
            )
        order = np.argsort(-frame_uncertainty(state.probs), kind="stable")
        return first_unvisited(order, state.history)
