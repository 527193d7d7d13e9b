"""Monotone recalibration of the estimate's level (issue #15: MAE on unseen videos).

A quality model can rank frames well and still sit off the true J&F level on new videos (its
pooled MAE pays for that, the Worst rule does not). A monotone map fitted on *out-of-sample*
estimates corrects the level without changing the order of the frames:

* ``affine``: ``a * q + b`` by least squares (a > 0; PCC and every within-round order unchanged);
* ``isotonic``: the pool-adjacent-violators fit of the truth on the estimate (least squares among
  non-decreasing maps), applied by linear interpolation between its block means and with slope 1
  beyond the first and the last block, so the map is strictly increasing everywhere: frames the model
  tells apart are never merged into a tie (the Worst rule breaks ties by frame index; a map constant
  below its first block made every low estimate of a round tie, and the regret of the lowest
  estimate rose on a cross-validation fold).

The map must be fitted on estimates of videos the model never saw (cross-validation fits it on the
inner folds' validation estimates and applies it to the outer fold; the shipped model's comes from
its out-of-fold estimates), otherwise it only learns the training fit's optimism. The result is
clipped to [0, 1]. Stored in feature checkpoints as a plain dict (``to_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ivos_rl.errors import ConfigError, InputValidationError

KINDS: tuple[str, ...] = ("none", "affine", "isotonic")


@dataclass(frozen=True)
class LevelCalibration:
    """A fitted strictly increasing map of estimates; ``kind="none"`` is the identity (then clipped)."""

    kind: str = "none"
    a: float = 1.0  # affine slope
    b: float = 0.0  # affine intercept
    knots_x: tuple[float, ...] = ()  # isotonic: block mean estimates (strictly increasing)
    knots_y: tuple[float, ...] = ()  # isotonic: block mean truths (strictly increasing)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"level calibration kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "affine" and not (np.isfinite([self.a, self.b]).all() and self.a > 0):
            raise ConfigError(f"affine level calibration needs a finite slope a > 0, got {self.a}, {self.b}")
        if self.kind == "isotonic":
            x, y = np.asarray(self.knots_x, float), np.asarray(self.knots_y, float)
            if x.size < 1 or x.shape != y.shape or (np.diff(x) <= 0).any() or (np.diff(y) < 0).any():
                raise ConfigError("isotonic level calibration needs equally many increasing knots")

    def apply(self, pred: np.ndarray) -> np.ndarray:
        """The recalibrated estimates, float32, clipped to [0, 1] (same shape as ``pred``)."""
        p = np.asarray(pred, np.float64)
        if self.kind == "affine":
            p = self.a * p + self.b
        elif self.kind == "isotonic":
            x, y = self.knots_x, self.knots_y
            p = np.where(
                p < x[0], y[0] + (p - x[0]), np.where(p > x[-1], y[-1] + (p - x[-1]), np.interp(p, x, y))
            )
        return np.clip(p, 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b, "knots_x": list(self.knots_x),
                "knots_y": list(self.knots_y)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LevelCalibration:
        try:
            return cls(
                kind=str(raw["kind"]), a=float(raw.get("a", 1.0)), b=float(raw.get("b", 0.0)),
                knots_x=tuple(map(float, raw.get("knots_x", ()))),
                knots_y=tuple(map(float, raw.get("knots_y", ()))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"level calibration {dict(raw)!r} is not valid: {exc}") from exc


def _pav(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool-adjacent-violators on ``y`` (already ordered by the estimate) with weights ``w``:
    (block start indices, block weights, block means), the means strictly increasing."""
    starts: list[int] = []
    weights: list[float] = []
    means: list[float] = []
    for i, (v, wi) in enumerate(zip(y.tolist(), w.tolist(), strict=True)):
        starts.append(i)
        weights.append(wi)
        means.append(v)
        while len(means) > 1 and means[-2] >= means[-1]:
            wt = weights[-2] + weights[-1]
            means[-2] = (weights[-2] * means[-2] + weights[-1] * means[-1]) / wt
            weights[-2] = wt
            del starts[-1], weights[-1], means[-1]
    return np.array(starts), np.array(weights), np.array(means)


def fit_level_calibration(pred: np.ndarray, target: np.ndarray, kind: str) -> LevelCalibration:
    """Fit a ``kind`` map of out-of-sample estimates ``pred`` onto true J&F ``target``.

    :class:`InputValidationError` for unequal, empty or non-finite inputs, and for an affine fit
    whose slope is not positive (the estimates do not rank the truth: no monotone fix exists).
    """
    if kind not in KINDS:
        raise ConfigError(f"level calibration kind must be one of {KINDS}, got {kind!r}")
    p = np.asarray(pred, np.float64).reshape(-1)
    t = np.asarray(target, np.float64).reshape(-1)
    if p.size < 2 or p.shape != t.shape or not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise InputValidationError(
            f"level calibration needs >= 2 equally long finite estimates and targets, got {p.size}, {t.size}"
        )
    if kind == "none":
        return LevelCalibration()
    if kind == "affine":
        if p.std() == 0:
            raise InputValidationError("affine level calibration: the estimates are constant")
        a = float(np.cov(p, t, bias=True)[0, 1] / p.var())
        if not a > 0:
            raise InputValidationError(f"affine level calibration: slope {a:.3g} <= 0 (no monotone fix)")
        return LevelCalibration("affine", a=a, b=float(t.mean() - a * p.mean()))
    # isotonic: equal estimates form one group first (their order carries no information)
    xs, inv = np.unique(p, return_inverse=True)
    w = np.bincount(inv).astype(np.float64)
    ys = np.bincount(inv, weights=t) / w
    starts, _, means = _pav(ys, w)
    ends = np.r_[starts[1:], xs.size]
    knot_x = np.array([np.average(xs[s:e], weights=w[s:e]) for s, e in zip(starts, ends, strict=True)])
    return LevelCalibration("isotonic", knots_x=tuple(knot_x.tolist()), knots_y=tuple(means.tolist()))


__all__ = ["KINDS", "LevelCalibration", "fit_level_calibration"]
