"""Click interactions: the standard click simulator, a noisy annotator population, and utilities.

Click-based segmenters (SAM-style, RITM-style) are evaluated with a robot that clicks once per
object on the worst frame, at the interior-most point of the largest error region: a positive
click inside a missed part of the object (false negative), or a negative click inside a part
wrongly given to the object (false positive). Real people do not click at the exact interior-most
point (RClicks), so a noisy mode samples the position from a distance-based probability map; a
population of seeded robots then measures how much a result depends on where people click.

Clicks dict (the counterpart of the DAVIS scribble dict, one list per frame)::

    {"clicks": [[{"point": [x, y], "object_id": k, "positive": bool}, ...], ...],
     "sequence": name}

Points are normalised pixel centres, ``x = (col + 0.5) / W`` and ``y = (row + 0.5) / H``, so they
are resolution independent and ``col = floor(x * W)`` recovers the pixel exactly (a plain
``col / W`` would be one float ulp away from the wrong pixel after decoding).

A negative click of object ``k`` is only placed where the ground truth is background: it means
"this is background, not k". Pixels given to ``k`` that belong to another object ``j`` are left
to ``j``'s positive click, so that every click has one unambiguous label (needed when converting
clicks to DAVIS scribbles, which carry an object id but no polarity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from ivos_rl.errors import InputValidationError, ScribbleError
from ivos_rl.interactions import copy_items, fuse_interactions
from ivos_rl.metrics import batched_jaccard

__all__ = [
    "ClickRobot",
    "clicked_frames",
    "clicks2mask",
    "clicks2points",
    "clicks_to_scribbles",
    "fuse_clicks",
    "interaction_to_scribbles",
    "validate_clicks",
]

NoiseMode = Literal["none", "distance"]
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _label_masks(arr: Any, name: str) -> np.ndarray:
    """Return ``arr`` as an int64 (T, H, W) label array or raise naming ``name``.

    Float inputs are accepted only when they hold whole numbers (some segmenters return float
    label maps); NaN, inf and fractional values are refused rather than truncated.
    """
    a = np.asarray(arr)
    if a.ndim != 3:
        raise InputValidationError(f"{name} must be a (T, H, W) label array, got shape {a.shape}")
    if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
        out = a.astype(np.int64)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            n_bad = int(np.count_nonzero(~np.isfinite(a)))
            raise InputValidationError(f"{name} contains {n_bad} NaN/inf values")
        if not np.all(a == np.round(a)):
            bad = a[a != np.round(a)].flat[0].item()
            raise InputValidationError(f"{name} must hold whole object ids, found {bad!r}")
        out = a.astype(np.int64)
    else:
        raise InputValidationError(f"{name} must have an integer dtype, got {a.dtype}")
    if out.size and out.min() < 0:
        raise InputValidationError(f"{name} has negative ids, e.g. {int(out.min())}")
    return out


def _check_resolution(output_resolution: Sequence[int], name: str = "output_resolution") -> tuple[int, int]:
    """Validate an (H, W) pair of positive integers."""
    if len(output_resolution) != 2:
        raise InputValidationError(f"{name} must be (H, W), got {tuple(output_resolution)!r}")
    h, w = (int(v) for v in output_resolution)
    if h < 1 or w < 1 or (h, w) != tuple(output_resolution):
        raise InputValidationError(f"{name} must be two positive integers, got {tuple(output_resolution)!r}")
    return h, w


def validate_clicks(clicks: Any, n_frames: int | None = None) -> None:
    """Raise :class:`ScribbleError` unless ``clicks`` is a well-formed clicks dict.

    Checked: the ``clicks``/``sequence`` keys, one list per frame (``n_frames`` of them when
    given), and per click a finite ``point`` in [0, 1]², an integer ``object_id`` >= 1 and a bool
    ``positive``.
    """
    if not isinstance(clicks, dict) or "clicks" not in clicks or "sequence" not in clicks:
        raise ScribbleError(f"a clicks dict needs 'clicks' and 'sequence' keys, got {type(clicks).__name__}")
    frames = clicks["clicks"]
    if not isinstance(frames, list):
        raise ScribbleError(f"clicks['clicks'] must be a list (one per frame), got {type(frames).__name__}")
    if n_frames is not None and len(frames) != n_frames:
        raise ScribbleError(f"clicks of {clicks['sequence']!r} cover {len(frames)} frames, not {n_frames}")
    for f, frame_clicks in enumerate(frames):
        if not isinstance(frame_clicks, list):
            raise ScribbleError(f"clicks['clicks'][{f}] must be a list, got {type(frame_clicks).__name__}")
        for c in frame_clicks:
            if not isinstance(c, dict) or not {"point", "object_id", "positive"} <= set(c):
                raise ScribbleError(f"click on frame {f} needs point/object_id/positive, got {c!r}")
            p = c["point"]
            if (
                not isinstance(p, (list, tuple))
                or len(p) != 2
                or not all(isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in p)
            ):
                raise ScribbleError(f"click point on frame {f} must be [x, y] in [0, 1], got {p!r}")
            oid = c["object_id"]
            if isinstance(oid, bool) or not isinstance(oid, (int, np.integer)) or oid < 1:
                raise ScribbleError(f"click object_id on frame {f} must be an integer >= 1, got {oid!r}")
            if not isinstance(c["positive"], (bool, np.bool_)):
                raise ScribbleError(f"click 'positive' on frame {f} must be a bool, got {c['positive']!r}")


def _point_to_pixel(point: Sequence[float], h: int, w: int) -> tuple[int, int]:
    """Decode a normalised pixel-centre point to (row, col), clipped into the image."""
    col = min(max(math.floor(float(point[0]) * w), 0), w - 1)
    row = min(max(math.floor(float(point[1]) * h), 0), h - 1)
    return row, col


def _pixel_to_point(row: int, col: int, h: int, w: int) -> list[float]:
    """Encode (row, col) as the normalised centre of that pixel, [x, y]."""
    return [(col + 0.5) / w, (row + 0.5) / h]


def clicks2points(
    clicks: dict[str, Any], output_resolution: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten a clicks dict into arrays, like davisinteractive's ``scribbles2points``.

    Returns ``(points, object_ids, positive)``: points (N, 3) as ``[frame, y, x]`` (float
    normalised coordinates, or integer pixel (row, col) when ``output_resolution`` = (H, W) is
    given), object ids (N,) int64 and polarities (N,) bool.
    """
    validate_clicks(clicks)
    rows: list[list[float]] = []
    ids: list[int] = []
    pos: list[bool] = []
    hw = None if output_resolution is None else _check_resolution(output_resolution)
    for f, frame_clicks in enumerate(clicks["clicks"]):
        for c in frame_clicks:
            if hw is None:
                rows.append([f, float(c["point"][1]), float(c["point"][0])])
            else:
                r, col = _point_to_pixel(c["point"], *hw)
                rows.append([f, r, col])
            ids.append(int(c["object_id"]))
            pos.append(bool(c["positive"]))
    dtype = np.float64 if hw is None else np.int64
    points = np.asarray(rows, dtype=dtype).reshape(-1, 3)
    return points, np.asarray(ids, dtype=np.int64), np.asarray(pos, dtype=bool)


