"""Reward terms of the MDP (Eq. 2-4) on hand-made histories."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.envs.rewards import RewardConfig, aux_reward, goal_reward, performance
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.state import StateMode, build_state, history_counts


def test_aux_reward_least_recommended_with_ties() -> None:
    counts = np.array([1, 0, 0, 2], dtype=np.float32)  # frames 1 and 2 tie for the minimum
    assert aux_reward(1, counts) == 1.0
    assert aux_reward(2, counts) == 1.0
    assert aux_reward(0, counts) == -1.0
    assert aux_reward(3, counts) == -1.0


def test_aux_reward_all_equal_counts_every_action_is_minimal() -> None:
    counts = np.array([2, 2, 2])
    assert [aux_reward(a, counts) for a in range(3)] == [1.0, 1.0, 1.0]


def test_aux_reward_rejects_out_of_range_action() -> None:
    with pytest.raises(InputValidationError, match="action 4"):
        aux_reward(4, np.zeros(4))


def test_goal_reward_eq2_and_eq3() -> None:
    # P = 0.8, mu = 0.6, sigma = 0.1: Eq. 2 -> (0.8 - 0.6) / 0.1 = 2, Eq. 3 -> (0.8 - 0.7) / 0.1 = 1.
    assert goal_reward(0.8, 0.6, 0.1, "eq2") == pytest.approx(2.0)
    assert goal_reward(0.8, 0.6, 0.1, "eq3") == pytest.approx(1.0)
    # At the random mean Eq. 2 is 0 but Eq. 3 is -1: only beating mu + sigma pays.
    assert goal_reward(0.6, 0.6, 0.1, "eq2") == pytest.approx(0.0)
    assert goal_reward(0.6, 0.6, 0.1, "eq3") == pytest.approx(-1.0)


def test_goal_reward_bad_inputs() -> None:
    with pytest.raises(InputValidationError, match="sigma"):
        goal_reward(0.5, 0.5, 0.0)
    with pytest.raises(ConfigError, match="eq4"):
        goal_reward(0.5, 0.5, 0.1, "eq4")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="finite"):
        goal_reward(float("nan"), 0.5, 0.1)


def test_performance_metric_selection() -> None:
    j = np.array([1.0, 0.5])
    f = np.array([0.5, 0.5])
    assert performance(j, f, "J") == pytest.approx(0.75)
    assert performance(j, f, "F") == pytest.approx(0.5)
    assert performance(j, f, "J_AND_F") == pytest.approx(0.625)
    with pytest.raises(ConfigError):
        performance(j, f, "IoU")  # type: ignore[arg-type]


def test_reward_config_validates() -> None:
    with pytest.raises(ConfigError, match="metric"):
        RewardConfig(metric="IoU")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="goal_form"):
        RewardConfig(goal_form="eq9")  # type: ignore[arg-type]


def test_history_counts_and_state_modes() -> None:
    h = history_counts([3, 1, 3], 5)
    np.testing.assert_array_equal(h, [0, 1, 0, 2, 0])
    q = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    both = build_state(q, h, "both")
    assert both.shape == (5, 2) and both.dtype == np.float32
    np.testing.assert_allclose(both[:, 0], q, rtol=1e-6)
    np.testing.assert_array_equal(both[:, 1], h)
    q_only = build_state(q, h, StateMode.Q_ONLY)
    np.testing.assert_array_equal(q_only[:, 1], 0.0)
    np.testing.assert_allclose(q_only[:, 0], q, rtol=1e-6)
    h_only = build_state(q, h, "h_only")
    np.testing.assert_array_equal(h_only[:, 0], 0.0)
    np.testing.assert_array_equal(h_only[:, 1], h)


def test_state_rejects_bad_inputs() -> None:
    with pytest.raises(InputValidationError, match="outside"):
        history_counts([5], 5)
    with pytest.raises(InputValidationError, match=r"\[0, 1\]"):
        build_state(np.array([1.5, 0.0]), np.zeros(2))
    with pytest.raises(ConfigError, match="state_mode"):
        build_state(np.zeros(2), np.zeros(2), "q_and_h")
