"""The frame-recommendation MDP of IVOS-W (§3.1) as a Gymnasium environment.

One episode is one interactive session on one sample (sequence, initial scribble):

* ``reset`` loads the sample, applies the initial scribble (interaction 1 in DAVIS counting),
  runs the backend and returns the state s_0 = (q, h) per frame (Eq. 1), h counting the initially
  annotated frame once;
* ``step(a)`` lets the simulated user (the scribble robot, which always compares with the ground
  truth) scribble on frame ``a`` against the current prediction, runs the backend, and updates q
  and h. After ``horizon`` recommendations the episode terminates.

**Horizon.** ``horizon`` is the number of *recommendations* T (env steps). DAVIS-style counts
include the initial scribble: the paper's "T = 5 interactions in training" (the reference code's
``max_nb_interactions = 5``) is ``horizon = 4`` here, and "8 rounds at test" is ``horizon = 7``.

**Rewards.** At step t the env computes r_aux (Eq. 4, ``counts`` before the action) and the goal
reward of the sub-task ending now, r_goal(P_t; mu_t, sigma_t) with the random baseline for
horizon t (Eq. 2/3). It returns r_aux for t < T and r_goal at t = T (Eq. 5; with the goal term
switched off, r_aux is paid at T too). Both are in ``info`` (``reward_intermediate``,
``reward_terminal``) so the learner can build task-decomposition transitions.

**Variable N.** Training samples ``subsequence_length`` (N' = 25) consecutive frames that contain
the initially annotated frame (``subsequence_start``: "centered" as the reference code, or
"random"), so the observation space is fixed. With ``subsequence_length=None`` (evaluation) the
whole video is used and the spaces are rebuilt at every ``reset`` for that video's length: the
Q-network is length-agnostic, and padding would feed padded frames into the backward pass of the
bidirectional recurrence (changing every Q value) unless masked, so per-episode spaces keep
evaluation identical to running the network on the whole video as the paper does. Vector envs
need fixed spaces and are therefore only used with subsequences.

**Quality.** ``quality="oracle"`` uses the true per-frame J&F of the masks that are scored (the
same Oracle state evaluation shows strategies); any object with ``predict(frames, probs) -> (q,
q_k)`` (the "Wild" :class:`~ivos_rl.quality.QualityEstimator`), or a
:class:`~ivos_rl.rounds.QualitySource`, gives the estimated quality.

**Rounds.** Reset and steps run on :class:`~ivos_rl.rounds.RoundEngine`, the round engine that
evaluation and quality-sample generation use too, so the same actions give the same masks, J&F
and Oracle states everywhere (tests/test_rounds_parity.py). Wall-clock seconds by component of the
last reset/step are in ``env.last_timings`` (not in ``info``, which must be deterministic).

**Interactions.** ``interaction="robot"`` runs the DAVIS scribble robot on the chosen frame. The
robot (skeletons, graphs) dominates a step with a simulated backend, and a simulator only uses
the strokes to pin the annotated frame's pixels, so ``interaction="fast"`` (simulators only, i.e.
``backend.uses_ground_truth``) replaces it with one-point strokes at the interior-most pixel of
each object's and the background's error region on that frame. If the frame has no error, the
robot draws nothing and the prediction stays as it is (the annotation is still counted in h).

**Transition cache.** With a deterministic backend, the outcome of a step depends only on the
sample, the subsequence and the annotation history. ``transition_cache > 0`` memoises per-frame
(J, F, q) by history in an LRU, and a hit skips the robot, backend and metrics; the backend is
lazily replayed up to the current history on the next miss, so results are identical with and
without the cache.

**Snapshots.** ``snapshots > 0`` keeps that many engine states (:class:`~ivos_rl.rounds.EngineSnapshot`:
the round state and a fork of the backend) in an LRU keyed like the cache, one per history a miss
computed (terminal states excepted: no step continues them); when full, the least recently used
of the deepest histories goes first (resets are restored most often). A reset or a miss then
restores the longest snapshotted prefix of the current history
and replays only the rounds after it: a training reset of a known sample costs a copy instead of
the whole initial round, and cache hits no longer have to be paid back by replays. Results are
identical with and without them (test). Memory: the backend's per-frame state per snapshot
(about 20 MB for the propagation backend at N' = 25, 240p, which also keeps each snapshotted
subsequence's flows alive).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ivos_rl.backends.base import VOSBackend
from ivos_rl.envs.rewards import RewardConfig, aux_reward, goal_reward, performance
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.interactions import Robot
from ivos_rl.metrics import METRIC_KEYS, GroundTruth
from ivos_rl.rounds import (
    EngineSnapshot,
    QualitySource,
    RoundEngine,
    RoundTimings,
    SampleContext,
    load_sample,
)
from ivos_rl.state import StateMode, build_state, history_counts
from ivos_rl.state_features import StateFeatures

SubsequenceStart = Literal["centered", "random"]
InteractionMode = Literal["robot", "fast"]


class BaselineLike(Protocol):
    """What the env needs from :class:`~ivos_rl.envs.baseline.RandomBaseline`."""

    def stats(
        self, sequence: str, scribble_idx: int, start: int, horizon: int, metric: str
    ) -> tuple[float, float]: ...


def centered_start(first_frame: int, n_frames: int, length: int) -> int:
    """The reference's subsequence start: middle of the valid starts that contain ``first_frame``."""
    lo, hi = valid_starts(first_frame, n_frames, length)
    return (lo + hi) // 2


