"""The stop signal: the expected J&F gain of one more annotation, from the calibrated estimates.

With a calibrated estimate q̂_t per frame, ``1 - q̂_t`` is the expected deficit of frame t. One more
annotation (on the worst frame) repairs part of the deficit around it, so the expected gain of the
video's mean J&F is modelled as ``a · mean_t(1 - q̂_t) + b · max_t(1 - q̂_t)`` with ``a, b >= 0``
fitted by non-negative least squares on the training trajectories (round r's estimates against the
observed change of the true mean J&F from round r to r + 1). ``recommend`` answers "stop" when the
expected gain falls below a user-chosen threshold; :func:`evaluate_stop` reports, for thresholds,
how many rounds that saves and what J&F it costs on held-out trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

from ivos_rl.errors import InputValidationError
from ivos_rl.quality.feature_rows import FeatureRows


@dataclass(frozen=True)
class StopRule:
    """``gain = a · mean deficit + b · max deficit`` (deficits of the per-frame estimates)."""

    a: float = 0.0
    b: float = 0.0

    def expected_gain(self, q: np.ndarray) -> float:
        """Expected gain of the video's mean J&F from one more annotation, given frame estimates ``q``."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.size == 0 or not np.isfinite(q).all():
            raise InputValidationError("frame estimates for the stop signal must be non-empty and finite")
        deficit = np.clip(1.0 - q, 0.0, 1.0)
        return float(self.a * deficit.mean() + self.b * deficit.max())

    def should_stop(self, q: np.ndarray, threshold: float) -> bool:
        """True when one more annotation is expected to gain less than ``threshold`` mean J&F."""
        if not threshold >= 0:
            raise InputValidationError(f"stop threshold must be >= 0, got {threshold!r}")
        return self.expected_gain(q) < threshold

    def to_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}


@dataclass
class Trajectory:
    """One interactive run: per round r (ascending), the true mean J&F and the frame estimates."""

    key: str
    strategy: str
    true: np.ndarray  # (R,) true mean J&F of the video after each round
    est: np.ndarray  # (R, T) estimated frame J&F (mean over objects)


def trajectories(rows: FeatureRows, est: np.ndarray) -> list[Trajectory]:
    """Group feature rows (every frame of every round) and their estimates into trajectories."""
    if est.shape != (len(rows),):
        raise InputValidationError(f"estimates must be ({len(rows)},), got {est.shape}")
    keys = rows.trajectory_keys()
    out = []
    for key in np.unique(keys):
        sel = np.flatnonzero(keys == key)
        rounds = np.unique(rows.round[sel])
        t = int(rows.frame[sel].max()) + 1
        true = np.zeros(len(rounds))
        frame_est = np.zeros((len(rounds), t))
        for i, r in enumerate(rounds):
            s = sel[rows.round[sel] == r]
            true[i] = _frame_mean(rows.jf[s], rows.frame[s], t).mean()
            frame_est[i] = _frame_mean(est[s], rows.frame[s], t)
        out.append(Trajectory(str(key), str(rows.strategy[sel[0]]), true, frame_est))
    return out


def sample_trajectory(sample: Any, metric: str = "j_and_f") -> Trajectory:
    """The trajectory of one evaluated sample (:class:`ivos_rl.evaluation.SampleResult`) that
    recorded its estimates (an evaluation with an estimator and ``mask_ap=true`` keeps the (T, K)
    estimates of every scored round): per round the true mean J&F (the objects' mean of their frame
    means, as in the round-AUC) and the frame estimates (the objects' mean). This lets the stop rule
    be judged on the rounds a recommender actually played (:func:`evaluate_stop`)."""
    rounds = np.asarray([int(r["interaction"]) for r in sample.rows])
    objects = np.asarray([int(r["object_id"]) for r in sample.rows])
    values = np.asarray([float(r[metric]) for r in sample.rows])
    order = np.unique(rounds)
    true = np.array(
        [np.mean([values[(rounds == r) & (objects == k)].mean() for k in np.unique(objects[rounds == r])])
         for r in order]
    )
    if len(sample.quality_scores) != order.size:
        raise InputValidationError(
            f"sample {sample.sequence}/{sample.scribble_idx} holds estimates for "
            f"{len(sample.quality_scores)} of its {order.size} rounds (evaluate with an estimator, mask_ap)"
        )
    est = np.stack([np.asarray(q, np.float64).mean(axis=1) for q in sample.quality_scores])
    return Trajectory(f"{sample.sequence}/{sample.scribble_idx}", "evaluated", true, est)


def _frame_mean(values: np.ndarray, frames: np.ndarray, t: int) -> np.ndarray:
    """Mean over objects per frame (IVOS-W Eq. 7: the frame score is the objects' mean)."""
    total = np.bincount(frames, weights=values, minlength=t)
    count = np.bincount(frames, minlength=t)
    return total / np.maximum(count, 1)


def fit_stop_rule(trajs: Sequence[Trajectory]) -> StopRule:
    """Non-negative least squares of the observed next-round gain on the two deficits."""
    feats, gains = [], []
    for tr in trajs:
        for r in range(len(tr.true) - 1):
            deficit = np.clip(1.0 - tr.est[r], 0.0, 1.0)
            feats.append([deficit.mean(), deficit.max()])
            gains.append(tr.true[r + 1] - tr.true[r])
    if not feats:
        raise InputValidationError("no trajectory has two rounds: cannot fit the stop rule")
    coef, _ = nnls(np.asarray(feats), np.asarray(gains))
    return StopRule(float(coef[0]), float(coef[1]))


def evaluate_stop(
    rule: StopRule, trajs: Sequence[Trajectory], thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    """Per threshold: mean rounds saved, mean J&F cost (final minus at stop), share stopped early.

    A trajectory stops after the first round whose expected gain is below the threshold (after its
    last round otherwise); the cost is what the remaining rounds would have added to the mean J&F.
    """
    out = []
    for thr in thresholds:
        saved, cost = [], []
        for tr in trajs:
            n = len(tr.true)
            stop = next((r for r in range(n) if rule.should_stop(tr.est[r], thr)), n - 1)
            saved.append(n - 1 - stop)
            cost.append(tr.true[-1] - tr.true[stop])
        out.append(
            {
                "threshold": float(thr),
                "rounds_saved": float(np.mean(saved)),
                "jf_cost": float(np.mean(cost)),
                "max_jf_cost": float(np.max(cost)),
                "stopped_early": float(np.mean(np.asarray(saved) > 0)),
                "n": len(trajs),
            }
        )
    return out
