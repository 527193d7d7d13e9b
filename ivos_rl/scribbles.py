"""Scribble dictionaries in the DAVIS-Interactive format: validation, rasterisation, fusion, JSON io.

A scribble dict is ``{"scribbles": [[stroke, ...] per frame], "sequence": name}`` with strokes
``{"path": [[x, y], ...], "object_id": k, "start_time": s, "end_time": e}`` where ``x``/``y`` are
normalised to [0, 1] by the frame width/height (object id 0 is the background); inside the round
engine a path may also be a read-only (N, 2) float64 array (the scribble robot's ``path_arrays``:
the same points, without thousands of small lists). Functions keep
davisinteractive's names and semantics (``scribbles2mask``, ``bresenham``, ``bezier_curve``...) so
IVOS code written against it can switch imports; the few deliberate deviations are documented on
the function (inputs are never mutated; ``scribbles2points`` scales x by W and y by H).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import comb

from ivos_rl.errors import CorruptFileError, InputValidationError, MissingDataError, ScribbleError
from ivos_rl.interactions import fuse_interactions
from ivos_rl.utils.io import atomic_write_json

__all__ = [
    "annotated_frames",
    "annotated_frames_object",
    "bezier_curve",
    "bresenham",
    "fuse_scribbles",
    "is_empty",
    "load_scribbles",
    "save_scribbles",
    "scribbles2mask",
    "scribbles2points",
    "validate_scribbles",
]

MAX_BEZIER_POINTS = 1000


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def validate_scribbles(
    scribbles: object,
    n_frames: int | None = None,
    n_objects: int | None = None,
    require_sequence: bool = True,
    name: str = "scribbles",
) -> dict[str, Any]:
    """Check the structure of a scribble dict and return it unchanged; raise :class:`ScribbleError`.

    Checks: a ``"scribbles"`` list (of length ``n_frames`` when given) of per-frame stroke lists;
    every stroke has a ``path`` of ``[x, y]`` pairs, finite and within [0, 1], an integer
    ``object_id`` in ``[0, n_objects]`` (when ``n_objects`` is given) and numeric times if present;
    a string ``"sequence"`` when ``require_sequence``. ``name`` prefixes every message (e.g. a file).
    """
    if not isinstance(scribbles, Mapping):
        raise ScribbleError(f"{name} must be a dict, got {type(scribbles).__name__}")
    if "scribbles" not in scribbles:
        raise ScribbleError(f"{name} has no 'scribbles' key (keys: {sorted(scribbles)})")
    frames = scribbles["scribbles"]
    if not isinstance(frames, list):
        raise ScribbleError(
            f"{name}['scribbles'] must be a list of per-frame lists, got {type(frames).__name__}"
        )
    if n_frames is not None and len(frames) != n_frames:
        raise ScribbleError(f"{name} has {len(frames)} frames, expected {n_frames}")
    if require_sequence and not isinstance(scribbles.get("sequence"), str):
        raise ScribbleError(f"{name}['sequence'] must be a string, got {scribbles.get('sequence')!r}")
    for f, strokes in enumerate(frames):
        if not isinstance(strokes, list):
            raise ScribbleError(f"{name} frame {f}: expected a list of strokes, got {type(strokes).__name__}")
        for s, stroke in enumerate(strokes):
            where = f"{name} frame {f} stroke {s}"
            if not isinstance(stroke, Mapping):
                raise ScribbleError(f"{where}: expected a dict, got {type(stroke).__name__}")
            for key in ("path", "object_id"):
                if key not in stroke:
                    raise ScribbleError(f"{where}: missing {key!r}")
            obj = stroke["object_id"]
            if not _is_int(obj) or obj < 0:
                raise ScribbleError(f"{where}: object_id must be an integer >= 0, got {obj!r}")
            if n_objects is not None and obj > n_objects:
                raise ScribbleError(f"{where}: object_id {obj} > number of objects {n_objects}")
            for key in ("start_time", "end_time"):
                if key in stroke and not (_is_number(stroke[key]) and math.isfinite(stroke[key])):
                    raise ScribbleError(f"{where}: {key} must be a finite number, got {stroke[key]!r}")
            _validate_path(stroke["path"], where)
    return dict(scribbles) if not isinstance(scribbles, dict) else scribbles


def _validate_path(path: object, where: str) -> None:
    if not isinstance(path, (list, tuple, np.ndarray)):
        raise ScribbleError(f"{where}: path must be a list of [x, y] points, got {type(path).__name__}")
    if len(path) == 0:
        return
    try:
        arr = np.asarray(path, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ScribbleError(f"{where}: path is not a list of numeric [x, y] points ({exc})") from exc
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ScribbleError(f"{where}: path must have shape (N, 2), got {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        i = int(np.argwhere(bad)[0, 0])
        raise ScribbleError(f"{where}: point {i} = {arr[i].tolist()} is not finite within [0, 1]")


def bezier_curve(points: np.ndarray, nb_points: int = 1000) -> np.ndarray:
    """Resample a polyline (N, 2) into a Bezier curve of ``min(nb_points, 1000)`` points.

    Same Bernstein form as davisinteractive (``comb(n, i) t^(n-i) (1-t)^i``: the curve runs from
    the last control point to the first); with more control points than samples the points are
    returned unchanged, as the reference does.
    """
    if not _is_int(nb_points) or nb_points < 1:
        raise InputValidationError(f"nb_points must be a positive integer, got {nb_points!r}")
    nb_points = min(int(nb_points), MAX_BEZIER_POINTS)
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise InputValidationError(f"points must have shape (N, 2) with N >= 1, got {pts.shape}")
    if len(pts) > nb_points:
        return pts
    i = np.arange(len(pts)).reshape(-1, 1)
    n = len(pts) - 1
    t_pow, u_pow = _bezier_powers(nb_points, n)
    bernstein = comb(n, i) * t_pow[n - i.ravel()] * u_pow[: n + 1]
    return bernstein.T.dot(pts)


_BEZIER_POWERS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _bezier_powers(nb_points: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows k = 0..m (m >= ``n``) of ``t ** k`` and ``(1 - t) ** k`` for the curve's samples t.

    The Bernstein matrix of every curve is built from these rows, computed once per process (a
    robot step resamples curves of tens to hundreds of points: its ``pow`` calls were ~4 % of a
    live env step). Each row is the same broadcast ``pow`` as a curve's own matrix computes (a
    (rows, 1) exponent column against the (1, nb_points) samples), so the same numbers.
    The table grows in powers of two (at most 2 x 1024 x 1000 float64, 16 MB).
    """
    cached = _BEZIER_POWERS.get(nb_points)
    if cached is None or cached[0].shape[0] <= n:
        t = np.linspace(0.0, 1.0, nb_points).reshape(1, -1)
        k = np.arange(max(64, 1 << n.bit_length())).reshape(-1, 1)
        cached = (t**k, (1 - t) ** k)
        _BEZIER_POWERS[nb_points] = cached
    return cached


