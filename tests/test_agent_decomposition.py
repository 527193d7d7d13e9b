"""Task decomposition transitions for T = 3, written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.agents.decomposition import (
    NStepCollector,
    StepRecord,
    decompose_episode,
    nstep_transitions,
    transitions_for_step,
)
from ivos_rl.errors import InputValidationError


def _episode() -> list[StepRecord]:
    s = [np.full((3, 2), i, dtype=np.float32) for i in range(4)]  # s_0 .. s_3
    r_aux = [1.0, -1.0, 1.0]
    r_goal = [0.5, -0.3, 2.0]  # goal of P_t against the baseline for horizon t
    return [StepRecord(s[t - 1], t % 3, s[t], t, r_aux[t - 1], r_goal[t - 1]) for t in (1, 2, 3)]


def _summary(transitions: list) -> list[tuple[int, int, bool, float]]:
    return [(tr.t, tr.subtask, tr.done, tr.reward) for tr in transitions]


def _nstep_summary(transitions: list) -> list[tuple[int, int, bool, float, int, float]]:
    """(t, T', done, R, n_steps, id of next_obs = s_{t+n_steps})."""
    return [
        (tr.t, tr.subtask, tr.done, pytest.approx(tr.reward), tr.n_steps, float(tr.next_obs[0, 0]))
        for tr in transitions
    ]


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


def test_two_step_returns_by_hand() -> None:
    """n = 2, gamma = 0.5 on the T = 3 episode (r_aux = [1, -1, 1], r_goal = [0.5, -0.3, 2])."""
    steps = _episode()
    out = nstep_transitions(steps[0:2], horizon=3, gamma=0.5)
    assert _nstep_summary(out) == [
        (1, 1, True, 0.5, 1, 1.0),  # T'=1 ends at once: r_goal(1)
        (1, 2, True, 1.0 + 0.5 * -0.3, 2, 2.0),  # T'=2: r_aux(1) + gamma r_goal(2), done at s_2
        (1, 3, False, 1.0 + 0.5 * -1.0, 2, 2.0),  # T'>=3: r_aux(1) + gamma r_aux(2), bootstrap s_2
    ]
    # The last step's window is cut by the episode end; T'=3 ends inside it.
    assert _nstep_summary(nstep_transitions(steps[2:], horizon=3, gamma=0.5)) == [(3, 3, True, 2.0, 1, 3.0)]
    # Without decomposition only T' = T: step 2 sums r_aux(2) + gamma r_goal(3) and ends.
    assert _nstep_summary(nstep_transitions(steps[1:3], horizon=3, gamma=0.5, enabled=False)) == [
        (2, 3, True, -1.0 + 0.5 * 2.0, 2, 3.0)
    ]


def test_collector_with_n_1_equals_one_step_transitions() -> None:
    steps = _episode()
    collector = NStepCollector(horizon=3, n_step=1)
    online = [tr for step in steps for tr in collector.push(step)]
    assert online == decompose_episode(steps, horizon=3)


def test_collector_emits_each_step_once_when_its_window_is_complete() -> None:
    steps = _episode()
    collector = NStepCollector(horizon=3, n_step=2, gamma=0.5)
    assert collector.push(steps[0]) == []  # step 1 waits for step 2
    assert [tr.t for tr in collector.push(steps[1])] == [1, 1, 1]
    assert [tr.t for tr in collector.push(steps[2])] == [2, 2, 3]  # the end flushes steps 2 and 3
    assert collector.push(steps[0]) == []  # a new episode starts afresh
