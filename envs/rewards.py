"""Rewards of the frame-recommendation MDP (IVOS-W §3.1, Eq. 2-4).

* Auxiliary reward (Eq. 4): +1 when the recommended frame is one of the least-recommended frames
  (any frame attaining ``min h_t`` counts: with ties, e.g. at the start when every frame but the
  initial one has count 0, all of them are equally "fewest"), -1 otherwise.
* Goal reward (Eq. 2 / Eq. 3): compares the final performance P with what a random policy reaches
  on the same sample, ``(P - mu) / sigma`` or ``(P - (mu + sigma)) / sigma``; only paid at the last
  step (it is 0 before T because intermediate actions cannot be credited individually).

P is the mean over frames of the per-frame J, F or J&F (selectable). The scale ``delta`` and the
discount of Eq. 5 belong to the learner, not here: these functions return raw rewards. A reward
component switched off (Table 5 ablations) is exactly 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.metrics import METRIC_KEYS

GoalForm = Literal["eq2", "eq3"]
Metric = Literal["J", "F", "J_AND_F"]
_FORMS: tuple[str, ...] = ("eq2", "eq3")


@dataclass(frozen=True)
class RewardConfig:
    """Which reward terms are active and how the goal term is measured.

    ``metric`` picks P's per-frame measure; ``goal_form`` picks Eq. 2 or Eq. 3 (the paper's final
    choice, Table 4); ``use_goal`` / ``use_aux`` are the Table 5 ablation switches.
    """

    metric: Metric = "J_AND_F"
    goal_form: GoalForm = "eq3"
    use_goal: bool = True
    use_aux: bool = True

    def __post_init__(self) -> None:
        if self.metric not in METRIC_KEYS:
            raise ConfigError(f"reward metric must be one of {METRIC_KEYS}, got {self.metric!r}")
        if self.goal_form not in _FORMS:
            raise ConfigError(f"reward goal_form must be one of {_FORMS}, got {self.goal_form!r}")


def aux_reward(action: int, counts: np.ndarray) -> float:
    """Eq. 4: +1 if ``action`` is a least-recommended frame under ``counts`` (= h_t before acting).

    ``counts`` is h_t *before* frame ``action`` is added; ties in the argmin all count as minimal.
    """
    h = np.asarray(counts)
    if h.ndim != 1 or h.size == 0:
        raise InputValidationError(f"counts must be a non-empty (N,) array, got shape {h.shape}")
    if not 0 <= int(action) < h.size:
        raise InputValidationError(f"action {action} outside [0, {h.size})")
    return 1.0 if h[int(action)] == h.min() else -1.0


def goal_reward(performance: float, mu: float, sigma: float, form: GoalForm = "eq3") -> float:
    """Eq. 2 (``(P - mu) / sigma``) or Eq. 3 (``(P - (mu + sigma)) / sigma``)."""
    if form not in _FORMS:
        raise ConfigError(f"goal form must be one of {_FORMS}, got {form!r}")
    if not (math.isfinite(sigma) and sigma > 0.0):
        raise InputValidationError(f"baseline sigma must be finite and > 0, got {sigma}")
    if not (math.isfinite(performance) and math.isfinite(mu)):
        raise InputValidationError(f"performance {performance} and mu {mu} must be finite")
    if form == "eq2":
        return float((performance - mu) / sigma)
    return float((performance - (mu + sigma)) / sigma)


def performance(j: np.ndarray, f: np.ndarray, metric: Metric = "J_AND_F") -> float:
    """P: mean over frames of J, F or (J + F) / 2 given per-frame ``j`` and ``f`` (N,)."""
    j = np.asarray(j, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if j.shape != f.shape or j.ndim != 1 or j.size == 0:
        raise InputValidationError(f"j {j.shape} and f {f.shape} must both be non-empty (N,)")
    if metric == "J":
        return float(j.mean())
    if metric == "F":
        return float(f.mean())
    if metric == "J_AND_F":
        return float(((j + f) / 2.0).mean())
    raise ConfigError(f"metric must be one of {METRIC_KEYS}, got {metric!r}")
