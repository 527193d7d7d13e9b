"""Task decomposition transitions for T = 3, written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.agents.decomposition import StepRecord, decompose_episode, transitions_for_step
from ivos_rl.errors import InputValidationError


def _episode() -> list[StepRecord]:
    s = [np.full((3, 2), i, dtype=np.float32) for i in range(4)]  # s_0 .. s_3
    r_aux = [1.0, -1.0, 1.0]
    r_goal = [0.5, -0.3, 2.0]  # goal of P_t against the baseline for horizon t
    return [StepRecord(s[t - 1], t % 3, s[t], t, r_aux[t - 1], r_goal[t - 1]) for t in (1, 2, 3)]


def _summary(transitions: list) -> list[tuple[int, int, bool, float]]:
    return [(tr.t, tr.subtask, tr.done, tr.reward) for tr in transitions]


def test_t3_deduplicated() -> None:
    out = decompose_episode(_episode(), horizon=3)
    assert _summary(out) == [
        (1, 1, True, 0.5),  # terminal of sub-task T'=1: goal against baseline(1)
        (1, 2, False, 1.0),  # intermediate (T'=2, 3 identical): r_aux
        (2, 2, True, -0.3),
        (2, 3, False, -1.0),
        (3, 3, True, 2.0),
    ]
    # s_t and s_{t+1} are carried unchanged
    assert out[2].obs[0, 0] == 1.0 and out[2].next_obs[0, 0] == 2.0 and out[2].action == 2


def test_t3_literal_per_subtask() -> None:
    out = decompose_episode(_episode(), horizon=3, deduplicate=False)
    assert _summary(out) == [
        (1, 1, True, 0.5),
        (1, 2, False, 1.0),
        (1, 3, False, 1.0),
        (2, 2, True, -0.3),
        (2, 3, False, -1.0),
        (3, 3, True, 2.0),
    ]


def test_t3_without_decomposition_trains_only_t_prime_equals_t() -> None:
    out = decompose_episode(_episode(), horizon=3, enabled=False)
    assert _summary(out) == [(1, 3, False, 1.0), (2, 3, False, -1.0), (3, 3, True, 2.0)]


def test_bad_step_order() -> None:
    steps = _episode()
    with pytest.raises(InputValidationError, match="t=2 at 1"):
        decompose_episode(steps[1:], horizon=3)
    with pytest.raises(InputValidationError, match="outside"):
        transitions_for_step(steps[2], horizon=2)
