"""bench_corrections.py's error accounting (benchmarks/_corrections.py) on frames known pixel by pixel."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture
def bench(benchmark_module: Callable[[str], ModuleType]) -> ModuleType:
    return benchmark_module("_corrections.py")


def test_fixed_broken_remaining_by_hand(bench: ModuleType) -> None:
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :5] = 1  # object: columns 0-4
    before = np.zeros_like(gt)
    before[:, :3] = 1  # misses columns 3-4: 20 error pixels
    after = np.zeros_like(gt)
    after[:, :4] = 1  # fixes column 3 (10 px), keeps column 4 wrong (10 px)
    after[0, 9] = 1  # breaks one correct background pixel
    strokes = np.zeros_like(gt)
    strokes[:, 3] = 1  # the stroke ran down column 3
    row = bench.correction_row(before, after, gt, strokes, far=1.5)
    assert (row["err_before"], row["fixed"], row["broken"], row["remaining"]) == (20, 10, 1, 10)
    assert row["stroke_px"] == 10
    # Errors after the round: column 4 (1 px from the stroke, 10 px) and (0, 9) (6 px away): 1 of 11 is far.
    assert row["err_after_median_px"] == pytest.approx(1.0)
    assert row["err_after_far_share"] == pytest.approx(1 / 11)


def test_no_strokes_leave_the_distances_undefined(bench: ModuleType) -> None:
    gt = np.ones((4, 4), np.uint8)
    pred = np.zeros_like(gt)
    row = bench.correction_row(pred, pred, gt, np.zeros_like(gt), far=20.0)
    assert (row["err_before"], row["fixed"], row["broken"], row["remaining"]) == (16, 0, 0, 16)
    assert np.isnan(row["err_after_median_px"]) and np.isnan(row["err_after_far_share"])


def test_stroke_raster_draws_the_normalised_path_on_its_frame(bench: ModuleType) -> None:
    # A horizontal stroke across row 2 of a 5 x 11 frame (x, y normalised by W - 1, H - 1), on frame 1 only.
    answer = {"scribbles": [[], [{"path": [[0.0, 0.5], [1.0, 0.5]], "object_id": 1}]]}
    raster = bench.stroke_raster(answer, 1, (5, 11))
    expected = np.zeros((5, 11), np.uint8)
    expected[2] = 1
    np.testing.assert_array_equal(raster, expected)
    assert not bench.stroke_raster(answer, 0, (5, 11)).any()


def test_summary_pools_the_error_pixels(bench: ModuleType) -> None:
    import pandas as pd

    # The second correction broke more than it fixed: its frame scored .006 lower (worse by the .005 bar).
    df = pd.DataFrame(
        {
            "jf_before": [0.2, 0.7],
            "jf_after": [0.5, 0.694],
            "err_before": [30, 10],
            "fixed": [20, 2],
            "broken": [4, 6],
            "remaining": [10, 8],
            "err_after_far_share": [0.5, float("nan")],
            "drew": [True, False],
        }
    )
    s = bench.summary(df)
    assert s["fixed"] == pytest.approx(22 / 40) and s["broken"] == pytest.approx(10 / 40)
    assert s["remaining"] == pytest.approx(18 / 40)
    assert s["after_below_0.6"] == pytest.approx(0.5) and s["nothing_drawn"] == pytest.approx(0.5)
    assert s["frame_worse"] == pytest.approx(0.5)
    assert s["far_share"] == pytest.approx(0.5)  # the mean over the rows that have a distance