def clicks2mask(
    clicks: dict[str, Any],
    output_resolution: Sequence[int],
    radius_px: float = 0.0,
    default_value: int = -1,
) -> np.ndarray:
    """Rasterise clicks into a (T, H, W) int32 label map, like ``scribbles2mask``.

    A positive click of object ``k`` writes ``k`` and a negative click writes 0 (background; see
    the module docstring) on every pixel within ``radius_px`` of the clicked pixel (just that
    pixel for 0). Other pixels hold ``default_value``. Later clicks overwrite earlier ones.
    """
    h, w = _check_resolution(output_resolution)
    if not math.isfinite(radius_px) or radius_px < 0:
        raise InputValidationError(f"radius_px must be a finite value >= 0, got {radius_px!r}")
    validate_clicks(clicks)
    n_frames = len(clicks["clicks"])
    out = np.full((n_frames, h, w), default_value, dtype=np.int32)
    rr, cc = np.mgrid[0:h, 0:w]
    for f, frame_clicks in enumerate(clicks["clicks"]):
        for c in frame_clicks:
            r, col = _point_to_pixel(c["point"], h, w)
            value = int(c["object_id"]) if c["positive"] else 0
            if radius_px == 0:
                out[f, r, col] = value
            else:
                out[f][(rr - r) ** 2 + (cc - col) ** 2 <= radius_px**2] = value
    return out


def clicked_frames(clicks: dict[str, Any]) -> list[int]:
    """Indices of the frames holding at least one click (``annotated_frames`` for clicks)."""
    validate_clicks(clicks)
    return [f for f, frame_clicks in enumerate(clicks["clicks"]) if frame_clicks]


def fuse_clicks(clicks_a: dict[str, Any], clicks_b: dict[str, Any]) -> dict[str, Any]:
    """Per-frame concatenation of two clicks dicts of the same sequence (inputs are not modified).

    Validates both dicts, then :func:`ivos_rl.interactions.fuse_interactions` (the one fuse).
    """
    validate_clicks(clicks_a)
    validate_clicks(clicks_b)
    if clicks_a["sequence"] != clicks_b["sequence"]:
        raise ScribbleError(
            f"cannot fuse clicks of {clicks_a['sequence']!r} with clicks of {clicks_b['sequence']!r}"
        )
    return fuse_interactions(clicks_a, clicks_b)


