"""Region (Jaccard J) and boundary (F-measure) metrics of the DAVIS-Interactive protocol.

The numbers must equal davisinteractive 1.0.4's ``batched_jaccard`` / ``batched_f_measure`` (the
metrics every IVOS paper reports), so the semantics are copied rule for rule:

* object ids are ``1..nb_objects`` when ``nb_objects`` is given, otherwise the ids present in
  ``y_true`` other than 0 and 255 (255 is void: it only stops being an object id, its pixels
  still count as "not the object" in both masks);
* J = |A ∩ B| / |A ∪ B|, and 1 when the union is empty;
* F compares 1-pixel boundary maps built with the seg2bmap rule (a pixel is a boundary pixel when
  it differs from its east, south or south-east neighbour; the last row only looks east, the last
  column only south, the bottom-right pixel is never a boundary) and matched within a disk of
  radius ``ceil(bound_th * image diagonal)`` (``bound_th`` itself when it is >= 1);
  precision/recall edge cases: no predicted boundary -> P=1, R=0; no true boundary -> P=0, R=1;
  neither -> F=1.

Speed: each frame is read once. With one object that read is the comparison itself (in the
input's own dtype); with several, a wide (e.g. int64) frame whose labels all fit in 0..255 is
first turned into uint8 (a frame with another label is compared in its own dtype: exact, like the
reference). Per object, one comparison pass gives a uint8 mask; everything after it is cv2 on
uint8 crops: boundaries on each mask's bounding box (a 2x2 morphological gradient is exactly the
seg2bmap rule), and matching only within the true box grown by the tolerance, in three exact
stages (the square inscribed in the disk settles most pixels, the bounding square rules out most
others, the ring offsets decide the rest), so a noisy prediction's scattered boundary costs one
count. ``threads`` > 1 spreads frames over a thread pool (OpenCV and numpy release the GIL); each
frame fills its own cells, so the figures do not depend on it. The ground truth's side (present
ids, each object's box, mask, boundary and its dilations for the matching) depends on the ground
truth alone: a :class:`GroundTruth` built once per sample and passed as ``truth=`` saves it in
every later round (the round engine does; without it the same numbers are derived per call).
Results are identical to the
reference's full-frame processing (0 difference in tests/test_parity_davisinteractive.py and in
benchmarks/bench_metrics.py on real 480p masks; speed-ups and their conditions in
benchmarks/RESULTS.md: over x20 on uint8, x4-8 on int64 label maps in CPU time, one thread).

OpenCV is imported by the functions that compute, not at module load: code that only needs the
metric definitions (reports, summaries) does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ivos_rl.errors import InputValidationError

__all__ = [
    "METRIC_KEYS",
    "GroundTruth",
    "as_label_stack",
    "batched_f_measure",
    "batched_j_and_f",
    "batched_jaccard",
    "batched_jaccard_and_f_measure",
    "boundary_radius",
    "check_truth",
    "check_window",
    "disk_footprint",
    "object_ids",
    "present_object_ids",
    "seg2bmap",
]

VOID_ID = 255

METRIC_KEYS: tuple[str, ...] = ("J", "F", "J_AND_F")
"""The per-frame measures of the protocol: region J, boundary F and their mean J&F (the one list)."""


def disk_footprint(radius: float) -> np.ndarray:
    """Disk structuring element exactly as ``skimage.morphology.disk(radius)`` builds it.

    Offsets are ``arange(-radius, radius + 1)`` and a pixel is kept when ``x² + y² <= radius²``.
    For non-integer radii this yields the same (possibly even-sized) grid as scikit-image, which
    davisinteractive relies on; owning the construction keeps results stable across versions.
    """
    if not math.isfinite(radius) or radius < 0:
        raise InputValidationError(f"disk radius must be a finite number >= 0, got {radius!r}")
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return np.ascontiguousarray((xx**2 + yy**2) <= radius**2, dtype=np.uint8)


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> float:
    """Matching tolerance in pixels: ``bound_th`` if >= 1, else ``ceil(bound_th * diagonal)``."""
    if isinstance(bound_th, bool) or not isinstance(bound_th, (int, float, np.integer, np.floating)):
        raise InputValidationError(f"bound_th must be a number, got {bound_th!r}")
    if not math.isfinite(float(bound_th)) or bound_th < 0:
        raise InputValidationError(f"bound_th must be a finite number >= 0, got {bound_th!r}")
    if bound_th >= 1:
        return float(bound_th)
    return float(np.ceil(bound_th * np.linalg.norm(shape)))


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """1-pixel boundary map of a binary mask (H, W) or stack (..., H, W), seg2bmap rule.

    Boundary pixels sit half a pixel towards the origin of the true contour: a pixel is marked
    when it differs from its east, south or south-east neighbour. On the last row only the east
    neighbour is compared, on the last column only the south one, the corner is never marked.
    """
    seg = np.asarray(seg, dtype=bool)
    if seg.ndim < 2:
        raise InputValidationError(f"seg must have at least 2 dimensions, got shape {seg.shape}")
    b = np.zeros_like(seg)
    top_left = seg[..., :-1, :-1]
    b[..., :-1, :-1] = (
        (top_left ^ seg[..., :-1, 1:]) | (top_left ^ seg[..., 1:, :-1]) | (top_left ^ seg[..., 1:, 1:])
    )
    b[..., -1, :-1] = seg[..., -1, :-1] ^ seg[..., -1, 1:]
    b[..., :-1, -1] = seg[..., :-1, -1] ^ seg[..., 1:, -1]
    return b


def as_label_stack(arr: object, name: str) -> np.ndarray:
    """Validate a (T, H, W) label array named ``name`` in errors.

    Integer and bool arrays are returned as is (no copy); float arrays must hold finite integral
    values and are converted to int64. Anything else raises :class:`InputValidationError`.
    """
    a = np.asarray(arr)
    if a.ndim != 3:
        raise InputValidationError(f"{name} must have 3 dimensions (T, H, W), got shape {a.shape}")
    if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
        return a
    if np.issubdtype(a.dtype, np.floating):
        finite = np.isfinite(a)
        if not finite.all():
            bad = a[~finite].flat[0]
            raise InputValidationError(f"{name} contains non-finite values (e.g. {bad})")
        frac = a != np.floor(a)
        if frac.any():
            raise InputValidationError(f"{name} must hold integer labels, found {a[frac].flat[0]}")
        return a.astype(np.int64)
    raise InputValidationError(f"{name} must be an integer label array, got dtype {a.dtype}")


def present_object_ids(y_true: np.ndarray) -> np.ndarray:
    """Sorted ids present in ``y_true`` other than 0 and 255 (a histogram for uint8 is ~10x faster)."""
    import cv2

    if y_true.dtype == np.uint8 and y_true.size:
        flat = np.ascontiguousarray(y_true.reshape(-1, y_true.shape[-1]))
        hist = cv2.calcHist([flat], [0], None, [256], [0, 256]).ravel()
        ids = np.flatnonzero(hist > 0)
    else:
        ids = np.unique(y_true)
    return ids[(ids > 0) & (ids < VOID_ID)].astype(np.int64)


def object_ids(
    y_true: np.ndarray, nb_objects: int | None = None, present: np.ndarray | None = None
) -> np.ndarray:
    """Object ids the metrics iterate over: ``1..nb_objects`` or those present in ``y_true``
    (``present``: those ids when already known, e.g. :attr:`GroundTruth.ids`)."""
    if nb_objects is None:
        ids = present_object_ids(np.asarray(y_true)) if present is None else present
        if ids.size == 0:
            raise InputValidationError(
                "y_true contains no object (ids other than 0 and 255); pass nb_objects explicitly"
            )
        return ids
    if isinstance(nb_objects, bool) or not isinstance(nb_objects, (int, np.integer)):
        raise InputValidationError(f"nb_objects must be a positive integer or None, got {nb_objects!r}")
    if nb_objects < 1:
        raise InputValidationError(f"nb_objects must be >= 1, got {nb_objects}")
    return np.arange(1, int(nb_objects) + 1, dtype=np.int64)


def _validate_pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t = as_label_stack(y_true, "y_true")
    p = as_label_stack(y_pred, "y_pred")
    if t.shape != p.shape:
        raise InputValidationError(f"y_true and y_pred must have the same shape, got {t.shape} != {p.shape}")
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise InputValidationError(f"y_true frames must be non-empty, got shape {t.shape}")
    return t, p


_K2 = np.ones((2, 2), np.uint8)


def _object_mask(frame: np.ndarray, obj: int) -> np.ndarray:
    """uint8 mask (1 inside) of the pixels of a (H, W) label frame equal to ``obj``.

    One comparison pass over the frame in its own dtype (no conversion of int64 inputs).
    """
    if (
        np.issubdtype(frame.dtype, np.integer)
        and not np.iinfo(frame.dtype).min <= obj <= np.iinfo(frame.dtype).max
    ):
        return np.zeros(frame.shape, np.uint8)
    return np.equal(frame, obj).view(np.uint8)


def _box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open bounding box of a uint8 mask, None when empty."""
    import cv2

    x, y, w, h = cv2.boundingRect(mask)
    return None if w == 0 or h == 0 else (y, y + h, x, x + w)


