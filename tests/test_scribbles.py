"""Scribble utilities: rasterisation, Bezier/Bresenham, fusion, validation and JSON io."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.errors import CorruptFileError, InputValidationError, MissingDataError, ScribbleError
from ivos_rl.scribbles import (
    annotated_frames,
    annotated_frames_object,
    bezier_curve,
    bresenham,
    fuse_scribbles,
    is_empty,
    load_scribbles,
    save_scribbles,
    scribbles2mask,
    scribbles2points,
    validate_scribbles,
)


def _stroke(path: list[list[float]], obj: int = 1) -> dict[str, Any]:
    return {"path": path, "object_id": obj, "start_time": 0.0, "end_time": 1.0}


def _scribbles(frames: list[list[dict[str, Any]]], seq: str = "s") -> dict[str, Any]:
    return {"scribbles": frames, "sequence": seq}


def _loop_line(x0: int, y0: int, x1: int, y1: int) -> list[list[int]]:
    """Textbook error-term Bresenham (the per-pixel loop the vectorised version replaces)."""
    dx, dy = x1 - x0, y1 - y0
    sx, sy = (1 if dx > 0 else -1), (1 if dy > 0 else -1)
    dx, dy = abs(dx), abs(dy)
    x_major = dx > dy
    big, small = (dx, dy) if x_major else (dy, dx)
    err, minor, out = 2 * small - big, 0, []
    for k in range(big + 1):
        out.append([x0 + k * sx, y0 + minor * sy] if x_major else [x0 + minor * sx, y0 + k * sy])
        if err >= 0:
            minor += 1
            err -= 2 * big
        err += 2 * small
    return out


# ----------------------------------------------------------------------------- geometry


def test_bresenham_hand_computed_lines() -> None:
    # shallow: error term -1, 1, -3, -1 -> the minor axis steps once, between x = 1 and x = 2
    assert bresenham(np.array([[0, 0], [3, 1]])).tolist() == [[0, 0], [1, 0], [2, 1], [3, 1]]
    # steep, both negative: y is the major axis
    assert bresenham(np.array([[2, 3], [0, 0]])).tolist() == [[2, 3], [1, 2], [1, 1], [0, 0]]
    # polyline: each segment includes both ends, so the joint appears twice
    assert bresenham(np.array([[0, 0], [1, 0], [1, 1]])).tolist() == [[0, 0], [1, 0], [1, 0], [1, 1]]
    assert bresenham(np.array([[4, 4]])).tolist() == [[4, 4]]


def test_bresenham_equals_error_term_loop_in_every_direction() -> None:
    for x1 in range(-7, 8):
        for y1 in range(-7, 8):
            got = bresenham(np.array([[3, 4], [3 + x1, 4 + y1]])).tolist()
            assert got == _loop_line(3, 4, 3 + x1, 4 + y1), (x1, y1)


def test_bezier_two_points_runs_from_last_to_first() -> None:
    # B(t) = t p0 + (1 - t) p1 in the reference's Bernstein form
    curve = bezier_curve(np.array([[0.0, 0.0], [1.0, 2.0]]), nb_points=3)
    np.testing.assert_allclose(curve, [[1.0, 2.0], [0.5, 1.0], [0.0, 0.0]])
    # three points, t = 1/2: (p0 + 2 p1 + p2) / 4
    mid = bezier_curve(np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 0.0]]), nb_points=3)[1]
    np.testing.assert_allclose(mid, [2.0, 1.0])


def test_bezier_caps_and_passthrough() -> None:
    pts = np.array([[0.0, 0.0], [1.0, 1.0]])
    assert bezier_curve(pts, nb_points=5000).shape == (1000, 2)  # capped at 1000 like the reference
    many = np.random.default_rng(0).random((10, 2))
    np.testing.assert_array_equal(bezier_curve(many, nb_points=4), many)  # more points than samples
    with pytest.raises(InputValidationError, match="nb_points"):
        bezier_curve(pts, nb_points=0)
    with pytest.raises(InputValidationError, match="shape"):
        bezier_curve(np.zeros((0, 2)), nb_points=3)


# ----------------------------------------------------------------------------- rasterisation


def test_scribbles2mask_diagonal_with_and_without_bresenham() -> None:
    scr = _scribbles([[], [_stroke([[0.0, 0.0], [1.0, 1.0]], obj=2)]])
    mask = scribbles2mask(scr, (5, 5))
    assert mask.shape == (2, 5, 5) and mask.dtype == np.int64
    expected = np.full((5, 5), -1)
    np.fill_diagonal(expected, 2)  # (0,0)..(4,4) scaled by (W-1, H-1) = 4
    np.testing.assert_array_equal(mask[1], expected)
    assert (mask[0] == -1).all()
    ends = scribbles2mask(scr, (5, 5), bresenham=False)[1]
    assert sorted(zip(*np.nonzero(ends >= 0), strict=True)) == [(0, 0), (4, 4)]


def test_scribbles2mask_non_square_and_overwrite() -> None:
    # H = 3, W = 5: y = 0.5 -> row int(0.5 * 2) = 1; x from 0 to 4
    scr = _scribbles([[_stroke([[0.0, 0.5], [1.0, 0.5]], obj=1), _stroke([[0.5, 0.0], [0.5, 1.0]], obj=3)]])
    mask = scribbles2mask(scr, (3, 5), default_value=0, dtype=np.uint8)
    np.testing.assert_array_equal(mask[0], [[0, 0, 3, 0, 0], [1, 1, 3, 1, 1], [0, 0, 3, 0, 0]])
    # no "sequence" key is fine for rasterisation (backends pass bare stroke lists)
    assert scribbles2mask({"scribbles": [[]]}, (2, 2)).shape == (1, 2, 2)


def test_scribbles2mask_bezier_sampling() -> None:
    scr = _scribbles([[_stroke([[0.0, 0.0], [1.0, 0.0]])]])
    # 3 samples at t = 0, 1/2, 1 -> x = 1, 0.5, 0 -> columns 10, 5, 0 of row 0
    mask = scribbles2mask(scr, (2, 11), bezier_curve_sampling=True, nb_points=3, bresenham=False)
    assert np.flatnonzero(mask[0, 0] == 1).tolist() == [0, 5, 10] and (mask[0, 1] == -1).all()


@pytest.mark.parametrize("resolution", [(0, 5), (5,), (2.5, 3)])
def test_scribbles2mask_bad_resolution(resolution: Any) -> None:
    with pytest.raises(InputValidationError, match="output_resolution"):
        scribbles2mask(_scribbles([[]]), resolution)


def test_scribbles2points_scales_x_by_width_and_y_by_height() -> None:
    scr = _scribbles([[], [_stroke([[1.0, 0.5], [0.0, 0.0]], obj=2)]])
    pts, ids = scribbles2points(scr)
    np.testing.assert_array_equal(pts, [[1, 1.0, 0.5], [1, 0.0, 0.0]])
    np.testing.assert_array_equal(ids, [2, 2])
    pix, _ = scribbles2points(scr, output_resolution=(3, 5))
    np.testing.assert_array_equal(pix, [[1, 4, 1], [1, 0, 0]])
    empty, empty_ids = scribbles2points(_scribbles([[]]))
    assert empty.shape == (0, 3) and empty_ids.shape == (0,)


# ----------------------------------------------------------------------------- dict helpers


def test_annotated_frames_and_is_empty() -> None:
    scr = _scribbles([[], [_stroke([[0, 0]], 1)], [], [_stroke([[0, 0]], 2), _stroke([[1, 1]], 1)]])
    assert annotated_frames(scr) == [1, 3]
    assert annotated_frames_object(scr, 2) == [3]
    assert annotated_frames_object(scr, 1) == [1, 3]
    assert not is_empty(scr)
    assert is_empty(_scribbles([[], []]))


def test_fuse_scribbles_appends_and_leaves_inputs_untouched() -> None:
    a = _scribbles([[_stroke([[0, 0]], 1)], []])
    b = _scribbles([[_stroke([[1, 1]], 2)], [_stroke([[0.5, 0.5]], 0)]])
    a_before, b_before = copy.deepcopy(a), copy.deepcopy(b)
    fused = fuse_scribbles(a, b)
    assert [s["object_id"] for s in fused["scribbles"][0]] == [1, 2]
    assert [s["object_id"] for s in fused["scribbles"][1]] == [0]
    assert fused["sequence"] == "s"
    assert a == a_before and b == b_before
    with pytest.raises(ScribbleError, match="different sequences"):
        fuse_scribbles(a, _scribbles([[], []], seq="other"))
    with pytest.raises(ScribbleError, match="2 and 3 frames"):
        fuse_scribbles(a, _scribbles([[], [], []]))


@pytest.mark.parametrize(
    ("scr", "match"),
    [
        ([], "must be a dict"),
        ({"sequence": "s"}, "no 'scribbles' key"),
        ({"scribbles": [[]]}, "'sequence'"),
        (_scribbles([[{"object_id": 1}]]), "missing 'path'"),
        (_scribbles([[_stroke([[0, 0]], obj=-1)]]), "object_id must be an integer >= 0"),
        (_scribbles([[_stroke([[0, 0]], obj=3)]]), "object_id 3 > number of objects 2"),
        (_scribbles([[_stroke([[0.2, 1.5]])]]), r"point 0 = \[0.2, 1.5\]"),
        (_scribbles([[_stroke([[0.2, float("nan")]])]]), "not finite"),
        (_scribbles([[_stroke([[0.2, 0.3, 0.1]])]]), r"shape \(N, 2\)"),
        (_scribbles([[_stroke([[0, 0]])], []]), "has 2 frames, expected 1"),
        (_scribbles([[{**_stroke([[0, 0]]), "start_time": "x"}]]), "start_time"),
        (_scribbles(["abc"]), "frame 0: expected a list"),  # type: ignore[list-item]
    ],
)
def test_validate_scribbles_errors(scr: Any, match: str) -> None:
    with pytest.raises(ScribbleError, match=match):
        validate_scribbles(scr, n_frames=1, n_objects=2)


def test_validate_accepts_robot_style_output() -> None:
    scr = _scribbles([[_stroke([[0.0, 1.0], [1.0, 0.0]], 0)], []])
    assert validate_scribbles(scr, n_frames=2, n_objects=1) is scr


# ----------------------------------------------------------------------------- json io


def test_save_load_roundtrip_with_numpy_values(tmp_path: Path) -> None:
    scr = _scribbles([[{"path": np.array([[0.25, 0.5]]), "object_id": np.int64(1), "start_time": 1.0}]])
    path = save_scribbles(tmp_path / "seq" / "001.json", scr)
    loaded = load_scribbles(path, n_frames=1, n_objects=1)
    assert loaded == {
        "scribbles": [[{"path": [[0.25, 0.5]], "object_id": 1, "start_time": 1.0}]],
        "sequence": "s",
    }


def test_save_invalid_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bad.json"
    with pytest.raises(ScribbleError, match=r"bad\.json"):
        save_scribbles(target, _scribbles([[_stroke([[2.0, 0.0]])]]))
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"missing\.json"):
        load_scribbles(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"scribbles": [', encoding="utf-8")
    with pytest.raises(CorruptFileError, match=r"broken\.json"):
        load_scribbles(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"scribbles": [[{"path": [[0, 0]], "object_id": 5}]], "sequence": "s"}))
    with pytest.raises(ScribbleError, match=r"wrong\.json frame 0 stroke 0: object_id 5"):
        load_scribbles(wrong, n_objects=2)
