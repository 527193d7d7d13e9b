"""Per-frame features an agent may see beyond the paper's state (q, h) of Eq. 1.

The one-step lookahead oracle shows that the best frame to annotate is the one whose correction
propagates best, which (q, h) cannot reveal. These groups give the agent cues about that, each
selectable on its own for a Table-6-style ablation; every value lies in [0, 1]:

* ``distance`` (2 columns): temporal distance to the nearest annotated frame at or before the
  frame, and at or after it, divided by the number of frames N; 1 when no annotated frame lies on
  that side (as far as anything can be).
* ``uncertainty`` (1): the standard deviation of the state's quality, clipped to [0, 1]: the quality
  estimator's per-frame ``last_uncertainty`` after its ``predict`` (the feature model's and the fused
  CNN's), 0 in the Oracle setting, where J&F is known exactly
  (:meth:`ivos_rl.rounds.QualitySource.uncertainty`). Training and strategies read the same value
  (``StrategyState.uncertainty``); an estimator that reports none cannot be used with this group.
* ``entropy`` (1): mean over pixels of the entropy of the backend's label distribution
  (objects' probabilities, background = 1 - their sum), in units of log(K + 1).
* ``area_change`` (1): mean over the existing neighbours t-1, t+1 of
  |A_t - A_n| / max(A_t, A_n), A the foreground pixel count of the masks (0 when both are empty).
* ``round`` (1): fraction of the recommendation budget used, (len(history) - 1) / horizon,
  the same for every frame.
* ``span`` (2): what a backend-v2 round on the frame could reach: the span-error score of
  :func:`ivos_rl.strategies.span_error.span_error_scores` (no decay, fusion share) from the state's
  quality column, and the length of the frame's span (frames strictly between its annotated
  neighbours other than itself), both divided by N. Symmetric under time reversal.
* ``disagreement`` (1): 1 - the IoU of the two propagation runs that reach the frame from its
  annotated neighbours, mean over objects (0 on annotated frames and where annotations lie on one
  side only): where the runs part, a correction changes the most. Read from the backend's
  ``diagnostics["runs_iou"]`` (``PropagationBackend(diagnostics=True)``); a backend without it
  cannot be used with this group (typed error).

The empty selection is the paper's state: :meth:`StateFeatures.extend` then returns its input
unchanged (same array, bit-identical observations).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ivos_rl.backends.base import lookup_uint8
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.strategies.span_error import span_error_scores, span_weights

__all__ = [
    "FEATURE_GROUPS",
    "StateFeatures",
    "area_change",
    "label_entropy",
    "run_disagreement",
    "side_distances",
    "span_columns",
]

#: Group name -> number of columns it adds.
FEATURE_GROUPS: dict[str, int] = {
    "distance": 2, "uncertainty": 1, "entropy": 1, "area_change": 1, "round": 1, "span": 2, "disagreement": 1
}
OUTPUT_GROUPS: tuple[str, ...] = ("uncertainty", "entropy", "area_change", "disagreement")
"""Groups computed from a backend output (:meth:`StateFeatures.from_output`); the others come from
the annotation history alone."""


def side_distances(history: Sequence[int], n_frames: int) -> np.ndarray:
    """(N, 2): distance to the nearest annotated frame at or before / at or after each frame, / N."""
    if n_frames < 1:
        raise InputValidationError(f"n_frames must be >= 1, got {n_frames}")
    ann = np.unique(np.asarray(list(history), dtype=np.int64))
    if ann.size and (ann[0] < 0 or ann[-1] >= n_frames):
        raise InputValidationError(f"history {list(history)} outside [0, {n_frames})")
    t = np.arange(n_frames)
    out = np.ones((n_frames, 2), dtype=np.float32)
    if ann.size:
        i = np.searchsorted(ann, t, side="right")  # ann[i - 1] <= t < ann[i]
        has_before = i > 0
        out[has_before, 0] = (t[has_before] - ann[i[has_before] - 1]) / n_frames
        j = np.searchsorted(ann, t, side="left")  # ann[j] >= t
        has_after = j < ann.size
        out[has_after, 1] = (ann[j[has_after]] - t[has_after]) / n_frames
    return out


def span_columns(quality: np.ndarray, history: Sequence[int]) -> np.ndarray:
    """(N, 2): span-error score / N and span length / N of every frame (the ``span`` group)."""
    q = np.asarray(quality, dtype=np.float64)
    n = q.size
    length = (span_weights(n, history, length=None, fusion=False) > 0).sum(axis=1)
    score = span_error_scores(q, history, length=None, fusion=True)
    return np.stack([score / n, length / n], axis=1).astype(np.float32)


def label_entropy(probs: np.ndarray) -> np.ndarray:
    """(T,): mean pixel entropy of (background, objects) from (T, K, H, W) probabilities, / log(K+1).

    uint8 probabilities are value / 255 (``BackendOutput``); the background takes what the objects
    leave (clipped at 0), and the distribution is renormalised per pixel. One uint8 object (the
    usual case) reads each pixel's entropy from a 256-entry table made by the same arithmetic
    (the same float32 values; ~10x faster at 480p); the mean is the same reduction either way.
    """
    p = np.asarray(probs)
    if p.ndim != 4:
        raise InputValidationError(f"probs must be (T, K, H, W), got shape {p.shape}")
    k = p.shape[1]
    if p.dtype == np.uint8 and k == 1:
        pixel = lookup_uint8(_one_object_entropy_table(), p[:, 0])
    else:
        pixel = _pixel_entropy(p)
    return (pixel.mean(axis=(1, 2)) / np.log(k + 1)).astype(np.float32)


def _pixel_entropy(p: np.ndarray) -> np.ndarray:
    """(T, H, W) float32 entropy (nats) of each pixel's (background, objects) distribution."""
    p = p.astype(np.float32) / 255.0 if p.dtype == np.uint8 else p.astype(np.float32)
    full = np.concatenate([np.clip(1.0 - p.sum(axis=1, keepdims=True), 0.0, None), p], axis=1)
    full /= np.maximum(full.sum(axis=1, keepdims=True), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(full > 0, -full * np.log(full), 0.0)
    return terms.sum(axis=1)  # type: ignore[no-any-return]


@functools.cache
def _one_object_entropy_table() -> np.ndarray:
    """(256,) float32: :func:`_pixel_entropy` of one uint8 object probability, per value."""
    table = _pixel_entropy(np.arange(256, dtype=np.uint8).reshape(1, 1, 1, 256)).reshape(256)
    table.flags.writeable = False
    return table


def area_change(masks: np.ndarray) -> np.ndarray:
    """(T,): mean relative foreground-area change against the existing neighbours t-1 and t+1."""
    m = np.asarray(masks)
    if m.ndim != 3:
        raise InputValidationError(f"masks must be (T, H, W) labels, got shape {m.shape}")
    area = ((m > 0) & (m != 255)).sum(axis=(1, 2)).astype(np.float64)
    if area.size == 1:
        return np.zeros(1, dtype=np.float32)
    big = np.maximum(area[1:], area[:-1])
    rel = np.where(big > 0, np.abs(area[1:] - area[:-1]) / np.maximum(big, 1.0), 0.0)  # between t, t+1
    total = np.zeros_like(area)
    count = np.zeros_like(area)
    total[:-1] += rel
    total[1:] += rel
    count[:-1] += 1
    count[1:] += 1
    return (total / count).astype(np.float32)


def run_disagreement(diagnostics: Mapping[str, np.ndarray] | None, n_frames: int) -> np.ndarray:
    """(N,) 1 - the two runs' IoU, mean over objects (the ``disagreement`` group), from a backend
    output's ``diagnostics``; :class:`InputValidationError` when the backend gave none."""
    iou = None if diagnostics is None else diagnostics.get("runs_iou")
    if iou is None:
        raise InputValidationError(
            "state feature 'disagreement' needs the backend's diagnostics['runs_iou'] "
            "(the propagation backend with diagnostics=true)"
        )
    iou = np.asarray(iou, dtype=np.float64)
    if iou.ndim != 2 or iou.shape[0] != n_frames:
        raise InputValidationError(f"diagnostics['runs_iou'] must be ({n_frames}, K), got {iou.shape}")
    return np.clip(1.0 - iou.mean(axis=1), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class StateFeatures:
    """A selection of feature groups (in :data:`FEATURE_GROUPS` order); empty = the paper's (q, h)."""

    groups: tuple[str, ...] = ()

    @classmethod
    def parse(cls, groups: StateFeatures | Sequence[str] | str | None) -> StateFeatures:
        """From a list of group names (``"all"`` selects every group); unknown names are refused."""
        if isinstance(groups, StateFeatures):
            return groups
        names = [] if groups is None else [groups] if isinstance(groups, str) else [str(g) for g in groups]
        if names == ["all"]:
            names = list(FEATURE_GROUPS)
        bad = [g for g in names if g not in FEATURE_GROUPS]
        if bad or len(set(names)) != len(names):
            raise ConfigError(
                f"state_features must be distinct names among {list(FEATURE_GROUPS)} (or 'all'), got {names}"
            )
        return cls(tuple(g for g in FEATURE_GROUPS if g in names))

    @property
    def output_groups(self) -> tuple[str, ...]:
        """The selected groups that :meth:`from_output` computes, in column order."""
        return tuple(g for g in self.groups if g in OUTPUT_GROUPS)

    def column(self, group: str) -> int:
        """Index of ``group``'s first column in the (N, 2 + width) observation."""
        if group not in self.groups:
            raise ConfigError(f"state feature {group!r} is not selected (groups {list(self.groups)})")
        return 2 + sum(FEATURE_GROUPS[g] for g in self.groups[: self.groups.index(group)])

    @property
    def width(self) -> int:
        """Columns added to the (N, 2) state."""
        return sum(FEATURE_GROUPS[g] for g in self.groups)

    def check_quality(self, quality: Any, oracle: bool) -> None:
        """Refuse the ``uncertainty`` group with an estimator that cannot report it, before any round.

        An estimator says so with ``reports_uncertainty`` (a crop-only CNN has the attribute
        ``last_uncertainty`` but leaves it None); without that flag, having ``last_uncertainty`` counts.
        """
        if "uncertainty" not in self.groups or oracle:
            return
        reports = getattr(quality, "reports_uncertainty", None)
        if reports is None:
            reports = hasattr(quality, "last_uncertainty")
        if not reports:
            raise ConfigError(
                f"state feature 'uncertainty' needs a quality estimator that reports last_uncertainty (the "
                f"feature model, a fused CNN); {type(quality).__name__} reports none"
            )

    def from_output(
        self,
        probs: np.ndarray,
        masks: np.ndarray,
        *,
        uncertainty: np.ndarray | None = None,
        diagnostics: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """(N, w) columns of the output groups for one backend output (``uncertainty``: the
        quality's per-frame standard deviation, for ``uncertainty``; ``diagnostics``: the output's
        ``BackendOutput.diagnostics``, for ``disagreement``).

        Nothing is computed for groups that are not selected ((N, 0) for the paper's state).
        """
        cols = []
        for g in self.groups:
            if g == "uncertainty":
                n = masks.shape[0]
                if uncertainty is None:
                    raise InputValidationError(
                        "state feature 'uncertainty' needs the quality's uncertainty; the quality source "
                        "gave none"
                    )
                u = np.asarray(uncertainty, dtype=np.float64)
                if u.shape != (n,) or not np.all(np.isfinite(u)):
                    raise InputValidationError(f"uncertainty is {u.shape} or not finite; need ({n},)")
                cols.append(np.clip(u, 0.0, 1.0))
            elif g == "entropy":
                cols.append(label_entropy(probs))
            elif g == "area_change":
                cols.append(area_change(masks))
            elif g == "disagreement":
                cols.append(run_disagreement(diagnostics, masks.shape[0]))
        if not cols:
            return np.zeros((masks.shape[0], 0), np.float32)
        return np.stack(cols, axis=1).astype(np.float32)

    def extend(
        self,
        state: np.ndarray,
        history: Sequence[int],
        horizon: int,
        output_columns: np.ndarray | None = None,
    ) -> np.ndarray:
        """The (N, 2 + width) observation: ``state`` (q, h) followed by the selected groups.

        ``output_columns`` is :meth:`from_output` of the current round (needed when any output
        group is selected). With no group, ``state`` itself is returned.
        """
        if not self.groups:
            return state
        n = state.shape[0]
        out_cols = iter(np.asarray(output_columns).T if output_columns is not None else [])
        cols: list[np.ndarray] = [state]
        for g in self.groups:
            if g == "distance":
                cols.append(side_distances(history, n))
            elif g == "round":
                cols.append(np.full((n, 1), (len(history) - 1) / max(int(horizon), 1), np.float32))
            elif g == "span":
                cols.append(span_columns(state[:, 0], history))
            else:
                col = next(out_cols, None)
                if col is None or col.shape != (n,):
                    raise InputValidationError(f"state feature {g!r} needs from_output columns ({n} frames)")
                cols.append(col[:, None])
        return np.concatenate(cols, axis=1).astype(np.float32)
