"""The one-step lookahead (ivos_rl.lookahead) and the oracle_lookahead strategy.

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
from ivos_rl.errors import BackendError, ConfigError, InputValidationError
from ivos_rl.evaluation import evaluate
from ivos_rl.lookahead import count_marks, fork_backend, make_lookahead, mean_j_and_f
from ivos_rl.robot import ScribbleRobot
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


# ----------------------------------------------------------------------------- lookahead callable


def test_mean_j_and_f_by_hand() -> None:
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[:, :, :5] = 1
    pred = gt.copy()
    pred[1] = 0  # frame 1 empty: J = 0, F = 0; frame 0 perfect: J = F = 1
    assert mean_j_and_f(gt, pred, 1) == pytest.approx(0.5)
    assert count_marks({"scribbles": [[{"path": [[0.1, 0.1]]}, {"path": []}], []]}) == 1
    assert count_marks({"clicks": [[{"point": [0.1, 0.1]}], [{"point": [0.2, 0.2]}]]}) == 2


def _sample(dataset: DavisDataset, backend: VOSBackend) -> tuple[str, np.ndarray, int, BackendOutput, dict]:
    seq = dataset.sequences[0]
    frames, gt = dataset.load_frames(seq), dataset.load_masks(seq)
    k = dataset.info(seq).n_objects
    backend.reset(frames, k, sequence=seq, gt_masks=gt)
    first = dataset.load_scribbles(seq, 1)
    f0 = next(t for t, s in enumerate(first["scribbles"]) if s)
    return seq, gt, k, backend.interact(f0, first), first


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
    seq, gt, k, out, _ = _sample(dataset, backend)
    robot = ScribbleRobot()
    look = make_lookahead(backend, robot, sequence=seq, gt=gt, n_objects=k, masks=out.masks, fused=None)
    tried = {f: look(f) for f in (2, 7, 11)}
    assert look(7) == tried[7]  # memoised
    # committing frame 7 now (as the evaluation would) gives exactly the tried value ...
    answer = robot.interact(seq, out.masks, gt, nb_objects=k, frame=7)
    committed = backend.interact(7, answer)
    assert mean_j_and_f(gt, committed.masks, k) == pytest.approx(tried[7], abs=1e-12)
    if isinstance(backend, CachedBackend):  # ... and, through the transition cache, without recomputing it
        assert backend.stats["hits"] == 1
    # trying frames 2 and 11 left no trace: a fresh run with the same history matches
    fresh = _make(kind, tmp_path / "fresh_cache")
    _sample(dataset, fresh)
    np.testing.assert_array_equal(fresh.interact(7, answer).masks, committed.masks)
    with pytest.raises(InputValidationError, match="lookahead frame"):
        look(gt.shape[0])


def test_lookahead_refuses_missing_inputs(dataset: DavisDataset) -> None:
    backend = SimulatedBackend(seed=0)
    seq, _gt, k, out, _ = _sample(dataset, backend)
    with pytest.raises(InputValidationError, match="ground truth"):
        make_lookahead(backend, ScribbleRobot(), sequence=seq, gt=None, n_objects=k,  # type: ignore[arg-type]
                       masks=out.masks, fused=None)


def test_fork_backend_uses_fork_hook_and_checks_it() -> None:
    class Forky(SimulatedBackend):
        def fork(self) -> VOSBackend:
            self.forked = True
            return SimulatedBackend(seed=1)

    b = Forky(seed=0)
    assert isinstance(fork_backend(b), SimulatedBackend) and b.forked

    class Bad(SimulatedBackend):
        def fork(self) -> VOSBackend:
            return self

    with pytest.raises(BackendError, match="fork"):
        fork_backend(Bad(seed=0))


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


class _Counting(SimulatedBackend):
    """Counts wrapped-backend rounds across every copy (class attribute: deep copies share it)."""

    calls: ClassVar[list[int]] = []

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        self.calls.append(int(frame_idx))
        return super().interact(frame_idx, interaction)


def test_cached_lookahead_costs_one_round_per_candidate(dataset: DavisDataset, tmp_path: Path) -> None:
    _Counting.calls.clear()
    backend = CachedBackend(_Counting(seed=0), tmp_path / "cache")
    seq, gt, k, out, _ = _sample(dataset, backend)
    robot = ScribbleRobot()
    for chosen in (4, 9, 1):  # three rounds: try 3 frames, commit one (a cache hit)
        before = len(_Counting.calls)
        look = make_lookahead(backend, robot, sequence=seq, gt=gt, n_objects=k, masks=out.masks, fused=None)
        for f in (chosen, 6, 11):
            look(f)
        # the committed (hit) round is replayed once by sync, not once per candidate
        assert len(_Counting.calls) - before <= 3 + 1
        out = backend.interact(chosen, robot.interact(seq, out.masks, gt, nb_objects=k, frame=chosen))
    assert backend.stats["hits"] == 3
