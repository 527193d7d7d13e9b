"""Agent: the trained Q-network picks the frame with the highest Q value (IVOS-W's "Ours").

The state is the paper's (q, h) per frame (Eq. 1): q is the true J&F in the Oracle setting and
the quality net's estimate in the Wild setting (the evaluation decides which one to pass), h
counts how often each frame was annotated. A policy trained with extra per-frame features
(:mod:`ivos_rl.state_features`) records them in its file; the strategy then rebuilds exactly the
training observation from what every strategy may see (history, quality and the backend's
probabilities, masks = :func:`~ivos_rl.backends.base.labels_from_probs`). The Q-network is
length-agnostic, so whole videos are scored directly.

This adaptor lives with the agent, not in :mod:`ivos_rl.strategies`: the agent package uses the
strategies (Random and Worst are its validation references), so the strategies must not import the
agent back. It registers as the ``agent`` strategy when imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos_rl.agents.checkpoint import load_policy
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.backends.base import labels_from_probs
from ivos_rl.data.splits import SPLIT_KEY, read_split_record
from ivos_rl.errors import CheckpointError, ConfigError, InputValidationError
from ivos_rl.state import StateMode, build_state, history_counts
from ivos_rl.state_features import StateFeatures
from ivos_rl.strategies.base import Strategy, StrategyState, register_strategy


@register_strategy("agent")
class AgentStrategy(Strategy):
    """argmax_a Q(s, a) of a trained policy; ``state_mode`` must match the checkpoint's.

    ``state_features`` (group names, see :mod:`ivos_rl.state_features`) and ``horizon`` (the
    recommendation budget the ``round`` group divides by) must be the ones the policy was trained
    with; :meth:`from_checkpoint` reads both from the policy file. The ``uncertainty`` group reads
    ``StrategyState.uncertainty`` (what the env's observation holds too).
    """

    needs_quality = True

    def __init__(
        self,
        qnet: QNetwork,
        state_mode: StateMode | str = StateMode.BOTH,
        device: str | torch.device = "cpu",
        split: dict[str, Any] | None = None,
        state_features: Sequence[str] | StateFeatures | None = None,
        horizon: int = 7,
    ) -> None:
        self.features = StateFeatures.parse(state_features)
        width = 2 + self.features.width
        if getattr(qnet, "in_features", width) != width:
            raise ConfigError(
                f"the Q-network reads {qnet.in_features} columns but state (q, h) + "
                f"{list(self.features.groups)} has {width}"
            )
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ConfigError(f"horizon must be an int >= 1, got {horizon!r}")
        self.horizon = int(horizon)
        self.qnet = qnet.to(device).eval()
        self.state_mode = StateMode.parse(state_mode)
        self.device = torch.device(device)
        self.last_q_values: np.ndarray | None = None
        # The backend's probabilities are only read (and passed by the evaluation) for output features.
        self.needs_probs = bool(self.features.output_groups)
        # The videos the policy was trained on (ivos_rl.data.splits.split_record), None if its file
        # does not record them: results on its training videos are not held-out results.
        self.split = split

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, state_mode: StateMode | str | None = None, device: str = "cpu"
    ) -> AgentStrategy:
        """Load a policy file; a ``state_mode`` that differs from the trained one is refused."""
        qnet, options, split = read_policy_file(path, state_mode, device)
        return cls(qnet, device=device, split=split, **options)

    def observation(self, state: StrategyState) -> np.ndarray:
        """The (N, 2 + width) observation the policy was trained on, from what the strategy sees."""
        q = state.require_quality(self.name)
        obs = build_state(q, history_counts(list(state.history), state.n_frames), self.state_mode)
        if not self.features.groups:
            return obs  # the paper's (q, h), unchanged
        columns = None
        if self.needs_probs:
            if state.probs is None:
                raise InputValidationError(
                    f"agent with state features {list(self.features.groups)} needs the backend's "
                    "probabilities"
                )
            columns = self.features.from_output(
                state.probs, labels_from_probs(state.probs), uncertainty=state.uncertainty,
                diagnostics=state.diagnostics,
            )
        return self.features.extend(obs, list(state.history), self.horizon, columns)

    def q_values(self, state: StrategyState) -> np.ndarray:
        """Q value of annotating each frame next, shape (N,)."""
        obs = self.observation(state)
        with torch.inference_mode():
            values = self.qnet(torch.from_numpy(obs).to(self.device).unsqueeze(0))[0]
        return values.cpu().numpy().astype(np.float64)

    def select(self, state: StrategyState) -> int:
        values = self.q_values(state)
        self.last_q_values = values
        return int(np.argmax(values))


def read_policy_file(
    path: str | Path | None, state_mode: StateMode | str | None = None, device: str = "cpu"
) -> tuple[QNetwork, dict[str, Any], dict[str, Any] | None]:
    """(Q-network, :func:`policy_state_options`, split record) of one policy file; CheckpointError
    when it is missing. Shared by a single agent and every member of an ensemble."""
    if path is None or not Path(path).is_file():
        raise CheckpointError(f"agent checkpoint not found: {path}")
    qnet, meta = load_policy(path, state_mode=state_mode, device=device)
    return qnet, policy_state_options(meta, path), read_split_record(meta.get(SPLIT_KEY), str(path))


def policy_state_options(meta: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``state_mode``, ``state_features`` and ``horizon`` recorded in a policy file's meta.

    Files written before features existed record none: they are the paper's (q, h) agents.
    """
    if "state_mode" not in meta:
        raise CheckpointError(f"policy {path} records no state_mode")
    features = meta.get("state_features") or []
    horizon = meta.get("horizon", 7)
    if features and "horizon" not in meta:
        raise CheckpointError(f"policy {path} has state features {features} but records no horizon")
    return {"state_mode": str(meta["state_mode"]), "state_features": list(features), "horizon": int(horizon)}
