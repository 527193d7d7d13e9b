"""Video context of the quality signals: each signal seen against the rest of the same round.

A signal's raw value mixes two things: how good this frame is *relative to the video's other
frames*, and the video's overall level (a blurry, fast video has high entropy everywhere). The
per-frame signals of :mod:`ivos_rl.quality.features` cannot separate them; these columns can. For
each base signal s of one object on one round's output (all T frames):

* ``<s>@nb``: the mean of s on the neighbouring frames t-1 and t+1 (an error rarely stays on one
  frame, and single-frame noise in s averages out);
* ``<s>@dev``: s minus the video's median of s (the frame against its own video);
* ``<s>@rank``: the rank of s among the video's frames, in [0, 1] (scale-free; what the Worst rule
  needs is the order of the frames);
* ``<s>@med``: the video's median of s (a per-video level cue: the round's overall difficulty);
* ``<s>@cen``: s minus the mean of s over the round's frames (the relative signal of issue #15: the
  Worst rule needs each frame against the others of the same round, not the level).

They are computed from one round's (T, K, F) feature array, so training rows (every frame of every
round is recorded, :mod:`ivos_rl.quality.feature_rows`) and prediction (the estimator computes the
whole video) give the same numbers. Columns are appended after the base columns; a model selects
the columns it was trained on by name (:func:`select_columns`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ivos_rl.errors import InputValidationError
from ivos_rl.quality.feature_rows import FeatureRows

#: Base signals that get context columns (the ones that vary from frame to frame by quality; the
#: temporal columns are already relative to the annotation history).
CONTEXT_BASE: tuple[str, ...] = (
    "log_area",
    "entropy_box",
    "margin_box",
    "uncertain_box",
    "uncertain_rel",
    "p_in",
    "p_out_box",
    "log_area_ratio_prev",
    "log_area_ratio_next",
    "iou_prev",
    "iou_next",
    "log_area_ratio_anchor",
    "boundary_ratio",
    "colour_agree",
    "colour_llr_in",
    "colour_llr_out",
)
KINDS: tuple[str, ...] = ("nb", "dev", "rank", "med", "cen")
#: The kinds a ``context: true`` recipe uses when it names none (the session-6 recipes' columns).
DEFAULT_KINDS: tuple[str, ...] = ("nb", "dev", "rank", "med")
CONTEXT_NAMES: tuple[str, ...] = tuple(f"{s}@{k}" for k in KINDS for s in CONTEXT_BASE)


def is_context(name: str) -> bool:
    """True for a column added by :func:`add_context`."""
    return "@" in name


def _rank01(v: np.ndarray) -> np.ndarray:
    """Average ranks along axis 0 scaled to [0, 1] (0.5 for a single frame); ties share their rank."""
    t = v.shape[0]
    if t == 1:
        return np.full_like(v, 0.5)
    order = np.argsort(v, axis=0, kind="stable")
    ranks = np.empty_like(v)
    np.put_along_axis(ranks, order, np.arange(t, dtype=v.dtype)[:, None, None], axis=0)
    # ties: replace each rank by the mean rank of its equal values (per column; T is small)
    srt = np.take_along_axis(v, order, axis=0)
    for idx in zip(*np.nonzero((srt[1:] == srt[:-1]).any(axis=0)), strict=True):
        col = v[(slice(None), *idx)]
        _, inv = np.unique(col, return_inverse=True)
        mean_rank = np.bincount(inv, weights=ranks[(slice(None), *idx)]) / np.bincount(inv)
        ranks[(slice(None), *idx)] = mean_rank[inv]
    return ranks / (t - 1)


def add_context(x: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(x with the context columns appended, their names)`` for one round's ``x`` (T, K, F).

    ``names`` are ``x``'s columns (they must include :data:`CONTEXT_BASE`).
    """
    x = np.asarray(x, dtype=np.float32)
    names = tuple(names)
    if x.ndim != 3 or x.shape[2] != len(names) or x.shape[0] < 1:
        raise InputValidationError(f"context needs (T >= 1, K, {len(names)}) features, got {x.shape}")
    missing = [s for s in CONTEXT_BASE if s not in names]
    if missing:
        raise InputValidationError(f"context needs the base signals {missing}")
    base = x[:, :, [names.index(s) for s in CONTEXT_BASE]]  # (T, K, C)
    padded = np.concatenate([base[:1], base, base[-1:]], axis=0)
    nb = 0.5 * (padded[:-2] + padded[2:])
    med = np.median(base, axis=0, keepdims=True)
    cen = base - base.mean(axis=0, keepdims=True)
    cols = [nb, base - med, _rank01(base), np.broadcast_to(med, base.shape), cen]
    out = np.concatenate([x, *cols], axis=2).astype(np.float32)
    return out, names + CONTEXT_NAMES


def rows_with_context(rows: FeatureRows) -> FeatureRows:
    """``rows`` with the context columns, computed per (trajectory, round) over its frames.

    Every (trajectory, round) group must hold every frame 0..T-1 of every object once (as the
    recorder writes them); :class:`InputValidationError` names a group that does not.
    """
    if any(is_context(n) for n in rows.names):
        raise InputValidationError("feature rows already carry context columns")
    keys = np.char.add(np.char.add(rows.trajectory_keys(), "|"), rows.round.astype(str))
    order = np.lexsort((rows.object_id, rows.frame, keys))
    skeys = keys[order]
    starts = np.flatnonzero(np.r_[True, skeys[1:] != skeys[:-1]])
    ends = np.r_[starts[1:], len(order)]
    new_names: tuple[str, ...] = ()
    out = np.empty((len(rows), len(rows.names) + len(CONTEXT_NAMES)), np.float32)
    for a, b in zip(starts, ends, strict=True):
        idx = order[a:b]
        k = int(rows.object_id[idx].max())
        t = int(rows.frame[idx].max()) + 1
        if len(idx) != t * k:
            raise InputValidationError(f"feature rows of {skeys[a]!r} do not cover {t} frames x {k} objects")
        grid, new_names = add_context(rows.x[idx].reshape(t, k, -1), rows.names)
        out[idx] = grid.reshape(t * k, -1)
    kw = {c: getattr(rows, c) for c in ("jf", "j", "f", "sequence", "frame", "object_id", "round")}
    return FeatureRows(
        x=out, **kw, strategy=rows.strategy, init=rows.init, backend=rows.backend,
        names=new_names or rows.names + CONTEXT_NAMES, degraded=rows.degraded,
    )


def select_columns(x: np.ndarray, names: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    """Columns ``wanted`` of ``x`` (..., F) whose columns are ``names`` (InputValidationError naming
    a missing one)."""
    names = list(names)
    missing = [n for n in wanted if n not in names]
    if missing:
        raise InputValidationError(f"feature columns {missing[:5]} are missing (have {len(names)} columns)")
    return x[..., [names.index(n) for n in wanted]]


__all__ = [
    "CONTEXT_BASE",
    "CONTEXT_NAMES",
    "DEFAULT_KINDS",
    "KINDS",
    "add_context",
    "is_context",
    "rows_with_context",
    "select_columns",
]
