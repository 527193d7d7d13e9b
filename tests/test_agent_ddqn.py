"""Double-DQN target (Eq. 5) and update (Eq. 6) on a toy batch computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ivos_rl.agents.buffer import Batch, DemoBatch
from ivos_rl.agents.ddqn import DDQNLearner, large_margin_loss
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.errors import ConfigError


class PerFrameLinear(nn.Module):
    """Q(s)_i = v_i * q_i: a Q-function whose values are trivial to compute by hand."""

    def __init__(self, v: list[float]) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.tensor(v))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.v * state[..., 0]


def _batch(rewards: list[float], dones: list[float], n_steps: list[int] | None = None) -> Batch:
    b = len(rewards)
    obs = np.zeros((b, 3, 2), dtype=np.float32)
    obs[:, :, 0] = [0.2, 0.4, 0.6]
    next_obs = np.zeros((b, 3, 2), dtype=np.float32)
    next_obs[:, :, 0] = [0.1, 0.5, 0.3]
    return Batch(
        obs=obs,
        actions=np.array([2] * b, dtype=np.int64),
        rewards=np.array(rewards, dtype=np.float32),
        next_obs=next_obs,
        dones=np.array(dones, dtype=np.float32),
        n_steps=np.array(n_steps or [1] * b, dtype=np.int64),
        weights=np.ones(b, dtype=np.float32),
        indices=np.arange(b),
    )


def _learner(**kw: object) -> DDQNLearner:
    learner = DDQNLearner(PerFrameLinear([1.0, 1.0, 1.0]), **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        learner.target.v.copy_(torch.tensor([10.0, 1.0, 1.0]))
    return learner


def test_target_double_vs_plain_by_hand() -> None:
    learner = _learner()
    batch = _batch(rewards=[1.0, -2.0], dones=[0.0, 1.0])
    nxt = torch.as_tensor(batch.next_obs)
    # Policy Q(s') = [0.1, 0.5, 0.3] -> a' = 1; target Q(s') = [1.0, 0.5, 0.3].
    # _target_q is the bootstrap alone: double Q^T(s', 1) = 0.5; plain max_a Q^T(s', a) = 1.0.
    torch.testing.assert_close(learner._target_q(nxt, is_double=True), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(learner._target_q(nxt, is_double=False), torch.tensor([1.0, 1.0]))
    # Eq. 5: 0.1 * 1 + 0.95 * 0.5 = 0.575; terminal: 0.1 * -2 = -0.2 (no bootstrap).
    torch.testing.assert_close(learner.targets(batch), torch.tensor([0.575, -0.2]))
    plain = _learner(is_double=False)
    torch.testing.assert_close(plain.targets(batch), torch.tensor([1.05, -0.2]))  # 0.1 + 0.95 * 1.0


def test_n_step_target_by_hand() -> None:
    learner = _learner(gamma=0.5)
    # A 3-step transition whose raw reward sum is R = 1 + 0.5 * 2 + 0.25 * 4 = 3 (built by the
    # collector): y = 0.1 * 3 + 0.5^3 * Q^T(s', 1) = 0.3 + 0.125 * 0.5 = 0.3625; one step: 0.3 + 0.25.
    batch = _batch(rewards=[3.0, 3.0, 3.0], dones=[0.0, 0.0, 1.0], n_steps=[3, 1, 3])
    torch.testing.assert_close(learner.targets(batch), torch.tensor([0.3625, 0.55, 0.3]))


def test_large_margin_loss_by_hand() -> None:
    q = torch.tensor([[1.0, 0.5, 0.2], [0.0, 2.0, 1.95]])
    # Row 0, expert a=0: max(1 + 0, 0.5 + 0.8, 0.2 + 0.8) - 1 = 1.3 - 1 = 0.3.
    # Row 1, expert a=1 beats the others by >= 0.05 only: max(0.8, 2.0, 2.75) - 2.0 = 0.75.
    out = large_margin_loss(q, torch.tensor([0, 1]), margin=0.8)
    torch.testing.assert_close(out, torch.tensor([0.3, 0.75]))
    # Zero once the expert's action leads by the margin.
    assert large_margin_loss(q, torch.tensor([1]).repeat(2), margin=0.0)[1].item() == 0.0


def test_update_adds_weighted_margin_loss() -> None:
    learner = _learner(lr=1e-3, grad_clip_value=None, demo_margin=0.8, demo_weight=0.5)
    demo_obs = np.zeros((1, 3, 2), dtype=np.float32)
    demo_obs[0, :, 0] = [1.0, 0.5, 0.2]  # Q = v * q = [1.0, 0.5, 0.2]; expert a=0 -> margin loss 0.3
    demos = DemoBatch(obs=demo_obs, actions=np.array([0]))
    out = learner.update(_batch(rewards=[1.0, -2.0], dones=[0.0, 1.0]), demos)
    td_loss = ((0.6 - 0.575) ** 2 + (0.6 + 0.2) ** 2) / 2
    assert out["demo_loss"] == pytest.approx(0.3, rel=1e-6)
    assert out["loss"] == pytest.approx(td_loss + 0.5 * 0.3, rel=1e-6)


def test_update_loss_is_mse_to_target() -> None:
    learner = _learner(lr=1e-3, grad_clip_value=None)
    out = learner.update(_batch(rewards=[1.0, -2.0], dones=[0.0, 1.0]))
    # Q(s, a=2) = 0.6 before the step; targets 0.575 and -0.2.
    expected = ((0.6 - 0.575) ** 2 + (0.6 + 0.2) ** 2) / 2
    assert out["loss"] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(out["td_errors"], [0.025, 0.8], rtol=1e-5)
    # Only v_2 gets a gradient (the action taken); Adam's first step moves it by ~lr.
    assert learner.policy.v[2].item() == pytest.approx(1.0 - 1e-3, rel=1e-4)
    assert learner.policy.v[0].item() == 1.0


def test_hard_target_update_every_k_steps() -> None:
    learner = _learner(lr=1e-2, target_update="hard", target_update_interval=3)
    batch = _batch(rewards=[1.0], dones=[0.0])
    learner.update(batch)
    learner.update(batch)
    assert learner.target.v[0].item() == 10.0  # untouched before the 3rd step
    learner.update(batch)
    torch.testing.assert_close(learner.target.v, learner.policy.v)


def test_soft_target_update() -> None:
    learner = _learner(lr=1e-2, target_update="soft", tau=0.5)
    learner.update(_batch(rewards=[1.0], dones=[1.0]))
    # target = 0.5 * old target + 0.5 * new policy
    expected = 0.5 * torch.tensor([10.0, 1.0, 1.0]) + 0.5 * learner.policy.v.detach()
    torch.testing.assert_close(learner.target.v, expected)


def test_updates_are_deterministic_on_cpu() -> None:
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        learner = DDQNLearner(QNetwork("bilstm", hidden=16, decoder_hidden=8), lr=1e-3)
        rng = np.random.default_rng(0)
        for _ in range(3):
            b = Batch(
                obs=rng.random((4, 5, 2), dtype=np.float32),
                actions=rng.integers(0, 5, 4),
                rewards=rng.standard_normal(4).astype(np.float32),
                next_obs=rng.random((4, 5, 2), dtype=np.float32),
                dones=(rng.random(4) < 0.5).astype(np.float32),
                n_steps=np.ones(4, dtype=np.int64),
                weights=np.ones(4, dtype=np.float32),
                indices=np.arange(4),
            )
            learner.update(b)
        return learner.policy.state_dict()

    a, b = run(), run()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_bad_hyperparameters() -> None:
    with pytest.raises(ConfigError, match="gamma"):
        DDQNLearner(PerFrameLinear([1.0]), gamma=1.5)
    with pytest.raises(ConfigError, match="target_update"):
        DDQNLearner(PerFrameLinear([1.0]), target_update="random")  # type: ignore[arg-type]
