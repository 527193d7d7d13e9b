"""Scribble -> SAM2 prompt conversion (pure numpy, no sam2 package needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.backends._prompts import (
    mask_prompt,
    point_prompts,
    sample_along_strokes,
    stroke_label_map,
    stroke_to_pixels,
)
from ivos_rl.errors import InputValidationError

H, W = 11, 21  # (W - 1, H - 1) = (20, 10): normalised 0.5 -> pixel 10 in x, 5 in y


def stroke(obj: int, pts: list[tuple[float, float]]) -> dict:
    """A DAVIS stroke from pixel (x, y) points."""
    return {"path": [[x / (W - 1), y / (H - 1)] for x, y in pts], "object_id": obj}


def test_stroke_to_pixels_uses_davis_scaling() -> None:
    px = stroke_to_pixels({"path": [[0.0, 0.0], [0.5, 1.0], [1.0, 0.5]], "object_id": 1}, H, W)
    np.testing.assert_allclose(px, [[0, 0], [10, 10], [20, 5]])


def test_samples_are_evenly_spaced_along_arc_length() -> None:
    line = np.array([[0.0, 0.0], [10.0, 0.0]])
    pts = sample_along_strokes([line], 5)
    # arc length 10, 5 samples at (i + 0.5) * 2 -> x = 1, 3, 5, 7, 9
    np.testing.assert_allclose(pts, [[1, 0], [3, 0], [5, 0], [7, 0], [9, 0]])


def test_samples_are_shared_by_length_and_follow_corners() -> None:
    short = np.array([[0.0, 0.0], [10.0, 0.0]])  # length 10
    bent = np.array([[0.0, 5.0], [10.0, 5.0], [10.0, 25.0]])  # length 30, corner at (10, 5)
    pts = sample_along_strokes([short, bent], 4)
    # total 40, targets 5, 15, 25, 35: one point on the short stroke, three on the bent one
    np.testing.assert_allclose(pts, [[5, 0], [5, 5], [10, 10], [10, 20]])


def test_zero_length_strokes_give_their_distinct_points() -> None:
    dots = [np.array([[3.0, 4.0]]), np.array([[3.0, 4.0]]), np.array([[7.0, 1.0]])]
    pts = sample_along_strokes(dots, 5)
    np.testing.assert_allclose(sorted(map(tuple, pts)), [(3, 4), (7, 1)])
    assert sample_along_strokes([], 3).shape == (0, 2)
    assert sample_along_strokes([np.array([[1.0, 1.0], [2.0, 2.0]])], 0).shape == (0, 2)


def test_negative_count_is_refused() -> None:
    with pytest.raises(InputValidationError, match="-1"):
        sample_along_strokes([np.zeros((2, 2))], -1)


def test_point_prompts_split_positive_and_negative_by_object() -> None:
    strokes = [
        stroke(1, [(0, 2), (8, 2)]),  # object 1
        stroke(0, [(0, 8), (20, 8)]),  # background
        stroke(2, [(12, 0), (12, 4)]),  # object 2
    ]
    pts, labels = point_prompts(strokes, 1, H, W, n_positive=2, n_negative=3)
    np.testing.assert_array_equal(labels, [1, 1, 0, 0, 0])
    np.testing.assert_allclose(pts[:2], [[2, 2], [6, 2]])
    # negatives: background (length 20) and object 2 (length 4): total 24, targets 4, 12, 20
    np.testing.assert_allclose(pts[2:], [[4, 8], [12, 8], [12, 0]])
    assert pts.dtype == np.float32 and labels.dtype == np.int32

    pts2, labels2 = point_prompts(strokes, 2, H, W, n_positive=1, n_negative=0)
    np.testing.assert_allclose(pts2, [[12, 2]])
    np.testing.assert_array_equal(labels2, [1])


def test_point_prompts_are_deterministic_and_handle_missing_sides() -> None:
    strokes = [stroke(1, [(1, 1), (9, 9), (15, 2)])]
    a = point_prompts(strokes, 1, H, W, 6, 6)
    b = point_prompts(strokes, 1, H, W, 6, 6)
    np.testing.assert_array_equal(a[0], b[0])
    assert list(a[1]) == [1] * 6  # no other stroke: no negatives
    _, labels = point_prompts(strokes, 2, H, W, 6, 6)
    assert list(labels) == [0] * 6  # object 2 has no stroke: negatives only


def test_mask_prompt_corrects_previous_mask_with_strokes() -> None:
    labels = np.full((10, 10), -1, np.int16)
    labels[2, 2] = 1  # add a dot of object 1
    labels[7, 7] = 0  # remove around (7, 7)
    labels[5, 0] = 2  # another object's stroke also removes
    previous = np.zeros((10, 10), bool)
    previous[5:, 5:] = True
    previous[4:7, 0:2] = True
    out = mask_prompt(labels, 1, previous, radius=1)
    cross = [(2, 2), (1, 2), (3, 2), (2, 1), (2, 3)]  # the radius-1 ellipse kernel is a 3x3 cross
    assert all(out[p] for p in cross)
    assert not out[1, 1]  # a kernel corner is not added
    assert not any(out[7 + dy, 7 + dx] for dy, dx in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)])
    assert out[6, 6] and out[8, 8] and out[9, 9]  # corners and the rest of the old mask stay
    assert not out[5, 0] and not out[4, 0] and not out[6, 0] and not out[5, 1]
    assert out[4, 1] and out[6, 1]
    assert out.dtype == bool
    fresh = mask_prompt(labels, 1, None, radius=0)
    assert fresh.sum() == 1 and fresh[2, 2]


def test_mask_prompt_rejects_mismatched_previous() -> None:
    with pytest.raises(InputValidationError, match="previous mask shape"):
        mask_prompt(np.full((4, 4), -1, np.int16), 1, np.zeros((3, 4), bool))


def test_stroke_label_map_later_strokes_win() -> None:
    strokes = [stroke(1, [(0, 5), (20, 5)]), stroke(0, [(10, 0), (10, 10)])]
    lab = stroke_label_map(strokes, H, W)
    assert lab.shape == (H, W) and lab.dtype == np.int16
    assert lab[5, 3] == 1 and lab[5, 17] == 1
    assert lab[5, 10] == 0  # crossing pixel: the later (background) stroke wins
    assert lab[0, 0] == -1
