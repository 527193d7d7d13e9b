"""Acting: epsilon-greedy frame choice with an exponentially decaying epsilon (§4.2).

The paper decays epsilon "from 0.7 to 0.25 over 5000 steps exponentially". We read that as a
geometric interpolation that reaches the end value exactly at ``decay_steps`` and stays there:

    eps(k) = start * (end / start) ** (min(k, decay_steps) / decay_steps)

(the reference code instead uses ``end + (start - end) * exp(-k / (2 * decay))``, which never quite
reaches ``end``; ``kind="reference"`` reproduces it). The actor draws from its own generator so
that acting does not consume the replay buffer's or the environment's random streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ivos_rl.errors import ConfigError, InputValidationError


@dataclass(frozen=True)
class EpsilonSchedule:
    """epsilon as a function of the number of agent steps taken so far."""

    start: float = 0.7
    end: float = 0.25
    decay_steps: int = 5000
    kind: Literal["geometric", "reference"] = "geometric"

    def __post_init__(self) -> None:
        if not (0.0 < self.end <= 1.0 and 0.0 < self.start <= 1.0):
            raise ConfigError(f"epsilon start/end must be in (0, 1], got {self.start}/{self.end}")
        if self.decay_steps < 1:
            raise ConfigError(f"epsilon decay_steps must be >= 1, got {self.decay_steps}")
        if self.kind not in ("geometric", "reference"):
            raise ConfigError(f"epsilon kind must be 'geometric' or 'reference', got {self.kind!r}")

    def __call__(self, step: int) -> float:
        if step < 0:
            raise InputValidationError(f"epsilon step must be >= 0, got {step}")
        if self.kind == "reference":
            return self.end + (self.start - self.end) * math.exp(-0.5 * step / self.decay_steps)
        frac = min(step, self.decay_steps) / self.decay_steps
        return float(self.start * (self.end / self.start) ** frac)


class EpsilonGreedyActor:
    """Greedy on the Q-network with probability 1 - eps, uniform over frames otherwise."""

    def __init__(
        self,
        qnet: nn.Module,
        schedule: EpsilonSchedule | None = None,
        seed: int | np.random.Generator = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.qnet = qnet
        self.schedule = schedule or EpsilonSchedule()
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.device = torch.device(device)

    @torch.no_grad()
    def greedy(self, obs: np.ndarray) -> int:
        """argmax_a Q(obs, a) for one (N, 2) state; the first maximum wins ties."""
        q = self.qnet(torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device).unsqueeze(0))
        return int(q[0].argmax().item())

    def act(self, obs: np.ndarray, step: int, explore: bool = True) -> tuple[int, float]:
        """Return (action, epsilon used). ``explore=False`` is the deterministic greedy policy."""
        n = int(np.shape(obs)[0])
        if n < 1:
            raise InputValidationError(f"observation has no frames: shape {np.shape(obs)}")
        if not explore:
            return self.greedy(obs), 0.0
        eps = self.schedule(step)
        if self.rng.random() < eps:
            return int(self.rng.integers(n)), eps
        return self.greedy(obs), eps

    def random_action(self, n_frames: int) -> int:
        """Uniform action for the random warm-up that fills the buffer before learning."""
        return int(self.rng.integers(n_frames))

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
