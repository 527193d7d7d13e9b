"""Worst: the frame with the lowest quality that has not been annotated yet."""

from __future__ import annotations

import numpy as np

from ivos_rl.strategies.base import Strategy, StrategyState, first_unvisited, register_strategy


@register_strategy("worst")
class WorstStrategy(Strategy):
    """Lowest quality first (true J&F in Oracle, the quality net in Wild); never repeats a frame
    unless every frame was annotated, as the reference does."""

    needs_quality = True

    def __init__(self, allow_repeat: bool = False) -> None:
        self.allow_repeat = allow_repeat

    def select(self, state: StrategyState) -> int:
        q = state.require_quality(self.name)
        order = np.argsort(q, kind="stable")
        if self.allow_repeat:
            return int(order[0])
        return first_unvisited(order, state.history)
