"""Mask AP equals pycocotools' COCOeval (segm) on hand-checkable and random cases."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.errors import InputValidationError
from ivos_rl.mask_ap import coco_mask_ap, mask_ap_from_matches, mask_ap_per_round, presence


def _square(top: int, left: int, side: int, size: int = 16) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[top : top + side, left : left + side] = True
    return m


def _tiny_case() -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Three (frame, object) instances whose AP is worked out by hand in the test below."""
    gt = [_square(2, 2, 10), _square(2, 2, 10), np.zeros((16, 16), bool)]
    pred = [
        _square(2, 2, 10),  # IoU 1, score .9
        _square(2, 2, 9),  # 81 of the 100 ground-truth pixels: IoU .81, score .8
        _square(0, 0, 4),  # the object is absent: a false positive, ranked first (score .95)
    ]
    return gt, pred, [0.9, 0.8, 0.95]


def test_tiny_case_by_hand_equals_cocoeval() -> None:
    gt, pred, scores = _tiny_case()
    # Ranking: FP (.95), IoU 1 (.9), IoU .81 (.8); 2 ground truths.
    # Thresholds .50-.80 (7 of 10): FP, TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1;
    #   interpolated precision is 2/3 at all 101 recall points -> AP_t = 2/3.
    # Thresholds .85-.95 (3): FP, TP, FP -> precision 0, 1/2, 1/3 at recall 0, 1/2, 1/2;
    #   recall points 0..0.5 (51 of 101) get 1/2, the rest 0 -> AP_t = 0.5 * 51 / 101.
    expected = (7 * (2 / 3) + 3 * 0.5 * 51 / 101) / 10
    coco = coco_mask_ap(gt, pred, scores)
    assert coco["AP"] == pytest.approx(expected, abs=1e-12)
    assert coco["AP50"] == pytest.approx(2 / 3, abs=1e-12)
    assert coco["AP75"] == pytest.approx(2 / 3, abs=1e-12)
    iou = [1.0, 0.81, 0.0]
    ours = mask_ap_from_matches(iou, scores, [True, True, False], [True, True, True])
    assert ours == pytest.approx(coco, abs=1e-12)


def test_random_instances_equal_cocoeval() -> None:
    rng = np.random.default_rng(0)
    gt, pred, scores, iou = [], [], [], []
    for _ in range(40):
        g = _square(int(rng.integers(0, 6)), int(rng.integers(0, 6)), int(rng.integers(0, 9)))
        p = _square(int(rng.integers(0, 6)), int(rng.integers(0, 6)), int(rng.integers(0, 9)))
        union = np.count_nonzero(g | p)
        gt.append(g)
        pred.append(p)
        scores.append(float(rng.choice([0.2, 0.5, 0.7])))  # ties: COCO keeps image order
        iou.append(np.count_nonzero(g & p) / union if union else 1.0)
    coco = coco_mask_ap(gt, pred, scores)
    ours = mask_ap_from_matches(iou, scores, [g.any() for g in gt], [p.any() for p in pred])
    assert ours == pytest.approx(coco, abs=1e-12)
    assert 0.0 < coco["AP"] < 1.0


def test_no_ground_truth_is_undefined_and_no_detection_is_zero() -> None:
    empty = np.zeros((4, 4), bool)
    assert coco_mask_ap([empty], [_square(0, 0, 2, 4)], [0.5])["AP"] == -1.0
    assert mask_ap_from_matches([0.0], [0.5], [False], [True])["AP"] == -1.0
    assert coco_mask_ap([_square(0, 0, 2, 4)], [empty], [0.5])["AP"] == 0.0
    assert mask_ap_from_matches([0.0], [0.5], [True], [False])["AP"] == 0.0


def test_bad_shapes_raise() -> None:
    with pytest.raises(InputValidationError, match="one length"):
        mask_ap_from_matches([1.0, 0.5], [0.1], [True], [True])


class _Sample:
    def __init__(self) -> None:
        # 2 frames, 1 object; round 1: frame 0 IoU 1 (score .9), frame 1 IoU .5 (score .1)
        # round 2: both IoU 1
        self.gt_present = [[True], [True]]
        self.pred_present = [[[True], [True]], [[True], [True]]]
        self.quality_scores = [[[0.9], [0.1]], [[0.5], [0.5]]]
        self.rows = [
            {"interaction": 1, "frame": 0, "object_id": 1, "jaccard": 1.0},
            {"interaction": 1, "frame": 1, "object_id": 1, "jaccard": 0.5},
            {"interaction": 2, "frame": 0, "object_id": 1, "jaccard": 1.0},
            {"interaction": 2, "frame": 1, "object_id": 1, "jaccard": 1.0},
        ]


def test_per_round_from_sample_results() -> None:
    per_round = mask_ap_per_round([_Sample()])
    assert per_round is not None
    # round 1: at .50 both match -> AP 1; above, TP then FP -> recall 1/2 reached with precision 1:
    # 51 of 101 recall points -> 51/101 on 9 thresholds
    assert per_round["AP"][0] == pytest.approx((1 + 9 * 51 / 101) / 10)
    assert per_round["AP50"] == [1.0, 1.0]
    assert per_round["AP"][1] == 1.0
    assert mask_ap_per_round([object()]) is None


def test_presence() -> None:
    labels = np.zeros((2, 3, 3), np.uint8)
    labels[0, 0, 0] = 2
    np.testing.assert_array_equal(presence(labels, 2), [[False, True], [False, False]])
