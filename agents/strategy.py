"""Agent: the trained Q-network picks the frame with the highest Q value (IVOS-W's "Ours").

The state is the paper's (q, h) per frame (Eq. 1): q is the true J&F in the Oracle setting and
the quality net's estimate in the Wild setting (the evaluation decides which one to pass), h
counts how often each frame was annotated. The Q-network is length-agnostic, so whole videos
are scored directly.

This adaptor lives with the agent, not in :mod:`ivos_rl.strategies`: the agent package uses the
strategies (Random and Worst are its validation references), so the strategies must not import the
agent back. It registers as the ``agent`` strategy when imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos_rl.agents.checkpoint import load_policy
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.data.splits import SPLIT_KEY, read_split_record
from ivos_rl.errors import CheckpointError
from ivos_rl.state import StateMode, build_state, history_counts
from ivos_rl.strategies.base import Strategy, StrategyState, register_strategy


@register_strategy("agent")
class AgentStrategy(Strategy):
    """argmax_a Q(s, a) of a trained policy; ``state_mode`` must match the checkpoint's."""

    needs_quality = True

    def __init__(
        self,
        qnet: QNetwork,
        state_mode: StateMode | str = StateMode.BOTH,
        device: str | torch.device = "cpu",
        split: dict[str, Any] | None = None,
    ) -> None:
        self.qnet = qnet.to(device).eval()
        self.state_mode = StateMode.parse(state_mode)
        self.device = torch.device(device)
        self.last_q_values: np.ndarray | None = None
        # The videos the policy was trained on (ivos_rl.data.splits.split_record), None if its file
        # does not record them: results on its training videos are not held-out results.
        self.split = split

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, state_mode: StateMode | str | None = None, device: str = "cpu"
    ) -> AgentStrategy:
        """Load a policy file; a ``state_mode`` that differs from the trained one is refused."""
        if path is None or not Path(path).is_file():
            raise CheckpointError(f"agent checkpoint not found: {path}")
        qnet, meta = load_policy(path, state_mode=state_mode, device=device)
        split = read_split_record(meta.get(SPLIT_KEY), str(path))
        return cls(qnet, state_mode=meta["state_mode"], device=device, split=split)

    def q_values(self, state: StrategyState) -> np.ndarray:
        """Q value of annotating each frame next, shape (N,)."""
        q = state.require_quality(self.name)
        obs = build_state(q, history_counts(list(state.history), state.n_frames), self.state_mode)
        with torch.inference_mode():
            values = self.qnet(torch.from_numpy(obs).to(self.device).unsqueeze(0))[0]
        return values.cpu().numpy().astype(np.float64)

    def select(self, state: StrategyState) -> int:
        values = self.q_values(state)
        self.last_q_values = values
        return int(np.argmax(values))