def _grow(box: tuple[int, int, int, int], by: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    y0, y1, x0, x1 = box
    return max(y0 - by, 0), min(y1 + by, shape[0]), max(x0 - by, 0), min(x1 + by, shape[1])


def _boundary(
    mask: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """seg2bmap boundary (uint8, 1 on the boundary) of ``mask`` over its box grown by one pixel.

    A pixel is a boundary pixel when its 2x2 block (itself, east, south, south-east) is not
    uniform, i.e. when the 2x2 dilation and erosion anchored at the pixel differ; cv2 ignores
    pixels outside the image, which gives seg2bmap's last-row / last-column rule. The box is
    grown by one pixel of zeros, so the boundary on the crop equals the full-frame one there and
    it is zero outside.
    """
    import cv2

    crop_box = _grow(box, 1, mask.shape)
    y0, y1, x0, x1 = crop_box
    crop = mask[y0:y1, x0:x1]
    return cv2.morphologyEx(crop, cv2.MORPH_GRADIENT, _K2, anchor=(0, 0)), crop_box


def _paste(
    src: np.ndarray, src_box: tuple[int, int, int, int], region: tuple[int, int, int, int]
) -> np.ndarray:
    """``src`` (covering ``src_box``) restricted to ``region``: a new zero canvas of the region's size."""
    ry0, ry1, rx0, rx1 = region
    sy0, sy1, sx0, sx1 = src_box
    canvas = np.zeros((ry1 - ry0, rx1 - rx0), np.uint8)
    y0, y1, x0, x1 = max(ry0, sy0), min(ry1, sy1), max(rx0, sx0), min(rx1, sx1)
    if y0 < y1 and x0 < x1:
        canvas[y0 - ry0 : y1 - ry0, x0 - rx0 : x1 - rx0] = src[y0 - sy0 : y1 - sy0, x0 - sx0 : x1 - sx0]
    return canvas


class _Matcher:
    """Counts pixels of one map lying within the disk of a pixel of another (cv2.dilate semantics).

    A dilation with the full disk is costly, so the test runs in exact stages: a dilation with the
    largest square inscribed in the disk settles the pixels it reaches; one with the disk's
    bounding square rules out the pixels it does not reach; only the few pixels in between are
    checked against the remaining disk offsets.
    """

    def __init__(self, kernel: np.ndarray) -> None:
        self.kernel = kernel
        kh, kw = kernel.shape
        ay, ax = kh // 2, kw // 2  # cv2's default anchor
        half = -1
        if kh == kw and kh % 2 == 1:
            while (
                half + 1 <= ay and kernel[ay - half - 1 : ay + half + 2, ax - half - 1 : ax + half + 2].all()
            ):
                half += 1
        self.square = np.ones((2 * half + 1, 2 * half + 1), np.uint8) if half >= 0 else None
        self.bounding = np.ones((kh, kw), np.uint8)
        # dst(y, x) = max src(y + j - ay, x + i - ax) over kernel[j, i]: offsets outside the square
        ring = kernel.astype(bool)
        if half >= 0:
            ring[ay - half : ay + half + 1, ax - half : ax + half + 1] = False
        jj, ii = np.nonzero(ring)
        self.ring_dy, self.ring_dx = jj - ay, ii - ax
        self.pad = (ay, kh - 1 - ay, ax, kw - 1 - ax)  # top, bottom, left, right: room for every offset

    def _dilations(self, src: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(near, bounding): ``src`` dilated by the inscribed square (by the whole kernel when there
        is none) and, when ring offsets remain to be checked, by the bounding square (else None)."""
        import cv2

        if self.square is None:
            return cv2.dilate(src, self.kernel), None
        near = cv2.dilate(src, self.square)
        return near, (None if self.ring_dy.size == 0 else cv2.dilate(src, self.bounding))

    def _padded(self, src: np.ndarray) -> np.ndarray:
        """``src`` zero-padded so that every ring offset of every pixel is inside."""
        import cv2

        top, bottom, left, right = self.pad
        return cv2.copyMakeBorder(src, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)  # type: ignore[no-any-return]

    def prepare(self, src: np.ndarray) -> _Dilated:
        """``src`` with the dilations :meth:`count` matches against (a true boundary's are kept by
        :class:`GroundTruth`): by the inscribed square (or the whole kernel), by the bounding
        square, and zero-padded for the ring offsets."""
        near, bounding = self._dilations(src)
        return _Dilated(src, near, bounding, None if bounding is None else self._padded(src))

    def count(self, src: np.ndarray | _Dilated, dst: np.ndarray) -> int:
        """Number of nonzero ``dst`` pixels with a nonzero ``src`` pixel inside the disk around them.

        ``src`` and ``dst`` are uint8 maps (0 or 1) of the same shape; ``src`` may come
        :meth:`prepare` d (its dilations then are not computed again).
        """
        import cv2

        if isinstance(src, _Dilated):
            near, bounding, padded = src.near, src.bounding, src.padded
            src = src.src
        else:
            (near, bounding), padded = self._dilations(src), None  # padded only if a pixel is unsure
        hits = cv2.countNonZero(cv2.bitwise_and(near, dst))
        if bounding is None:
            return hits
        reach = cv2.bitwise_and(bounding, dst)
        unsure = cv2.subtract(reach, near)  # in the bounding square, outside the inscribed one
        pts = cv2.findNonZero(unsure)
        if pts is None:
            return hits
        pts = pts.reshape(-1, 2).astype(np.intp)
        top, _, left, _ = self.pad
        if padded is None:
            padded = self._padded(src)
        width = padded.shape[1]
        base = (pts[:, 1] + top) * width + (pts[:, 0] + left)
        offsets = self.ring_dy * width + self.ring_dx
        found = padded.ravel()[base[:, None] + offsets[None, :]].any(axis=1)
        return hits + int(np.count_nonzero(found))


@dataclass(frozen=True)
class _Dilated:
    """A uint8 map and its dilations for :meth:`_Matcher.count` (:meth:`_Matcher.prepare`)."""

    src: np.ndarray
    near: np.ndarray
    bounding: np.ndarray | None
    padded: np.ndarray | None


@dataclass(frozen=True)
class _TruthPart:
    """One object on one true frame, as J and F use it: its box, its uint8 mask on the box and
    pixel count; for F its seg2bmap boundary's pixel count, the region the matching runs on (the
    boundary's box grown by the matching reach) and the boundary pasted there with its dilations
    (None without F or when the object is absent)."""

    box: tuple[int, int, int, int] | None
    crop: np.ndarray | None
    n_px: int
    n_boundary: int
    region: tuple[int, int, int, int] | None
    boundary: _Dilated | None


def _truth_part(frame: np.ndarray, obj: int, matcher: _Matcher | None, reach: int) -> _TruthPart:
    """The :class:`_TruthPart` of object ``obj`` on a (H, W) label frame (F's side only with a
    ``matcher``)."""
    import cv2

    gt = _object_mask(frame, obj)
    box = _box(gt)
    if box is None:
        return _TruthPart(None, None, 0, 0, None, None)
    crop = gt[box[0] : box[1], box[2] : box[3]].copy()
    n_px = cv2.countNonZero(crop)
    if matcher is None:
        return _TruthPart(box, crop, n_px, 0, None, None)
    boundary, boundary_box = _boundary(gt, box)
    region = _grow(boundary_box, reach, frame.shape)
    dilated = matcher.prepare(_paste(boundary, boundary_box, region))
    return _TruthPart(box, crop, n_px, cv2.countNonZero(boundary), region, dilated)


def _f_measure(
    truth: _TruthPart,
    pr: np.ndarray,
    pr_box: tuple[int, int, int, int] | None,
    matcher: _Matcher,
) -> float:
    """F-measure of a true object (:class:`_TruthPart`) and a uint8 predicted mask with
    davisinteractive's precision/recall edge cases.

    Boundaries are built on each mask's own box. Matches happen only within the matching reach
    (the kernel's half-size) of the true boundary, so the matching runs on the true boundary's
    box grown by it (``truth.region``): the predicted boundary outside it only counts towards the
    number of predicted boundary pixels, which keeps noisy predictions cheap.
    """
    import cv2

    n_gt = truth.n_boundary
    if pr_box is None:
        pr_b, pr_cb, n_fg = None, None, 0
    else:
        pr_b, pr_cb = _boundary(pr, pr_box)
        n_fg = cv2.countNonZero(pr_b)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        assert pr_b is not None and pr_cb is not None
        assert truth.region is not None and truth.boundary is not None
        pr_r = _paste(pr_b, pr_cb, truth.region)
        precision = matcher.count(truth.boundary, pr_r) / float(n_fg)
        recall = matcher.count(pr_r, truth.boundary.src) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _jaccard(truth: _TruthPart, pr: np.ndarray, pr_box: tuple[int, int, int, int] | None) -> float:
    """|A ∩ B| / |A ∪ B| of a true object and a uint8 predicted mask (1 when both are empty);
    counts run on the boxes."""
    import cv2

    gt_box, n_gt = truth.box, truth.n_px
    n_pr = 0 if pr_box is None else cv2.countNonZero(pr[pr_box[0] : pr_box[1], pr_box[2] : pr_box[3]])
    inter = 0
    if gt_box is not None and pr_box is not None:
        assert truth.crop is not None
        y0, y1 = max(gt_box[0], pr_box[0]), min(gt_box[1], pr_box[1])
        x0, x1 = max(gt_box[2], pr_box[2]), min(gt_box[3], pr_box[3])
        if y0 < y1 and x0 < x1:
            gt_part = truth.crop[y0 - gt_box[0] : y1 - gt_box[0], x0 - gt_box[2] : x1 - gt_box[2]]
            inter = cv2.countNonZero(cv2.bitwise_and(gt_part, pr[y0:y1, x0:x1]))
    union = n_gt + n_pr - inter
    return 1.0 if union == 0 else inter / union


def _compact(frame: np.ndarray) -> np.ndarray:
    """A (H, W) label frame as uint8 when all its labels are in 0..255, else unchanged.

    One read of a wide (e.g. int64) frame replaces one read per object: the per-object
    comparisons then run on 1 byte per pixel while the frame is still in cache. A frame holding
    a label outside 0..255 is kept and compared in its own dtype, which stays exact (the
    reference accepts such labels: 257 is not object 1, -1 is not void).
    """
    if frame.dtype.itemsize == 1:
        return frame
    code = frame.dtype.str  # e.g. "<i8": keep the byte order, read negative labels as huge values
    unsigned = frame.view(np.dtype(f"{code[0]}u{code[2:]}"))
    return frame if unsigned.max() > 255 else unsigned.astype(np.uint8)


def _check_threads(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InputValidationError(f"threads must be an integer >= 1, got {threads!r}")
    return int(threads)


def _run_spans(work: Callable[[range], None], n: int, threads: int) -> None:
    """Run ``work`` over short contiguous spans of ``range(n)``, on ``threads`` threads.

    numpy and OpenCV release the GIL in their loops, so frames overlap on several cores. Each
    frame's result depends on that frame only and has its own output cell, so the figures do not
    depend on ``threads`` or on scheduling.
    """
    if threads <= 1 or n <= 1:
        work(range(n))
        return
    from concurrent.futures import ThreadPoolExecutor

    step = max(1, -(-n // (4 * threads)))  # a few spans per thread: uneven frames still balance
    with ThreadPoolExecutor(max_workers=min(threads, n)) as pool:
        futures = [pool.submit(work, range(a, min(a + step, n))) for a in range(0, n, step)]
        for future in futures:
            future.result()


def _compute(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    nb_objects: int | None,
    bound_th: float,
    want: tuple[bool, bool],
    threads: int,
    truth: GroundTruth | None = None,
    frames: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame, per-object J and F, shape (T, K) each (a zero array for the one not wanted);
    with ``frames``, only those frames' rows, in that order. The ground truth's side comes from
    ``truth`` when given, else it is derived here (the same numbers)."""
    want_j, want_f = want
    threads = _check_threads(threads)
    if truth is not None:
        truth.check(y_true, bound_th if want_f else None)
        ids = object_ids(y_true, nb_objects, truth.ids).tolist()
        columns = [truth.column(obj) for obj in ids]
    else:
        ids = object_ids(y_true, nb_objects).tolist()
    rows = np.arange(y_true.shape[0]) if frames is None else frames
    jac = np.full((len(rows), len(ids)), 1.0 if want_j else 0.0)
    fme = np.full((len(rows), len(ids)), 1.0 if want_f else 0.0)
    matcher = _Matcher(disk_footprint(boundary_radius(y_true.shape[1:], bound_th))) if want_f else None
    reach = 0 if matcher is None else max(matcher.pad)

    def work(span: range) -> None:
        for r in span:
            t = int(rows[r])
            pred_t = y_pred[t]
            if truth is not None:
                parts = [truth.parts[t][c] for c in columns]
            else:
                true_t = _compact(y_true[t]) if len(ids) > 1 else y_true[t]
                parts = [_truth_part(true_t, obj, matcher, reach) for obj in ids]
            if len(ids) > 1:  # one object: its comparison is already the single read
                pred_t = _compact(pred_t)
            for i, obj in enumerate(ids):
                pr = _object_mask(pred_t, obj)
                pr_box = _box(pr)
                if parts[i].box is None and pr_box is None:  # empty union: J = 1, no boundaries: F = 1
                    continue
                if want_j:
                    jac[r, i] = _jaccard(parts[i], pr, pr_box)
                if matcher is not None:
                    fme[r, i] = _f_measure(parts[i], pr, pr_box, matcher)

    _run_spans(work, len(rows), threads)
    return jac, fme


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """What J, F and the scribble robot derive from one sample's ground truth, built once.

    A sample is scored every round (its changed frames) against the same ground truth: its present
    ids, and per frame and object the box, the mask on it and the boundary with its dilations for
    the matching, do not change. Build one per sample (:meth:`build`; the round engine gets it with
    the sample) and pass it as ``truth=`` beside that same ground truth: the figures are the ones
    computed without it, bit for bit. It describes the stack as it was when built (an owner that
    edits its ground truth in place builds a new one; only the shape is checked), is immutable
    (its arrays are read-only), and :meth:`window` gives a subsequence's without recomputing
    anything. ``ids`` are the present object ids (not 0 or 255), ``objects`` the ids its parts
    cover (``1..nb_objects``, or the present ids), ``bound_th`` the F tolerance of its dilations.
    """

    shape: tuple[int, int, int]
    ids: np.ndarray
    objects: tuple[int, ...]
    bound_th: float
    frame_ids: tuple[np.ndarray, ...]
    parts: tuple[tuple[_TruthPart, ...], ...]

    @classmethod
    def build(cls, y_true: object, nb_objects: int | None = None, bound_th: float = 0.008) -> GroundTruth:
        """The ground-truth side of ``y_true`` (T, H, W) for objects ``1..nb_objects`` (default:
        the present ids) and F tolerance ``bound_th`` (typed errors as the metrics give them)."""
        t = as_label_stack(y_true, "y_true")
        if t.shape[1] == 0 or t.shape[2] == 0:
            raise InputValidationError(f"y_true frames must be non-empty, got shape {t.shape}")
        frame_ids = tuple(_read_only(present_object_ids(f[None])) for f in t)
        present = np.unique(np.concatenate(frame_ids)) if frame_ids else np.zeros(0, np.int64)
        ids = _read_only(present.astype(np.int64))
        objects = tuple(int(i) for i in object_ids(t, nb_objects, ids))
        matcher = _Matcher(disk_footprint(boundary_radius(t.shape[1:], bound_th)))
        reach = max(matcher.pad)
        parts = []
        for frame in t:
            if len(objects) > 1:
                frame = _compact(frame)
            parts.append(tuple(_frozen_part(_truth_part(frame, obj, matcher, reach)) for obj in objects))
        shape = (int(t.shape[0]), int(t.shape[1]), int(t.shape[2]))
        return cls(shape, ids, objects, float(bound_th), frame_ids, tuple(parts))

    @property
    def n_frames(self) -> int:
        return self.shape[0]

    def window(self, start: int, length: int) -> GroundTruth:
        """The ground truth of frames ``[start, start + length)`` (a training subsequence)."""
        check_window(start, length, self.n_frames, "the ground truth")
        frame_ids = self.frame_ids[start : start + length]
        ids = _read_only(np.unique(np.concatenate(frame_ids)).astype(np.int64))
        shape = (length, self.shape[1], self.shape[2])
        parts = self.parts[start : start + length]
        return GroundTruth(shape, ids, self.objects, self.bound_th, frame_ids, parts)

    def check(self, y_true: np.ndarray, bound_th: float | None = None, name: str = "truth") -> None:
        """:class:`InputValidationError` unless this object can stand for ``y_true`` (the same
        shape) and, when F is wanted, was built for ``bound_th``."""
        shape = tuple(np.shape(y_true))
        if shape != self.shape:
            raise InputValidationError(f"{name} was built for ground truth shaped {self.shape}, got {shape}")
        if bound_th is not None:
            boundary_radius(self.shape[1:], bound_th)  # the typed error for a non-number / negative value
            if float(bound_th) != self.bound_th:
                raise InputValidationError(f"{name} was built for bound_th={self.bound_th}, got {bound_th}")

    def column(self, obj: int) -> int:
        """Position of object ``obj`` among :attr:`objects` (typed error when not covered)."""
        if obj not in self.objects:
            raise InputValidationError(
                f"the ground truth was built for objects {list(self.objects)}, not object {obj}"
            )
        return self.objects.index(obj)


def check_window(start: int, length: int, n_frames: int, of: str) -> None:
    """InputValidationError unless frames ``[start, start + length)`` lie inside ``n_frames`` frames
    (``of``: whose frames, for the message)."""
    if length < 1 or start < 0 or start + length > n_frames:
        raise InputValidationError(
            f"window [{start}, {start + length}) outside the {n_frames} frames of {of}"
        )


def check_truth(truth: object) -> GroundTruth | None:
    """``truth`` if it is a :class:`GroundTruth` or None, else InputValidationError."""
    if truth is not None and not isinstance(truth, GroundTruth):
        raise InputValidationError(f"truth must be a GroundTruth or None, got {type(truth).__name__}")
    return truth


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _frozen_part(part: _TruthPart) -> _TruthPart:
    """``part`` with every array read-only (a :class:`GroundTruth` is shared by every round)."""
    for a in (part.crop, *(() if part.boundary is None else vars(part.boundary).values())):
        if a is not None:
            a.flags.writeable = False
    return part


def _check_frames(frames: Sequence[int] | np.ndarray | None, n_frames: int) -> np.ndarray | None:
    """``frames`` as int64 indices in [0, n_frames) (typed error otherwise), or None."""
    if frames is None:
        return None
    idx = np.asarray(frames)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise InputValidationError(f"frames must be a 1-D sequence of frame indices, got {frames!r}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_frames):
        raise InputValidationError(f"frames must lie in [0, {n_frames}), got {idx.tolist()}")
    return idx


def batched_jaccard(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    average_over_objects: bool = True,
    nb_objects: int | None = None,
    threads: int = 1,
    truth: GroundTruth | None = None,
) -> np.ndarray:
    """Jaccard index per frame (T,) averaged over objects, or per object (T, K).

    ``y_true``/``y_pred`` are (T, H, W) integer label maps; see the module docstring for the id
    rules. ``threads`` > 1 spreads frames over a thread pool (same figures for any value);
    ``truth``: ``y_true``'s :class:`GroundTruth` (same figures, less work).
    Raises :class:`InputValidationError` on bad shapes/dtypes or when there is no object.
    """
    t, p = _validate_pair(y_true, y_pred)
    jac, _ = _compute(t, p, nb_objects, 0.008, (True, False), threads, check_truth(truth))
    return jac.mean(axis=1) if average_over_objects else jac


def batched_f_measure(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    average_over_objects: bool = True,
    nb_objects: int | None = None,
    bound_th: float = 0.008,
    threads: int = 1,
    truth: GroundTruth | None = None,
) -> np.ndarray:
    """Boundary F-measure per frame (T,) averaged over objects, or per object (T, K)."""
    t, p = _validate_pair(y_true, y_pred)
    _, fme = _compute(t, p, nb_objects, bound_th, (False, True), threads, check_truth(truth))
    return fme.mean(axis=1) if average_over_objects else fme


def batched_jaccard_and_f_measure(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    nb_objects: int | None = None,
    bound_th: float = 0.008,
    threads: int = 1,
    truth: GroundTruth | None = None,
    frames: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object J and F, each (T, K), in one pass (the session needs both every round).

    ``frames`` scores only those frames (rows in that order; a round that changed a few frames
    keeps the whole stack and its ``truth``).
    """
    t, p = _validate_pair(y_true, y_pred)
    idx = _check_frames(frames, t.shape[0])
    return _compute(t, p, nb_objects, bound_th, (True, True), threads, check_truth(truth), idx)


def batched_j_and_f(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    nb_objects: int | None = None,
    average_over_objects: bool = True,
    bound_th: float = 0.008,
    threads: int = 1,
    truth: GroundTruth | None = None,
) -> np.ndarray:
    """J&F = 0.5 J + 0.5 F per object, then averaged over objects as the reference service does."""
    jac, fme = batched_jaccard_and_f_measure(
        y_true, y_pred, nb_objects=nb_objects, bound_th=bound_th, threads=threads, truth=truth
    )
    jf = 0.5 * jac + 0.5 * fme
    return jf.mean(axis=1) if average_over_objects else jf
