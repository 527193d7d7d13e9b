"""A seed ensemble of trained agents: act with the argmax of the MEAN Q of several policy files.

Distilled agents trained with different seeds disagree by up to 0.76 round-AUC points on the same
held-out videos (session 9, 30 videos): one seed's live figure is partly luck. Averaging the seeds'
Q values is the usual cure and costs one extra forward pass per member (the backend's round, not
the network, dominates a step).

The members must see the same observation: the same state mode, state features and horizon
(recorded in each policy file). Mixing them is refused with a :class:`CheckpointError` naming the
files, since a silently different observation per member would make the mean meaningless. With one
file the ensemble is that policy: its Q values are the file's, bit for bit.

It registers as the ``agent_ensemble`` strategy (``configs/strategy/agent_ensemble.yaml``, whose
``path`` is a list of policy files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ivos_rl.agents.qnet import QNetwork
from ivos_rl.agents.strategy import AgentStrategy, read_policy_file
from ivos_rl.data.splits import split_record
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.state import StateMode
from ivos_rl.strategies.base import register_strategy


class MeanQNetwork(nn.Module):
    """Q values (B, N) = the mean over member networks of their Q values; members read the same columns."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one Q-network")
        widths = {getattr(m, "in_features", None) for m in members}
        if len(widths) != 1 or None in widths:
            raise ConfigError(f"ensemble members read different state widths: {sorted(map(str, widths))}")
        self.members = nn.ModuleList(members)
        self.in_features = int(widths.pop())  # type: ignore[arg-type]

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        values = [m(state) for m in self.members]
        if len(values) == 1:
            return values[0]  # one member: its own values, untouched
        return torch.stack(values).mean(dim=0)


def merged_split(records: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The split record of an ensemble: trained on the union of its members' training videos.

    Held out are the videos every recording member held out and none trained on; the seed is kept
    only when all members share it. None when no member records a split (nothing to check against).
    """
    known = [r for r in records if r is not None]
    if not known:
        return None
    train = set().union(*(r["train"] for r in known))
    held = set.intersection(*(set(r["held_out"]) for r in known)) - train
    seeds = {r.get("seed") for r in known}
    return split_record(train, held, seeds.pop() if len(seeds) == 1 else None)


@register_strategy("agent_ensemble")
class AgentEnsembleStrategy(AgentStrategy):
    """argmax_a of the mean Q(s, a) over several policy files (module doc); one file = that agent."""

    @classmethod
    def from_checkpoints(
        cls,
        path: str | os.PathLike[str] | Sequence[str | Path],
        state_mode: StateMode | str | None = None,
        device: str = "cpu",
    ) -> AgentEnsembleStrategy:
        """Load every policy file of ``path`` (one path or a list); mixed observations are refused."""
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        if not paths:
            raise ConfigError("agent_ensemble: path lists no policy file")
        qnets: list[QNetwork] = []
        options: list[dict[str, Any]] = []
        splits: list[dict[str, Any] | None] = []
        for p in paths:
            qnet, opts, split = read_policy_file(p, state_mode, device)
            qnets.append(qnet)
            options.append(opts)
            splits.append(split)
        for p, opt in zip(paths[1:], options[1:], strict=True):
            if opt != options[0]:
                diff = {k: (options[0][k], opt[k]) for k in opt if opt[k] != options[0][k]}
                raise CheckpointError(
                    f"agent_ensemble: {p} and {paths[0]} were trained on different observations "
                    f"({diff}); every member must share state_mode, state_features and horizon"
                )
        net = MeanQNetwork(qnets)
        return cls(net, device=device, split=merged_split(splits), **options[0])  # type: ignore[arg-type]
