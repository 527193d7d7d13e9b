"""Crop geometry of the quality net on hand-made masks (boxes checked by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ivos_rl.errors import InputValidationError
from ivos_rl.quality.crop import crop_and_resize, crop_inputs, mask_boxes, validate_inputs


def _mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Float mask with ones on rows y0..y1-1 and columns x0..x1-1."""
    m = torch.zeros(h, w)
    m[y0:y1, x0:x1] = 1.0
    return m


def test_tight_box_without_enlargement() -> None:
    # rows 2..5, cols 3..8 -> edges [3, 9) x [2, 6)
    box = mask_boxes(_mask(20, 30, 2, 6, 3, 9), enlarge=1.0)
    assert box.tolist() == [3.0, 2.0, 9.0, 6.0]


def test_enlarge_by_1_5_about_the_centre() -> None:
    # 4 x 6 box at x [10, 16), y [10, 14) in a 40x40 image: centre (13, 12);
    # enlarged size 9 x 6 -> x [8.5, 17.5), y [9, 15)
    box = mask_boxes(_mask(40, 40, 10, 14, 10, 16), enlarge=1.5)
    assert box.tolist() == pytest.approx([8.5, 9.0, 17.5, 15.0])


def test_enlarged_box_is_clipped_at_borders() -> None:
    # mask in the top-left corner: x [0, 4), y [0, 2) -> enlarged x [-1, 5), y [-0.5, 2.5) -> clipped
    box = mask_boxes(_mask(10, 10, 0, 2, 0, 4), enlarge=1.5)
    assert box.tolist() == pytest.approx([0.0, 0.0, 5.0, 2.5])
    # bottom-right corner: x [8, 10), y [6, 10) -> enlarged x [7.5, 10.5), y [5, 11) -> clipped to 10
    box = mask_boxes(_mask(10, 10, 6, 10, 8, 10), enlarge=1.5)
    assert box.tolist() == pytest.approx([7.5, 5.0, 10.0, 10.0])


def test_empty_mask_uses_whole_frame_and_threshold_is_strict() -> None:
    probs = torch.stack([torch.zeros(8, 12), torch.full((8, 12), 0.5)])  # 0.5 is not > 0.5
    boxes = mask_boxes(probs, enlarge=1.5)
    assert boxes.tolist() == [[0.0, 0.0, 12.0, 8.0], [0.0, 0.0, 12.0, 8.0]]


def test_uint8_probs_match_float_probs() -> None:
    m = _mask(16, 16, 4, 9, 2, 7)
    u8 = (m * 255).to(torch.uint8)
    u8[0, 0] = 127  # 127/255 < 0.5: not foreground
    u8[15, 15] = 128  # 128/255 > 0.5: foreground -> box extends to the corner
    box = mask_boxes(u8, enlarge=1.0)
    assert box.tolist() == [2.0, 4.0, 16.0, 16.0]


def test_batched_boxes_over_frames_and_objects() -> None:
    probs = torch.zeros(2, 3, 10, 10)
    probs[0, 0, 1:3, 1:3] = 1
    probs[1, 2, 5:10, 0:2] = 1
    boxes = mask_boxes(probs, enlarge=1.0)
    assert boxes.shape == (2, 3, 4)
    assert boxes[0, 0].tolist() == [1.0, 1.0, 3.0, 3.0]
    assert boxes[1, 2].tolist() == [0.0, 5.0, 2.0, 10.0]
    assert boxes[0, 1].tolist() == [0.0, 0.0, 10.0, 10.0]  # empty object -> whole frame


def test_crop_resamples_box_content() -> None:
    # A frame whose value equals the column index: a crop of x in [4, 8) resized to width 4 must
    # sample pixel centres 4.5..7.5 -> column values 4, 5, 6, 7 (pixel i's centre is at i + 0.5).
    h, w = 6, 12
    col = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 3, h, w)
    probs = torch.zeros(1, 1, h, w)
    boxes = torch.tensor([[[4.0, 0.0, 8.0, 6.0]]])
    rgb, prob = crop_and_resize(col, probs, boxes, (3, 4))
    assert rgb.shape == (1, 1, 3, 3, 4) and prob.shape == (1, 1, 1, 3, 4)
    assert torch.allclose(rgb[0, 0, 0, 0], torch.tensor([4.0, 5.0, 6.0, 7.0]))


def test_crops_of_two_objects_come_from_their_own_boxes() -> None:
    frames = np.zeros((1, 20, 20, 3), np.uint8)
    frames[0, :10] = 200  # top half bright
    probs = np.zeros((1, 2, 20, 20), np.uint8)
    probs[0, 0, 2:6, 2:6] = 255  # object 1 in the bright half
    probs[0, 1, 14:18, 14:18] = 255  # object 2 in the dark half
    rgb, prob, boxes = crop_inputs(frames, probs, 8, enlarge=1.5)
    assert boxes[0].tolist() == [[1.0, 1.0, 7.0, 7.0], [13.0, 13.0, 19.0, 19.0]]
    assert rgb.shape == (1, 2, 3, 8, 8) and prob.shape == (1, 2, 1, 8, 8)
    assert torch.allclose(rgb[0, 0], torch.full((3, 8, 8), 200 / 255))
    assert torch.allclose(rgb[0, 1], torch.zeros(3, 8, 8))
    # the 4x4 object inside a 6x6 box covers the central 2/3 of the crop
    assert prob[0, 0, 0, 4, 4] == pytest.approx(1.0) and prob[0, 0, 0, 0, 0] == pytest.approx(0.0)
    assert float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0


@pytest.mark.parametrize(
    ("frames", "probs", "match"),
    [
        (np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 1, 8, 9), np.uint8), "differ"),
        (np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 1, 8, 8), np.uint8), "differ"),
        (np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 1, 8, 8), np.uint8), "uint8"),
        (np.zeros((2, 8, 8), np.uint8), np.zeros((2, 1, 8, 8), np.uint8), "frames"),
        (np.zeros((2, 8, 8, 3), np.uint8), np.full((2, 1, 8, 8), 1.5, np.float32), r"\[0, 1\]"),
        (np.zeros((2, 8, 8, 3), np.uint8), np.full((2, 1, 8, 8), -0.1, np.float32), r"\[0, 1\]"),
        (np.zeros((2, 8, 8, 3), np.uint8), np.full((2, 1, 8, 8), np.nan, np.float32), "NaN"),
        (np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 1, 8, 8), np.int32), "uint8 or float"),
    ],
)
def test_validate_inputs_rejects_bad_arrays(frames: np.ndarray, probs: np.ndarray, match: str) -> None:
    with pytest.raises(InputValidationError, match=match):
        validate_inputs(frames, probs)


def test_mask_boxes_rejects_bad_enlarge() -> None:
    with pytest.raises(InputValidationError, match="enlarge"):
        mask_boxes(torch.zeros(4, 4), enlarge=0.0)