def _spiral_offsets(radius_px: float) -> np.ndarray:
    """Integer (dx, dy) offsets along a spiral from the centre out to ``radius_px``.

    Pitch 0.5 px and a step of at most 0.5 px along the rim: joined by Bresenham lines, the
    points cover every pixel within ``radius_px`` of the centre (checked up to 8 px in tests)
    and never one farther than ``radius_px + 0.75``. Consecutive duplicates are dropped.
    """
    if radius_px == 0:
        return np.zeros((1, 2), dtype=np.int64)
    turns = max(1, math.ceil(radius_px / 0.5))
    n_points = max(16, math.ceil(2.0 * math.pi * radius_px * turns / 0.5) + 1)
    theta = np.linspace(0.0, 2.0 * math.pi * turns, n_points)
    rho = radius_px * theta / theta[-1]
    offsets = np.stack([np.rint(rho * np.cos(theta)), np.rint(rho * np.sin(theta))], axis=1).astype(np.int64)
    keep = np.ones(len(offsets), dtype=bool)
    keep[1:] = np.any(offsets[1:] != offsets[:-1], axis=1)
    return offsets[keep]


def clicks_to_scribbles(
    clicks: dict[str, Any], radius_px: float, output_resolution: Sequence[int]
) -> dict[str, Any]:
    """Turn each click into a small disk-shaped DAVIS scribble for scribble-only backends.

    Each click becomes one path spiralling from the clicked pixel out to ``radius_px`` (see
    :func:`_spiral_offsets`), so that ``scribbles2mask`` paints the disk. Positive clicks keep
    their object id, negative clicks become background strokes (object id 0). Path points follow
    the DAVIS decoding rule of ``scribbles2mask`` (``col = int(x * (W - 1))``) and are encoded as
    ``(col + 0.5) / (W - 1)`` so that float rounding cannot move a point to the next pixel.
    """
    h, w = _check_resolution(output_resolution)
    if not isinstance(radius_px, (int, float)) or not math.isfinite(radius_px) or radius_px < 0:
        raise InputValidationError(f"radius_px must be a finite value >= 0, got {radius_px!r}")
    validate_clicks(clicks)
    sx, sy = max(w - 1, 1), max(h - 1, 1)
    offsets = _spiral_offsets(float(radius_px))
    frames: list[list[dict[str, Any]]] = []
    for frame_clicks in clicks["clicks"]:
        strokes: list[dict[str, Any]] = []
        for c in frame_clicks:
            r, col = _point_to_pixel(c["point"], h, w)
            xs = np.clip(col + offsets[:, 0], 0, w - 1)
            ys = np.clip(r + offsets[:, 1], 0, h - 1)
            path = np.stack([np.minimum((xs + 0.5) / sx, 1.0), np.minimum((ys + 0.5) / sy, 1.0)], axis=1)
            strokes.append(
                {
                    "path": path.tolist(),
                    "object_id": int(c["object_id"]) if c["positive"] else 0,
                    "start_time": 0.0,
                    "end_time": 0.0,
                }
            )
        frames.append(strokes)
    return {"scribbles": frames, "sequence": clicks["sequence"]}


def interaction_to_scribbles(
    interaction: dict[str, Any], radius_px: float, output_resolution: Sequence[int]
) -> dict[str, Any]:
    """A pure DAVIS scribble dict for scribble-only backends, whatever the robot produced.

    Clicks become small disk scribbles (:func:`clicks_to_scribbles`) appended to the scribbles of
    the same frame; a scribble-only dict is returned as a copy.
    """
    if "clicks" not in interaction:
        if "scribbles" not in interaction:
            raise ScribbleError(
                f"interaction has neither 'scribbles' nor 'clicks' (keys: {sorted(interaction)})"
            )
        scribbles = [copy_items(frame) for frame in interaction["scribbles"]]
        return {"scribbles": scribbles, "sequence": interaction["sequence"]}
    from_clicks = clicks_to_scribbles(
        {"clicks": interaction["clicks"], "sequence": interaction["sequence"]}, radius_px, output_resolution
    )
    if "scribbles" not in interaction:
        return from_clicks
    return fuse_interactions(
        {"scribbles": interaction["scribbles"], "sequence": interaction["sequence"]}, from_clicks
    )


