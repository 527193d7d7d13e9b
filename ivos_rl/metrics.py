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

Speed (>10x the reference at 480p) comes from working, per frame and object, only inside the
bounding box of the object in either mask, which holds every boundary pixel, and from matching
boundaries with a cheap square dilation first and the exact disk only for the few pixels it does
not settle. Results are identical to the reference's full-frame processing (checked to 0 difference
in tests/test_parity_davisinteractive.py and benchmarks/bench_metrics.py).

OpenCV is imported by the functions that compute, not at module load: code that only needs the
metric definitions (reports, summaries) does not pay for it.
"""

from __future__ import annotations

import math

import numpy as np

from ivos_rl.errors import InputValidationError

__all__ = [
    "METRIC_KEYS",
    "as_label_stack",
    "batched_f_measure",
    "batched_j_and_f",
    "batched_jaccard",
    "batched_jaccard_and_f_measure",
    "boundary_radius",
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
    if y_true.dtype == np.uint8 and y_true.size:
        import cv2

        flat = np.ascontiguousarray(y_true.reshape(-1, y_true.shape[-1]))
        hist = cv2.calcHist([flat], [0], None, [256], [0, 256]).ravel()
        ids = np.flatnonzero(hist > 0)
    else:
        ids = np.unique(y_true)
    return ids[(ids > 0) & (ids < VOID_ID)].astype(np.int64)


def object_ids(y_true: np.ndarray, nb_objects: int | None = None) -> np.ndarray:
    """Object ids the metrics iterate over: ``1..nb_objects`` or those present in ``y_true``."""
    if nb_objects is None:
        ids = present_object_ids(np.asarray(y_true))
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


def _bbox_slices(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box of a 2-D bool mask grown by one pixel on each side (clipped), None if empty.

    One pixel of margin is enough for seg2bmap: the extra rows/columns are empty, so the boundary
    computed on the crop equals the full-frame boundary restricted to it, and it is zero outside.
    """
    import cv2

    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0 or h == 0:
        return None
    rows, cols = mask.shape
    return slice(max(y - 1, 0), min(y + h + 1, rows)), slice(max(x - 1, 0), min(x + w + 1, cols))


class _Matcher:
    """Counts boundary pixels lying within the disk of another boundary (cv2.dilate semantics).

    A dilation with the full disk dominates the cost, so the test runs in two exact stages: a
    cheap separable dilation with the largest square inscribed in the disk settles most pixels,
    and the few pixels it does not reach are checked against the remaining disk offsets only.
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
        # dst(y, x) = max src(y + j - ay, x + i - ax) over kernel[j, i]: offsets outside the square
        ring = kernel.astype(bool)
        if half >= 0:
            ring[ay - half : ay + half + 1, ax - half : ax + half + 1] = False
        jj, ii = np.nonzero(ring)
        self.ring_dy, self.ring_dx = jj - ay, ii - ax
        self.pad = (ay, kh - 1 - ay, ax, kw - 1 - ax)  # top, bottom, left, right: room for every offset

    def count(self, src: np.ndarray, dst_x: np.ndarray, dst_y: np.ndarray) -> int:
        """Number of points (``dst_x``, ``dst_y``) with a ``src`` pixel inside the disk around them."""
        import cv2

        if self.square is None:
            dil = cv2.dilate(src.view(np.uint8), self.kernel).view(bool)
            return int(np.count_nonzero(dil[dst_y, dst_x]))
        near = cv2.dilate(src.view(np.uint8), self.square).view(bool)[dst_y, dst_x]
        hits = int(np.count_nonzero(near))
        if hits == dst_x.size or self.ring_dy.size == 0:
            return hits
        far = ~near
        top, bottom, left, right = self.pad
        rows, cols = src.shape
        padded = np.zeros((rows + top + bottom, cols + left + right), dtype=bool)
        padded[top : top + rows, left : left + cols] = src
        width = padded.shape[1]
        base = (dst_y[far] + top) * width + (dst_x[far] + left)
        offsets = self.ring_dy * width + self.ring_dx
        found = padded.ravel()[base[:, None] + offsets[None, :]].any(axis=1)
        return hits + int(np.count_nonzero(found))


def _points(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) coordinates of the nonzero pixels of a 2-D bool mask (cv2 is ~10x faster than numpy)."""
    import cv2

    pts = cv2.findNonZero(mask.view(np.uint8))
    if pts is None:
        empty = np.zeros(0, np.intp)
        return empty, empty
    pts = pts.reshape(-1, 2).astype(np.intp)
    return pts[:, 0], pts[:, 1]


