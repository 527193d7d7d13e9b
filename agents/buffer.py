"""Experience replay: preallocated arrays, its own random generator, NamedTuple batches.

States have a fixed shape (N', 2): training uses N'-frame subsequences (§3.3) so every
transition fits one preallocated slot; an observation of another length is refused rather than
padded. The buffer draws samples with its own ``np.random.Generator`` whose state is part of
``state_dict()``, so a resumed run samples exactly what an uninterrupted one would.

``PrioritizedReplayBuffer`` implements proportional prioritisation (Schaul et al., 2016) on a
sum-tree: P(i) = p_i^alpha / sum_k p_k^alpha, stratified sampling over the priority mass, and
importance weights (N P(i))^-beta normalised by the largest weight in the batch. The buffer owns
``beta`` and its schedule (linear from ``beta_start`` to ``beta_end`` over ``beta_anneal_samples``
calls to :meth:`~PrioritizedReplayBuffer.sample`, Schaul et al. §3.4), so the training loop never
passes it; the uniform buffer has neither ``beta`` nor priorities.

A transition may bootstrap several steps ahead (n-step returns): ``n_steps`` records how far, so
the learner discounts the bootstrap by gamma^n_steps. :class:`DemonstrationBuffer` holds expert
(state, action) pairs for the large-margin loss (DQfD) and samples them with its own generator.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ivos_rl.errors import CheckpointError, ConfigError, InputValidationError

PAPER_CAPACITY = 5760


class Batch(NamedTuple):
    """A sampled minibatch; ``weights`` are importance weights (ones for uniform replay)."""

    obs: np.ndarray  # (B, N, 2) float32
    actions: np.ndarray  # (B,) int64
    rewards: np.ndarray  # (B,) float32, raw (unscaled) rewards
    next_obs: np.ndarray  # (B, N, 2) float32
    dones: np.ndarray  # (B,) float32, 1.0 where the transition is terminal
    n_steps: np.ndarray  # (B,) int64, env steps between obs and next_obs (bootstrap gamma^n_steps)
    weights: np.ndarray  # (B,) float32
    indices: np.ndarray  # (B,) int64 slots, for priority updates


def _make_rng(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"buffer seed must be a non-negative int or a Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


class ReplayBuffer:
    """Uniform ring buffer of (s, a, r, s', done) with a fixed observation shape."""

    def __init__(
        self,
        capacity: int = PAPER_CAPACITY,
        obs_shape: tuple[int, ...] = (25, 2),
        seed: int | np.random.Generator = 0,
    ) -> None:
        if int(capacity) < 1:
            raise ConfigError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.rng = _make_rng(seed)
        self.obs = np.zeros((self.capacity, *self.obs_shape), dtype=np.float32)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.n_steps = np.ones(self.capacity, dtype=np.int64)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _check(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray) -> None:
        for name, arr in (("obs", obs), ("next_obs", next_obs)):
            if np.shape(arr) != self.obs_shape:
                raise InputValidationError(
                    f"replay buffer holds observations of shape {self.obs_shape}, got {name} "
                    f"{np.shape(arr)} (variable-length states must be cut to the training length)"
                )
        if not 0 <= int(action) < self.obs_shape[0]:
            raise InputValidationError(f"action {action} outside [0, {self.obs_shape[0]})")
        if not np.isfinite(reward):
            raise InputValidationError(f"reward must be finite, got {reward}")

    def add(
        self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, done: bool, n_steps: int = 1
    ) -> int:
        """Store one transition, overwriting the oldest when full; return its slot."""
        self._check(obs, action, reward, next_obs)
        if isinstance(n_steps, bool) or int(n_steps) < 1:
            raise InputValidationError(f"n_steps must be an int >= 1, got {n_steps!r}")
        i = self.pos
        self.obs[i] = obs
        self.next_obs[i] = next_obs
        self.actions[i] = int(action)
        self.rewards[i] = float(reward)
        self.dones[i] = 1.0 if done else 0.0
        self.n_steps[i] = int(n_steps)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self._on_add(i)
        return i

    def _on_add(self, index: int) -> None:
        """Hook for subclasses that keep per-slot bookkeeping."""

    def _gather(self, idx: np.ndarray, weights: np.ndarray) -> Batch:
        return Batch(
            obs=self.obs[idx].copy(),
            actions=self.actions[idx].copy(),
            rewards=self.rewards[idx].copy(),
            next_obs=self.next_obs[idx].copy(),
            dones=self.dones[idx].copy(),
            n_steps=self.n_steps[idx].copy(),
            weights=weights.astype(np.float32),
            indices=idx.astype(np.int64),
        )

    def _check_sample(self, batch_size: int) -> int:
        if self.size == 0:
            raise InputValidationError("cannot sample from an empty replay buffer")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise InputValidationError(f"batch_size must be >= 1, got {batch_size}")
        return int(batch_size)

    def sample(self, batch_size: int) -> Batch:
        """Uniform sample with replacement; importance weights are all ones."""
        b = self._check_sample(batch_size)
        idx = self.rng.integers(0, self.size, size=b)
        return self._gather(idx, np.ones(b, dtype=np.float32))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: contents, cursor and generator state."""
        n = self.size
        return {
            "kind": type(self).__name__,
            "capacity": self.capacity,
            "obs_shape": list(self.obs_shape),
            "pos": self.pos,
            "size": n,
            "obs": self.obs[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "actions": self.actions[:n].copy(),
            "rewards": self.rewards[:n].copy(),
            "dones": self.dones[:n].copy(),
            "n_steps": self.n_steps[:n].copy(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; refuse a buffer of another kind or shape."""
        if state.get("kind") != type(self).__name__:
            raise CheckpointError(
                f"buffer checkpoint is a {state.get('kind')!r}, expected {type(self).__name__!r}"
            )
        if int(state["capacity"]) != self.capacity or tuple(state["obs_shape"]) != self.obs_shape:
            raise CheckpointError(
                f"buffer checkpoint has capacity {state['capacity']} / obs_shape "
                f"{tuple(state['obs_shape'])}, expected {self.capacity} / {self.obs_shape}"
            )
        if "n_steps" not in state:
            raise CheckpointError("buffer checkpoint has no 'n_steps' (written before n-step returns)")
        n = int(state["size"])
        self.size = n
        self.pos = int(state["pos"])
        for name in ("obs", "next_obs", "actions", "rewards", "dones", "n_steps"):
            getattr(self, name)[:n] = state[name]
        self.rng.bit_generator.state = state["rng"]


class SumTree:
    """Binary tree whose internal nodes hold the sum of their children (priority mass queries)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        size = 1
        while size < self.capacity:
            size *= 2
        self.leaf_base = size
        self.nodes = np.zeros(2 * size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self.nodes[self.leaf_base + np.asarray(indices, dtype=np.int64)]

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaf priorities and refresh the sums on the paths to the root."""
        idx = np.asarray(indices, dtype=np.int64).ravel()
        vals = np.asarray(values, dtype=np.float64).ravel()
        for i, v in zip(idx.tolist(), vals.tolist(), strict=True):
            node = self.leaf_base + i
            self.nodes[node] = v
            node //= 2
            while node >= 1:
                self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]
                node //= 2

    def find(self, mass: np.ndarray) -> np.ndarray:
        """Leaf index for each prefix-sum query in ``mass`` (vectorised descent, one level at a time)."""
        m = np.asarray(mass, dtype=np.float64).copy()
        node = np.ones(m.shape, dtype=np.int64)
        while node[0] < self.leaf_base:
            left = 2 * node
            left_sum = self.nodes[left]
            go_right = m >= left_sum
            m = np.where(go_right, m - left_sum, m)
            node = np.where(go_right, left + 1, left)
        return node - self.leaf_base


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritised replay; new transitions get the current maximum priority.

    ``beta`` grows linearly from ``beta_start`` to ``beta_end`` over ``beta_anneal_samples`` calls
    to :meth:`sample` (0: constant ``beta_start``); the count is part of ``state_dict()``.
    """

    def __init__(
        self,
        capacity: int = PAPER_CAPACITY,
        obs_shape: tuple[int, ...] = (25, 2),
        seed: int | np.random.Generator = 0,
        alpha: float = 0.6,
        eps: float = 1e-6,
        beta_start: float = 0.4,
        beta_end: float = 1.0,
        beta_anneal_samples: int = 0,
    ) -> None:
        super().__init__(capacity, obs_shape, seed)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"prioritized replay alpha must be in [0, 1], got {alpha}")
        if eps <= 0.0:
            raise ConfigError(f"prioritized replay eps must be > 0, got {eps}")
        if not (0.0 <= beta_start <= 1.0 and 0.0 <= beta_end <= 1.0):
            raise ConfigError(
                f"prioritized replay beta_start/beta_end must be in [0, 1], got {beta_start}/{beta_end}"
            )
        if isinstance(beta_anneal_samples, bool) or int(beta_anneal_samples) < 0:
            raise ConfigError(f"beta_anneal_samples must be an int >= 0, got {beta_anneal_samples!r}")
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.beta_anneal_samples = int(beta_anneal_samples)
        self.samples_drawn = 0
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0

    @property
    def beta(self) -> float:
        """Importance-weight exponent of the next :meth:`sample` call (the schedule's current value)."""
        if self.beta_anneal_samples == 0:
            return self.beta_start
        frac = min(self.samples_drawn, self.beta_anneal_samples) / self.beta_anneal_samples
        return self.beta_start + frac * (self.beta_end - self.beta_start)

    def _on_add(self, index: int) -> None:
        self.tree.update(np.array([index]), np.array([self.max_priority**self.alpha]))

    def sample(self, batch_size: int) -> Batch:
        """Stratified proportional sample with importance weights (N P(i))^-beta / max."""
        b = self._check_sample(batch_size)
        beta = self.beta
        self.samples_drawn += 1
        total = self.tree.total
        bounds = np.arange(b + 1, dtype=np.float64) * (total / b)
        mass = bounds[:-1] + self.rng.random(b) * (bounds[1:] - bounds[:-1])
        idx = np.minimum(self.tree.find(np.minimum(mass, np.nextafter(total, 0.0))), self.size - 1)
        probs = self.tree.get(idx) / total
        weights = (self.size * probs) ** (-beta)
        weights = weights / weights.max()
        return self._gather(idx, weights)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """p_i = |td_i| + eps; the tree stores p_i^alpha."""
        td = np.abs(np.asarray(td_errors, dtype=np.float64)).ravel()
        if not np.all(np.isfinite(td)):
            raise InputValidationError("td_errors contain NaN or inf")
        p = td + self.eps
        self.max_priority = max(self.max_priority, float(p.max(initial=0.0)))
        self.tree.update(np.asarray(indices, dtype=np.int64), p**self.alpha)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            alpha=self.alpha,
            eps=self.eps,
            tree=self.tree.nodes.copy(),
            max_priority=self.max_priority,
            beta=[self.beta_start, self.beta_end, self.beta_anneal_samples],
            samples_drawn=self.samples_drawn,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state["tree"].shape != self.tree.nodes.shape:
            raise CheckpointError(f"sum-tree shape {state['tree'].shape} != {self.tree.nodes.shape}")
        self.alpha = float(state["alpha"])
        self.eps = float(state["eps"])
        self.tree.nodes[:] = state["tree"]
        self.max_priority = float(state["max_priority"])
        stored_beta = [float(state["beta"][0]), float(state["beta"][1]), int(state["beta"][2])]
        if stored_beta != [self.beta_start, self.beta_end, self.beta_anneal_samples]:
            raise CheckpointError(
                f"buffer checkpoint has beta schedule {stored_beta}, expected "
                f"{[self.beta_start, self.beta_end, self.beta_anneal_samples]}"
            )
        self.samples_drawn = int(state["samples_drawn"])


def build_buffer(
    capacity: int = PAPER_CAPACITY,
    obs_shape: tuple[int, ...] = (25, 2),
    seed: int | np.random.Generator = 0,
    prioritized: bool = False,
    alpha: float = 0.6,
    beta_start: float = 0.4,
    beta_end: float = 1.0,
    beta_anneal_samples: int = 0,
) -> ReplayBuffer:
    """Uniform or prioritized buffer from config values (the beta settings apply to prioritized only)."""
    if prioritized:
        return PrioritizedReplayBuffer(
            capacity, obs_shape, seed, alpha=alpha, beta_start=beta_start, beta_end=beta_end,
            beta_anneal_samples=beta_anneal_samples,
        )
    return ReplayBuffer(capacity, obs_shape, seed)


class DemoBatch(NamedTuple):
    """Expert (state, action) pairs for the large-margin loss."""

    obs: np.ndarray  # (B, N, 2) float32
    actions: np.ndarray  # (B,) int64


class DemonstrationBuffer:
    """Ring buffer of expert (state, action) pairs (e.g. a strategy's choices), sampled uniformly."""

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...] = (25, 2), seed: int | np.random.Generator = 0
    ) -> None:
        if int(capacity) < 1:
            raise ConfigError(f"demonstration buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.rng = _make_rng(seed)
        self.obs = np.zeros((self.capacity, *self.obs_shape), dtype=np.float32)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: int) -> None:
        """Store the expert's ``action`` in state ``obs``, overwriting the oldest pair when full."""
        if np.shape(obs) != self.obs_shape:
            raise InputValidationError(
                f"demonstration buffer holds shape {self.obs_shape}, got {np.shape(obs)}"
            )
        if not 0 <= int(action) < self.obs_shape[0]:
            raise InputValidationError(f"demonstration action {action} outside [0, {self.obs_shape[0]})")
        self.obs[self.pos] = obs
        self.actions[self.pos] = int(action)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> DemoBatch:
        if self.size == 0:
            raise InputValidationError("cannot sample from an empty demonstration buffer")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise InputValidationError(f"batch_size must be >= 1, got {batch_size}")
        idx = self.rng.integers(0, self.size, size=int(batch_size))
        return DemoBatch(obs=self.obs[idx].copy(), actions=self.actions[idx].copy())

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "capacity": self.capacity,
            "obs_shape": list(self.obs_shape),
            "pos": self.pos,
            "size": n,
            "obs": self.obs[:n].copy(),
            "actions": self.actions[:n].copy(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity or tuple(state["obs_shape"]) != self.obs_shape:
            raise CheckpointError(
                f"demonstration buffer checkpoint has capacity {state['capacity']} / obs_shape "
                f"{tuple(state['obs_shape'])}, expected {self.capacity} / {self.obs_shape}"
            )
        n = int(state["size"])
        self.size, self.pos = n, int(state["pos"])
        self.obs[:n] = state["obs"]
        self.actions[:n] = state["actions"]
        self.rng.bit_generator.state = state["rng"]
