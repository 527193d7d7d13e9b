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

**n-step returns** (optional; n = 1 is the paper). The transition of step t for sub-task T' sums
the sub-task's rewards over the next n steps, R = sum_k gamma^k r_{t+k} (r_aux before T', r_goal
at T' where it ends, done), and otherwise bootstraps from s_{t+n} with gamma^n (``n_steps = n``).
Sub-tasks T' >= t + n see identical n-step transitions, so ``deduplicate`` keeps one of them and
every T' in [t, t + n - 1] (each ends inside the window): with n = 1 that is the list above.
:class:`NStepCollector` emits the transitions of step t online as soon as step t + n - 1 is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    """A replay transition tagged with the step and the sub-task it belongs to.

    ``n_steps`` is the number of env steps from ``obs`` to ``next_obs`` (the bootstrap is
    discounted by gamma^n_steps); ``reward`` is the discounted raw reward sum over those steps.
    """

    obs: np.ndarray
    action: int
    reward: float
    next_obs: np.ndarray
    done: bool
    t: int
    subtask: int
    n_steps: int = 1


def _subtask_transition(window: Sequence[StepRecord], subtask: int, gamma: float) -> Transition:
    """Sub-task ``subtask``'s transition for ``window[0]``'s step over at most len(window) steps."""
    first = window[0]
    reward, discount = 0.0, 1.0
    for k, step in enumerate(window):
        if step.t == subtask:
            reward += discount * step.r_goal
            return Transition(first.obs, first.action, reward, step.next_obs, True, first.t, subtask, k + 1)
        reward += discount * step.r_aux
        discount *= gamma
    n = len(window)
    return Transition(first.obs, first.action, reward, window[-1].next_obs, False, first.t, subtask, n)


def nstep_transitions(
    window: Sequence[StepRecord],
    horizon: int,
    gamma: float = 1.0,
    enabled: bool = True,
    deduplicate: bool = True,
) -> list[Transition]:
    """Transitions of step ``window[0].t`` with n = len(window)-step returns (module docstring).

    ``window`` holds consecutive steps t, t + 1, ...: n of them, or fewer only where the episode
    ends (the last one is then step T). ``gamma`` discounts rewards inside the window.
    """
    if horizon < 1:
        raise InputValidationError(f"horizon must be >= 1, got {horizon}")
    if not window:
        raise InputValidationError("an n-step window needs at least one step")
    t = window[0].t
    for k, step in enumerate(window):
        if not 1 <= step.t <= horizon:
            raise InputValidationError(f"step t={step.t} outside [1, {horizon}]")
        if step.t != t + k:
            raise InputValidationError(f"n-step window steps must be consecutive; got t={step.t} after t={t}")
    if not enabled:
        return [_subtask_transition(window, horizon, gamma)]
    n = len(window)
    subtasks = list(range(t, horizon + 1))
    if deduplicate:
        subtasks = subtasks[: n + 1]  # those ending in the window and one representative of the rest
    return [_subtask_transition(window, s, gamma) for s in subtasks]


def transitions_for_step(
    step: StepRecord, horizon: int, enabled: bool = True, deduplicate: bool = True
) -> list[Transition]:
    """One-step transitions contributed by one step (usable online, as soon as the step is taken)."""
    return nstep_transitions([step], horizon, 1.0, enabled, deduplicate)


class NStepCollector:
    """Turns an episode's steps into n-step transitions online (step t is emitted at step t + n - 1)."""

    def __init__(
        self,
        horizon: int,
        n_step: int = 1,
        gamma: float = 1.0,
        enabled: bool = True,
        deduplicate: bool = True,
    ) -> None:
        if isinstance(n_step, bool) or int(n_step) < 1:
            raise InputValidationError(f"n_step must be an int >= 1, got {n_step!r}")
        self.horizon, self.n, self.gamma = int(horizon), int(n_step), float(gamma)
        self.enabled, self.deduplicate = bool(enabled), bool(deduplicate)
        self._steps: list[StepRecord] = []

    def push(self, step: StepRecord) -> list[Transition]:
        """Record ``step``; return the transitions that became complete (all of them at t = T)."""
        if step.t == 1:
            self._steps = []
        self._steps.append(step)
        ready: list[Transition] = []
        if step.t >= self.horizon:
            first = max(0, len(self._steps) - self.n)
            for i in range(first, len(self._steps)):
                ready += self._emit(i)
            self._steps = []
        elif len(self._steps) >= self.n:
            ready = self._emit(len(self._steps) - self.n)
        return ready

    def _emit(self, i: int) -> list[Transition]:
        window = self._steps[i : i + self.n]
        return nstep_transitions(window, self.horizon, self.gamma, self.enabled, self.deduplicate)


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
