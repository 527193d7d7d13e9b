"""exact_distance: OpenCV's exact distance transform made deterministic (ivos_rl/backends/_distance.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ivos_rl.backends import _distance
from ivos_rl.backends._distance import exact_distance
from ivos_rl.errors import InputValidationError


def test_hand_checked_distances() -> None:
    # one zero pixel in the middle of a 3x5 mask: distances are sqrt(dy^2 + dx^2) to (1, 2)
    mask = np.ones((3, 5), np.uint8)
    mask[1, 2] = 0
    d = exact_distance(mask)
    assert d.dtype == np.float32 and d[1, 2] == 0.0
    assert d[1, 3] == 1.0 and d[0, 2] == 1.0
    assert d[0, 3] == np.float32(np.sqrt(2.0)) and d[1, 4] == 2.0
    assert d[0, 0] == np.float32(np.sqrt(5.0))


def test_equals_scipy_and_repeats_byte_for_byte() -> None:
    # the first mask's OpenCV precise transform has been seen to vary by an ulp between calls
    rng = np.random.default_rng(0)
    masks = [np.zeros((64, 96), np.uint8) for _ in range(3)]
    masks[0][10:40, 20:70] = 1
    masks[0][30:50, 60:90] = 1
    masks[1][:] = rng.random((64, 96)) > 0.05
    masks[2][5:60, 3:9] = 1
    for m in masks:
        ref = exact_distance(m)
        np.testing.assert_array_equal(ref, ndimage.distance_transform_edt(m).astype(np.float32))
        for _ in range(50):
            assert exact_distance(m).tobytes() == ref.tobytes()


def test_large_images_use_the_exact_scipy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    m = np.ones((20, 30), bool)
    m[4, 7] = False
    monkeypatch.setattr(_distance, "_ROUNDABLE_SQUARED", 100)  # 20^2 + 30^2 >= 100: the SciPy branch
    np.testing.assert_array_equal(exact_distance(m), ndimage.distance_transform_edt(m).astype(np.float32))


def test_refuses_other_shapes() -> None:
    with pytest.raises(InputValidationError, match=r"2-D mask, got shape \(2, 3, 4\)"):
        exact_distance(np.ones((2, 3, 4), np.uint8))
