"""Double-DQN learner (IVOS-W Eq. 5-6), with optional n-step returns and a DQfD margin loss.

Target for a transition (s_t, a_t, R, s_{t+n}, done) where R is the (discounted) raw reward sum
over the n steps (n = 1 in the paper: R = r_t, s_{t+n} = s_{t+1}):

    y = delta * R                                                 if done   (r = r_goal at the end)
    y = delta * R + gamma^n * Q^T(s_{t+n}, argmax_a Q^P(s_{t+n}, a))   otherwise

with delta = 0.1 and gamma = 0.95: the policy net chooses the next action and the target net
evaluates it (van Hasselt et al.). :meth:`DDQNLearner._target_q` computes only the bootstrap
value Q^T(s', a'); ``is_double=False`` makes it the plain DQN ``max_a Q^T(s', a)`` for comparison.
The loss is the (importance-weighted) MSE between Q^P(s_t, a_t) and y, plus, when a batch of
demonstrations is given and ``demo_weight > 0``, ``demo_weight`` times the mean large-margin loss
of DQfD (Hester et al., 2018): max_a [Q(s, a) + margin * (a != a_E)] - Q(s, a_E). The target
net follows the policy on a fixed schedule (hard copy every K learner steps, or Polyak averaging
with tau after every step) so runs are reproducible; the reference's random-probability copy is
deliberately not reproduced.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ivos_rl.agents.buffer import Batch, DemoBatch
from ivos_rl.errors import CheckpointError, ConfigError

TargetUpdate = Literal["hard", "soft"]


def large_margin_loss(q: torch.Tensor, expert_actions: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-sample DQfD margin loss max_a [Q(s, a) + l(a_E, a)] - Q(s, a_E), l = margin off a_E.

    Zero exactly when the expert's action beats every other action by at least ``margin``.
    """
    penalty = torch.full_like(q, float(margin))
    penalty.scatter_(1, expert_actions.unsqueeze(1), 0.0)
    q_expert = q.gather(1, expert_actions.unsqueeze(1)).squeeze(1)
    return (q + penalty).max(dim=1).values - q_expert


class DDQNLearner:
    """Owns the policy/target pair and the optimiser; one :meth:`update` per minibatch."""

    def __init__(
        self,
        policy: nn.Module,
        *,
        lr: float = 5e-6,
        gamma: float = 0.95,
        delta: float = 0.1,
        is_double: bool = True,
        target_update: TargetUpdate = "hard",
        target_update_interval: int = 100,
        tau: float = 0.005,
        grad_clip_value: float | None = 1.0,
        weight_decay: float = 0.0,
        demo_margin: float = 0.1,
        demo_weight: float = 0.0,
        device: str | torch.device = "cpu",
    ) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ConfigError(f"gamma must be in [0, 1], got {gamma}")
        if delta <= 0.0:
            raise ConfigError(f"delta (reward scale) must be > 0, got {delta}")
        if lr <= 0.0:
            raise ConfigError(f"lr must be > 0, got {lr}")
        if target_update not in ("hard", "soft"):
            raise ConfigError(f"target_update must be 'hard' or 'soft', got {target_update!r}")
        if target_update == "hard" and int(target_update_interval) < 1:
            raise ConfigError(f"target_update_interval must be >= 1, got {target_update_interval}")
        if target_update == "soft" and not 0.0 < tau <= 1.0:
            raise ConfigError(f"tau must be in (0, 1], got {tau}")
        if grad_clip_value is not None and grad_clip_value <= 0.0:
            raise ConfigError(f"grad_clip_value must be > 0 or None, got {grad_clip_value}")
        if demo_margin < 0.0 or demo_weight < 0.0:
            raise ConfigError(f"demo_margin and demo_weight must be >= 0, got {demo_margin} / {demo_weight}")
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        self.target = copy.deepcopy(policy).to(self.device)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr, weight_decay=weight_decay)
        self.gamma = float(gamma)
        self.delta = float(delta)
        self.is_double = bool(is_double)
        self.demo_margin = float(demo_margin)
        self.demo_weight = float(demo_weight)
        self.target_update = target_update
        self.target_update_interval = int(target_update_interval)
        self.tau = float(tau)
        self.grad_clip_value = grad_clip_value
        self.steps = 0

    def _tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

    @torch.no_grad()
    def _target_q(self, next_obs: torch.Tensor, is_double: bool) -> torch.Tensor:
        """The bootstrap value Q^T(s', a') alone: a' = argmax Q^P(s', .) (double) or argmax Q^T."""
        q_next_target = self.target(next_obs)
        if is_double:
            next_actions = self.policy(next_obs).argmax(dim=1, keepdim=True)
            return q_next_target.gather(1, next_actions).squeeze(1)
        return q_next_target.max(dim=1).values

    def targets(self, batch: Batch) -> torch.Tensor:
        """Eq. 5: delta * R (+ gamma^n * bootstrap when the transition is not terminal)."""
        rewards = self._tensor(batch.rewards)
        dones = self._tensor(batch.dones)
        discount = self._tensor(self.gamma ** np.asarray(batch.n_steps, dtype=np.float64))
        bootstrap = self._target_q(self._tensor(batch.next_obs), self.is_double)
        return self.delta * rewards + (1.0 - dones) * discount * bootstrap

    def update(self, batch: Batch, demos: DemoBatch | None = None) -> dict[str, Any]:
        """One gradient step on ``batch`` (+ the margin loss on ``demos``); returns losses and TD errors."""
        obs = self._tensor(batch.obs)
        actions = self._tensor(batch.actions, torch.int64)
        weights = self._tensor(batch.weights)
        target = self.targets(batch)
        q = self.policy(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        td = q - target
        loss = (weights * td.pow(2)).mean()
        demo_loss = torch.zeros(())
        if demos is not None and self.demo_weight > 0.0:
            q_demo = self.policy(self._tensor(demos.obs))
            demo_loss = large_margin_loss(q_demo, self._tensor(demos.actions, torch.int64), self.demo_margin)
            demo_loss = demo_loss.mean()
            loss = loss + self.demo_weight * demo_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip_value is not None:
            nn.utils.clip_grad_value_(self.policy.parameters(), self.grad_clip_value)
        self.optimizer.step()
        self.steps += 1
        self._maybe_update_target()
        return {
            "loss": float(loss.item()),
            "td_errors": td.detach().cpu().numpy(),
            "q_mean": float(q.detach().mean()),
            "demo_loss": float(demo_loss.item()),
        }

    def _maybe_update_target(self) -> None:
        if self.target_update == "hard":
            if self.steps % self.target_update_interval == 0:
                self.target.load_state_dict(self.policy.state_dict())
            return
        with torch.no_grad():
            for p_t, p in zip(self.target.parameters(), self.policy.parameters(), strict=True):
                p_t.mul_(1.0 - self.tau).add_(p, alpha=self.tau)

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.policy.load_state_dict(state["policy"])
            self.target.load_state_dict(state["target"])
        except (KeyError, RuntimeError) as err:
            raise CheckpointError(f"learner checkpoint does not match the Q-network: {err}") from err
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
