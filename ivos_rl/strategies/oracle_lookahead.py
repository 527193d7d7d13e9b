"""Oracle-Lookahead: try candidate frames through the backend, keep the one giving the best J&F.

An upper bound for one-step frame choices, used to measure how much room a learned recommender
has above Farthest/Worst ("gap closed"). It is an ORACLE: the evaluation supplies
``StrategyState.extras["lookahead"]`` (:meth:`ivos_rl.rounds.RoundEngine.lookahead`), which runs
the simulated user and the backend on ground truth, so evaluation refuses it in the Wild setting.

Candidates (documented subset, so that a round costs <= 9 backend rounds instead of N):
``n_grid`` evenly spaced frames over the video (None: every frame), the ``n_worst`` frames of lowest
true J&F (``StrategyState.quality``), the Farthest pick (so the oracle's one-step choice is never
worse than Farthest's or Worst's), and, with ``include_annotated``, the frames annotated so far
(re-annotating can help). Ties go to the earliest frame.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.strategies.base import Strategy, StrategyState, register_strategy
from ivos_rl.strategies.farthest import distance_to_annotations


def lookahead_candidates(
    state: StrategyState,
    n_grid: int | None,
    n_worst: int,
    include_farthest: bool = True,
    include_annotated: bool = False,
) -> list[int]:
    """Sorted candidate frames of one round (see the module docstring)."""
    n = state.n_frames
    if n_grid is None or n_grid >= n:
        frames = set(range(n))
    else:
        frames = {int(f) for f in np.rint(np.linspace(0, n - 1, num=n_grid)).astype(np.int64)}
    if n_worst > 0:
        q = state.require_quality("oracle_lookahead")
        frames.update(int(f) for f in np.argsort(q, kind="stable")[:n_worst])
    if include_farthest:
        frames.add(int(np.argmax(distance_to_annotations(n, state.history))))
    if include_annotated:
        frames.update(state.history)
    return sorted(frames)


@register_strategy("oracle_lookahead")
class OracleLookaheadStrategy(Strategy):
    """Annotate the candidate frame whose round gives the highest mean J&F (one-step oracle)."""

    needs_lookahead: ClassVar[bool] = True

    def __init__(
        self,
        n_grid: int | None = 6,
        n_worst: int = 2,
        include_farthest: bool = True,
        include_annotated: bool = False,
    ) -> None:
        if n_grid is not None and (isinstance(n_grid, bool) or not isinstance(n_grid, int) or n_grid < 1):
            raise ConfigError(f"oracle_lookahead n_grid must be None or an int >= 1, got {n_grid!r}")
        if isinstance(n_worst, bool) or not isinstance(n_worst, int) or n_worst < 0:
            raise ConfigError(f"oracle_lookahead n_worst must be an int >= 0, got {n_worst!r}")
        self.n_grid = n_grid
        self.n_worst = n_worst
        self.include_farthest = bool(include_farthest)
        self.include_annotated = bool(include_annotated)
        # Worst-frame candidates read the true J&F, which the Oracle setting passes as quality.
        self.needs_quality = n_worst > 0  # type: ignore[misc]
        #: (frame, value) pairs tried in the last round, for analysis.
        self.last_values: dict[int, float] = {}

    def select(self, state: StrategyState) -> int:
        lookahead = state.extras.get("lookahead")
        if not callable(lookahead):
            raise InputValidationError(
                "oracle_lookahead needs StrategyState.extras['lookahead'] (frame -> J&F after annotating "
                "it); the evaluation supplies it in the Oracle setting"
            )
        candidates = lookahead_candidates(
            state, self.n_grid, self.n_worst, self.include_farthest, self.include_annotated
        )
        self.last_values = {f: float(lookahead(f)) for f in candidates}  # type: ignore[operator]
        return max(candidates, key=lambda f: (self.last_values[f], -f))
