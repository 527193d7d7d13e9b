"""The oracle_lookahead strategy, and the lookahead it reads on real backends.

The key property: the value the lookahead reports for a frame is exactly the J&F the evaluation
scores after committing that frame, and trying frames leaves the committed state untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from ivos_rl.backends import SimulatedBackend
from ivos_rl.backends.base import BackendOutput, VOSBackend
from ivos_rl.backends.cached import CachedBackend
from ivos_rl.backends.propagation import PropagationBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.evaluation import evaluate
from ivos_rl.robot import ScribbleRobot
from ivos_rl.rounds import QualitySource, RoundEngine, SampleContext
from ivos_rl.strategies import FarthestStrategy, OracleLookaheadStrategy, StrategyState, build_strategy
from ivos_rl.strategies.oracle_lookahead import lookahead_candidates


@pytest.fixture(scope="module")
def dataset(synthetic_root: Path) -> DavisDataset:
    return DavisDataset(synthetic_root, resolution="480p")


def _state(n: int = 10, history: tuple[int, ...] = (0,), quality: np.ndarray | None = None,
           lookahead: Any = None) -> StrategyState:
    extras = {} if lookahead is None else {"lookahead": lookahead}
    return StrategyState(round=len(history), n_frames=n, history=history, quality=quality, extras=extras)


# ----------------------------------------------------------------------------- strategy (fake callable)


def test_candidates_grid_worst_farthest_annotated() -> None:
    q = np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9])
    st = _state(10, (0, 4), q)
    # grid of 4 over [0, 9] -> 0, 3, 6, 9; the 2 worst -> 2, 6; farthest from {0, 4} -> 9
    assert lookahead_candidates(st, n_grid=4, n_worst=2, include_farthest=False) == [0, 2, 3, 6, 9]
    assert lookahead_candidates(st, n_grid=2, n_worst=0, include_farthest=True) == [0, 9]
    assert lookahead_candidates(st, n_grid=2, n_worst=0, include_farthest=False, include_annotated=True) == [
        0, 4, 9,
    ]
    assert lookahead_candidates(st, n_grid=None, n_worst=0) == list(range(10))


def test_picks_best_lookahead_value_ties_to_earliest() -> None:
    values = {0: 0.5, 3: 0.7, 6: 0.9, 9: 0.9, 2: 0.1}
    calls: list[int] = []

    def fake(frame: int) -> float:
        calls.append(frame)
        return values[frame]

    strat = OracleLookaheadStrategy(n_grid=4, n_worst=1, include_farthest=False)
    q = np.full(10, 0.8)
    q[2] = 0.0
    assert strat.select(_state(10, (0,), q, fake)) == 6  # 6 and 9 tie at 0.9: earliest wins
    assert sorted(calls) == [0, 2, 3, 6, 9]
    assert strat.last_values == values


def test_strategy_refuses_missing_lookahead_and_bad_config() -> None:
    with pytest.raises(InputValidationError, match="lookahead"):
        OracleLookaheadStrategy(n_worst=0).select(_state(10, (0,)))
    with pytest.raises(ConfigError, match="n_grid"):
        OracleLookaheadStrategy(n_grid=0)
    with pytest.raises(ConfigError, match="n_worst"):
        OracleLookaheadStrategy(n_worst=-1)
    assert OracleLookaheadStrategy.needs_lookahead and not FarthestStrategy.needs_lookahead
    assert OracleLookaheadStrategy(n_worst=2).needs_quality
    assert not OracleLookaheadStrategy(n_worst=0).needs_quality
    assert isinstance(build_strategy("oracle_lookahead"), OracleLookaheadStrategy)


# ----------------------------------------------------------------------------- the engine's lookahead


def _sample(dataset: DavisDataset) -> SampleContext:
    seq = dataset.sequences[0]
    frames, gt = dataset.load_frames(seq), dataset.load_masks(seq)
    return SampleContext(seq, 1, frames, gt, dataset.info(seq).n_objects, dataset.load_scribbles(seq, 1))


def _make(kind: str, cache_dir: Path) -> VOSBackend:
    if kind == "propagation":  # the real CPU backend (per-frame state kept between rounds)
        return PropagationBackend(working_height=None, flow_preset="ultrafast")
    inner = SimulatedBackend(seed=0)
    return CachedBackend(inner, cache_dir) if kind == "cached" else inner


@pytest.mark.parametrize("kind", ["simulated", "cached", "propagation"])
def test_lookahead_equals_committing_and_commits_nothing(
    dataset: DavisDataset, tmp_path: Path, kind: str
) -> None:
    backend = _make(kind, tmp_path / "cache")
    engine = RoundEngine(backend, ScribbleRobot(), QualitySource("oracle"))
    engine.start(_sample(dataset))
    tried = {f: engine.lookahead(f) for f in (2, 7, 11)}
    engine.annotate(7)
    engine.propagate()
    # committing frame 7 gives exactly the tried value ...
    assert engine.score().mean_jf == pytest.approx(tried[7], abs=1e-12)
    if isinstance(backend, CachedBackend):  # ... and, through the transition cache, without recomputing it
        assert backend.stats["hits"] == 1
    # trying frames 2 and 11 left no trace: a fresh run with the same history matches
    fresh = RoundEngine(_make(kind, tmp_path / "fresh_cache"), ScribbleRobot(), QualitySource("oracle"))
    fresh.start(_sample(dataset))
    fresh.annotate(7)
    np.testing.assert_array_equal(fresh.propagate().masks, engine.propagate().masks)


class _Counting(SimulatedBackend):
    """Counts wrapped-backend rounds across every copy (class attribute: deep copies share it)."""

    calls: ClassVar[list[int]] = []

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        self.calls.append(int(frame_idx))
        return super().interact(frame_idx, interaction)


def test_cached_lookahead_costs_one_round_per_candidate(dataset: DavisDataset, tmp_path: Path) -> None:
    _Counting.calls.clear()
    backend = CachedBackend(_Counting(seed=0), tmp_path / "cache")
    engine = RoundEngine(backend, ScribbleRobot(), QualitySource("oracle"))
    engine.start(_sample(dataset))
    for chosen in (4, 9, 1):  # three rounds: try 3 frames, commit one (a cache hit)
        before = len(_Counting.calls)
        for f in (chosen, 6, 11):
            engine.lookahead(f)
        # the committed (hit) round is replayed once by CachedBackend.sync, not once per candidate
        assert len(_Counting.calls) - before <= 3 + 1
        engine.annotate(chosen)
        engine.propagate()
    assert backend.stats["hits"] == 3


# ----------------------------------------------------------------------------- through evaluate


def test_evaluate_lookahead_scores_what_it_predicted(dataset: DavisDataset) -> None:
    strat = OracleLookaheadStrategy(n_grid=4, n_worst=2)
    seen: list[float] = []
    select = strat.select

    def spy(state: StrategyState) -> int:
        choice = select(state)
        seen.append(strat.last_values[choice])
        assert strat.last_values[choice] == max(strat.last_values.values())
        return choice

    strat.select = spy  # type: ignore[method-assign]
    res = evaluate(dataset, SimulatedBackend(seed=0), strat, setting="oracle", max_rounds=4,
                   max_samples=1, progress=False)
    # the J&F scored after rounds 2..4 is the value the lookahead predicted for the chosen frame
    assert res.curve_rounds[2:] == pytest.approx(seen, abs=1e-12)
    # and the lookahead's one-step choice is never worse than Farthest's, which is a candidate
    far = evaluate(dataset, SimulatedBackend(seed=0), FarthestStrategy(), setting="oracle", max_rounds=2,
                   max_samples=1, progress=False)
    assert res.curve_rounds[2] >= far.curve_rounds[2] - 1e-12


def test_evaluate_refuses_lookahead_in_the_wild(dataset: DavisDataset) -> None:
    with pytest.raises(ConfigError, match="oracle"):
        evaluate(dataset, SimulatedBackend(seed=0), OracleLookaheadStrategy(n_worst=0), setting="wild",
                 max_rounds=2, max_samples=1, progress=False)

