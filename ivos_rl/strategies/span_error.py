"""Span-error: the frame whose correction can reach the most estimated error (training-free).

Backend v2 rounds are local: a correction on frame k recomputes only the frames between k's
annotated neighbours L < k < R (the whole video end on a side without one), and there fuses the
new run from k with the previous labels by temporal distance: frame j takes the new run with weight
``d_o / (d_o + |j - k|)``, ``d_o`` the distance from j to the neighbour on j's side (at an open end,
to the nearest other annotated frame; 1 when k would be the only one). So annotating k can fix
roughly the error inside its span, less and less far from k. Farthest maximises the span and
ignores the error; Worst maximises one frame's error and ignores the span; this rule weighs both:

    score(k) = sum_{L < j < R} (1 - q_j) * w(j, k),
    w(j, k) = exp(-|j - k| / length) * (d_o / (d_o + |j - k|) if fusion else 1)

with q the quality the setting gives (Oracle: true J&F; Wild: the estimator's guess). ``length``
None means no decay. Annotated frames are skipped unless ``allow_repeat`` (then an annotated k's
span runs between its annotated neighbours other than itself). Ties go to the earliest frame.
"""

from __future__ import annotations

import numpy as np

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.strategies.base import Strategy, StrategyState, register_strategy

__all__ = ["SpanErrorStrategy", "span_error_scores", "span_weights"]


def span_weights(
    n_frames: int, history: tuple[int, ...] | list[int], length: float | None = None, fusion: bool = True
) -> np.ndarray:
    """(N, N) matrix W[k, j]: the share of frame j's error a correction on frame k can fix (module doc).

    Row k is zero outside k's span (L, R); an annotated k's span excludes k itself from the
    neighbours. Only the annotation history is needed, so a caller can reuse W for several q.
    """
    if n_frames < 1:
        raise InputValidationError(f"span_weights: n_frames must be >= 1, got {n_frames}")
    if length is not None and not float(length) > 0:
        raise InputValidationError(f"span_weights: length must be > 0 or None, got {length!r}")
    ann = np.unique(np.asarray(list(history), dtype=np.int64))
    if ann.size and (ann[0] < 0 or ann[-1] >= n_frames):
        raise InputValidationError(f"span_weights: history {list(history)} outside [0, {n_frames})")
    t = np.arange(n_frames)
    k = t[:, None]
    j = t[None, :]
    # neighbours of k other than k: last annotated < k, first annotated > k (-1 / N when none)
    left = np.full(n_frames, -1, np.int64)
    right = np.full(n_frames, n_frames, np.int64)
    if ann.size:
        i = np.searchsorted(ann, t, side="left")  # ann[i - 1] < t <= ann[i]
        left[i > 0] = ann[i[i > 0] - 1]
        i = np.searchsorted(ann, t, side="right")  # ann[i - 1] <= t < ann[i]
        right[i < ann.size] = ann[i[i < ann.size]]
    inside = (j > left[:, None]) & (j < right[:, None])
    d = np.abs(j - k).astype(np.float64)
    w = np.ones((n_frames, n_frames), np.float64)
    if length is not None:
        w *= np.exp(-d / float(length))
    if fusion:
        w *= _fusion_share(n_frames, ann, left, right, d)
    return np.where(inside, w, 0.0)


def _fusion_share(
    n: int, ann: np.ndarray, left: np.ndarray, right: np.ndarray, d: np.ndarray
) -> np.ndarray:
    """(N, N) temporal weight d_o / (d_o + d) of the new run from k on frame j (backend v2's ``_blend``)."""
    t = np.arange(n)
    k = t[:, None]
    j = t[None, :]
    nb = np.where(j > k, right[:, None], left[:, None])  # the neighbour on j's side of k
    open_end = (nb < 0) | (nb >= n)
    d_o = np.abs(j - nb).astype(np.float64)
    if open_end.any():
        # at an open end, the distance from j to the nearest annotated frame other than k
        others = np.full((n, n), np.inf)
        for a in ann:
            dist = np.abs(j - a).astype(np.float64)
            others = np.minimum(others, np.where(k == a, np.inf, dist))
        d_o = np.where(open_end, others, d_o)
    finite = np.isfinite(d_o) & (d > 0)
    share = np.ones((n, n), np.float64)
    np.divide(d_o, d_o + d, out=share, where=finite)
    return share


def span_error_scores(
    quality: np.ndarray,
    history: tuple[int, ...] | list[int],
    length: float | None = None,
    fusion: bool = True,
) -> np.ndarray:
    """(N,) estimated error mass a correction on each frame can reach (module docstring)."""
    q = np.asarray(quality, dtype=np.float64)
    if q.ndim != 1 or not np.all(np.isfinite(q)):
        raise InputValidationError(f"span_error_scores: quality must be a finite (N,) vector, got {q.shape}")
    err = 1.0 - np.clip(q, 0.0, 1.0)
    return span_weights(q.size, history, length, fusion) @ err


@register_strategy("span_error")
class SpanErrorStrategy(Strategy):
    """Annotate the frame whose span holds the most (distance-weighted) estimated error."""

    needs_quality = True

    def __init__(self, length: float | None = None, fusion: bool = True, allow_repeat: bool = False) -> None:
        if length is not None and (isinstance(length, bool) or not float(length) > 0):
            raise ConfigError(f"span_error length must be a number > 0 or null, got {length!r}")
        self.length = None if length is None else float(length)
        self.fusion = bool(fusion)
        self.allow_repeat = bool(allow_repeat)

    def select(self, state: StrategyState) -> int:
        q = state.require_quality(self.name)
        score = span_error_scores(q, state.history, self.length, self.fusion)
        if not self.allow_repeat and len(set(state.history)) < state.n_frames:
            score[list(set(state.history))] = -np.inf
        return int(np.argmax(score))
