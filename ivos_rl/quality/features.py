"""Appearance-free quality signals per (frame, object), computed from what the interactive loop has.

The appearance-only quality net overfits the few training videos (issue #15). The signals here do
not look at *what* the object is, only at how sure the backend is and how consistent its output is
with the user's annotations:

* the backend's own probabilities: binary entropy and margin inside the object's box, the fraction
  of uncertain pixels there, the mean probability inside and outside the mask;
* the annotation history: temporal distance to the nearest annotated frame on each side, whether
  the frame itself is annotated, the round number;
* temporal consistency: area change and IoU of the mask against the previous / next frame and the
  area ratio against the nearest annotated frame (whose mask the user corrected);
* shape: mask area, boundary length relative to area (ragged masks are usually wrong);
* colour agreement: a foreground/background colour histogram fitted on the annotated frames'
  masks, and how well its per-pixel decision agrees with the mask on this frame.

Everything is computed on a grid subsampled to about :data:`WORK_ROWS` rows, so the cost does not
grow with the resolution and 240p and 480p videos give the same features (up to sampling).
Optional signal groups (:data:`OPTIONAL_GROUPS`, asked for by name) are appended after
:data:`FEATURE_NAMES` in that order (today one: ``motion``, :mod:`ivos_rl.quality.motion`, optical
flow between neighbouring frames); then backend diagnostics: an optional ``diagnostics`` mapping of
name -> (T, K) arrays (e.g. ``getattr(out, "diagnostics", None)``) in sorted-name order. A model
trained with a group needs it at prediction time (:func:`feature_names`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ivos_rl.errors import InputValidationError
from ivos_rl.quality._masked import mean_in
from ivos_rl.quality.crop import validate_inputs
from ivos_rl.quality.motion import MOTION_NAMES, MotionCache, motion_columns

WORK_ROWS = 120  # rows of the subsampled grid the features are computed on
COLOUR_LEVELS = 8  # per-channel levels of the colour histograms (8^3 bins)
_COLOUR_SHIFT = 5  # uint8 >> 5 = 8 levels
_EPS = 1e-6

FEATURE_NAMES: tuple[str, ...] = (
    "empty",  # 1 when the object has no pixel on this frame
    "area",  # mask pixels / frame pixels
    "log_area",
    "entropy_box",  # mean binary entropy (bits) of p inside the enlarged box
    "margin_box",  # mean |2p - 1| inside the box
    "uncertain_box",  # fraction of box pixels with 0.1 < p < 0.9
    "uncertain_rel",  # uncertain pixels / mask pixels (clipped at 4)
    "p_in",  # mean p inside the mask
    "p_out_box",  # mean p inside the box but outside the mask
    "annotated",  # 1 on annotated frames
    "dist_prev",  # frames since the last annotated frame / T (1 when none)
    "dist_next",  # frames until the next annotated frame / T (1 when none)
    "dist_min",  # min of the two / T
    "log_dist_min",  # log(1 + frames to the nearest annotated frame)
    "one_sided",  # 1 when annotated frames lie on one side only
    "round",  # number of annotations so far
    "log_area_ratio_prev",  # |log(area_t / area_{t-1})|
    "log_area_ratio_next",
    "iou_prev",  # IoU of the mask with the previous frame's mask
    "iou_next",
    "log_area_ratio_anchor",  # |log(area_t / area of the nearest annotated frame)|
    "boundary_ratio",  # boundary pixels / sqrt(mask pixels)  (compactness)
    "colour_agree",  # fraction of box pixels where the colour model agrees with the mask
    "colour_llr_in",  # mean fg-vs-bg colour log-likelihood ratio inside the mask
    "colour_llr_out",  # same outside the mask, inside the box
)


#: Optional signal groups, in column order: name -> its columns.
OPTIONAL_GROUPS: dict[str, tuple[str, ...]] = {"motion": MOTION_NAMES}


def check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """``groups`` as a tuple in column order; an unknown or repeated name is an InputValidationError."""
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
        raise InputValidationError(f"signal groups must be a list of names, got {groups!r}")
    unknown = sorted(set(groups) - set(OPTIONAL_GROUPS))
    if unknown or len(set(groups)) != len(groups):
        raise InputValidationError(
            f"signal groups {list(groups)} must be distinct names among {list(OPTIONAL_GROUPS)}"
        )
    return tuple(g for g in OPTIONAL_GROUPS if g in groups)


def group_columns(groups: Sequence[str]) -> tuple[str, ...]:
    """The columns of the optional ``groups``, in column order."""
    return tuple(n for g in check_groups(groups) for n in OPTIONAL_GROUPS[g])


def groups_of(names: Sequence[str]) -> tuple[str, ...]:
    """The optional groups whose columns appear in ``names`` (e.g. a model's columns)."""
    return tuple(g for g, cols in OPTIONAL_GROUPS.items() if set(cols) & set(names))


def feature_names(diagnostics: Sequence[str] = (), groups: Sequence[str] = ()) -> tuple[str, ...]:
    """Column names of :func:`quality_features` with the optional signal ``groups`` for a backend
    offering ``diagnostics``."""
    diag = tuple(f"diag_{name}" for name in sorted(diagnostics))
    return FEATURE_NAMES + group_columns(groups) + diag


def _check_history(history: Sequence[int], n_frames: int) -> np.ndarray:
    try:
        hist = np.asarray([int(h) for h in history], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise InputValidationError(f"history must be a sequence of frame indices, got {history!r}") from exc
    if hist.size == 0:
        raise InputValidationError("history is empty: quality features need at least one annotated frame")
    if hist.min() < 0 or hist.max() >= n_frames:
        raise InputValidationError(f"history {hist.tolist()} has frames outside 0..{n_frames - 1}")
    return hist


def temporal_features(history: Sequence[int], n_frames: int) -> np.ndarray:
    """(T, 7) annotated, dist_prev, dist_next, dist_min, log_dist_min, one_sided, round."""
    hist = _check_history(history, n_frames)
    ann = np.unique(hist)
    t = np.arange(n_frames)
    pos = np.searchsorted(ann, t, side="right")  # ann[pos-1] <= t < ann[pos]
    prev = np.where(pos > 0, t - ann[np.maximum(pos - 1, 0)], n_frames)
    nxt_idx = np.searchsorted(ann, t, side="left")
    nxt = np.where(nxt_idx < ann.size, ann[np.minimum(nxt_idx, ann.size - 1)] - t, n_frames)
    dmin = np.minimum(prev, nxt)
    out = np.empty((n_frames, 7), np.float32)
    out[:, 0] = dmin == 0
    out[:, 1] = np.minimum(prev, n_frames) / n_frames
    out[:, 2] = np.minimum(nxt, n_frames) / n_frames
    out[:, 3] = dmin / n_frames
    out[:, 4] = np.log1p(dmin)
    out[:, 5] = (prev >= n_frames) | (nxt >= n_frames)
    out[:, 6] = hist.size
    return out


def _subsample(frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames and float probabilities on a grid of about WORK_ROWS rows (plain striding: cheap)."""
    step = max(1, round(probs.shape[2] / WORK_ROWS))
    p = probs[:, :, ::step, ::step]
    p = p.astype(np.float32) / 255.0 if p.dtype == np.uint8 else np.asarray(p, np.float32)
    return frames[:, ::step, ::step], p


def _boxes(mask: np.ndarray, enlarge: float = 1.5) -> np.ndarray:
    """(T, h, w) bool: the mask's bounding box enlarged by ``enlarge`` (empty when the mask is)."""
    _t, h, w = mask.shape
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    has = rows.any(axis=1)
    r0, r1 = rows.argmax(axis=1), h - 1 - rows[:, ::-1].argmax(axis=1)
    c0, c1 = cols.argmax(axis=1), w - 1 - cols[:, ::-1].argmax(axis=1)
    half_h, half_w = (r1 - r0 + 1) * enlarge / 2, (c1 - c0 + 1) * enlarge / 2
    cy, cx = (r0 + r1) / 2, (c0 + c1) / 2
    ri, ci = np.arange(h)[None, :], np.arange(w)[None, :]
    in_r = (ri >= (cy - half_h)[:, None]) & (ri <= (cy + half_h)[:, None])
    in_c = (ci >= (cx - half_w)[:, None]) & (ci <= (cx + half_w)[:, None])
    return in_r[:, :, None] & in_c[:, None, :] & has[:, None, None]


def _pair_iou(mask: np.ndarray, shift: int) -> np.ndarray:
    """IoU of each frame's mask with frame t+shift (1 at the video's ends)."""
    other = np.roll(mask, -shift, axis=0)
    inter = (mask & other).sum(axis=(1, 2))
    union = (mask | other).sum(axis=(1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    iou[-1 if shift > 0 else 0] = 1.0
    return iou


def _area_ratio(area_px: np.ndarray, other: np.ndarray) -> np.ndarray:
    return np.abs(np.log((area_px + 1.0) / (other + 1.0)))


def _colour_features(
    codes: np.ndarray, mask: np.ndarray, box: np.ndarray, ann: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agreement of a colour model fitted on the annotated frames' masks with every frame's mask."""
    n_bins = COLOUR_LEVELS**3
    fg = np.bincount(codes[ann][mask[ann]], minlength=n_bins).astype(np.float64) + 1.0
    bg = np.bincount(codes[ann][~mask[ann]], minlength=n_bins).astype(np.float64) + 1.0
    llr_table = (np.log(fg / fg.sum()) - np.log(bg / bg.sum())).astype(np.float32)
    llr = llr_table[codes]  # (T, h, w)
    agree = mean_in(((llr > 0) == mask).astype(np.float32), box)
    return agree, mean_in(llr, mask), mean_in(llr, box & ~mask)


def _object_features(
    p: np.ndarray, mask: np.ndarray, box: np.ndarray, codes: np.ndarray, ann: np.ndarray, anchor: np.ndarray
) -> np.ndarray:
    """(T, 18) probability, consistency, shape and colour columns of one object (see FEATURE_NAMES);
    ``box`` is :func:`_boxes` of ``mask``."""
    _t, h, w = p.shape
    area_px = mask.sum(axis=(1, 2)).astype(np.float64)
    ent = -(p * np.log2(p + _EPS) + (1 - p) * np.log2(1 - p + _EPS))
    uncertain = (p > 0.1) & (p < 0.9)
    n_unc = (uncertain & box).sum(axis=(1, 2))
    edges = (mask[:, 1:, :] != mask[:, :-1, :]).sum(axis=(1, 2)) + (mask[:, :, 1:] != mask[:, :, :-1]).sum(
        axis=(1, 2)
    )
    prev_area = np.concatenate([area_px[:1], area_px[:-1]])
    next_area = np.concatenate([area_px[1:], area_px[-1:]])
    agree, llr_in, llr_out = _colour_features(codes, mask, box, ann)
    cols = [
        area_px == 0,
        area_px / (h * w),
        np.log(area_px / (h * w) + 1e-4),
        mean_in(ent, box),
        mean_in(np.abs(2 * p - 1), box),
        mean_in(uncertain.astype(np.float32), box),
        np.minimum(n_unc / np.maximum(area_px, 1.0), 4.0),
        mean_in(p, mask),
        mean_in(p, box & ~mask),
        _area_ratio(area_px, prev_area),
        _area_ratio(area_px, next_area),
        _pair_iou(mask, -1),
        _pair_iou(mask, 1),
        _area_ratio(area_px, area_px[anchor]),
        np.minimum(edges / np.sqrt(np.maximum(area_px, 1.0)), 20.0),
        agree,
        np.clip(llr_in, -10, 10),
        np.clip(llr_out, -10, 10),
    ]
    return np.stack([np.asarray(c, np.float32) for c in cols], axis=1)


def quality_features(
    frames: np.ndarray,
    probs: np.ndarray,
    history: Sequence[int],
    diagnostics: Mapping[str, np.ndarray] | None = None,
    groups: Sequence[str] = (),
    motion_cache: MotionCache | None = None,
) -> np.ndarray:
    """(T, K, F) float32 features of every (frame, object); columns are :func:`feature_names`.

    ``frames`` (T, H, W, 3) uint8; ``probs`` (T, K, H, W) uint8 (value / 255) or float in [0, 1];
    ``history`` the annotated frames so far, in order (repeats allowed: the round count is its
    length). Masks are the argmax labelling of the probabilities above 0.5, the masks the protocol
    scores. ``diagnostics`` optional backend signals, name -> (T, K) array. ``groups``: optional
    signal groups (:data:`OPTIONAL_GROUPS`); ``motion`` takes the video's flow fields from
    ``motion_cache`` when given (computed otherwise).
    """
    validate_inputs(frames, probs)
    groups = check_groups(groups)
    t, k = probs.shape[:2]
    temporal = temporal_features(history, t)
    ann = np.unique(np.asarray(history, dtype=np.int64))
    small_f, p = _subsample(frames, probs)
    labels = np.where(p.max(axis=1) > 0.5, p.argmax(axis=1) + 1, 0)
    q = (small_f >> _COLOUR_SHIFT).astype(np.int16)
    codes = (q[..., 0] * COLOUR_LEVELS + q[..., 1]) * COLOUR_LEVELS + q[..., 2]
    dist = np.abs(np.arange(t)[:, None] - ann[None, :])
    anchor = ann[dist.argmin(axis=1)]
    extra = _diagnostic_columns(diagnostics, t, k)
    fields = (motion_cache or MotionCache()).get(small_f) if "motion" in groups else None
    n_base = len(FEATURE_NAMES) + len(group_columns(groups))
    out = np.empty((t, k, n_base + extra.shape[2]), np.float32)
    for obj in range(k):
        mask = labels == obj + 1
        box = _boxes(mask)
        per_obj = _object_features(p[:, obj], mask, box, codes, ann, anchor)
        out[:, obj, :9] = per_obj[:, :9]
        out[:, obj, 9:16] = temporal
        out[:, obj, 16 : len(FEATURE_NAMES)] = per_obj[:, 9:]
        if fields is not None:
            out[:, obj, len(FEATURE_NAMES) : n_base] = motion_columns(fields, mask, box, anchor)
    out[:, :, n_base:] = extra
    return out


def _diagnostic_columns(diagnostics: Mapping[str, np.ndarray] | None, t: int, k: int) -> np.ndarray:
    """(T, K, D) backend diagnostics in sorted-name order; a wrong shape names the diagnostic."""
    if not diagnostics:
        return np.zeros((t, k, 0), np.float32)
    cols = []
    for name in sorted(diagnostics):
        arr = np.asarray(diagnostics[name], dtype=np.float32)
        if arr.shape != (t, k):
            raise InputValidationError(f"backend diagnostic {name!r} must be ({t}, {k}), got {arr.shape}")
        cols.append(arr)
    return np.stack(cols, axis=2)
