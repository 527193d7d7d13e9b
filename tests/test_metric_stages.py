"""The point-set matching timed by bench_metrics.py --stages (benchmarks/_metric_stages.py) is exact.

It is the alternative to the package's dilation matcher that issue #18 measured and dropped (slower);
the benchmark checks its counts against the package's on real data, these cases check it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("offset", "inside"),
    [
        ((0, 5), True),  # exactly r = 5 along a row
        ((0, 6), False),  # r + 1
        ((3, 4), True),  # 9 + 16 = 25 = r²: on the circle
        ((4, 4), False),  # 32 > 25, although both coordinates are below r
        ((-5, 0), True),
    ],
)
def test_point_set_count_uses_the_exact_integer_disk(
    offset: tuple[int, int], inside: bool, benchmark_module: Callable[[str], ModuleType]
) -> None:
    count = benchmark_module("_metric_stages.py").point_set_count
    src = np.array([[10, 10]], np.int64)  # (x, y)
    dst = np.array([[10 + offset[1], 10 + offset[0]], [40, 40]], np.int64)  # the second point is far
    assert count(src, dst, 5) == int(inside)


def test_point_set_count_uses_the_nearest_point_and_handles_empty_sets(
    benchmark_module: Callable[[str], ModuleType],
) -> None:
    count = benchmark_module("_metric_stages.py").point_set_count
    src = np.array([[0, 0], [20, 0]], np.int64)
    dst = np.array([[14, 0], [6, 0], [10, 0]], np.int64)  # 6 from the second, 6 from the first, 10 from both
    assert count(src, dst, 6) == 2
    assert count(src, dst, 5) == 0
    assert count(np.zeros((0, 2), np.int64), dst, 5) == 0
    assert count(src, np.zeros((0, 2), np.int64), 5) == 0


def test_stage_times_runs_every_stage_on_the_package_metrics(
    benchmark_module: Callable[[str], ModuleType],
) -> None:
    # two 60x80 frames: a 20x30 true box and a prediction shifted by 3 px (its boundaries must match in part)
    gt = np.zeros((2, 60, 80), np.uint8)
    gt[:, 20:40, 25:55] = 1
    pred = np.zeros_like(gt)
    pred[:, 23:43, 25:55] = 1
    calls: list[str] = []

    def timer(fn: Callable[[], object]) -> tuple[object, float]:
        calls.append("x")
        return fn(), 0.001

    times = benchmark_module("_metric_stages.py").stage_times(gt, pred, timer)
    assert list(times) == ["read", "boxes", "truth", "J", "boundaries", "matching", "matching, point sets"]
    assert len(calls) == 7 and all(v == 0.001 for v in times.values())