def valid_starts(first_frame: int, n_frames: int, length: int) -> tuple[int, int]:
    """Inclusive range of starts s with s <= first_frame < s + length and s + length <= n_frames."""
    if length > n_frames:
        raise InputValidationError(f"subsequence length {length} exceeds the video's {n_frames} frames")
    if not 0 <= first_frame < n_frames:
        raise InputValidationError(f"annotated frame {first_frame} outside [0, {n_frames})")
    return max(0, first_frame - length + 1), min(first_frame, n_frames - length)


def fast_scribble(
    sequence: str, pred: np.ndarray, gt: np.ndarray, frame: int, n_objects: int
) -> dict[str, Any]:
    """One-point strokes at the interior-most pixel of each label's error region on ``frame``.

    A cheap stand-in for the robot for simulators (see the module docstring): for each id in
    0..K, the error region is ``gt == id & pred != id`` (void pixels excluded); its pixel farthest
    from the region's border gets a stroke of that id. Coordinates are normalised as DAVIS does.
    """
    t, h, w = gt.shape
    strokes: list[dict[str, Any]] = []
    g, p = gt[frame], pred[frame]
    for obj in range(n_objects + 1):
        err = ((g == obj) & (p != obj)).astype(np.uint8)
        if not err.any():
            continue
        dist = cv2.distanceTransform(np.pad(err, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(dist.argmax()), dist.shape)
        point = [x / max(w - 1, 1), y / max(h - 1, 1)]
        strokes.append({"path": [point, point], "object_id": obj, "start_time": 0.0, "end_time": 0.0})
    per_frame: list[list[dict[str, Any]]] = [[] for _ in range(t)]
    per_frame[frame] = strokes
    return {"scribbles": per_frame, "sequence": sequence}


class FastRobot:
    """:func:`fast_scribble` behind the :class:`~ivos_rl.interactions.Robot` protocol (simulators only)."""

    def interact(
        self,
        sequence: str,
        pred_masks: np.ndarray,
        gt_masks: np.ndarray,
        nb_objects: int | None = None,
        frame: int | None = None,
    ) -> dict[str, Any]:
        if frame is None or nb_objects is None:
            raise InputValidationError("FastRobot.interact needs the frame and nb_objects")
        return fast_scribble(sequence, pred_masks, gt_masks, int(frame), int(nb_objects))


def _check_knobs(
    backend: VOSBackend,
    robot: Robot | None,
    horizon: Any,
    subsequence_length: Any,
    subsequence_start: Any,
    interaction: Any,
    transition_cache: Any,
    max_cached_sequences: Any,
    snapshots: Any,
) -> None:
    """Typed errors for the environment's knobs, raised before any data is loaded."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon must be an int >= 1, got {horizon!r}")
    if subsequence_length is not None and (
        isinstance(subsequence_length, bool)
        or not isinstance(subsequence_length, (int, np.integer))
        or subsequence_length < 1
    ):
        raise ConfigError(f"subsequence_length must be None or an int >= 1, got {subsequence_length!r}")
    if subsequence_start not in ("centered", "random"):
        raise ConfigError(f"subsequence_start must be 'centered' or 'random', got {subsequence_start!r}")
    if interaction not in ("robot", "fast"):
        raise ConfigError(f"interaction must be 'robot' or 'fast', got {interaction!r}")
    if interaction == "robot" and robot is None:
        raise ConfigError("interaction='robot' needs a robot (e.g. ivos_rl.robot.ScribbleRobot())")
    if interaction == "fast" and not getattr(backend, "uses_ground_truth", False):
        raise ConfigError(
            f"interaction='fast' is only for simulators; backend {getattr(backend, 'name', backend)!r} "
            "is a real segmenter and needs the robot's scribbles"
        )
    if int(transition_cache) < 0 or int(max_cached_sequences) < 1:
        raise ConfigError(
            f"transition_cache must be >= 0 and max_cached_sequences >= 1, got "
            f"{transition_cache} / {max_cached_sequences}"
        )
    if isinstance(snapshots, bool) or not isinstance(snapshots, (int, np.integer)) or snapshots < 0:
        raise ConfigError(f"snapshots must be an int >= 0 (0 = off), got {snapshots!r}")


def _checked_samples(
    dataset: Any, samples: Sequence[tuple[str, int]] | None, subsequence_length: int | None
) -> list[tuple[str, int]]:
    """The env's (sequence, scribble) samples: not empty, every video at least one subsequence long."""
    chosen = dataset.samples() if samples is None else samples
    pairs = [(str(s), int(i)) for s, i in chosen]
    if not pairs:
        raise ConfigError(
            f"no (sequence, initial scribble) samples in {dataset!r}; generate initial scribbles "
            "first (`ivos-rl init-scribbles`)"
        )
    if subsequence_length is not None:
        short = sorted({s for s, _ in pairs if dataset.info(s).n_frames < subsequence_length})
        if short:
            raise ConfigError(
                f"sequences shorter than subsequence_length={subsequence_length}: {short}; "
                "lower subsequence_length or leave them out"
            )
    return pairs


class FrameRecommendationEnv(gym.Env[np.ndarray, np.int64]):
    """Gymnasium env: observation (N, 2) float32 (q, h), action Discrete(N) = frame to annotate.

    ``__init__`` validates every knob up front (typed errors before any data is loaded, in
    :func:`_check_knobs`); the rounds themselves are :class:`~ivos_rl.rounds.RoundEngine`'s.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - Gymnasium's class attribute

    def __init__(
        self,
        dataset: Any,
        backend: VOSBackend,
        robot: Robot | None = None,
        quality: Any = "oracle",
        reward: RewardConfig | dict[str, Any] | None = None,
        baseline: BaselineLike | None = None,
        horizon: int = 4,
        subsequence_length: int | None = 25,
        subsequence_start: SubsequenceStart = "centered",
        state_mode: StateMode | str = StateMode.BOTH,
        samples: Sequence[tuple[str, int]] | None = None,
        interaction: InteractionMode = "robot",
        transition_cache: int = 0,
        max_cached_sequences: int = 4,
        snapshots: int = 0,
        clock: Callable[[], float] = time.perf_counter,
        state_features: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        _check_knobs(
            backend, robot, horizon, subsequence_length, subsequence_start, interaction,
            transition_cache, max_cached_sequences, snapshots,
        )
        self.reward_config = reward if isinstance(reward, RewardConfig) else RewardConfig(**(reward or {}))
        if self.reward_config.use_goal and baseline is None:
            raise ConfigError(
                "the goal reward (reward.use_goal=true) needs a RandomBaseline; build one with "
                "scripts/build_baseline.py or set reward.use_goal=false"
            )
        self.dataset = dataset
        self.robot = robot
        self.baseline = baseline
        self.horizon = int(horizon)
        self.subsequence_length = None if subsequence_length is None else int(subsequence_length)
        self.subsequence_start = subsequence_start
        self.state_mode = StateMode.parse(state_mode)
        self.interaction = interaction
        self.quality = self._quality_source(quality)
        self.oracle = self.quality.is_oracle
        self.engine = RoundEngine(
            backend, FastRobot() if interaction == "fast" else robot, self.quality, clock=clock
        )
        #: Seconds by component of the last reset/step (kept out of ``info``: wall-clock time is not
        #: part of the MDP's outcome, and Gymnasium's determinism checks compare ``info``).
        self.last_timings = RoundTimings()
        self.state_features = StateFeatures.parse(state_features)  # () = the paper's (q, h)
        self.state_features.check_quality(self.quality.estimator, self.oracle)
        self.samples = _checked_samples(dataset, samples, self.subsequence_length)
        self._cache_size = int(transition_cache)
        self._cache: OrderedDict[tuple[Any, ...], tuple[np.ndarray, ...]] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0
        self._snapshot_size = int(snapshots)
        self._snapshots: OrderedDict[tuple[Any, ...], EngineSnapshot] = OrderedDict()
        #: history entries restored from snapshots instead of being replayed (throughput benchmark)
        self.rounds_restored = 0
        self._max_cached_sequences = int(max_cached_sequences)
        self._videos: OrderedDict[str, tuple[np.ndarray, np.ndarray, int]] = OrderedDict()
        #: the cached videos' ground truths as :class:`GroundTruth` (built by their first sample)
        self._truths: dict[str, GroundTruth] = {}
        n0 = self.subsequence_length or dataset.info(self.samples[0][0]).n_frames
        self._set_spaces(n0)
        self._episode: dict[str, Any] | None = None

    @property
    def backend(self) -> VOSBackend:
        """The backend the rounds run on (after a snapshot restore, a fork of the one given)."""
        return self.engine.backend

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _quality_source(quality: Any) -> QualitySource:
        """``"oracle"``, a :class:`~ivos_rl.rounds.QualitySource`, or an estimator (Wild)."""
        if isinstance(quality, QualitySource):
            return quality
        if isinstance(quality, str):
            if quality not in ("oracle", "wild"):
                raise ConfigError(f"quality must be 'oracle' or a quality estimator object, got {quality!r}")
            return QualitySource(quality)  # type: ignore[arg-type]
        if not callable(getattr(quality, "predict", None)):
            raise ConfigError(f"quality object {quality!r} has no predict(frames, probs) method")
        return QualitySource("wild", quality)

    def _set_spaces(self, n: int) -> None:
        high = np.ones((n, 2 + self.state_features.width), dtype=np.float32)  # extra features: [0, 1]
        high[:, 1] = float(self.horizon + 1)  # the initial frame plus T recommendations
        self.observation_space = spaces.Box(low=np.zeros_like(high), high=high, dtype=np.float32)
        self.action_space = spaces.Discrete(n)
        self.n_frames = n

    def _video(self, seq: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Frames, ground truth and object count of ``seq`` (small LRU: decoding JPEGs is slow)."""
        if seq in self._videos:
            self._videos.move_to_end(seq)
            return self._videos[seq]
        info = self.dataset.info(seq)
        item = (self.dataset.load_frames(seq), self.dataset.load_masks(seq), int(info.n_objects))
        self._videos[seq] = item
        while len(self._videos) > self._max_cached_sequences:
            self._truths.pop(self._videos.popitem(last=False)[0], None)
        return item

    def _sample(self, seq: str, idx: int) -> SampleContext:
        """The whole-video sample (initial scribble as stored; its first marked frame is the initial)."""
        video = self._video(seq)
        sample = load_sample(self.dataset, seq, idx, video=video, truth=self._truths.get(seq))
        if sample.truth is not None:  # what the metrics and the robot derive from it: once per video
            self._truths[seq] = sample.truth
        return sample

    def subsequence_starts(self, sequence: str, scribble_idx: int) -> list[int]:
        """Every start ``reset`` may pick for this sample (what a baseline must cover)."""
        if self.subsequence_length is None:
            return [0]
        first = self._sample(sequence, scribble_idx).initial_frame
        n = self.dataset.info(sequence).n_frames
        if self.subsequence_start == "centered":
            return [centered_start(first, n, self.subsequence_length)]
        lo, hi = valid_starts(first, n, self.subsequence_length)
        return list(range(lo, hi + 1))

    def _key(self, ep: dict[str, Any], n: int | None = None) -> tuple[Any, ...]:
        """Cache and snapshot key of the episode's history (its first ``n`` entries)."""
        history = ep["history"] if n is None else ep["history"][:n]
        return (ep["sequence"], ep["scribble_idx"], ep["start"], tuple(history))

    def _sync(self, ep: dict[str, Any], timings: RoundTimings) -> None:
        """Bring the engine to the whole history, replaying what cache hits skipped.

        ``synced`` counts the history entries the engine has applied; 0 means not even started
        (a cached reset defers the backend's precomputation until a step misses the cache). With
        snapshots, the longest snapshotted prefix beyond ``synced`` is restored first.
        """
        engine = self.engine
        for n in range(len(ep["history"]), ep["synced"], -1) if self._snapshots else ():
            key = self._key(ep, n)
            if key in self._snapshots:
                self._snapshots.move_to_end(key)
                engine.restore(self._snapshots[key])
                self.rounds_restored += n - ep["synced"]
                ep["synced"] = n
                break
        while ep["synced"] < len(ep["history"]):
            if ep["synced"] == 0:
                engine.start(ep["sample"])
            else:
                engine.annotate(ep["history"][ep["synced"]])
                engine.propagate()
            _add(timings, engine.state.timings)
            ep["synced"] += 1

    def _outcome(self, ep: dict[str, Any], timings: RoundTimings) -> bool:
        """Set (J, F, q) for the current history, from the cache or by running the rounds."""
        key = self._key(ep)
        if self._cache_size > 0 and key in self._cache:
            self._cache.move_to_end(key)
            ep["j"], ep["f"], ep["q"], ep["extra"] = self._cache[key]
            self.cache_hits += 1
            return True
        self._sync(ep, timings)
        before = RoundTimings(**self.engine.state.timings.as_dict())
        scores = self.engine.score()
        q = self.engine.observe()
        after = self.engine.state.timings
        timings.metrics += after.metrics - before.metrics
        timings.quality += after.quality - before.quality
        ep["j"], ep["f"], ep["q"] = scores.per_frame("J"), scores.per_frame("F"), q
        out = self.engine.state.output
        assert out is not None
        ep["extra"] = self.state_features.from_output(  # (N, 0) for the paper's state
            out.probs, out.masks, uncertainty=self.engine.state.uncertainty, diagnostics=out.diagnostics,
        )
        if self._cache_size > 0:
            self.cache_misses += 1
            self._cache[key] = (ep["j"], ep["f"], ep["q"], ep["extra"])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        # A finished episode's state is never continued: only states a step can start from are kept.
        if self._snapshot_size > 0 and ep["t"] < self.horizon and key not in self._snapshots:
            self._snapshots[key] = self.engine.snapshot()
            while len(self._snapshots) > self._snapshot_size:
                del self._snapshots[_deepest_least_recent(self._snapshots)]
        return False

    def _observe(self, ep: dict[str, Any]) -> np.ndarray:
        state = build_state(ep["q"], history_counts(ep["history"], ep["n"]), self.state_mode)
        return self.state_features.extend(state, ep["history"], self.horizon, ep["extra"])

    def _info(self, ep: dict[str, Any], cached: bool) -> dict[str, Any]:
        return {
            "sequence": ep["sequence"],
            "scribble_idx": ep["scribble_idx"],
            "start": ep["start"],
            "frame_indices": ep["frame_indices"],
            "t": ep["t"],
            "annotated_frames": list(ep["history"]),
            "jf": ((ep["j"] + ep["f"]) / 2.0).astype(np.float32),
            "j": ep["j"].astype(np.float32),
            "f": ep["f"].astype(np.float32),
            "quality": ep["q"].astype(np.float32),
            "performance": {
                m: performance(ep["j"], ep["f"], m)  # type: ignore[arg-type]
                for m in METRIC_KEYS
            },
            "cached": cached,
        }

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a session; ``options`` may fix ``sample`` = (sequence, scribble_idx) and ``start``."""
        super().reset(seed=seed)
        options = options or {}
        timings = RoundTimings()
        if "sample" in options:
            seq, idx = options["sample"]
            seq, idx = str(seq), int(idx)
            if (seq, idx) not in self.samples:
                raise InputValidationError(f"options['sample']={(seq, idx)} is not one of this env's samples")
        else:
            seq, idx = self.samples[int(self.np_random.integers(len(self.samples)))]
        sample = self._sample(seq, idx)
        first, n_total = sample.initial_frame, sample.n_frames
        if self.subsequence_length is None:
            start, n = 0, n_total
        else:
            n = self.subsequence_length
            lo, hi = valid_starts(first, n_total, n)
            if "start" in options:
                start = int(options["start"])
                if not lo <= start <= hi:
                    raise InputValidationError(
                        f"options['start']={start} outside the valid starts [{lo}, {hi}] for {seq!r}/{idx}"
                    )
            elif self.subsequence_start == "centered":
                start = (lo + hi) // 2
            else:
                start = int(self.np_random.integers(lo, hi + 1))
        if n != self.n_frames:
            self._set_spaces(n)
        window = sample if n == n_total else sample.window(start, n)
        ep: dict[str, Any] = {
            "sequence": seq,
            "scribble_idx": idx,
            "start": start,
            "n": n,
            "frame_indices": list(range(start, start + n)),
            "sample": window,
            "history": [window.initial_frame],
            "synced": 0,
            "t": 0,
        }
        cached = self._outcome(ep, timings)
        self._episode = ep
        self.last_timings = timings
        return self._observe(ep), self._info(ep, cached=cached)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Annotate frame ``action``; reward r_aux before T and r_goal at T (module docstring)."""
        ep = self._episode
        if ep is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if ep["t"] >= self.horizon:
            raise gym.error.ResetNeeded(f"episode finished after {self.horizon} steps; call reset()")
        if isinstance(action, (bool, np.bool_)) or not np.issubdtype(np.asarray(action).dtype, np.integer):
            raise InputValidationError(f"action must be an integer frame index, got {action!r}")
        a = int(action)
        if not 0 <= a < ep["n"]:
            raise InputValidationError(f"action {a} outside [0, {ep['n']})")
        timings = RoundTimings()
        counts = history_counts(ep["history"], ep["n"])
        r_aux = aux_reward(a, counts)
        ep["history"].append(a)
        ep["t"] += 1
        hit = self._outcome(ep, timings)
        self.last_timings = timings
        info = self._info(ep, cached=hit)
        cfg = self.reward_config
        r_int = r_aux if cfg.use_aux else 0.0
        r_goal = 0.0
        if cfg.use_goal:
            assert self.baseline is not None
            mu, sigma = self.baseline.stats(
                ep["sequence"], ep["scribble_idx"], ep["start"], ep["t"], cfg.metric
            )
            r_goal = goal_reward(info["performance"][cfg.metric], mu, sigma, cfg.goal_form)
        r_term = r_goal if cfg.use_goal else r_int
        terminated = ep["t"] >= self.horizon
        info.update(r_aux=r_aux, r_goal=r_goal, reward_intermediate=r_int, reward_terminal=r_term)
        reward = r_term if terminated else r_int
        return self._observe(ep), float(reward), terminated, False, info

    def close(self) -> None:
        self._videos.clear()
        self._truths.clear()
        self._cache.clear()
        self._snapshots.clear()
        self._episode = None


def _deepest_least_recent(lru: OrderedDict[tuple[Any, ...], Any]) -> tuple[Any, ...]:
    """The snapshot to drop: the least recently used of those with the longest history.

    Short prefixes are restored far more often (every episode of a sample starts from its reset
    state; a state after t steps is met again only if the same t actions are), so they are kept
    first; among equals the least recently used goes. ``lru`` is ordered oldest first.
    """
    deepest = max(len(key[-1]) for key in lru)
    return next(key for key in lru if len(key[-1]) == deepest)


def _add(total: RoundTimings, part: RoundTimings) -> None:
    """``total += part`` component by component."""
    for name, value in part.as_dict().items():
        setattr(total, name, getattr(total, name) + value)
