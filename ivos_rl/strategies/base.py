"""The frame-selection interface shared by every strategy (Random, Linspace, Worst, Agent...).

A strategy sees only what a user would see in the chosen setting: the quality vector is the true
per-frame J&F in the Oracle setting and the quality net's estimate in the Wild setting; the
evaluation loop decides which one to pass, so strategies never know about ground truth.
"""

from __future__ import annotations

import abc
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.utils.lazy import import_submodules


@dataclass(frozen=True)
class StrategyState:
    """What a strategy may look at when choosing the next frame.

    ``round`` is the number of interactions already made (1 after the initial scribble);
    ``history`` lists annotated frames in order, the initial one first; ``quality`` is (N,) in
    [0, 1] or None for strategies that do not need it; ``uncertainty`` (N,) >= 0 is the standard
    deviation of that quality (0 in the Oracle setting, where it is the true J&F; None when the
    estimator reports none or quality is not needed); ``probs`` is the backend's (T, K, H, W)
    uint8 probability stack when available, and ``diagnostics`` its output's optional
    ``BackendOutput.diagnostics`` alongside.
    """

    round: int
    n_frames: int
    history: tuple[int, ...]
    quality: np.ndarray | None = None
    probs: np.ndarray | None = None
    max_rounds: int | None = None
    diagnostics: Mapping[str, np.ndarray] | None = None
    extras: dict[str, object] = field(default_factory=dict)
    uncertainty: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise InputValidationError(f"StrategyState.n_frames must be >= 1, got {self.n_frames}")
        bad = [f for f in self.history if not 0 <= f < self.n_frames]
        if bad:
            raise InputValidationError(
                f"StrategyState.history has frames outside [0, {self.n_frames}): {bad}"
            )
        if self.quality is not None:
            q = np.asarray(self.quality, dtype=np.float64)
            if q.shape != (self.n_frames,):
                raise InputValidationError(
                    f"StrategyState.quality must have shape ({self.n_frames},), got {q.shape}"
                )
            if not np.all(np.isfinite(q)):
                raise InputValidationError("StrategyState.quality contains NaN or inf")
        if self.uncertainty is not None:
            u = np.asarray(self.uncertainty, dtype=np.float64)
            if u.shape != (self.n_frames,) or not np.all(np.isfinite(u)) or np.any(u < 0):
                raise InputValidationError(
                    f"StrategyState.uncertainty must be ({self.n_frames},) finite values >= 0, "
                    f"got shape {u.shape}"
                )

    def visit_counts(self) -> np.ndarray:
        """h_t of the paper: how often each frame has been annotated so far, shape (N,)."""
        return np.bincount(np.asarray(self.history, dtype=np.int64), minlength=self.n_frames).astype(
            np.float32
        )

    def require_quality(self, who: str) -> np.ndarray:
        if self.quality is None:
            raise InputValidationError(f"strategy {who!r} needs per-frame quality, got None")
        return np.asarray(self.quality, dtype=np.float64)


class Strategy(abc.ABC):
    """Choose the frame the user annotates next. Stateless across samples except for its RNG."""

    name: ClassVar[str] = "base"
    #: Whether the strategy reads ``StrategyState.quality`` (Worst, Agent) — the evaluation only
    #: runs the quality net when some strategy needs it.
    needs_quality: ClassVar[bool] = False
    needs_probs: ClassVar[bool] = False
    #: Oracles that try frames through the backend (``extras["lookahead"]``, see RoundEngine.lookahead).
    needs_lookahead: ClassVar[bool] = False

    def reset(self, seed: int | None = None) -> None:  # noqa: B027 - optional hook
        """Called at the start of every sample (sequence, initial scribble)."""

    @abc.abstractmethod
    def select(self, state: StrategyState) -> int:
        """Return the 0-based index of the frame to annotate next."""


def sample_seed(sequence: str, scribble_idx: int, seed: int) -> int:
    """The seed :meth:`Strategy.reset` gets for one sample of a run with ``seed`` (the evaluation's
    rule; the lookahead data reuses it so a policy it follows draws what it draws when evaluated)."""
    return zlib.crc32(f"{sequence}/{scribble_idx}/{seed}".encode())


def first_unvisited(order: np.ndarray, history: tuple[int, ...]) -> int:
    """First frame of ``order`` not yet annotated; the first of ``order`` if all were annotated.

    This is the "no repeats" rule of the reference Worst/Linspace strategies.
    """
    seen = set(history)
    for f in order:
        if int(f) not in seen:
            return int(f)
    return int(order[0])


_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(name: str):  # type: ignore[no-untyped-def]
    """Class decorator adding a strategy to the registry under ``name``."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    """Import the strategy files of this package (they register on import): one file per strategy,
    found without a central list; the package ``__init__`` imports none of them eagerly."""
    import_submodules(__name__.rsplit(".", 1)[0], skip=("base",))


def available_strategies() -> list[str]:
    """Names of the built-in strategies and of every other registered one (e.g. ``agent`` once
    :mod:`ivos_rl.agents.strategy` is imported)."""
    _load_builtins()
    return sorted(_REGISTRY)


def build_strategy(name: str, **kwargs: object) -> Strategy:
    """Instantiate a registered strategy; unknown names list the valid ones."""
    if name not in _REGISTRY:
        _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(available_strategies())}")
    return _REGISTRY[name](**kwargs)  # type: ignore[arg-type]
