"""labels_from_probs: uint8 stacks take a table + running-max path that must give the float rule's labels."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.backends.base import labels_from_probs


def _float_rule(probs: np.ndarray, threshold: float) -> np.ndarray:
    """The definition: argmax object (ties: the lower id) where value / 255 (float32) > threshold."""
    p = probs.astype(np.float32) / 255.0
    return np.where(p.max(axis=1) > threshold, p.argmax(axis=1) + 1, 0).astype(np.uint8)


def test_hand_checked_labels() -> None:
    probs = np.zeros((1, 2, 1, 4), np.uint8)
    probs[0, 0] = [127, 128, 200, 200]  # 127/255 < 0.5 < 128/255
    probs[0, 1] = [0, 0, 200, 255]  # a tie keeps object 1; 255 beats 200
    assert labels_from_probs(probs).tolist() == [[[0, 1, 1, 2]]]
    assert labels_from_probs(probs, threshold=0.9).tolist() == [[[0, 0, 0, 2]]]
    one = probs[:, :1]
    assert labels_from_probs(one).tolist() == [[[0, 1, 1, 1]]]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("threshold", [0.5, 0.0, 127 / 255, 0.3, 0.999])
def test_uint8_path_equals_the_float_rule(k: int, threshold: float) -> None:
    rng = np.random.default_rng(k)
    probs = rng.choice(np.array([0, 1, 127, 128, 129, 200, 254, 255], np.uint8), (4, k, 13, 17))
    labels = labels_from_probs(probs, threshold)
    assert labels.dtype == np.uint8 and labels.shape == (4, 13, 17)
    np.testing.assert_array_equal(labels, _float_rule(probs, threshold))
    # float input takes the rule itself: the same labels
    np.testing.assert_array_equal(labels_from_probs(probs.astype(np.float32) / 255.0, threshold), labels)


def test_empty_stack() -> None:
    assert labels_from_probs(np.zeros((0, 1, 4, 4), np.uint8)).shape == (0, 4, 4)
