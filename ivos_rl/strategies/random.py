"""Random: a uniformly random frame each round (repeats allowed, as in IVOS-W)."""

from __future__ import annotations

import numpy as np

from ivos_rl.strategies.base import Strategy, StrategyState, register_strategy


@register_strategy("random")
class RandomStrategy(Strategy):
    """Uniform choice over all frames; ``exclude_annotated`` turns off repeats."""

    def __init__(self, seed: int = 0, exclude_annotated: bool = False) -> None:
        self.seed = seed
        self.exclude_annotated = exclude_annotated
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng([self.seed, seed])

    def select(self, state: StrategyState) -> int:
        if self.exclude_annotated:
            free = np.setdiff1d(np.arange(state.n_frames), np.asarray(state.history, dtype=np.int64))
            if free.size:
                return int(self._rng.choice(free))
        return int(self._rng.integers(state.n_frames))
