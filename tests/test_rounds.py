"""The round engine on a hand-made case whose every score is known.

Video: 8 frames of 10x10, one object filling the left half (50 px) on every frame. The fake
backend returns the ground truth on every frame annotated so far and an empty mask elsewhere,
so a frame scores J&F = 1 once annotated and 0 before (empty prediction: J = 0, F = 0). The fake
robot draws one stroke on the frame asked for, or nothing when that frame is already right.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from ivos_rl.backends.base import BackendOutput, VOSBackend
from ivos_rl.errors import ConfigError, InputValidationError, SessionError
from ivos_rl.interactions import marked_frames
from ivos_rl.rounds import QualitySource, RoundEngine, SampleContext
from ivos_rl.scoring import Scores, oracle_quality

T = 8


def _gt() -> np.ndarray:
    gt = np.zeros((T, 10, 10), np.uint8)
    gt[:, :, :5] = 1
    return gt


def _stroke(obj: int = 1) -> dict[str, Any]:
    return {"path": [[0.2, 0.5], [0.3, 0.5]], "object_id": obj, "start_time": 0.0, "end_time": 1.0}


def _scribbles(frames: list[int]) -> dict[str, Any]:
    per_frame: list[list[dict[str, Any]]] = [[] for _ in range(T)]
    for f in frames:
        per_frame[f] = [_stroke()]
    return {"scribbles": per_frame, "sequence": "toy"}


class PerfectWhereAnnotated(VOSBackend):
    """Ground truth on every frame marked so far, empty elsewhere; records its calls."""

    name: ClassVar[str] = "toy"
    uses_ground_truth: ClassVar[bool] = True

    def __init__(self, wants_all: bool = True, tick: list[float] | None = None) -> None:
        self.wants_all_scribbles = wants_all  # type: ignore[misc]
        self.calls: list[tuple[int, dict[str, Any]]] = []
        self.resets = 0
        self.tick = tick

    def reset(self, frames: np.ndarray, n_objects: int, *, sequence: str | None = None,
              gt_masks: np.ndarray | None = None) -> None:
        assert gt_masks is not None
        self.gt, self.done, self.resets = gt_masks, set(), self.resets + 1

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        if self.tick is not None:
            self.tick[0] += 2.0
        self.calls.append((frame_idx, interaction))
        self.done |= set(marked_frames(interaction))
        masks = np.zeros_like(self.gt)
        for f in self.done:
            masks[f] = self.gt[f]
        return BackendOutput(probs=(masks[:, None] * 255).astype(np.uint8), masks=masks)


class FakeRobot:
    def __init__(self, tick: list[float] | None = None) -> None:
        self.tick = tick

    def interact(self, sequence: str, pred_masks: np.ndarray, gt_masks: np.ndarray,
                 nb_objects: int | None = None, frame: int | None = None) -> dict[str, Any]:
        if self.tick is not None:
            self.tick[0] += 0.5
        assert frame is not None
        return _scribbles([] if np.array_equal(pred_masks[frame], gt_masks[frame]) else [frame])


def _sample(initial_frames: list[int]) -> SampleContext:
    gt = _gt()
    frames = np.zeros((T, 10, 10, 3), np.uint8)
    return SampleContext("toy", 1, frames, gt, 1, _scribbles(initial_frames))


def test_start_scores_the_initial_round_and_takes_the_first_marked_frame() -> None:
    backend = PerfectWhereAnnotated()
    engine = RoundEngine(backend, FakeRobot(), QualitySource("oracle"))
    state = engine.start(_sample([5, 2]))  # marks on frames 2 and 5: the initial frame is 2
    assert state.history == [2] and state.round == 1
    assert backend.resets == 1 and [f for f, _ in backend.calls] == [2]
    expected = np.zeros(T)
    expected[[2, 5]] = 1.0
    np.testing.assert_array_equal(engine.score().per_frame(), expected)
    np.testing.assert_array_equal(engine.observe(), expected)  # Oracle = J&F of the scored masks
    assert engine.score().mean_jf == pytest.approx(2 / T)


def test_empty_annotation_counts_in_history_but_changes_nothing() -> None:
    backend = PerfectWhereAnnotated()
    engine = RoundEngine(backend, FakeRobot(), QualitySource("oracle"))
    engine.start(_sample([2]))
    before = engine.score()
    assert engine.annotate(2) is False  # frame 2 is already right: the robot draws nothing
    engine.propagate()
    assert engine.state.history == [2, 2]
    assert len(backend.calls) == 1  # the backend did not run
    assert engine.score() is before
    assert engine.annotate(6) is True
    engine.propagate()
    assert engine.state.history == [2, 2, 6] and len(backend.calls) == 2
    assert engine.score().per_frame()[[2, 6]].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("wants_all", [True, False])
def test_backend_gets_all_interactions_or_the_latest(wants_all: bool) -> None:
    backend = PerfectWhereAnnotated(wants_all=wants_all)
    engine = RoundEngine(backend, FakeRobot(), None)
    engine.start(_sample([3]))
    engine.annotate(7)
    engine.propagate()
    frame, payload = backend.calls[-1]
    assert frame == 7
    assert marked_frames(payload) == ([3, 7] if wants_all else [7])


def test_wild_quality_is_the_estimate_clipped_to_unit_range() -> None:
    class Estimator:
        def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            q = np.linspace(-0.5, 1.5, frames.shape[0])
            return q, q[:, None]

    engine = RoundEngine(PerfectWhereAnnotated(), FakeRobot(), QualitySource("wild", Estimator()))
    engine.start(_sample([0]))
    q = engine.observe()
    assert q.min() == 0.0 and q.max() == 1.0
    with pytest.raises(ConfigError, match="quality estimator"):
        QualitySource("wild", None)


def test_estimators_that_need_the_history_get_the_annotated_frames() -> None:
    class HistoryEstimator:
        needs_history = True

        def __init__(self) -> None:
            self.seen: list[list[int]] = []

        def predict(
            self, frames: np.ndarray, probs: np.ndarray, *, history: list[int], diagnostics: Any = None
        ) -> tuple[np.ndarray, np.ndarray]:
            self.seen.append(list(history))
            q = np.zeros(frames.shape[0])
            q[history] = 1.0  # "annotated frames are good": checkable by hand
            return q, q[:, None]

    est = HistoryEstimator()
    engine = RoundEngine(PerfectWhereAnnotated(), FakeRobot(), QualitySource("wild", est))
    engine.start(_sample([3]))
    assert engine.observe().tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    engine.annotate(6)
    engine.propagate()
    assert engine.observe().tolist() == [0, 0, 0, 1, 0, 0, 1, 0]
    assert est.seen == [[3], [3, 6]]


def test_lookahead_reports_the_candidate_round_without_committing_it() -> None:
    backend = PerfectWhereAnnotated()
    engine = RoundEngine(backend, FakeRobot(), QualitySource("oracle"))
    engine.start(_sample([1]))
    # annotating 4 would make frames 1 and 4 perfect: mean J&F 2/8; an already-right frame: 1/8
    assert engine.lookahead(4) == pytest.approx(2 / T)
    assert engine.lookahead(1) == pytest.approx(1 / T)
    assert engine.lookahead(4) == pytest.approx(2 / T)  # memoised
    assert engine.state.history == [1] and len(backend.calls) == 1  # the backend itself never ran
    np.testing.assert_array_equal(engine.score().per_frame(), np.eye(T)[1])
    engine.annotate(6)
    engine.propagate()  # frame 4 was never committed
    np.testing.assert_array_equal(engine.score().per_frame(), np.eye(T)[1] + np.eye(T)[6])
    assert engine.lookahead(4) == pytest.approx(3 / T)  # a new round: asked afresh
    with pytest.raises(InputValidationError, match="lookahead frame"):
        engine.lookahead(T)


def test_timings_follow_the_injected_clock() -> None:
    tick = [0.0]
    engine = RoundEngine(PerfectWhereAnnotated(tick=tick), FakeRobot(tick=tick), QualitySource("oracle"),
                         clock=lambda: tick[0])
    engine.start(_sample([0]))
    assert engine.state.timings.backend == 2.0 and engine.state.timings.robot == 0.0

    def choose() -> int:
        tick[0] += 0.25
        return 3

    frame = engine.select(choose)
    assert frame == 3 and engine.state.timings.select == 0.25 == engine.state.timings.recommender
    engine.annotate(frame)
    engine.propagate()
    t = engine.state.timings
    assert (t.robot, t.backend, t.select) == (0.5, 2.0, 0.0)


def test_operations_in_the_wrong_order_are_refused() -> None:
    engine = RoundEngine(PerfectWhereAnnotated(), FakeRobot(), None)
    with pytest.raises(SessionError, match="start"):
        engine.score()
    engine.start(_sample([0]))
    engine.annotate(3)
    with pytest.raises(SessionError, match="propagated"):
        engine.annotate(4)
    with pytest.raises(ConfigError, match="quality source"):
        engine.observe()


def test_oracle_quality_on_hand_made_masks() -> None:
    """Two objects: q_k = J&F per object, q = their mean (an absent object scores 1)."""
    j = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    f = np.array([[1.0, 1.0], [0.0, 0.5], [1.0, 1.0]])
    np.testing.assert_allclose(oracle_quality(Scores(j, f)), [1.0, 0.375, 1.0])


class ReportsChangedFrames(PerfectWhereAnnotated):
    """As PerfectWhereAnnotated, and says which frames each round changed (``claim`` overrides)."""

    def __init__(self, claim: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.claim = claim

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        before = set(self.done)
        out = super().interact(frame_idx, interaction)
        changed = tuple(sorted(self.done - before)) if self.claim is None else self.claim
        return BackendOutput(probs=out.probs, masks=out.masks, changed_frames=changed)


def test_only_the_frames_a_round_changed_are_scored_again() -> None:
    engine = RoundEngine(ReportsChangedFrames(), FakeRobot(), QualitySource("oracle"))
    engine.start(_sample([1]))
    np.testing.assert_array_equal(engine.score().per_frame(), np.eye(T)[1])
    for frame in (4, 6):
        engine.annotate(frame)
        engine.propagate()
    np.testing.assert_array_equal(engine.score().per_frame(), np.eye(T)[1] + np.eye(T)[4] + np.eye(T)[6])
    assert engine.lookahead(2) == pytest.approx(4 / T)
    # A backend that claims no frame changed keeps every earlier score: frame 3's new perfect
    # mask is not scored again (J&F stays 0 there), which proves the other frames were copied.
    liar = ReportsChangedFrames(claim=())
    engine = RoundEngine(liar, FakeRobot(), QualitySource("oracle"))
    engine.start(_sample([1]))
    engine.score()
    engine.annotate(3)
    engine.propagate()
    np.testing.assert_array_equal(engine.score().per_frame(), np.eye(T)[1])
    assert engine.lookahead(5) == pytest.approx(1 / T)


@pytest.mark.parametrize("wants_all", [True, False])
def test_the_fused_interactions_are_all_rounds_and_sent_payloads_stay_as_sent(wants_all: bool) -> None:
    # The engine extends its own fused state in place when the backend only takes the latest
    # round (nothing else holds it); a backend given every round keeps what it was sent.
    backend = PerfectWhereAnnotated(wants_all=wants_all)
    engine = RoundEngine(backend, FakeRobot(), None)
    engine.start(_sample([3]))
    for frame in (7, 5):
        engine.annotate(frame)
        engine.propagate()
    assert marked_frames(engine.state.interactions) == [3, 5, 7]
    assert [marked_frames(p) for _, p in backend.calls] == ([[3], [3, 7], [3, 5, 7]] if wants_all
                                                            else [[3], [7], [5]])


@pytest.mark.parametrize("wants_all", [True, False])
def test_a_snapshot_is_restored_as_taken_however_often_it_is_continued(wants_all: bool) -> None:
    # Snapshot after rounds on 3 and 7, continue with 5; restore and continue with 1 instead:
    # the second branch must see exactly rounds 3, 7, 1 (not 5), and the snapshot stays as taken.
    backend = PerfectWhereAnnotated(wants_all=wants_all)
    engine = RoundEngine(backend, FakeRobot(), QualitySource("oracle"))
    engine.start(_sample([3]))
    engine.annotate(7)
    engine.propagate()
    snap = engine.snapshot()
    assert snap.backend is not backend
    for branch, frame in ((0, 5), (1, 1)):
        if branch:
            engine.restore(snap)
        engine.annotate(frame)
        engine.propagate()
        assert engine.state.history == [3, 7, frame]
        assert marked_frames(engine.state.interactions) == sorted([3, 7, frame])
        assert engine.score().per_frame()[[3, 7, frame]].tolist() == [1.0, 1.0, 1.0]
        assert engine.score().mean_jf == pytest.approx(3 / T)
    assert snap.state.history == [3, 7] and marked_frames(snap.state.interactions) == [3, 7]
    assert engine.backend is not snap.backend and len(snap.state.sent) == 2
    fresh = RoundEngine(PerfectWhereAnnotated(wants_all=wants_all), FakeRobot(), QualitySource("oracle"))
    with pytest.raises(SessionError, match="no sample started"):
        fresh.snapshot()
    fresh.start(_sample([3]))
    fresh.annotate(7)  # not propagated yet: nothing committed to snapshot
    with pytest.raises(SessionError, match="snapshot"):
        fresh.snapshot()
