"""Farthest: the frame farthest in time from every annotated frame (training-free coverage).

The EVA-VOS / XMem++ intuition without features: propagation errors grow with the distance to
the nearest annotation, so annotating the frame that maximises that distance halves the longest
unsupported stretch. Ties go to the earliest frame.
"""

from __future__ import annotations

import numpy as np

from ivos_rl.strategies.base import Strategy, StrategyState, register_strategy


def distance_to_annotations(n_frames: int, history: tuple[int, ...]) -> np.ndarray:
    """Temporal distance of every frame to its nearest annotated frame, shape (N,)."""
    frames = np.arange(n_frames)
    if not history:
        return np.full(n_frames, n_frames, dtype=np.int64)
    ann = np.asarray(sorted(set(history)), dtype=np.int64)
    return np.abs(frames[:, None] - ann[None, :]).min(axis=1)


@register_strategy("farthest")
class FarthestStrategy(Strategy):
    """Maximise the distance to the nearest annotated frame; optionally weight by 1 - quality."""

    def __init__(self, quality_weight: float = 0.0) -> None:
        self.quality_weight = quality_weight
        self.needs_quality = quality_weight > 0  # type: ignore[misc]

    def select(self, state: StrategyState) -> int:
        score = distance_to_annotations(state.n_frames, state.history).astype(np.float64)
        if self.quality_weight > 0:
            q = state.require_quality(self.name)
            score = score * (1.0 + self.quality_weight * (1.0 - q))
        return int(np.argmax(score))
