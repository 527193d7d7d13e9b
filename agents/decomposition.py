"""Task decomposition (IVOS-W §3.1, Table 7): one episode of horizon T trains T sub-tasks.

Interactive VOS wants the best masks after *every* interaction, not only after the T-th. The
paper therefore treats the T-step task as T sub-tasks with horizons T' = 1..T; step t (1-based
count of recommendations made) is an intermediate step of every sub-task with T' > t and the
terminal step of the sub-task T' = t. Written out, step t yields for each T' in t..T:

* T' = t (terminal): reward r_goal(P_t; mu_t, sigma_t), where P_t is the performance after t
  recommendations and (mu_t, sigma_t) is the random-policy baseline *for horizon t*; no bootstrap.
* T' > t (intermediate): reward r_aux(a_t), bootstrapped with gamma * Q^T(s_{t+1}, .).

The state carries no notion of T', so the intermediate transitions of one step are identical
for every T' > t. ``deduplicate=True`` (default) stores them once, giving each step exactly one
terminal and (for t < T) one intermediate transition, the same weighting as the reference
implementation, which applies both targets to every stored step. ``deduplicate=False`` keeps the
literal per-(t, T') list, which over-weights early intermediate steps by T - t.

Without decomposition only T' = T is trained: r_aux for t < T and r_goal(P_T; mu_T, sigma_T) at T.
Rewards are raw here; the learner applies delta (Eq. 5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from ivos_rl.errors import InputValidationError


class StepRecord(NamedTuple):
    """What one env step contributes: s_{t-1} -> a_t -> s_t and its two reward terms.

    ``r_goal`` is the goal reward of the performance after this step measured against the
    baseline for horizon ``t`` (i.e. the terminal reward of sub-task T' = t).
    """

    obs: np.ndarray
    action: int
    next_obs: np.ndarray
    t: int
    r_aux: float
    r_goal: float


class Transition(NamedTuple):
    """A replay transition tagged with the step and the sub-task it belongs to."""

    obs: np.ndarray
    action: int
    reward: float
    next_obs: np.ndarray
    done: bool
    t: int
    subtask: int


def transitions_for_step(
    step: StepRecord, horizon: int, enabled: bool = True, deduplicate: bool = True
) -> list[Transition]:
    """Transitions contributed by one step (usable online, as soon as the step is taken)."""
    if horizon < 1:
        raise InputValidationError(f"horizon must be >= 1, got {horizon}")
    if not 1 <= step.t <= horizon:
        raise InputValidationError(f"step t={step.t} outside [1, {horizon}]")

    def make(subtask: int) -> Transition:
        done = subtask == step.t
        reward = step.r_goal if done else step.r_aux
        return Transition(step.obs, step.action, float(reward), step.next_obs, done, step.t, subtask)

    if not enabled:
        return [make(horizon)]
    subtasks = list(range(step.t, horizon + 1))
    if deduplicate:
        subtasks = subtasks[:2]  # the terminal one and, if any, one representative intermediate
    return [make(s) for s in subtasks]


def decompose_episode(
    steps: Iterable[StepRecord], horizon: int, enabled: bool = True, deduplicate: bool = True
) -> list[Transition]:
    """All transitions of an episode, in step order (see the module docstring)."""
    out: list[Transition] = []
    for expected_t, step in enumerate(steps, start=1):
        if step.t != expected_t:
            raise InputValidationError(f"episode steps must be t = 1, 2, ...; got t={step.t} at {expected_t}")
        out.extend(transitions_for_step(step, horizon, enabled, deduplicate))
    return out
