"""Validation during training: round-AUC of the agent and of Random/Worst on the same episodes.

Each held-out sample (sequence, initial scribble) is played once per policy in an evaluation env
(whole videos, no reward needed). Round 1 is the initial scribble, round k + 1 follows the k-th
recommendation; r_i is the mean over samples of the frame-mean J&F after round i, and the score
is IVOS-W's round-AUC of ``[0, r_1, ..., r_N]`` (:func:`ivos_rl.summary.auc_rounds`). Random and
Worst see exactly the samples the agent sees, so their AUCs are a fair reference for it.

Only the env's public Gymnasium API (``reset(seed, options={"sample": ...})``, ``step``, ``info``)
is used, so the validator does not depend on how the env runs a round internally.
:class:`Validator` caches the reference AUCs (they do not change during training) and carries
them through checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ivos_rl.strategies import RandomStrategy, Strategy, StrategyState, WorstStrategy
from ivos_rl.summary import auc_rounds

Policy = Callable[[np.ndarray, dict[str, Any]], int]


def strategy_policy(strategy: Strategy, horizon: int) -> Policy:
    """Adapt a :class:`~ivos_rl.strategies.Strategy` to the env's (obs, info) -> action form."""

    def act(obs: np.ndarray, info: dict[str, Any]) -> int:
        history = tuple(int(f) for f in info["annotated_frames"])
        state = StrategyState(
            round=len(history),
            n_frames=int(obs.shape[0]),
            history=history,
            quality=np.asarray(info["quality"], dtype=np.float64),
            max_rounds=horizon + 1,
        )
        return int(strategy.select(state))

    return act


def round_curves(
    env: Any,
    policy: Policy,
    samples: list[tuple[str, int]],
    seed: int = 0,
    on_sample: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(S, horizon + 1) frame-mean J&F after each round for every sample."""
    out = np.zeros((len(samples), env.horizon + 1), dtype=np.float64)
    for i, sample in enumerate(samples):
        if on_sample is not None:
            on_sample(i)
        obs, info = env.reset(seed=int(seed) + i, options={"sample": sample})
        out[i, 0] = info["performance"]["J_AND_F"]
        for t in range(env.horizon):
            obs, _, terminated, _, info = env.step(policy(obs, info))
            out[i, t + 1] = info["performance"]["J_AND_F"]
            if terminated:
                break
    return out


def curve_auc(curves: np.ndarray) -> tuple[list[float], float]:
    """Mean curve ``[0, r_1, ..., r_N]`` over samples and its round-AUC."""
    curve = [0.0, *(float(v) for v in curves.mean(axis=0))]
    return curve, auc_rounds(curve)


def reference_curves(env: Any, samples: list[tuple[str, int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Curves of Random (seeded per sample) and Worst (no repeats) on ``samples``."""
    rand = RandomStrategy(seed=int(seed))
    random_policy = strategy_policy(rand, env.horizon)
    worst_policy = strategy_policy(WorstStrategy(), env.horizon)
    return {
        "random": round_curves(env, random_policy, samples, seed, on_sample=lambda i: rand.reset(seed=i)),
        "worst": round_curves(env, worst_policy, samples, seed),
    }


class Validator:
    """Round-AUC of the greedy agent on held-out samples, next to Random and Worst (computed once)."""

    def __init__(self, env: Any, samples: list[tuple[str, int]], seed: int = 0) -> None:
        self.env = env
        self.samples = list(samples)
        self.seed = int(seed)
        self.references: dict[str, float] | None = None

    def __call__(self, greedy: Callable[[np.ndarray], int]) -> dict[str, float]:
        """{"agent": AUC of ``greedy``, "random": ..., "worst": ...} on the held-out samples."""
        agent_curves = round_curves(self.env, lambda obs, _info: greedy(obs), self.samples, self.seed)
        if self.references is None:
            refs = reference_curves(self.env, self.samples, self.seed)
            self.references = {k: curve_auc(v)[1] for k, v in refs.items()}
        return {"agent": curve_auc(agent_curves)[1], **self.references}

    def state_dict(self) -> dict[str, Any]:
        return {"references": self.references}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.references = state["references"]

    def close(self) -> None:
        self.env.close()
