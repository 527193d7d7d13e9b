"""Scribble robot of the DAVIS-Interactive protocol (davisinteractive's algorithm, deterministic).

Given a prediction and the ground truth, the simulated user draws, on the worst frame (lowest
mean Jaccard, first one on ties) or a requested frame, one scribble per connected part of the
error region of every object id including the background 0:

1. error region of id k: ``gt == k & pred != k``;
2. morphological opening with a disk of radius ``min(kernel_size * sqrt(area) / 2,
   max_kernel_radius)``; while nothing survives the radius shrinks by 0.9, and once it is <= 1 the
   last (empty) result stands, as in the reference (no opening at all when it starts <= 1);
3. medial axis of the opened region (scikit-image's algorithm, tie-breaks seeded by ``seed``);
4. skeleton pixels become a graph with 8-neighbour edges weighted by their length (1 or sqrt 2);
   each connected component is made a tree by removing the heaviest edge of every cycle (a
   minimum spanning tree, which is what repeated heaviest-edge removal yields), components with
   fewer than ``min_nb_nodes`` pixels are dropped;
5. the longest path (in edges) of each tree is found with two breadth-first searches;
6. the path is resampled as a Bezier curve of ``nb_points`` and normalised by (W, H).

Determinism: the reference leaves some choices to networkx's iteration order and to an unseeded
medial-axis tie-breaker. Here every choice is fixed: the first search starts at the component's
first pixel in raster order, neighbours are visited in raster order, the farthest node is the first
one reached at the maximal depth, and the medial axis uses ``rng=seed``. Scribbles therefore equal
the reference's wherever it has no ties, and differ at most by equivalent choices elsewhere.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import cv2
import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

from ivos_rl.errors import InputValidationError
from ivos_rl.metrics import (
    GroundTruth,
    as_label_stack,
    batched_jaccard,
    check_truth,
    disk_footprint,
    present_object_ids,
)
from ivos_rl.scribbles import bezier_curve
from ivos_rl.utils.logging import get_logger

__all__ = ["ScribbleRobot", "medial_axis", "open_error_mask", "skeleton_paths"]

_log = get_logger(__name__)

try:  # compiled inner loop of scikit-image's medial axis (private, hence guarded)
    from skimage.morphology._skeletonize_various_cy import _skeletonize_loop
except ImportError:  # pragma: no cover - depends on the installed scikit-image
    _skeletonize_loop = None


# ----------------------------------------------------------------------------- morphology


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open bounding box of a 2-D bool mask, None when empty."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return None if w == 0 or h == 0 else (y, y + h, x, x + w)


def _opening_on_crop(crop: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Erosion then dilation (uint8 0/1), pixels with no neighbour under the disk giving 0.

    cv2 and scikit-image's rank filters both ignore pixels outside the image; they differ only
    where *no* footprint pixel lies inside (possible when the disk misses its own centre, for radii
    just above 1), where the rank filter yields 0. The crop carries a margin wide enough that its
    own edges behave like the image's.
    """
    eroded = cv2.erode(crop, kernel)
    if not kernel[kernel.shape[0] // 2, kernel.shape[1] // 2]:
        support = cv2.dilate(np.ones_like(crop), kernel)
        eroded[support == 0] = 0
    return eroded


def open_error_mask(mask: np.ndarray, kernel_size: float, max_kernel_radius: float) -> np.ndarray:
    """Opening of ``mask`` (H, W) with the shrinking disk of the reference robot (bool result).

    Works on the bounding box plus a margin of two kernel sizes, which gives exactly the
    full-frame result (outside the margin the opening is empty).
    """
    mask = np.asarray(mask, dtype=bool)
    area = int(np.count_nonzero(mask))
    radius = min(kernel_size * math.sqrt(area) * 0.5, max_kernel_radius)
    if radius <= 1.0 or area == 0:
        return mask.copy()
    box = _bbox(mask)
    assert box is not None
    y0, y1, x0, x1 = box
    rows, cols = mask.shape
    opened = np.zeros_like(mask)
    while radius > 1.0:
        kernel = disk_footprint(radius)
        margin = 2 * max(kernel.shape) + 1
        cy0, cy1 = max(y0 - margin, 0), min(y1 + margin, rows)
        cx0, cx1 = max(x0 - margin, 0), min(x1 + margin, cols)
        crop = np.ascontiguousarray(mask[cy0:cy1, cx0:cx1], dtype=np.uint8)
        eroded = _opening_on_crop(crop, kernel)
        if eroded.any():
            dilated = cv2.dilate(eroded, kernel)
            opened[cy0:cy1, cx0:cx1] = dilated.astype(bool)
            return opened
        radius *= 0.9  # the opening is empty iff the erosion is: shrink and retry
    return opened


@functools.lru_cache(maxsize=1)
def _medial_axis_tables() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables over the 512 3x3 neighbourhoods (bit b = pixel (b // 3, b % 3)).

    ``keep``: the centre is foreground and removing it changes the number of 8-connected
    components, or the neighbourhood has fewer than 3 foreground pixels. ``corner``: number of
    background pixels (cornerness, processed last). Built once; scikit-image rebuilds them on every
    call, which costs ~30 ms.
    """
    codes = np.arange(512)
    patterns = ((codes[:, None] >> np.arange(9)) & 1).astype(bool).reshape(512, 3, 3)
    eight = np.ones((3, 3), bool)
    centre = patterns[:, 1, 1]
    without = patterns.copy()
    without[:, 1, 1] = False
    n_with = np.array([ndimage.label(p, eight)[1] for p in patterns])
    n_without = np.array([ndimage.label(p, eight)[1] for p in without])
    counts = patterns.sum(axis=(1, 2))
    keep = centre & ((n_with != n_without) | (counts < 3))
    return np.ascontiguousarray(keep, dtype=np.uint8), 9 - counts


def _neighbourhood_codes(image: np.ndarray) -> np.ndarray:
    """3x3 neighbourhood code of every pixel (zero outside the image)."""
    padded = np.pad(image.astype(np.int32), 1)
    rows, cols = image.shape
    code = np.zeros((rows, cols), np.int32)
    for bit in range(9):
        dy, dx = divmod(bit, 3)
        code += padded[dy : dy + rows, dx : dx + cols] << bit
    return code


def medial_axis(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """Medial axis of a 2-D mask, equal to ``skimage.morphology.medial_axis(mask, rng=seed)``.

    Pixels are thinned in order of increasing distance to the background, then cornerness, then a
    seeded random tie-breaker; a pixel survives when removing it would change the local
    connectivity. The lookup tables are cached and the sequential thinning loop is scikit-image's
    compiled one.
    """
    image = np.asarray(mask, dtype=bool)
    if image.ndim != 2:
        raise InputValidationError(f"mask must be 2-D, got shape {image.shape}")
    if _skeletonize_loop is None:  # pragma: no cover - only with an incompatible scikit-image
        from skimage.morphology import medial_axis as skimage_medial_axis

        _log.warning("scikit-image's compiled thinning loop is unavailable; using its slower medial_axis")
        return skimage_medial_axis(image, rng=seed)
    n = int(np.count_nonzero(image))
    if n == 0:
        return np.zeros_like(image)
    keep, corner = _medial_axis_tables()
    distance = ndimage.distance_transform_edt(image)
    corner_score = corner[_neighbourhood_codes(image)]
    ii, jj = np.nonzero(image)
    tiebreaker = np.random.default_rng(seed).permutation(np.arange(n))
    order = np.lexsort((tiebreaker, corner_score[image], distance[image]))
    result = np.ascontiguousarray(image, dtype=np.uint8)
    _skeletonize_loop(
        result,
        np.ascontiguousarray(ii, dtype=np.intp),
        np.ascontiguousarray(jj, dtype=np.intp),
        np.ascontiguousarray(order, dtype=np.int32),
        keep,
    )
    return result.astype(bool)


# ----------------------------------------------------------------------------- graph


def _skeleton_graph(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]) -> csr_matrix:
    """Symmetric sparse graph of skeleton pixels (raster order) with 8-neighbour edge lengths."""
    n = ys.size
    index = np.full(shape, -1, dtype=np.int64)
    index[ys, xs] = np.arange(n)
    rows, cols = shape
    src_parts, dst_parts, w_parts = [], [], []
    for dy, dx, weight in ((0, 1, 1.0), (1, -1, math.sqrt(2)), (1, 0, 1.0), (1, 1, math.sqrt(2))):
        a = index[0 : rows - dy, max(-dx, 0) : cols - max(dx, 0)]
        b = index[dy:rows, max(dx, 0) : cols - max(-dx, 0)]
        ok = (a >= 0) & (b >= 0)
        src_parts.append(a[ok])
        dst_parts.append(b[ok])
        w_parts.append(np.full(int(ok.sum()), weight))
    src, dst, w = np.concatenate(src_parts), np.concatenate(dst_parts), np.concatenate(w_parts)
    graph = coo_matrix((np.r_[w, w], (np.r_[src, dst], np.r_[dst, src])), shape=(n, n)).tocsr()
    graph.sort_indices()
    return graph


def _farthest(tree: csr_matrix, start: int) -> tuple[int, np.ndarray]:
    """Node farthest (in edges) from ``start``, the first reached at that depth, and BFS parents."""
    order, parents = breadth_first_order(tree, start, directed=False, return_predecessors=True)
    depth = np.zeros(tree.shape[0], dtype=np.int64)
    for node in order[1:]:  # BFS order: a parent always comes before its children
        depth[node] = depth[parents[node]] + 1
    return int(order[int(np.argmax(depth[order]))]), parents


def skeleton_paths(skeleton: np.ndarray, min_nb_nodes: int = 4) -> list[np.ndarray]:
    """Longest path of each (cycle-free) component of the skeleton, as (N, 2) int (x, y) arrays.

    Components are ordered by their first pixel in raster order; each path starts at the end found
    by the first breadth-first search, like the reference.
    """
    skel = np.asarray(skeleton, dtype=bool)
    box = _bbox(np.ascontiguousarray(skel))
    if box is None:
        return []
    y0, y1, x0, x1 = box  # work on the bounding box; raster order is the same as in the frame
    ys, xs = np.nonzero(skel[y0:y1, x0:x1])
    graph = _skeleton_graph(ys, xs, (y1 - y0, x1 - x0))
    ys, xs = ys + y0, xs + x0
    n_comp, labels = connected_components(graph, directed=False)
    mst = minimum_spanning_tree(graph)
    tree = (mst + mst.T).tocsr()
    tree.sort_indices()
    sizes = np.bincount(labels, minlength=n_comp)
    firsts = np.full(n_comp, ys.size, dtype=np.int64)
    np.minimum.at(firsts, labels, np.arange(ys.size))
    paths = []
    for comp in np.argsort(firsts, kind="stable"):
        if sizes[comp] < min_nb_nodes:
            continue
        u, _ = _farthest(tree, int(firsts[comp]))
        w, parents = _farthest(tree, u)
        path = [w]
        while path[-1] != u:
            path.append(int(parents[path[-1]]))
        path.reverse()
        idx = np.asarray(path, dtype=np.int64)
        paths.append(np.stack([xs[idx], ys[idx]], axis=1))
    return paths


# ----------------------------------------------------------------------------- robot


def _zero_clock() -> float:
    """Default stroke timestamp: constant, so that the robot's output is reproducible."""
    return 0.0


class ScribbleRobot:
    """Simulated user drawing scribbles on the errors of a prediction (see module docstring).

    ``seed`` fixes the medial-axis tie-breaks (and is reserved for noisy annotators). ``clock``
    stamps the strokes' ``start_time``/``end_time`` at the start and end of each object's work;
    the default ``None`` writes 0.0 so that the output (and any dataset generated from it) is
    byte-identical across runs; pass ``time.time`` for davisinteractive's wall-clock stamps.
    ``interact`` also takes, beyond the :class:`~ivos_rl.interactions.Robot` protocol
    (``engine_keywords``: the round engine passes them, :func:`ivos_rl.rounds.robot_options`),
    the ground truth's :class:`~ivos_rl.metrics.GroundTruth` as ``truth`` (not re-derived every
    answer) and ``path_arrays`` (paths as read-only arrays, not lists of points).
    """

    engine_keywords: ClassVar[frozenset[str]] = frozenset({"truth", "path_arrays"})

    def __init__(
        self,
        kernel_size: float = 0.2,
        max_kernel_radius: float = 16,
        min_nb_nodes: int = 4,
        nb_points: int = 1000,
        *,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(kernel_size, (int, float)) or not 0 <= kernel_size < 1:
            raise InputValidationError(f"kernel_size must be in [0, 1), got {kernel_size!r}")
        if not isinstance(max_kernel_radius, (int, float)) or not max_kernel_radius > 0:
            raise InputValidationError(f"max_kernel_radius must be > 0, got {max_kernel_radius!r}")
        for name, value, low in (("min_nb_nodes", min_nb_nodes, 0), ("nb_points", nb_points, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise InputValidationError(f"{name} must be an integer >= {low}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputValidationError(f"seed must be a non-negative integer, got {seed!r}")
        self.kernel_size = float(kernel_size)
        self.max_kernel_radius = float(max_kernel_radius)
        self.min_nb_nodes = int(min_nb_nodes)
        self.nb_points = int(nb_points)
        self.seed = int(seed)
        self.clock: Callable[[], float] = clock if clock is not None else _zero_clock

    def skeleton(self, error_mask: np.ndarray) -> np.ndarray:
        """Opened error region reduced to its medial axis (same shape, bool)."""
        opened = open_error_mask(error_mask, self.kernel_size, self.max_kernel_radius)
        box = _bbox(opened)
        skel = np.zeros_like(opened)
        if box is None:
            return skel
        # the medial axis of the box plus one empty pixel all round equals the full-frame one
        y0, y1, x0, x1 = box
        crop = np.pad(opened[y0:y1, x0:x1], 1)
        skel[y0:y1, x0:x1] = medial_axis(crop, seed=self.seed)[1:-1, 1:-1]
        return skel

    def _validate(
        self, pred_masks: Any, gt_masks: Any, nb_objects: int | None, frame: int | None,
        truth: GroundTruth | None,
    ) -> tuple[np.ndarray, np.ndarray, int, int | None]:
        pred = as_label_stack(pred_masks, "pred_masks")
        gt = as_label_stack(gt_masks, "gt_masks")
        if pred.shape != gt.shape:
            raise InputValidationError(f"pred_masks shape {pred.shape} != gt_masks shape {gt.shape}")
        if gt.shape[0] == 0 or gt.shape[1] == 0 or gt.shape[2] == 0:
            raise InputValidationError(f"gt_masks must be non-empty (T, H, W), got shape {gt.shape}")
        if check_truth(truth) is not None:
            truth.check(gt, name="truth (of gt_masks)")
        present = present_object_ids(gt) if truth is None else truth.ids
        if nb_objects is None:
            if present.size == 0:
                raise InputValidationError("gt_masks is empty (no object id other than 0 and 255)")
            if present.tolist() != list(range(1, present.size + 1)):
                raise InputValidationError(
                    f"gt_masks object ids must be 1..K to infer nb_objects, got {present.tolist()}"
                )
            nb_objects = int(present.size)
        elif isinstance(nb_objects, bool) or not isinstance(nb_objects, (int, np.integer)) or nb_objects < 1:
            raise InputValidationError(f"nb_objects must be a positive integer or None, got {nb_objects!r}")
        elif present.size and present.max() > nb_objects:
            raise InputValidationError(f"gt_masks holds object id {present.max()} > nb_objects={nb_objects}")
        low, high = int(pred.min()), int(pred.max())
        if low < 0 or high > nb_objects:
            bad = low if low < 0 else high
            raise InputValidationError(f"pred_masks holds id {bad} outside 0..{nb_objects}")
        if frame is not None:
            if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
                raise InputValidationError(f"frame must be an integer or None, got {frame!r}")
            if not 0 <= frame < gt.shape[0]:
                raise InputValidationError(f"frame {frame} out of range for {gt.shape[0]} frames")
            frame = int(frame)
        return pred, gt, int(nb_objects), frame

    def interact(
        self,
        sequence: str,
        pred_masks: np.ndarray,
        gt_masks: np.ndarray,
        nb_objects: int | None = None,
        frame: int | None = None,
        *,
        truth: GroundTruth | None = None,
        path_arrays: bool = False,
    ) -> dict[str, Any]:
        """Scribbles correcting ``pred_masks`` (T, H, W) against ``gt_masks`` on one frame.

        ``frame`` defaults to the worst frame by mean Jaccard. Returns a DAVIS scribble dict with
        strokes only on that frame (none when there is nothing left to correct). ``truth``:
        ``gt_masks``' :class:`~ivos_rl.metrics.GroundTruth` (the same answer, less work).
        ``path_arrays``: each path as a read-only (N, 2) float64 array instead of a list of
        ``[x, y]`` (the same numbers). A session keeps every stroke, and its thousands of point
        lists cost the garbage collector more than the robot's own work; JSON needs the lists.
        """
        if not isinstance(sequence, str):
            raise InputValidationError(f"sequence must be a string, got {sequence!r}")
        pred, gt, nb_objects, frame = self._validate(pred_masks, gt_masks, nb_objects, frame, truth)
        n_frames, height, width = gt.shape
        if frame is None:
            frame = int(np.argmin(batched_jaccard(gt, pred, nb_objects=nb_objects, truth=truth)))
        pred_f, gt_f = pred[frame], gt[frame]
        size = np.asarray([width, height], dtype=np.float64)
        scribbles: list[list[dict[str, Any]]] = [[] for _ in range(n_frames)]
        for obj in range(nb_objects + 1):
            start = self.clock()
            error = (gt_f == obj) & (pred_f != obj)
            if not error.any():
                continue
            paths = skeleton_paths(self.skeleton(error), self.min_nb_nodes)
            curves = [bezier_curve(p.astype(np.float64), self.nb_points) / size for p in paths]
            end = self.clock()
            for curve in curves:
                curve.flags.writeable = False  # as an array path: shared by the answer's copies
                scribbles[frame].append({
                    "path": curve if path_arrays else curve.tolist(),
                    "object_id": obj,
                    "start_time": start,
                    "end_time": end,
                })
        return {"scribbles": scribbles, "sequence": sequence}
