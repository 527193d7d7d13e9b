"""Double-DQN learner (IVOS-W Eq. 5-6).

Target for a transition (s_t, a_t, r_t, s_{t+1}, done):

    y = delta * r_t                                              if done   (t = T, r = r_goal)
    y = delta * r_t + gamma * Q^T(s_{t+1}, argmax_a Q^P(s_{t+1}, a))   otherwise (r = r_aux)

with delta = 0.1 and gamma = 0.95: the policy net chooses the next action and the target net
evaluates it (van Hasselt et al.). ``is_double=False`` gives the plain DQN target
``max_a Q^T(s_{t+1}, a)`` for comparison. The loss is the (importance-weighted) MSE between
Q^P(s_t, a_t) and y. The target net follows the policy on a fixed schedule (hard copy every K
learner steps, or Polyak averaging with tau after every step) so runs are reproducible; the
reference's random-probability copy is deliberately not reproduced.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ivos_rl.agents.buffer import Batch
from ivos_rl.errors import CheckpointError, ConfigError

TargetUpdate = Literal["hard", "soft"]


class DDQNLearner:
    """Owns the policy/target pair and the optimiser; one :meth:`update` per minibatch."""

    def __init__(
        self,
        policy: nn.Module,
        *,
        lr: float = 5e-6,
        gamma: float = 0.95,
        delta: float = 0.1,
        double: bool = True,
        target_update: TargetUpdate = "hard",
        target_update_interval: int = 100,
        tau: float = 0.005,
        grad_clip_value: float | None = 1.0,
        weight_decay: float = 0.0,
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
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        self.target = copy.deepcopy(policy).to(self.device)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr, weight_decay=weight_decay)
        self.gamma = float(gamma)
        self.delta = float(delta)
        self.double = bool(double)
        self.target_update = target_update
        self.target_update_interval = int(target_update_interval)
        self.tau = float(tau)
        self.grad_clip_value = grad_clip_value
        self.steps = 0

    def _tensor(self, x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

    @torch.no_grad()
    def _target_q(
        self, rewards: torch.Tensor, dones: torch.Tensor, next_obs: torch.Tensor, is_double: bool
    ) -> torch.Tensor:
        """Eq. 5: delta * r (+ gamma * bootstrapped value when the transition is not terminal)."""
        q_next_target = self.target(next_obs)
        if is_double:
            next_actions = self.policy(next_obs).argmax(dim=1, keepdim=True)
            bootstrap = q_next_target.gather(1, next_actions).squeeze(1)
        else:
            bootstrap = q_next_target.max(dim=1).values
        return self.delta * rewards + (1.0 - dones) * self.gamma * bootstrap

    def update(self, batch: Batch) -> dict[str, Any]:
        """One gradient step on ``batch``; returns the loss and per-sample TD errors."""
        obs = self._tensor(batch.obs)
        next_obs = self._tensor(batch.next_obs)
        actions = self._tensor(batch.actions, torch.int64)
        rewards = self._tensor(batch.rewards)
        dones = self._tensor(batch.dones)
        weights = self._tensor(batch.weights)
        target = self._target_q(rewards, dones, next_obs, self.double)
        q = self.policy(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        td = q - target
        loss = (weights * td.pow(2)).mean()
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
