"""The interactive round, written once: evaluation, the Gymnasium env and quality samples run on it.

One sample is a (sequence, initial interaction). Its rounds, in DAVIS counting (round 1 is the
initial interaction and ``max_rounds`` counts it; the env's ``horizon`` counts recommendations
only, see :mod:`ivos_rl.envs.frame_recommendation`)::

    start(sample)      backend.reset(frames, K); backend.interact(initial frame, initial interaction)
    score()            J, F per (frame, object) of the masks the backend returned
    observe()          quality q (T,): Oracle = J&F of those same masks; Wild = the estimator's guess
    -- the caller (strategy, agent, env action) picks a frame --
    annotate(frame)    the robot marks ``frame`` against the current masks; the frame joins the
                       history even when the robot draws nothing (then nothing else changes)
    propagate()        backend.interact(frame, all interactions so far or the latest one)
    score(), observe() ... until max_rounds

:class:`RoundEngine` holds the small per-sample state (:class:`RoundState`) and times every
component with an injectable ``clock``. :meth:`RoundEngine.lookahead` answers "what would the
mean J&F be after annotating frame f" on a fork of the backend, without committing it (for Oracle
lookahead strategies, through ``StrategyState.extras["lookahead"]``).
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, Protocol

import numpy as np

from ivos_rl.backends.base import BackendOutput, VOSBackend, fork_backend
from ivos_rl.errors import ConfigError, InputValidationError, MaskFormatError, SessionError
from ivos_rl.interactions import (
    KINDS,
    Robot,
    check_interaction,
    count_marks,
    first_annotated_frame,
    fuse_interactions,
)
from ivos_rl.metrics import GroundTruth, check_window
from ivos_rl.scoring import Scores, oracle_quality, score_masks, update_scores
from ivos_rl.strategies.base import Strategy, StrategyState

__all__ = [
    "SETTINGS",
    "EngineSnapshot",
    "QualityPredictor",
    "QualitySource",
    "RoundEngine",
    "RoundState",
    "RoundTimings",
    "SampleContext",
    "Setting",
    "fork_backend",
    "load_sample",
    "quality_source_from_cfg",
    "wild_quality",
    "wild_uncertainty",
]

Setting = Literal["oracle", "wild"]
SETTINGS: tuple[str, ...] = ("oracle", "wild")
InitialInteraction = Literal["dataset", "robot"]


class QualityPredictor(Protocol):
    """What the Wild setting needs: per-frame quality from frames and probabilities only."""

    def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class QualitySource:
    """Where the per-frame quality a recommender sees comes from (IVOS-W's Oracle / Wild settings).

    ``oracle``: the true J&F of the masks that are scored (:func:`ivos_rl.scoring.oracle_quality`).
    ``wild``: ``estimator.predict(frames, probs)`` (the quality net), clipped to [0, 1].
    :meth:`uncertainty` goes with the last :meth:`quality`: 0 for the Oracle (exact), the estimator's
    ``last_uncertainty`` (per-frame standard deviation) in the Wild, None when it reports none.
    """

    setting: Setting = "oracle"
    estimator: QualityPredictor | None = None

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ConfigError(f"setting must be one of {SETTINGS}, got {self.setting!r}")
        if self.setting == "wild" and not callable(getattr(self.estimator, "predict", None)):
            raise ConfigError(
                "the wild setting needs a quality estimator with predict(frames, probs), "
                f"got {self.estimator!r}"
            )

    @property
    def is_oracle(self) -> bool:
        return self.setting == "oracle"

    def reset(self) -> None:
        """Forget per-video caches of the estimator (a new sample starts)."""
        reset = getattr(self.estimator, "reset_cache", None)
        if callable(reset):
            reset()

    def quality(
        self,
        frames: np.ndarray,
        output: BackendOutput,
        scores: Scores | None,
        history: Sequence[int] | None = None,
    ) -> np.ndarray:
        """(T,) float64 quality in [0, 1] of the round whose output is ``output``.

        ``history`` (annotated frames so far) reaches estimators that declare ``needs_history``.
        """
        if self.is_oracle:
            if scores is None:
                raise SessionError("the Oracle quality needs the round's scores; call score() first")
            return oracle_quality(scores)
        assert self.estimator is not None
        diagnostics = getattr(output, "diagnostics", None)
        return wild_quality(self.estimator, frames, output.probs, history, diagnostics)

    def uncertainty(self, n_frames: int) -> np.ndarray | None:
        """(T,) standard deviation of the quality :meth:`quality` just returned (see the class)."""
        if self.is_oracle:
            return np.zeros(n_frames)
        return wild_uncertainty(self.estimator, n_frames)


def estimate_quality(
    estimator: Any, frames: np.ndarray, output: BackendOutput, history: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """``estimator.predict`` on a backend output, with its optional diagnostics (:func:`predict_quality`)."""
    return predict_quality(estimator, frames, output.probs, history, getattr(output, "diagnostics", None))


def predict_quality(
    estimator: Any,
    frames: np.ndarray,
    probs: np.ndarray,
    history: Sequence[int] | None,
    diagnostics: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``estimator.predict`` with what it declares it needs: the annotation history (``needs_history``,
    e.g. the feature model) and then the backend's diagnostics, passed only when there are some
    (``recommend`` has no backend output; an estimator that never reads them need not take them)."""
    if not getattr(estimator, "needs_history", False):
        return estimator.predict(frames, probs)  # type: ignore[no-any-return]
    if history is None:
        raise ConfigError(f"quality estimator {type(estimator).__name__} needs the annotation history")
    extra = {} if diagnostics is None else {"diagnostics": diagnostics}
    return estimator.predict(frames, probs, history=list(history), **extra)  # type: ignore[no-any-return]


def wild_quality(
    estimator: Any,
    frames: np.ndarray,
    probs: np.ndarray,
    history: Sequence[int] | None,
    diagnostics: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(T,) float64 frame quality in [0, 1] as every recommender sees it in the Wild: the estimator's
    frame estimate (:func:`predict_quality`) clipped, so evaluation, the env and ``recommend`` hand a
    strategy the same numbers even when a third-party estimator strays outside [0, 1]."""
    q, _ = predict_quality(estimator, frames, probs, history, diagnostics)
    return np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)


def wild_uncertainty(estimator: Any, n_frames: int) -> np.ndarray | None:
    """(T,) float64 standard deviation of the estimator's last prediction (its ``last_uncertainty``),
    floored at 0; None when it reports none. Shared by the round engine and ``recommend``."""
    u = getattr(estimator, "last_uncertainty", None)
    if u is None:
        return None
    u = np.asarray(u, dtype=np.float64)
    if u.shape != (n_frames,) or not np.all(np.isfinite(u)):
        raise InputValidationError(
            f"{type(estimator).__name__}.last_uncertainty is {u.shape} or not finite; need ({n_frames},)"
        )
    return np.maximum(u, 0.0)


@dataclass(frozen=True)
class SampleContext:
    """Everything a round loop needs about one sample: video, ground truth, initial interaction.

    ``truth``: what the metrics and the scribble robot derive from ``gt``
    (:class:`~ivos_rl.metrics.GroundTruth`, built once by :func:`load_sample`); without it they
    derive it every round (the same numbers).
    """

    sequence: str
    scribble_idx: int
    frames: np.ndarray
    gt: np.ndarray
    n_objects: int
    initial: dict[str, Any]
    truth: GroundTruth | None = None

    @property
    def n_frames(self) -> int:
        return int(self.gt.shape[0])

    @property
    def initial_frame(self) -> int:
        """The initially annotated frame (the first frame holding a mark)."""
        return first_annotated_frame(self.initial, f"initial interaction of {self.sequence!r}")

    def window(self, start: int, length: int) -> SampleContext:
        """The sample restricted to frames ``[start, start + length)`` (training subsequences);
        InputValidationError when that is not inside the video (with or without a ``truth``)."""
        check_window(start, length, self.n_frames, repr(self.sequence))
        sl = slice(start, start + length)
        initial = {k: (v[sl] if isinstance(v, list) else v) for k, v in self.initial.items()}
        truth = None if self.truth is None else self.truth.window(start, length)
        return SampleContext(
            self.sequence, self.scribble_idx, self.frames[sl], self.gt[sl], self.n_objects, initial, truth
        )


def check_ground_truth(gt: np.ndarray, sequence: str, truth: GroundTruth | None = None) -> np.ndarray:
    """(T, H, W) ground truth with at least one object pixel, or :class:`MaskFormatError`
    (``truth``: its :class:`~ivos_rl.metrics.GroundTruth`, which knows the present ids)."""
    gt = np.asarray(gt)
    if gt.ndim != 3:
        raise MaskFormatError(f"ground truth of {sequence!r} must be (T, H, W), got shape {gt.shape}")
    if truth is not None:
        truth.check(gt, name=f"ground truth object of {sequence!r}")
    # uint8 labels: an object pixel is a present id, which the truth knows (wider labels may exceed 255)
    known = truth is not None and gt.dtype == np.uint8
    if not (truth.ids.size > 0 if known else ((gt > 0) & (gt != 255)).any()):
        raise MaskFormatError(f"ground truth of {sequence!r} is empty (no object pixel in any frame)")
    return gt


def load_sample(
    dataset: Any,
    sequence: str,
    scribble_idx: int,
    *,
    initial_interaction: InitialInteraction = "dataset",
    robot: Robot | None = None,
    video: tuple[np.ndarray, np.ndarray, int] | None = None,
    truth: GroundTruth | None = None,
) -> SampleContext:
    """Load one sample; ``video`` = (frames, gt, K) already loaded for this sequence, if any, and
    ``truth`` its ground truth's :class:`~ivos_rl.metrics.GroundTruth` (built here otherwise:
    once per sample, every round's scores and robot answers then use it).

    ``initial_interaction="robot"`` replaces the stored scribble by the robot's answer to an empty
    prediction on the stored scribble's first annotated frame (how click robots start).
    """
    if initial_interaction not in ("dataset", "robot"):
        raise ConfigError(f"initial_interaction must be 'dataset'/'robot', not {initial_interaction!r}")
    if video is None:
        n_objects = int(dataset.info(sequence).n_objects)
        video = (dataset.load_frames(sequence), dataset.load_masks(sequence), n_objects)
    frames, gt, n_objects = video
    if n_objects < 1:
        raise MaskFormatError(f"sequence {sequence!r} has an empty ground truth (no object)")
    gt = check_ground_truth(gt, sequence, truth)
    if truth is None:
        truth = GroundTruth.build(gt, n_objects)
    stored = dataset.load_scribbles(sequence, scribble_idx)
    check_interaction(stored, gt.shape[0], f"initial scribble {scribble_idx} of {sequence!r}")
    initial = stored
    if initial_interaction == "robot":
        if robot is None:
            raise ConfigError("initial_interaction='robot' needs a robot")
        frame = first_annotated_frame(stored, f"initial scribble {scribble_idx} of {sequence!r}")
        initial = robot.interact(
            sequence, np.zeros_like(gt), gt, nb_objects=n_objects, frame=frame,
            **robot_options(robot, truth=truth),
        )
        check_interaction(initial, gt.shape[0], f"robot answer for {sequence!r}")
    return SampleContext(str(sequence), int(scribble_idx), frames, gt, int(n_objects), initial, truth)


def robot_options(robot: Any, **options: Any) -> dict[str, Any]:
    """Those of ``options`` (not None) that ``robot`` takes beyond the
    :class:`~ivos_rl.interactions.Robot` protocol (its ``engine_keywords``; the scribble robot's
    ``truth`` and ``path_arrays``); robots of the plain protocol get none. A subclass inherits
    ``engine_keywords`` but may override ``interact`` with the plain signature: only keywords its
    ``interact`` accepts are passed."""
    known = getattr(robot, "engine_keywords", frozenset())
    if known:
        params = inspect.signature(robot.interact).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            known = known & params.keys()
    return {k: v for k, v in options.items() if k in known and v is not None}


@dataclass
class RoundTimings:
    """Seconds spent in one round, by component (a plain value: equal when the numbers are equal).

    ``quality`` (the estimate) and ``select`` (the strategy or agent) together are the
    recommender's latency (:attr:`recommender`), which a time budget counts beside the backend.
    """

    robot: float = 0.0
    backend: float = 0.0
    metrics: float = 0.0
    quality: float = 0.0
    select: float = 0.0

    @property
    def recommender(self) -> float:
        return self.quality + self.select

    @property
    def total(self) -> float:
        return self.robot + self.backend + self.metrics + self.quality + self.select

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass
class RoundState:
    """The committed state of one sample's rounds."""

    sample: SampleContext
    history: list[int]
    interactions: dict[str, Any]
    latest: dict[str, Any]
    output: BackendOutput | None = None
    scores: Scores | None = None
    quality: np.ndarray | None = None
    #: the quality's per-frame standard deviation (:meth:`QualitySource.uncertainty`), set with it
    uncertainty: np.ndarray | None = None
    #: scores of the output before ``output`` when that one says which frames changed (so
    #: :meth:`RoundEngine.score` scores only those again); None otherwise
    previous_scores: Scores | None = None
    sent: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    pending: tuple[int, dict[str, Any]] | None = None
    timings: RoundTimings = field(default_factory=RoundTimings)

    @property
    def round(self) -> int:
        """Interactions made so far, the initial one included (DAVIS counting)."""
        return len(self.history)


@dataclass(frozen=True)
class EngineSnapshot:
    """The engine's committed state at one history: the round state and a fork of the backend.

    Kept by the env so that a reset or a step after transition-cache hits restores the longest
    known history prefix instead of replaying its rounds (:meth:`RoundEngine.restore`).
    """

    state: RoundState
    backend: VOSBackend


class RoundEngine:
    """Run one sample's rounds on ``backend`` with ``robot`` (see the module docstring).

    ``quality`` gives :meth:`observe` its source (None: no quality needed). Clicks reach
    scribble-only backends as disks of ``click_radius`` pixels. ``clock`` (seconds, monotonic)
    times the components; inject a deterministic one for reproducible time budgets.
    ``metric_threads`` scores each round's frames on that many threads (same figures, less wall
    time on large frames).
    """

    def __init__(
        self,
        backend: VOSBackend,
        robot: Robot | None,
        quality: QualitySource | None = None,
        *,
        click_radius: float = 3.0,
        clock: Callable[[], float] = time.perf_counter,
        metric_threads: int = 1,
    ) -> None:
        if isinstance(metric_threads, bool) or not isinstance(metric_threads, int) or metric_threads < 1:
            raise ConfigError(f"metric_threads must be an int >= 1, got {metric_threads!r}")
        self.metric_threads = metric_threads
        self.backend = backend
        self.robot = robot
        self.quality_source = quality
        self.click_radius = float(click_radius)
        self.clock = clock
        self._state: RoundState | None = None
        self._memo: tuple[tuple[int, int], dict[int, float]] = ((-1, -1), {})

    @property
    def state(self) -> RoundState:
        if self._state is None:
            raise SessionError("no sample started: call RoundEngine.start(sample) first")
        return self._state

    # ------------------------------------------------------------------ operations
    def start(self, sample: SampleContext) -> RoundState:
        """Round 1: reset the backend and apply the initial interaction on the initial frame."""
        self._state = RoundState(
            sample=sample,
            history=[sample.initial_frame],
            interactions=copy.deepcopy(sample.initial),
            latest=sample.initial,
        )
        if self.quality_source is not None:
            self.quality_source.reset()
        tic = self.clock()
        self._reset_backend()
        self._state.timings.backend += self.clock() - tic
        self._state.pending = (sample.initial_frame, self._payload(sample.initial, sample.initial))
        self.propagate()
        return self._state

    def annotate(self, frame: int) -> bool:
        """The robot marks ``frame`` against the current masks; False when it drew nothing."""
        s = self.state
        if s.output is None or s.pending is not None:
            raise SessionError("annotate() needs the previous round propagated first")
        if self.robot is None:
            raise ConfigError("annotating a frame needs a robot (simulated user)")
        s.timings = RoundTimings()
        answer = self._robot_answer(s, int(frame))
        s.history.append(int(frame))
        if count_marks(answer) == 0:
            return False  # nothing to correct there: the user draws nothing, the masks stay
        # The fused state is the engine's own and is only sent when the backend wants every
        # interaction (then each round's payload must stay as sent: a fresh dict).
        in_place = not self.backend.wants_all_scribbles
        s.interactions = fuse_interactions(s.interactions, answer, in_place=in_place)
        s.latest = answer
        s.pending = (int(frame), self._payload(s.interactions, answer))
        return True

    def propagate(self) -> BackendOutput:
        """Run the backend on the pending interaction (a no-op after an empty annotation)."""
        s = self.state
        if s.pending is not None:
            frame, payload = s.pending
            tic = self.clock()
            s.output = self.backend.interact(frame, payload)
            s.timings.backend += self.clock() - tic
            s.sent.append(s.pending)
            s.pending = None
            s.previous_scores = s.scores if s.output.changed_frames is not None else None
            s.scores = s.quality = s.uncertainty = None
        assert s.output is not None
        return s.output

    def score(self) -> Scores:
        """J and F per (frame, object) of the current masks (computed once per output)."""
        s = self.state
        if s.scores is None:
            out = self.propagate()
            tic = self.clock()
            s.scores = _score_output(s.sample, out, s.previous_scores, self.metric_threads)
            s.previous_scores = None
            s.timings.metrics += self.clock() - tic
        return s.scores

    def observe(self) -> np.ndarray:
        """(T,) quality of the current masks from the engine's :class:`QualitySource`."""
        s = self.state
        if self.quality_source is None:
            raise ConfigError("observe() needs a quality source (oracle or a quality estimator)")
        if s.quality is None:
            scores = self.score() if self.quality_source.is_oracle else None
            tic = self.clock()
            s.quality = self.quality_source.quality(s.sample.frames, self.propagate(), scores, s.history)
            s.uncertainty = self.quality_source.uncertainty(s.sample.n_frames)
            s.timings.quality += self.clock() - tic
        return s.quality

    def view(self, strategy: Strategy, rnd: int, max_rounds: int) -> StrategyState:
        """What ``strategy`` sees to pick the frame after round ``rnd``: the history, and only what it
        declares it needs (the quality source's estimate, the backend's probabilities, a lookahead).
        The one view of evaluation runs and of lookahead rows that follow a policy."""
        s = self.state
        quality = self.observe() if strategy.needs_quality else None
        return StrategyState(
            round=rnd,
            n_frames=s.sample.n_frames,
            history=tuple(s.history),
            quality=quality,
            uncertainty=s.uncertainty if strategy.needs_quality else None,
            probs=s.output.probs if strategy.needs_probs and s.output is not None else None,
            max_rounds=max_rounds,
            diagnostics=s.output.diagnostics if strategy.needs_probs and s.output is not None else None,
            extras={"lookahead": self.lookahead} if getattr(strategy, "needs_lookahead", False) else {},
        )

    def select(self, choose: Callable[[], int]) -> int:
        """Call ``choose`` (a strategy or agent), counting its time as the recommender's."""
        tic = self.clock()
        frame = int(choose())
        self.state.timings.select += self.clock() - tic
        return frame

    def snapshot(self) -> EngineSnapshot:
        """The committed state (after a propagated round) as an :class:`EngineSnapshot`.

        The backend is forked (:func:`fork_backend`); the round state is copied where rounds write
        (history, the fused interactions the engine extends in place, what was sent) and shared
        where they only replace (outputs, scores, quality, the sample).
        """
        s = self.state
        if s.output is None or s.pending is not None:
            raise SessionError("snapshot() needs the current round propagated first")
        return EngineSnapshot(_copied_state(s), fork_backend(self.backend))

    def restore(self, snap: EngineSnapshot) -> RoundState:
        """Continue from ``snap`` exactly as if its rounds had just been run (the snapshot stays
        reusable: the engine works on copies). The quality source's per-video cache is kept: it
        compares content, so it stays exact across restores."""
        self.backend = fork_backend(snap.backend)
        self._state = _copied_state(snap.state)
        self._memo = ((-1, -1), {})
        return self._state

    def lookahead(self, frame: int) -> float:
        """Mean J&F after annotating ``frame`` and running that round, without committing it.

        Exactly what committing would do, on copies: a copy of the robot (a seeded annotator's
        state does not advance) answers on the current masks, and a fork of the backend
        (:func:`fork_backend`) runs the round; an answer without marks leaves the masks as they
        are. Values are memoised until the state changes, so asking twice costs nothing.
        """
        s = self.state
        if s.output is None or s.pending is not None:
            raise SessionError("lookahead() needs the current round propagated first")
        if (
            isinstance(frame, bool)
            or not isinstance(frame, (int, np.integer))
            or not 0 <= frame < s.sample.n_frames
        ):
            raise InputValidationError(
                f"lookahead frame must be an int in [0, {s.sample.n_frames}), got {frame!r}"
            )
        version = (len(s.history), len(s.sent))
        if self._memo[0] != version:
            self._memo = (version, {})
            sync = getattr(self.backend, "sync", None)
            if callable(sync):
                # A CachedBackend whose last round was a hit (e.g. the lookahead's own pick) has its
                # wrapped backend a round behind: catch up once here, not once in every fork.
                sync()
        memo = self._memo[1]
        if int(frame) not in memo:
            memo[int(frame)] = self._try(s, int(frame))
        return memo[int(frame)]

    def _try(self, s: RoundState, frame: int) -> float:
        assert s.output is not None
        if self.robot is None:
            raise ConfigError("lookahead needs a robot (simulated user)")
        sample = s.sample
        answer = copy.deepcopy(self.robot).interact(
            sample.sequence, s.output.masks, sample.gt, nb_objects=sample.n_objects, frame=frame,
            **robot_options(self.robot, truth=sample.truth, path_arrays=True),
        )
        check_interaction(answer, sample.n_frames, f"robot answer for {sample.sequence!r}")
        if count_marks(answer) == 0:
            return self.score().mean_jf
        payload = self._payload(fuse_interactions(s.interactions, answer), answer)
        out = fork_backend(self.backend).interact(frame, payload)
        return _score_output(sample, out, self.score(), self.metric_threads).mean_jf

    # ------------------------------------------------------------------ helpers
    def _robot_answer(self, s: RoundState, frame: int, timed: bool = True) -> dict[str, Any]:
        assert self.robot is not None and s.output is not None
        sample = s.sample
        tic = self.clock()
        # Paths as arrays: the engine keeps every stroke, the backends read them as arrays anyway.
        answer = self.robot.interact(
            sample.sequence, s.output.masks, sample.gt, nb_objects=sample.n_objects, frame=frame,
            **robot_options(self.robot, truth=sample.truth, path_arrays=True),
        )
        if timed:
            s.timings.robot += self.clock() - tic
        check_interaction(answer, sample.n_frames, f"robot answer for {sample.sequence!r}")
        return answer

    def _payload(self, fused: dict[str, Any], latest: dict[str, Any]) -> dict[str, Any]:
        """What the backend receives: all interactions or the latest, clicks as disks if needed."""
        chosen = fused if self.backend.wants_all_scribbles else latest
        if "clicks" in chosen and not self.backend.accepts_clicks:
            from ivos_rl.clicks import interaction_to_scribbles

            return interaction_to_scribbles(chosen, self.click_radius, self.state.sample.gt.shape[1:3])
        return chosen

    def _reset_backend(self) -> None:
        sample = self.state.sample
        self.backend.reset(
            sample.frames,
            sample.n_objects,
            sequence=sample.sequence,
            gt_masks=sample.gt if self.backend.uses_ground_truth else None,
        )


def _copied_state(s: RoundState) -> RoundState:
    """A copy of ``s`` that later rounds on either side cannot change (see :meth:`RoundEngine.snapshot`)."""
    # The engine fuses new marks into ``interactions`` in place (fuse_interactions(in_place=True)
    # extends its per-frame lists with copies of the new marks and never edits a mark): copying
    # those lists is enough, and much cheaper than a deep copy of thousands of stroke points.
    interactions = {k: [list(frame) for frame in v] if k in KINDS else v for k, v in s.interactions.items()}
    history, sent = list(s.history), list(s.sent)
    return replace(s, history=history, interactions=interactions, sent=sent, timings=RoundTimings())


def _score_output(
    sample: SampleContext, out: BackendOutput, previous: Scores | None, threads: int = 1
) -> Scores:
    """Scores of ``out``'s masks; with the scores of the output before it and ``out.changed_frames``
    only the changed frames are scored again (the others are byte-identical)."""
    if previous is None or out.changed_frames is None:
        return score_masks(sample.gt, out.masks, sample.n_objects, threads, truth=sample.truth)
    return update_scores(
        previous, sample.gt, out.masks, sample.n_objects, out.changed_frames, threads, truth=sample.truth
    )


def wild_setting_with_quality(setting: Any, quality: Any) -> dict[str, Any]:
    """The ``setting`` node whose Wild estimator is the ``quality`` config group's entry
    (``evaluate.py setting=wild quality=resnet50``): a net config with a shipped ``checkpoint``
    becomes ``QualityEstimator.from_checkpoint(checkpoint)``; an estimator config (``_target_`` +
    ``path``, e.g. ``quality=features``) is used as is. :class:`ConfigError` for the Oracle
    setting (it uses no estimator) and for a net without a shipped checkpoint."""
    name = setting if isinstance(setting, str) else setting.get("name")
    if name != "wild":
        raise ConfigError(
            f"quality=<name> chooses the Wild setting's estimator; it needs setting=wild, got {name!r}"
        )
    if quality.get("checkpoint"):
        path = str(quality.get("checkpoint"))
        estimator: Any = {"_target_": "ivos_rl.quality.QualityEstimator.from_checkpoint", "path": path}
    elif quality.get("_target_") and quality.get("path"):
        estimator = quality
    else:
        raise ConfigError(
            f"the quality config {quality.get('backbone', quality.get('_target_'))!r} has no shipped "
            "checkpoint (set quality.checkpoint=<.pt>)"
        )
    return {"name": "wild", "estimator": estimator}


def quality_source_from_cfg(node: Any) -> QualitySource:
    """The ``setting`` config group (``configs/setting/{oracle,wild}.yaml``) as a :class:`QualitySource`.

    ``node`` is ``{"name": "oracle"|"wild", "estimator": <_target_ config or null>}`` or the bare
    setting name. The estimator (the quality net) is only instantiated for ``wild``. Evaluation and
    training both build their quality source with this function.
    """
    if isinstance(node, str):
        name, estimator_cfg = node, None
    else:
        name, estimator_cfg = node.get("name"), node.get("estimator")
    if name not in SETTINGS:
        raise ConfigError(f"setting.name must be one of {SETTINGS}, got {name!r}")
    if name == "oracle":
        return QualitySource("oracle")
    if estimator_cfg is None:
        raise ConfigError(
            "setting=wild needs setting.estimator (e.g. setting.estimator.path=<model.features.pt>; a crop "
            "quality net: setting.estimator={_target_: ivos_rl.quality.QualityEstimator.from_checkpoint, "
            "path: <net.pt>})"
        )
    from hydra.utils import instantiate

    return QualitySource("wild", instantiate(estimator_cfg))
