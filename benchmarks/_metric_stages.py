"""Where ivos-rl's one-object J+F spends its time, stage by stage, and one alternative for matching.

Used by ``bench_metrics.py --stages``. The stages are those of ``ivos_rl.metrics._compute`` for one
object, timed separately over all frames by the caller's timer (bench_metrics.py: best CPU time of
the repeats), each stage fed with the previous stage's outputs, computed once beforehand:

* ``read``: the predicted object mask of every frame (one comparison pass over each input frame in its
  own dtype; for int64 inputs this is the memory-bound read of 8 bytes per pixel);
* ``boxes``: the predicted masks' bounding boxes (one scan of each uint8 mask);
* ``truth``: the true side, once per sample (:class:`ivos_rl.metrics.GroundTruth`): the true mask, its
  box and crop, its seg2bmap boundary on the matching region and that boundary's dilations;
* ``J``: the three counts of the Jaccard index on the boxes;
* ``boundaries``: the predicted seg2bmap boundary on its box (a 2x2 morphological gradient), its count
  and its copy on the matching region;
* ``matching``: the two match counts of F on the true box grown by the tolerance (the three-stage
  matcher: inscribed square, bounding square, ring offsets);
* ``matching, point sets``: the same two counts by point sets instead of dilations (``cv2.findNonZero``
  of both boundary crops, ``scipy.spatial.cKDTree`` nearest neighbour, then the exact integer test
  ``dy² + dx² <= r²`` on the neighbour found). It is checked to give the same counts; it is not used
  by the package because it is slower (benchmarks/RESULTS.md, issue #18).

Each stage runs over all frames before the next starts, so the masks and crops leave the cache in
between: the sum of the stages exceeds the one-pass J+F time, which processes one frame at a time.

These helpers reach into ``ivos_rl.metrics``' private functions on purpose: they time the package's
own stages, not a copy of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from ivos_rl import metrics as m


def _points(boundary: np.ndarray) -> np.ndarray:
    """(N, 2) int64 (x, y) coordinates of a uint8 map's nonzero pixels."""
    pts = cv2.findNonZero(boundary)
    return np.zeros((0, 2), np.int64) if pts is None else pts.reshape(-1, 2).astype(np.int64)


def point_set_count(src: np.ndarray, dst: np.ndarray, radius: int) -> int:
    """Number of ``dst`` points with a ``src`` point at squared distance <= radius² (exact integers).

    The nearest ``src`` neighbour decides: if it is not within the disk, no point is. The
    tree's float distance only pre-filters (bound r + 0.5, far above float error); the decision is
    the integer test on the neighbour's coordinates.
    """
    if len(src) == 0 or len(dst) == 0:
        return 0
    from scipy.spatial import cKDTree

    _, idx = cKDTree(src).query(dst, k=1, distance_upper_bound=radius + 0.5)
    found = idx < len(src)
    diff = src[idx[found]] - dst[found]
    return int(np.count_nonzero((diff * diff).sum(axis=1) <= radius * radius))


Timer = Callable[[Callable[[], Any]], tuple[Any, float]]
"""Runs a function and returns its result and the time taken (the caller's best-of rule)."""


def stage_times(gt: np.ndarray, pred: np.ndarray, timer: Timer, bound_th: float = 0.008) -> dict[str, float]:
    """Seconds of each stage of one-object J+F over the (T, H, W) stacks (object id 1), per ``timer``.

    The truth's side (box, crop, boundary and its dilations: ``truth``) is what
    :class:`ivos_rl.metrics.GroundTruth` builds once per sample; the other stages are each round's work.
    """
    frames = range(gt.shape[0])
    radius = m.boundary_radius(gt.shape[1:], bound_th)
    if radius != int(radius):
        raise ValueError(f"the point-set stage needs an integer radius, got {radius}")
    matcher = m._Matcher(m.disk_footprint(radius))
    reach = max(matcher.pad)
    times: dict[str, float] = {}
    masks, times["read"] = timer(lambda: [m._object_mask(pred[t], 1) for t in frames])
    boxes, times["boxes"] = timer(lambda: [m._box(p) for p in masks])
    parts, times["truth"] = timer(lambda: [m._truth_part(gt[t], 1, matcher, reach) for t in frames])
    both = zip(parts, masks, boxes, strict=True)
    pairs = [(part, p, b) for part, p, b in both if part.box is not None and b is not None]  # frames to match
    _, times["J"] = timer(lambda: [m._jaccard(part, p, b) for part, p, b in pairs])

    def boundaries() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for part, p, b in pairs:
            pb, pcb = m._boundary(p, b)
            cv2.countNonZero(pb)
            assert part.region is not None and part.boundary is not None
            out.append((part.boundary, m._paste(pb, pcb, part.region)))
        return out

    crops, times["boundaries"] = timer(boundaries)
    counts, times["matching"] = timer(
        lambda: [(matcher.count(gd, pb), matcher.count(pb, gd.src)) for gd, pb in crops]
    )

    def by_points() -> list[tuple[int, int]]:
        out = []
        for gd, pb in crops:
            gp, pp = _points(gd.src), _points(pb)
            out.append((point_set_count(gp, pp, int(radius)), point_set_count(pp, gp, int(radius))))
        return out

    point_counts, times["matching, point sets"] = timer(by_points)
    if point_counts != counts:
        raise AssertionError("point-set matching disagrees with the package's matcher")
    return times
