"""Scribbles -> prompts for promptable segmenters (SAM2): points along strokes, or mask prompts.

Point-prompted models were trained on a handful of clicks, not on dense strokes, so each
object's strokes are summarised by a few points spread evenly along their arc length (positive
for the object, negative from background strokes and other objects' strokes). The sampling is
deterministic, evenly spaced rather than random, so the same scribbles always give the same
prompts. Pure numpy/OpenCV: testable without the optional ``sam2`` package.

Coordinates follow the DAVIS convention: a normalised point ``(x, y)`` is the pixel
``(x * (W - 1), y * (H - 1))``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ivos_rl.errors import InputValidationError
from ivos_rl.scribbles import scribbles2mask

__all__ = ["mask_prompt", "point_prompts", "sample_along_strokes", "stroke_label_map", "stroke_to_pixels"]


def stroke_label_map(strokes: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Rasterise one frame's strokes into an (H, W) int16 map: object id, -1 where no stroke.

    Uses :func:`ivos_rl.scribbles.scribbles2mask` so that every backend and ``check_backend``
    agree on which pixels a stroke covers; later strokes overwrite earlier ones.
    """
    raster = scribbles2mask({"scribbles": [strokes]}, (height, width))
    return np.asarray(raster[0], dtype=np.int16)


def stroke_to_pixels(stroke: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The stroke's path as an (N, 2) float64 array of pixel ``(x, y)`` coordinates."""
    path = np.asarray(stroke["path"], dtype=np.float64).reshape(-1, 2)
    return path * np.array([width - 1, height - 1], dtype=np.float64)


def sample_along_strokes(paths: list[np.ndarray], n: int) -> np.ndarray:
    """``n`` points evenly spaced along the total arc length of ``paths`` (pixel xy arrays).

    Point ``i`` sits at arc length ``(i + 0.5) * L / n`` so that samples stay off the stroke
    ends (where scribbles overshoot most). Strokes are not joined to each other. When every
    stroke is a single point (zero length), their distinct points are returned, at most ``n``.
    Returns an (M, 2) float32 array, M <= n; empty input gives an empty array.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputValidationError(f"number of prompt points must be a non-negative integer, got {n!r}")
    paths = [p for p in paths if len(p)]
    if n == 0 or not paths:
        return np.zeros((0, 2), np.float32)
    seg_start: list[np.ndarray] = []
    seg_vec: list[np.ndarray] = []
    for p in paths:
        if len(p) > 1:
            seg_start.append(p[:-1])
            seg_vec.append(np.diff(p, axis=0))
    lengths = np.linalg.norm(np.concatenate(seg_vec), axis=1) if seg_vec else np.zeros(0)
    total = float(lengths.sum())
    if total <= 0.0:
        pts = np.unique(np.concatenate(paths).round(6), axis=0)
        if len(pts) > n:
            pts = pts[np.linspace(0, len(pts) - 1, n).round().astype(int)]
        return pts.astype(np.float32)
    starts = np.concatenate(seg_start)
    vecs = np.concatenate(seg_vec)
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    targets = (np.arange(n) + 0.5) * total / n
    seg = np.clip(np.searchsorted(cum, targets, side="right") - 1, 0, len(lengths) - 1)
    frac = np.divide(targets - cum[seg], lengths[seg], out=np.zeros(n), where=lengths[seg] > 0)
    return (starts[seg] + frac[:, None] * vecs[seg]).astype(np.float32)


def point_prompts(
    strokes: list[dict[str, Any]],
    object_id: int,
    height: int,
    width: int,
    n_positive: int = 8,
    n_negative: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Point prompts for ``object_id`` from one frame's strokes.

    Positives: ``n_positive`` points along the strokes of ``object_id``; negatives:
    ``n_negative`` points along every other stroke (background id 0 and the other objects).
    Returns ``(points (N, 2) float32 pixel xy, labels (N,) int32)`` with 1 = positive, 0 = negative,
    positives first. No stroke for either side simply contributes no point.
    """
    if object_id < 1:
        raise InputValidationError(f"object_id must be >= 1 for point prompts, got {object_id}")
    pos = [stroke_to_pixels(s, height, width) for s in strokes if s["object_id"] == object_id]
    neg = [stroke_to_pixels(s, height, width) for s in strokes if s["object_id"] != object_id]
    p = sample_along_strokes(pos, n_positive)
    q = sample_along_strokes(neg, n_negative)
    points = np.concatenate([p, q]).astype(np.float32)
    labels = np.concatenate([np.ones(len(p), np.int32), np.zeros(len(q), np.int32)])
    return points, labels


def mask_prompt(
    stroke_labels: np.ndarray,
    object_id: int,
    previous: np.ndarray | None = None,
    radius: int = 3,
) -> np.ndarray:
    """Mask prompt for ``object_id``: the previous mask corrected by the strokes.

    ``stroke_labels`` is an (H, W) map of stroke object ids (-1 where no stroke, as returned by
    ``stroke_label_map``); ``previous`` the object's current (H, W) bool mask or ``None``.
    Pixels within ``radius`` of the object's strokes become foreground, then pixels within
    ``radius`` of any other stroke become background (a correction wins over the old mask).
    """
    if stroke_labels.ndim != 2:
        raise InputValidationError(f"stroke_labels must be an (H, W) map, got shape {stroke_labels.shape}")
    if previous is not None and previous.shape != stroke_labels.shape:
        raise InputValidationError(
            f"previous mask shape {previous.shape} does not match stroke_labels {stroke_labels.shape}"
        )
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    pos = cv2.dilate((stroke_labels == object_id).astype(np.uint8), kernel).astype(bool)
    other = (stroke_labels >= 0) & (stroke_labels != object_id)
    neg = cv2.dilate(other.astype(np.uint8), kernel).astype(bool)
    mask = np.zeros(stroke_labels.shape, bool) if previous is None else previous.astype(bool).copy()
    mask[pos] = True
    mask[neg & ~(stroke_labels == object_id)] = False
    return mask
