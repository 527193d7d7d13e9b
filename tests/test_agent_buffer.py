"""Replay buffer: wrap-around, deterministic sampling, prioritized sampling by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.agents.buffer import (
    DemonstrationBuffer,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SumTree,
    build_buffer,
)
from ivos_rl.errors import CheckpointError, InputValidationError


def _obs(v: float) -> np.ndarray:
    return np.full((4, 2), v, dtype=np.float32)


def _fill(buf: ReplayBuffer, n: int) -> None:
    for i in range(n):
        buf.add(_obs(i), i % 4, float(i), _obs(i + 1), done=(i % 2 == 1))


def test_wrap_around_overwrites_oldest() -> None:
    buf = ReplayBuffer(capacity=3, obs_shape=(4, 2), seed=0)
    _fill(buf, 5)  # rewards 0..4 into slots 0,1,2,0,1
    assert len(buf) == 3 and buf.pos == 2
    np.testing.assert_array_equal(buf.rewards, [3.0, 4.0, 2.0])
    np.testing.assert_array_equal(buf.actions, [3, 0, 2])
    np.testing.assert_array_equal(buf.dones, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(buf.obs[0], _obs(3))
    np.testing.assert_array_equal(buf.next_obs[1], _obs(5))


def test_sampling_is_deterministic_per_seed_and_resumable() -> None:
    a = ReplayBuffer(capacity=8, obs_shape=(4, 2), seed=7)
    b = ReplayBuffer(capacity=8, obs_shape=(4, 2), seed=7)
    _fill(a, 6)
    _fill(b, 6)
    np.testing.assert_array_equal(a.sample(5).indices, b.sample(5).indices)
    state = a.state_dict()
    c = ReplayBuffer(capacity=8, obs_shape=(4, 2), seed=999)
    c.load_state_dict(state)
    x, y = a.sample(16), c.sample(16)
    np.testing.assert_array_equal(x.indices, y.indices)
    np.testing.assert_array_equal(x.rewards, y.rewards)
    np.testing.assert_array_equal(x.obs, y.obs)
    assert x.weights.tolist() == [1.0] * 16


def test_sample_contents_match_slots() -> None:
    buf = ReplayBuffer(capacity=4, obs_shape=(4, 2), seed=1)
    _fill(buf, 4)
    batch = buf.sample(10)
    assert batch.obs.shape == (10, 4, 2) and batch.actions.dtype == np.int64
    np.testing.assert_array_equal(batch.rewards, batch.indices.astype(np.float32))
    np.testing.assert_array_equal(batch.obs[:, 0, 0], batch.indices.astype(np.float32))


def test_bad_inputs() -> None:
    buf = ReplayBuffer(capacity=2, obs_shape=(4, 2))
    with pytest.raises(InputValidationError, match="empty"):
        buf.sample(1)
    with pytest.raises(InputValidationError, match=r"\(5, 2\)"):
        buf.add(np.zeros((5, 2)), 0, 0.0, np.zeros((5, 2)), False)
    with pytest.raises(InputValidationError, match="action 4"):
        buf.add(_obs(0), 4, 0.0, _obs(0), False)
    with pytest.raises(InputValidationError, match="finite"):
        buf.add(_obs(0), 0, float("nan"), _obs(0), False)
    other = ReplayBuffer(capacity=3, obs_shape=(4, 2))
    with pytest.raises(CheckpointError, match="capacity"):
        other.load_state_dict(buf.state_dict())


def test_sum_tree_prefix_queries() -> None:
    tree = SumTree(4)
    tree.update(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert tree.total == 10.0
    found = tree.find(np.array([0.0, 0.99, 1.0, 2.9, 3.0, 5.99, 6.0, 9.99]))
    np.testing.assert_array_equal(found, [0, 0, 1, 1, 2, 2, 3, 3])


def test_prioritized_sampling_and_weights_by_hand() -> None:
    buf = PrioritizedReplayBuffer(capacity=4, obs_shape=(4, 2), seed=0, alpha=1.0, eps=1e-12, beta_start=1.0)
    _fill(buf, 2)
    buf.update_priorities(np.array([0, 1]), np.array([1.0, -3.0]))  # P = [0.25, 0.75]
    # 8 strata of width 0.5 over a mass of 4: the first two fall in slot 0, the rest in slot 1.
    batch = buf.sample(8)
    np.testing.assert_array_equal(batch.indices, [0, 0, 1, 1, 1, 1, 1, 1])
    # w_i = (N P_i)^-1 = [2, 2/3], normalised by the max -> [1, 1/3].
    np.testing.assert_allclose(batch.weights, [1, 1] + [1 / 3] * 6, rtol=1e-6)
    # New transitions enter with the maximum priority seen (3) so they are replayed soon.
    buf.add(_obs(9), 0, 9.0, _obs(9), False)
    assert buf.tree.get(np.array([2]))[0] == pytest.approx(3.0)


def test_prioritized_state_round_trip() -> None:
    a = build_buffer(capacity=6, obs_shape=(4, 2), seed=3, prioritized=True)
    _fill(a, 5)
    a.update_priorities(np.array([1, 3]), np.array([0.5, 2.0]))
    b = build_buffer(capacity=6, obs_shape=(4, 2), seed=0, prioritized=True)
    b.load_state_dict(a.state_dict())
    x, y = a.sample(6), b.sample(6)
    np.testing.assert_array_equal(x.indices, y.indices)
    np.testing.assert_array_equal(x.weights, y.weights)
    with pytest.raises(CheckpointError, match="PrioritizedReplayBuffer"):
        ReplayBuffer(capacity=6, obs_shape=(4, 2)).load_state_dict(a.state_dict())


def test_uniform_buffer_has_no_priorities_or_beta() -> None:
    buf = ReplayBuffer(capacity=4, obs_shape=(4, 2))
    assert not hasattr(buf, "update_priorities") and not hasattr(buf, "beta")
    _fill(buf, 2)
    with pytest.raises(TypeError):
        buf.sample(2, beta=0.5)  # type: ignore[call-arg]


def test_prioritized_buffer_owns_its_beta_schedule() -> None:
    buf = PrioritizedReplayBuffer(
        capacity=4, obs_shape=(4, 2), seed=0, alpha=1.0, eps=1e-12, beta_start=0.0, beta_end=1.0,
        beta_anneal_samples=2,
    )
    _fill(buf, 2)
    buf.update_priorities(np.array([0, 1]), np.array([1.0, -3.0]))  # P = [0.25, 0.75]
    # beta = 0, 0.5, 1, 1 on successive calls; weights (N P)^-beta / max with N P = [0.5, 1.5].
    assert buf.beta == 0.0
    np.testing.assert_allclose(buf.sample(8).weights, [1.0] * 8)
    assert buf.beta == 0.5
    np.testing.assert_allclose(buf.sample(8).weights, [1.0] * 2 + [(1 / 3) ** 0.5] * 6, rtol=1e-6)
    np.testing.assert_allclose(buf.sample(8).weights, [1.0] * 2 + [1 / 3] * 6, rtol=1e-6)
    assert buf.beta == 1.0 and buf.samples_drawn == 3  # stays at beta_end
    # The schedule's position is part of the state; another schedule is refused.
    other = PrioritizedReplayBuffer(capacity=4, obs_shape=(4, 2), alpha=1.0, eps=1e-12, beta_start=0.0,
                                    beta_end=1.0, beta_anneal_samples=2)
    other.load_state_dict(buf.state_dict())
    assert other.beta == 1.0
    with pytest.raises(CheckpointError, match="beta schedule"):
        PrioritizedReplayBuffer(capacity=4, obs_shape=(4, 2), alpha=1.0, eps=1e-12).load_state_dict(
            buf.state_dict()
        )


def test_n_steps_are_stored_and_sampled() -> None:
    buf = ReplayBuffer(capacity=2, obs_shape=(4, 2), seed=0)
    buf.add(_obs(0), 0, 1.0, _obs(1), False, n_steps=1)
    buf.add(_obs(1), 1, 2.0, _obs(3), False, n_steps=3)
    batch = buf.sample(16)
    np.testing.assert_array_equal(batch.n_steps, np.where(batch.indices == 1, 3, 1))
    with pytest.raises(InputValidationError, match="n_steps"):
        buf.add(_obs(0), 0, 1.0, _obs(1), False, n_steps=0)


def test_demonstration_buffer_round_trip() -> None:
    demos = DemonstrationBuffer(capacity=2, obs_shape=(4, 2), seed=5)
    for i in range(3):  # wraps: pairs (1, 1) and (2, 2) remain
        demos.add(_obs(i), i)
    batch = demos.sample(6)
    np.testing.assert_array_equal(batch.obs[:, 0, 0], batch.actions.astype(np.float32))
    assert set(batch.actions.tolist()) <= {1, 2}
    copy = DemonstrationBuffer(capacity=2, obs_shape=(4, 2), seed=0)
    copy.load_state_dict(demos.state_dict())
    np.testing.assert_array_equal(copy.sample(6).actions, demos.sample(6).actions)
    with pytest.raises(InputValidationError, match="action 4"):
        demos.add(_obs(0), 4)