def _f_from_boundaries(gt_b: np.ndarray, pr_b: np.ndarray, matcher: _Matcher) -> float:
    """F-measure of two boundary maps with davisinteractive's precision/recall edge cases."""
    gx, gy = _points(gt_b)
    px, py = _points(pr_b)
    n_fg, n_gt = px.size, gx.size
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = matcher.count(gt_b, px, py) / float(n_fg)
        recall = matcher.count(pr_b, gx, gy) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _compute(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    nb_objects: int | None,
    bound_th: float,
    want_j: bool,
    want_f: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame, per-object J and F, shape (T, K) each (a zero array for the one not wanted)."""
    ids = object_ids(y_true, nb_objects)
    n_frames = y_true.shape[0]
    jac = np.ones((n_frames, ids.size), dtype=np.float64)
    fme = np.ones((n_frames, ids.size), dtype=np.float64)
    if not want_j:
        jac[:] = 0.0
    if not want_f:
        fme[:] = 0.0
    if n_frames == 0:
        return jac, fme
    matcher = _Matcher(disk_footprint(boundary_radius(y_true.shape[1:], bound_th))) if want_f else None
    for i, obj in enumerate(ids.tolist()):
        for t in range(n_frames):
            gt, pr = y_true[t] == obj, y_pred[t] == obj
            box = _bbox_slices(gt | pr)
            if box is None:  # empty union: J = 1, both boundaries empty: F = 1
                continue
            gt_c, pr_c = gt[box], pr[box]
            if want_j:
                inter = np.count_nonzero(gt_c & pr_c)
                union = np.count_nonzero(gt_c) + np.count_nonzero(pr_c) - inter
                jac[t, i] = inter / union
            if want_f:
                assert matcher is not None
                fme[t, i] = _f_from_boundaries(seg2bmap(gt_c), seg2bmap(pr_c), matcher)
    return jac, fme


def batched_jaccard(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    average_over_objects: bool = True,
    nb_objects: int | None = None,
) -> np.ndarray:
    """Jaccard index per frame (T,) averaged over objects, or per object (T, K).

    ``y_true``/``y_pred`` are (T, H, W) integer label maps; see the module docstring for the id
    rules. Raises :class:`InputValidationError` on bad shapes/dtypes or when there is no object.
    """
    t, p = _validate_pair(y_true, y_pred)
    jac, _ = _compute(t, p, nb_objects, 0.008, want_j=True, want_f=False)
    return jac.mean(axis=1) if average_over_objects else jac


def batched_f_measure(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    average_over_objects: bool = True,
    nb_objects: int | None = None,
    bound_th: float = 0.008,
) -> np.ndarray:
    """Boundary F-measure per frame (T,) averaged over objects, or per object (T, K)."""
    t, p = _validate_pair(y_true, y_pred)
    _, fme = _compute(t, p, nb_objects, bound_th, want_j=False, want_f=True)
    return fme.mean(axis=1) if average_over_objects else fme


def batched_jaccard_and_f_measure(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    nb_objects: int | None = None,
    bound_th: float = 0.008,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-object J and F, each (T, K), in one pass (the session needs both every round)."""
    t, p = _validate_pair(y_true, y_pred)
    return _compute(t, p, nb_objects, bound_th, want_j=True, want_f=True)


def batched_j_and_f(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    nb_objects: int | None = None,
    average_over_objects: bool = True,
    bound_th: float = 0.008,
) -> np.ndarray:
    """J&F = 0.5 J + 0.5 F per object, then averaged over objects as the reference service does."""
    jac, fme = batched_jaccard_and_f_measure(y_true, y_pred, nb_objects=nb_objects, bound_th=bound_th)
    jf = 0.5 * jac + 0.5 * fme
    return jf.mean(axis=1) if average_over_objects else jf
