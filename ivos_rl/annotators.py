"""Simulated annotator populations: seeded noisy scribble and click robots, and their factory.

The protocol robots (:class:`~ivos_rl.robot.ScribbleRobot`, :class:`~ivos_rl.clicks.ClickRobot`)
are one idealised user. RClicks showed that annotation cost varies strongly with where real
people click, so a frame recommender should be judged over a *population* of users. Here each
annotator is a seeded robot whose imperfections are:

* scribbles (:class:`NoisyScribbleRobot`): the protocol's skeleton paths displaced by smooth
  jitter, strokes cut short (a contiguous part of the path is drawn), and objects occasionally
  overlooked (none of their strokes is drawn);
* clicks (:class:`NoisyClickRobot`): the click position drawn from ``dist ** (1 / T)`` over the
  error region (``ClickRobot(noise="distance")``).

Every noisy draw comes from a generator derived from (annotator seed, sequence, requested frame,
bytes of the prediction). An annotator is therefore a pure function of its input: the same
answer whatever was asked before, so an evaluation that is resumed, sharded or run with another
strategy order sees exactly the same user.
"""

from __future__ import annotations

import copy
import functools
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from scipy import ndimage

from ivos_rl.clicks import ClickRobot
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.robot import ScribbleRobot

__all__ = [
    "NoisyClickRobot",
    "NoisyScribbleRobot",
    "annotator_seed",
    "build_annotators",
    "interaction_rng",
]


