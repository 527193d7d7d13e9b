"""Epsilon schedule values and epsilon-greedy determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ivos_rl.agents.actor import EpsilonGreedyActor, EpsilonSchedule
from ivos_rl.errors import ConfigError


class FixedQ(nn.Module):
    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return state[..., 0]


def test_geometric_schedule_values() -> None:
    s = EpsilonSchedule(0.7, 0.25, 5000)
    assert s(0) == pytest.approx(0.7)
    assert s(2500) == pytest.approx(math.sqrt(0.7 * 0.25))  # geometric midpoint 0.41833
    assert s(5000) == pytest.approx(0.25)
    assert s(20000) == pytest.approx(0.25)


def test_reference_schedule_values() -> None:
    s = EpsilonSchedule(0.7, 0.25, 5000, kind="reference")
    assert s(0) == pytest.approx(0.7)
    assert s(10000) == pytest.approx(0.25 + 0.45 * math.exp(-1.0))


def test_bad_schedule() -> None:
    with pytest.raises(ConfigError, match="decay_steps"):
        EpsilonSchedule(decay_steps=0)


def test_greedy_and_seeded_exploration() -> None:
    obs = np.zeros((5, 2), dtype=np.float32)
    obs[3, 0] = 1.0
    actor = EpsilonGreedyActor(FixedQ(), EpsilonSchedule(0.5, 0.5, 1), seed=0)
    assert actor.act(obs, step=0, explore=False) == (3, 0.0)
    runs = []
    for _ in range(2):
        act = EpsilonGreedyActor(FixedQ(), EpsilonSchedule(0.5, 0.5, 1), seed=11)
        runs.append([act.act(obs, k)[0] for k in range(200)])
    assert runs[0] == runs[1]
    greedy_share = np.mean(np.array(runs[0]) == 3)
    # P(action 3) = 0.5 + 0.5 / 5 = 0.6
    assert 0.5 < greedy_share < 0.7
    assert set(runs[0]) == {0, 1, 2, 3, 4}