class ClickRobot:
    """Simulated user that answers a prediction with one click per object on one frame.

    ``noise="none"`` (default) is the standard deterministic simulator: the click goes to the
    pixel farthest from the region boundary (maximum of the Euclidean distance transform, image
    borders counting as boundary; ties go to the smallest (row, col)). ``noise="distance"``
    models a population of imprecise annotators: the position is drawn from
    ``p(pixel) ∝ dist(pixel) ** (1 / temperature)`` over the chosen region, so a low temperature
    concentrates near the interior-most point and a high one approaches uniform. The draw uses a
    generator seeded with ``seed``: one robot gives the same click sequence for the same seed and
    inputs, different seeds give different annotators.
    """

    def __init__(
        self,
        noise: NoiseMode = "none",
        temperature: float = 1.0,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        if noise not in ("none", "distance"):
            raise InputValidationError(f"ClickRobot noise must be 'none' or 'distance', got {noise!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise InputValidationError(f"ClickRobot temperature must be finite and > 0, got {temperature!r}")
        if noise == "distance" and seed is None:
            raise InputValidationError("ClickRobot(noise='distance') needs an explicit seed")
        self.noise: NoiseMode = noise
        self.temperature = float(temperature)
        self.seed = seed if isinstance(seed, (int, np.integer)) or seed is None else None
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"ClickRobot(noise={self.noise!r}, temperature={self.temperature}, seed={self.seed})"

    def _click_in_region(self, region: np.ndarray) -> tuple[int, int]:
        """(row, col) of the click inside the boolean ``region`` (non-empty)."""
        dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        if self.noise == "none":
            flat = int(np.argmax(dist))  # first maximum in raster order = smallest (row, col)
        else:
            idx = np.flatnonzero(region)
            d = dist.ravel()[idx]
            # (d / d_max) ** (1 / T): same distribution as d ** (1 / T), without overflow at tiny T
            weights = (d / d.max()) ** (1.0 / self.temperature)
            flat = int(idx[self._rng.choice(idx.size, p=weights / weights.sum())])
        return divmod(flat, region.shape[1])

    @staticmethod
    def _largest_region(fn: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, bool] | None:
        """Largest 8-connected component among FN (positive) and FP (negative) regions.

        Ties prefer false negatives, then the component met first in raster order.
        """
        best: tuple[int, np.ndarray, bool] | None = None
        for mask, positive in ((fn, True), (fp, False)):
            if not mask.any():
                continue
            labels, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
            areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
            lab = int(np.argmax(areas)) + 1
            if best is None or areas[lab - 1] > best[0]:
                best = (int(areas[lab - 1]), labels == lab, positive)
        return None if best is None else (best[1], best[2])

    def interact(
        self,
        sequence: str,
        pred_masks: np.ndarray,
        gt_masks: np.ndarray,
        nb_objects: int | None = None,
        frame: int | None = None,
    ) -> dict[str, Any]:
        """Clicks answering ``pred_masks`` (T, H, W) against ``gt_masks`` (T, H, W).

        ``frame`` defaults to the frame with the lowest object-averaged Jaccard (first one on
        ties). Objects whose prediction is already exact on that frame get no click; the
        returned dict may therefore be empty when the frame is perfect.
        """
        gt = _label_masks(gt_masks, "gt_masks")
        pred = _label_masks(pred_masks, "pred_masks")
        if pred.shape != gt.shape:
            raise InputValidationError(f"pred_masks shape {pred.shape} differs from gt_masks {gt.shape}")
        n_frames, h, w = gt.shape
        if nb_objects is None:
            ids = np.unique(gt)
            obj_ids = [int(i) for i in ids if 0 < i < 255]
        else:
            if isinstance(nb_objects, bool) or not isinstance(nb_objects, (int, np.integer)):
                raise InputValidationError(f"nb_objects must be an integer >= 1, got {nb_objects!r}")
            if nb_objects < 1:
                raise InputValidationError(f"nb_objects must be an integer >= 1, got {nb_objects!r}")
            obj_ids = list(range(1, int(nb_objects) + 1))
        if not obj_ids:
            raise InputValidationError(f"gt_masks of sequence {sequence!r} contain no object (ids 1..254)")
        if frame is None:
            frame = int(np.argmin(batched_jaccard(gt, pred, nb_objects=nb_objects)))
        elif isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 0 <= frame < n_frames:
            raise InputValidationError(f"frame must be an integer in [0, {n_frames}), got {frame!r}")
        frame = int(frame)
        g, p = gt[frame], pred[frame]
        frame_clicks: list[dict[str, Any]] = []
        for k in obj_ids:
            fn = (g == k) & (p != k)
            fp = (p == k) & (g == 0)
            found = self._largest_region(fn, fp)
            if found is None:
                continue
            region, positive = found
            row, col = self._click_in_region(region)
            frame_clicks.append(
                {"point": _pixel_to_point(row, col, h, w), "object_id": k, "positive": positive}
            )
        out: list[list[dict[str, Any]]] = [[] for _ in range(n_frames)]
        out[frame] = frame_clicks
        return {"clicks": out, "sequence": sequence}