def _check_seed(seed: Any, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputValidationError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_probability(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise InputValidationError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_non_negative(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not np.isfinite(value)
        or float(value) < 0.0
    ):
        raise InputValidationError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def annotator_seed(seed: int, index: int) -> int:
    """Seed of annotator ``index`` of a population seeded with ``seed`` (independent streams)."""
    _check_seed(seed)
    _check_seed(index, "index")
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def interaction_rng(seed: int, sequence: str, pred_masks: Any, frame: int | None) -> np.random.Generator:
    """Generator for one robot answer, derived from everything that defines the question.

    Hashing the prediction makes repeated questions on one frame (a later round, new masks) get
    fresh noise while an identical question always gets the identical answer.
    """
    pred = np.ascontiguousarray(np.asarray(pred_masks))
    key = [
        int(seed),
        zlib.crc32(str(sequence).encode("utf-8")),
        0 if frame is None else int(frame) + 1,  # SeedSequence entries must be >= 0
        zlib.crc32(pred.tobytes()),
        zlib.crc32(repr(pred.shape).encode("ascii")),
    ]
    return np.random.default_rng(np.random.SeedSequence(key))


_GRID_PER_SIGMA = 4.0  # noise grid points per correlation length


@functools.lru_cache(maxsize=8)
def _unit_smoothing_gain(sigma: float) -> float:
    """L2 norm of the Gaussian kernel: std of smoothed unit white noise (away from the ends)."""
    radius = int(4.0 * sigma + 0.5)
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    kernel = ndimage.gaussian_filter1d(impulse, sigma, mode="constant", truncate=4.0)
    return float(np.linalg.norm(kernel))


class NoisyScribbleRobot:
    """A seeded imperfect scribbler built on the protocol's :class:`ScribbleRobot`.

    Per answer, for every stroke of the protocol robot:

    * ``jitter_px``: standard deviation (pixels) of a smooth random displacement added to the
      path; ``jitter_correlation_px`` is its correlation length along the path (small values
      give a shaky hand, large ones a path drawn off to one side);
    * ``partial_prob``: probability that only a contiguous part of the stroke is drawn, of a
      length uniform in [``min_keep``, 1] of the path;

    and for every object 1..K that has strokes, ``miss_prob`` is the probability that the user
    overlooks it (no stroke of that object). A user asked to correct a frame draws something:
    when every stroke would be dropped, the first overlooked object's strokes are kept.
    The background (object 0) is never overlooked.

    ``robot`` is the underlying protocol robot (default ``ScribbleRobot(seed=seed)``, whose seed
    only fixes medial-axis tie-breaks).
    """

    def __init__(
        self,
        robot: ScribbleRobot | None = None,
        *,
        seed: int,
        jitter_px: float = 2.0,
        jitter_correlation_px: float = 10.0,
        partial_prob: float = 0.3,
        min_keep: float = 0.4,
        miss_prob: float = 0.1,
    ) -> None:
        self.seed = _check_seed(seed)
        if robot is not None and not isinstance(robot, ScribbleRobot):
            raise InputValidationError(f"robot must be a ScribbleRobot or None, got {type(robot).__name__}")
        self.robot = robot if robot is not None else ScribbleRobot(seed=self.seed)
        self.jitter_px = _check_non_negative(jitter_px, "jitter_px")
        self.jitter_correlation_px = _check_non_negative(jitter_correlation_px, "jitter_correlation_px")
        self.partial_prob = _check_probability(partial_prob, "partial_prob")
        self.min_keep = _check_probability(min_keep, "min_keep")
        if self.min_keep == 0.0:
            raise InputValidationError("min_keep must be > 0 (a stroke keeps at least part of its path)")
        self.miss_prob = _check_probability(miss_prob, "miss_prob")

    def __repr__(self) -> str:
        return (
            f"NoisyScribbleRobot(seed={self.seed}, jitter_px={self.jitter_px}, "
            f"jitter_correlation_px={self.jitter_correlation_px}, partial_prob={self.partial_prob}, "
            f"min_keep={self.min_keep}, miss_prob={self.miss_prob})"
        )

    def _jitter(self, path_px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Smooth displacement (pixels, same shape as the path) of std ``jitter_px`` and
        correlation length ``jitter_correlation_px`` along the path (0: independent per point).

        The noise lives on arc length, not on path points (the robot's Bezier points are unevenly
        spaced): white noise on a grid of ``correlation / 4`` pixels, extended by the kernel radius
        at both ends so that every point sees stationary noise of exactly the target std, is
        Gaussian-smoothed and linearly interpolated at the points' arc lengths.
        """
        n = path_px.shape[0]
        if self.jitter_correlation_px == 0.0 or n < 2:
            noise = rng.standard_normal((n, 2))
        else:
            arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path_px, axis=0), axis=1))])
            step = self.jitter_correlation_px / _GRID_PER_SIGMA
            m = int(np.ceil(arc[-1] / step)) + 1
            radius = int(4.0 * _GRID_PER_SIGMA + 0.5)
            raw = rng.standard_normal((m + 2 * radius, 2))
            smooth = ndimage.gaussian_filter1d(raw, _GRID_PER_SIGMA, axis=0, mode="constant", truncate=4.0)
            smooth = smooth[radius : radius + m] / _unit_smoothing_gain(_GRID_PER_SIGMA)
            grid = np.arange(m) * step
            noise = np.stack([np.interp(arc, grid, smooth[:, d]) for d in range(2)], axis=1)
        return self.jitter_px * noise

    def _partial(self, path: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Keep a contiguous part of the path with probability ``partial_prob``."""
        cut = rng.random() < self.partial_prob
        fraction = rng.uniform(self.min_keep, 1.0)
        start_u = rng.random()
        n = path.shape[0]
        if not cut or n < 3:
            return path
        keep = min(n, max(2, round(fraction * n)))
        start = int(start_u * (n - keep + 1))
        return path[start : start + keep]

    def interact(
        self,
        sequence: str,
        pred_masks: np.ndarray,
        gt_masks: np.ndarray,
        nb_objects: int | None = None,
        frame: int | None = None,
    ) -> dict[str, Any]:
        """The protocol robot's scribbles for this question, perturbed as described above."""
        answer = self.robot.interact(sequence, pred_masks, gt_masks, nb_objects=nb_objects, frame=frame)
        rng = interaction_rng(self.seed, sequence, pred_masks, frame)
        height, width = np.asarray(gt_masks).shape[1:3]
        size = np.asarray([width, height], dtype=np.float64)
        out: list[list[dict[str, Any]]] = []
        for strokes in answer["scribbles"]:
            if not strokes:
                out.append([])
                continue
            objects = sorted({int(s["object_id"]) for s in strokes if int(s["object_id"]) > 0})
            missed = [k for k in objects if rng.random() < self.miss_prob]
            if missed and all(int(s["object_id"]) in missed for s in strokes):
                missed = missed[1:]  # keep the first overlooked object: the user draws something
            kept: list[dict[str, Any]] = []
            for stroke in strokes:
                path = np.asarray(stroke["path"], dtype=np.float64).reshape(-1, 2)
                path = path + self._jitter(path * size, rng) / size  # + 0.0 exactly when no jitter
                path = self._partial(path, rng)  # the draws happen even for missed objects
                if int(stroke["object_id"]) in missed:
                    continue
                other = {k: copy.deepcopy(v) for k, v in stroke.items() if k != "path"}
                kept.append({**other, "path": np.clip(path, 0.0, 1.0).tolist()})
            out.append(kept)
        return {"scribbles": out, "sequence": answer["sequence"]}


class NoisyClickRobot:
    """A seeded imprecise clicker: ``ClickRobot(noise="distance", temperature)`` per answer.

    ``ClickRobot`` keeps one generator across calls, so its clicks depend on the order of the
    questions; this wrapper gives each answer its own generator (see :func:`interaction_rng`),
    which makes the annotator reproducible across resumed or sharded evaluations.
    """

    def __init__(self, temperature: float = 1.0, *, seed: int) -> None:
        self.seed = _check_seed(seed)
        ClickRobot(noise="distance", temperature=temperature, seed=0)  # validates temperature
        self.temperature = float(temperature)

    def __repr__(self) -> str:
        return f"NoisyClickRobot(temperature={self.temperature}, seed={self.seed})"

    def interact(
        self,
        sequence: str,
        pred_masks: np.ndarray,
        gt_masks: np.ndarray,
        nb_objects: int | None = None,
        frame: int | None = None,
    ) -> dict[str, Any]:
        """Clicks of a distance-noise :class:`ClickRobot` seeded for this very question."""
        rng = interaction_rng(self.seed, sequence, pred_masks, frame)
        robot = ClickRobot(noise="distance", temperature=self.temperature, seed=rng)
        return robot.interact(sequence, pred_masks, gt_masks, nb_objects=nb_objects, frame=frame)


def build_annotators(cfg: Mapping[str, Any] | DictConfig, n_annotators: int, seed: int = 0) -> list[Any]:
    """M annotators from one ``annotator/`` config (a ``_target_`` node).

    A config whose ``seed`` is null (or absent) gets per-annotator seeds
    :func:`annotator_seed` (``seed``, i): a population of different users. A config with an
    integer ``seed`` builds M identical users (the deterministic protocol robots).
    """
    if isinstance(n_annotators, bool) or not isinstance(n_annotators, (int, np.integer)) or n_annotators < 1:
        raise ConfigError(f"n_annotators must be an integer >= 1, got {n_annotators!r}")
    _check_seed(seed)
    node = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    if "_target_" not in node:
        raise ConfigError(f"annotator config needs a _target_ (keys: {sorted(node.keys())})")
    fixed = node.get("seed")
    annotators = []
    for i in range(int(n_annotators)):
        one = copy.deepcopy(node)
        one.seed = int(fixed) if fixed is not None else annotator_seed(seed, i)
        robot = instantiate(one)
        if not callable(getattr(robot, "interact", None)):
            raise ConfigError(
                f"annotator {node['_target_']} builds {type(robot).__name__}, which has no interact()"
            )
        annotators.append(robot)
    return annotators