def bresenham(points: np.ndarray) -> np.ndarray:
    """Integer pixels (M, 2) (x, y) of the polyline through ``points`` (N, 2) (x, y).

    See :func:`_bresenham_pixels`; kept under davisinteractive's name for drop-in use.
    """
    return _bresenham_pixels(points)


def _bresenham_pixels(points: np.ndarray) -> np.ndarray:
    """Integer pixels of the polyline through ``points`` (N, 2) (x, y), segment by segment.

    Each segment is drawn with Bresenham's algorithm including both end points (so joints appear
    twice), exactly as davisinteractive does, but vectorised: along the major axis step ``k`` the
    minor offset is ``floor((2 m k + M) / (2 M))`` (the error-term recursion in closed form).
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputValidationError(f"points must have shape (N, 2), got {pts.shape}")
    pts = pts.astype(np.int64)
    if len(pts) < 2:
        return pts
    p0, p1 = pts[:-1], pts[1:]
    delta = p1 - p0
    sign = np.where(delta > 0, 1, -1)
    mag = np.abs(delta)
    x_major = mag[:, 0] > mag[:, 1]
    major = np.where(x_major, mag[:, 0], mag[:, 1])
    minor = np.where(x_major, mag[:, 1], mag[:, 0])
    lengths = major + 1
    seg = np.repeat(np.arange(len(p0)), lengths)
    k = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    big, small = major[seg], minor[seg]
    offset = np.where(big > 0, (2 * small * k + big) // np.maximum(2 * big, 1), 0)
    xm = x_major[seg]
    dx = np.where(xm, k, offset) * sign[seg, 0]
    dy = np.where(xm, offset, k) * sign[seg, 1]
    return np.stack([p0[seg, 0] + dx, p0[seg, 1] + dy], axis=1)


def scribbles2mask(
    scribbles: Mapping[str, Any],
    output_resolution: tuple[int, int],
    bezier_curve_sampling: bool = False,
    nb_points: int = 1000,
    bresenham: bool = True,
    default_value: int = -1,
    dtype: np.dtype | type = np.int64,
) -> np.ndarray:
    """Rasterise scribbles to (T, H, W) object ids, ``default_value`` where no stroke passes.

    Points map to pixels as ``int(x * (W - 1))``, ``int(y * (H - 1))``; with ``bresenham`` the
    points are joined by lines (the robot's 1000-point curves have gaps otherwise). Later strokes
    overwrite earlier ones. ``dtype`` (int64 like the reference) can be narrowed to save memory.
    """
    shape = tuple(output_resolution)
    if len(shape) != 2 or not all(_is_int(v) and v >= 1 for v in shape):
        raise InputValidationError(
            f"output_resolution must be (H, W) positive integers, got {output_resolution!r}"
        )
    validate_scribbles(scribbles, require_sequence=False)
    height, width = int(shape[0]), int(shape[1])
    frames = scribbles["scribbles"]
    info = np.iinfo(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else None
    if info is not None and not info.min <= default_value <= info.max:
        raise InputValidationError(f"default_value {default_value} does not fit dtype {np.dtype(dtype)}")
    masks = np.full((len(frames), height, width), default_value, dtype=dtype)
    scale = np.asarray([width - 1, height - 1], dtype=np.float64)
    for f, strokes in enumerate(frames):
        for stroke in strokes:
            path = np.asarray(stroke["path"], dtype=np.float64).reshape(-1, 2)
            if len(path) == 0:
                continue
            if bezier_curve_sampling:
                path = bezier_curve(path, nb_points=nb_points)
            pix = (path * scale).astype(np.int64)
            if bresenham:
                pix = _bresenham_pixels(pix)
            masks[f, pix[:, 1], pix[:, 0]] = stroke["object_id"]
    return masks


def scribbles2points(
    scribbles: Mapping[str, Any], output_resolution: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """All stroke points as ``(points (N, 3) [frame, x, y], object_ids (N,))``.

    Without ``output_resolution`` the coordinates stay normalised floats. With ``(H, W)`` they are
    scaled to integer pixels, x by ``W - 1`` and y by ``H - 1``. (davisinteractive 1.0.4 scales x
    by ``H - 1`` and y by ``W - 1``, which is only right for square frames; this is the fix.)
    """
    validate_scribbles(scribbles, require_sequence=False)
    rows: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for f, strokes in enumerate(scribbles["scribbles"]):
        for stroke in strokes:
            path = np.asarray(stroke["path"], dtype=np.float64).reshape(-1, 2)
            rows.append(np.column_stack([np.full(len(path), float(f)), path]))
            ids.append(np.full(len(path), int(stroke["object_id"]), dtype=np.int64))
    points = np.concatenate(rows) if rows else np.zeros((0, 3), np.float64)
    object_ids = np.concatenate(ids) if ids else np.zeros((0,), np.int64)
    if output_resolution is not None:
        if len(output_resolution) != 2 or not all(_is_int(v) and v >= 1 for v in output_resolution):
            raise InputValidationError(
                f"output_resolution must be (H, W) positive integers, got {output_resolution!r}"
            )
        height, width = output_resolution
        points = (points * np.asarray([1, width - 1, height - 1], dtype=np.float64)).astype(np.int64)
    return points, object_ids


def fuse_scribbles(scribbles_a: Mapping[str, Any], scribbles_b: Mapping[str, Any]) -> dict[str, Any]:
    """A new scribble dict with, per frame, A's strokes followed by B's.

    Validates both dicts, then :func:`ivos_rl.interactions.fuse_interactions` (the one fuse).
    Unlike davisinteractive (which appends into A's lists), neither input is modified. Raises
    :class:`ScribbleError` when the sequences (if both named) or frame counts differ.
    """
    validate_scribbles(scribbles_a, require_sequence=False, name="scribbles_a")
    validate_scribbles(scribbles_b, require_sequence=False, name="scribbles_b")
    return fuse_interactions(dict(scribbles_a), dict(scribbles_b))


def is_empty(scribbles: Mapping[str, Any]) -> bool:
    """True when no frame holds a stroke."""
    validate_scribbles(scribbles, require_sequence=False)
    return not any(len(strokes) > 0 for strokes in scribbles["scribbles"])


def annotated_frames(scribbles: Mapping[str, Any]) -> list[int]:
    """0-based indices of the frames holding at least one stroke."""
    validate_scribbles(scribbles, require_sequence=False)
    return [f for f, strokes in enumerate(scribbles["scribbles"]) if strokes]


def annotated_frames_object(scribbles: Mapping[str, Any], object_id: int) -> list[int]:
    """0-based indices of the frames holding a stroke of ``object_id``."""
    validate_scribbles(scribbles, require_sequence=False)
    return [
        f
        for f, strokes in enumerate(scribbles["scribbles"])
        if any(stroke["object_id"] == object_id for stroke in strokes)
    ]


def load_scribbles(
    path: str | Path, n_frames: int | None = None, n_objects: int | None = None
) -> dict[str, Any]:
    """Read and validate a DAVIS scribble JSON file (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError("scribble file does not exist", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"invalid scribble JSON ({exc})", path) from exc
    return validate_scribbles(data, n_frames=n_frames, n_objects=n_objects, name=str(path))


def _plain(obj: Any) -> Any:
    """JSON-ready copy: numpy arrays and scalars become lists and Python numbers."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def save_scribbles(path: str | Path, scribbles: Mapping[str, Any]) -> Path:
    """Validate and write scribbles as JSON atomically (nothing is written when invalid)."""
    validate_scribbles(scribbles, name=str(path))
    return atomic_write_json(path, _plain(scribbles), indent=None)
