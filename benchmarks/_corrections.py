"""Error accounting of one correction round (self-contained: bench_corrections.py and its tests use it)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pandas as pd

from ivos_rl.scribbles import scribbles2mask


def stroke_raster(answer: dict[str, Any], frame: int, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8: 1 on the pixels the answer's strokes on ``frame`` cross, rasterised as the backends
    read them (:func:`ivos_rl.scribbles.scribbles2mask`: points joined by Bresenham lines)."""
    frames = answer["scribbles"]
    one = {"scribbles": [frames[frame] if f == frame else [] for f in range(len(frames))]}
    return (scribbles2mask(one, shape, dtype=np.int16)[frame] >= 0).astype(np.uint8)


def correction_row(
    before: np.ndarray, after: np.ndarray, gt: np.ndarray, strokes: np.ndarray, far: float
) -> dict:
    """Error accounting of one annotated frame (label maps before / after the round, ground truth)."""
    err_before, err_after = before != gt, after != gt
    remain = err_before & err_after
    left = err_after  # every error after the round: remaining + newly broken
    if strokes.any() and left.any():
        free = (strokes == 0).astype(np.uint8)
        dist = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[left]  # exact Euclidean
        median_dist, far_share = float(np.median(dist)), float((dist > far).mean())
    else:
        median_dist, far_share = float("nan"), float("nan")
    return {
        "err_before": int(err_before.sum()),
        "fixed": int((err_before & ~err_after).sum()),
        "broken": int((~err_before & err_after).sum()),
        "remaining": int(remain.sum()),
        "err_after_median_px": median_dist,
        "err_after_far_share": far_share,
        "stroke_px": int(strokes.sum()),
    }


WORSE_BY = 0.005  # a correction "made the frame worse" when its J&F fell by more than this (#14's drop bar)


def summary(df: pd.DataFrame) -> dict[str, float]:
    """Pooled figures: mean J&F before / after, error shares of the pooled error pixels, and the share of
    corrections after which the annotated frame itself scored lower (the re-cut broke more than it fixed)."""
    err = max(int(df.err_before.sum()), 1)
    return {
        "corrections": len(df),
        "jf_before": df.jf_before.mean(),
        "jf_after": df.jf_after.mean(),
        "after_below_0.6": (df.jf_after < 0.6).mean(),
        "frame_worse": (df.jf_after < df.jf_before - WORSE_BY).mean(),
        "fixed": df.fixed.sum() / err,
        "broken": df.broken.sum() / err,
        "remaining": df.remaining.sum() / err,
        "far_share": df.err_after_far_share.mean(),
        "nothing_drawn": (~df.drew).mean(),
    }
