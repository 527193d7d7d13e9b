"""Linspace: frames at fixed-length steps across the video, aligned with the initial frame."""

from __future__ import annotations

import numpy as np

from ivos_rl.errors import InputValidationError
from ivos_rl.strategies.base import Strategy, StrategyState, register_strategy


def linspace_frames(first_frame: int, n_frames: int, n_rounds: int) -> list[int]:
    """The evenly spaced frames IVOS-W's Linspace visits, one of them the initial frame.

    ``n_rounds + 1`` evenly spaced positions over [0, N-1] are shifted right until one of them is
    the initial frame; one end is then dropped so that ``n_rounds`` frames remain (the first
    position if the initial frame is the last one, the last position otherwise). Videos shorter
    than ``n_rounds + 1`` frames use 0..n_rounds-1.
    """
    if not 0 <= first_frame < n_frames:
        raise InputValidationError(f"first_frame {first_frame} outside [0, {n_frames})")
    k = min(n_rounds, n_frames)
    if n_frames < k + 1:
        return list(range(k))
    grid = np.linspace(0, n_frames - 1, num=k + 1).astype(np.int64)
    while first_frame not in grid:
        grid = grid + 1
    frames = grid[1:] if first_frame == grid[-1] else grid[:-1]
    return [int(f) for f in frames]


@register_strategy("linspace")
class LinspaceStrategy(Strategy):
    """Visit :func:`linspace_frames` in temporal order, skipping frames already annotated."""

    def __init__(self, n_rounds: int = 8) -> None:
        if n_rounds < 1:
            raise InputValidationError(f"n_rounds must be >= 1, got {n_rounds}")
        self.n_rounds = n_rounds

    def select(self, state: StrategyState) -> int:
        if not state.history:
            raise InputValidationError("linspace needs the initial frame in StrategyState.history")
        rounds = state.max_rounds or self.n_rounds
        seen = set(state.history)
        for f in linspace_frames(state.history[0], state.n_frames, rounds):
            if f not in seen:
                return f
        return state.history[0]  # every planned frame is annotated: back to the initial one
