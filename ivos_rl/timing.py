"""Where the seconds of an interactive round come from: measured wall time or a declared model.

DAVIS-Interactive's time-AUC and J&F@60s integrate the metric over the cumulative time of the
rounds, so they depend on how long the segmenter *and* the frame recommender take. Wall time makes
them change from run to run (and with the machine's load); a :class:`RoundTimeModel` declares the
seconds of each part of a round instead, so ``auc_time`` becomes reproducible:

* backend: ``backend_s + backend_s_per_frame * n_frames`` (the VOS model propagating the round);
* recommender: ``recommender_s + recommender_s_per_frame * n_frames`` (quality net + agent), counted
  inside the time budget like the backend, because a user waits for both.

:class:`RoundTimer` runs the parts of a round, always measures them (so the recommender's latency
is reported apart from the backend's in both modes) and, with a model, moves a :class:`ManualClock`
by the declared seconds; that clock is what the session reads, so the report's ``timing`` column,
the per-sample timeout (``max_time`` x objects) and the summaries follow the model exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from ivos_rl.errors import ConfigError

__all__ = ["PARTS", "ManualClock", "RoundTimeModel", "RoundTimer"]

Part = Literal["backend", "recommender"]
PARTS: tuple[Part, ...] = ("backend", "recommender")


def _seconds(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RoundTimeModel:
    """Declared seconds of the parts of one round (affine in the number of frames)."""

    backend_s: float = 0.0
    backend_s_per_frame: float = 0.0
    recommender_s: float = 0.0
    recommender_s_per_frame: float = 0.0

    def __post_init__(self) -> None:
        for name in ("backend_s", "backend_s_per_frame", "recommender_s", "recommender_s_per_frame"):
            object.__setattr__(self, name, _seconds(getattr(self, name), f"RoundTimeModel.{name}"))

    def seconds(self, part: Part, n_frames: int) -> float:
        """Declared seconds of ``part`` in a round on a video of ``n_frames`` frames."""
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ConfigError(f"n_frames must be an integer >= 1, got {n_frames!r}")
        if part == "backend":
            return self.backend_s + self.backend_s_per_frame * n_frames
        if part == "recommender":
            return self.recommender_s + self.recommender_s_per_frame * n_frames
        raise ConfigError(f"part must be one of {PARTS}, got {part!r}")


class ManualClock:
    """A clock (seconds) that moves only when :meth:`advance` is called: deterministic timings."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = _seconds(start, "start")

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += _seconds(seconds, "seconds")


@dataclass
class RoundTimer:
    """Times the backend and recommender parts of rounds; the session reads :attr:`clock`.

    Without a model the clock is ``wall`` (``time.perf_counter``) and the session's timings are
    measured; with one, the clock is a :class:`ManualClock` advanced by the declared seconds.
    ``measured`` keeps the wall seconds of every timed part, in order, in both modes.
    """

    model: RoundTimeModel | None = None
    wall: Callable[[], float] = time.perf_counter
    measured: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PARTS})

    def __post_init__(self) -> None:
        if self.model is not None and not isinstance(self.model, RoundTimeModel):
            raise ConfigError(f"model must be a RoundTimeModel or None, got {type(self.model).__name__}")
        self._manual = ManualClock() if self.model is not None else None

    @property
    def clock(self) -> Callable[[], float]:
        """The clock the session must use (declared time with a model, wall time otherwise)."""
        return self._manual if self._manual is not None else self.wall

    @property
    def deterministic(self) -> bool:
        return self.model is not None

    @contextmanager
    def part(self, part: Part, n_frames: int) -> Iterator[None]:
        """Time the enclosed ``part`` of a round on a video of ``n_frames`` frames."""
        if part not in PARTS:
            raise ConfigError(f"part must be one of {PARTS}, got {part!r}")
        start = self.wall()
        yield
        self.measured[part].append(self.wall() - start)
        if self._manual is not None and self.model is not None:
            self._manual.advance(self.model.seconds(part, n_frames))

    def take(self) -> dict[str, list[float]]:
        """Measured seconds per part since the last call (and forget them)."""
        out = {p: list(v) for p, v in self.measured.items()}
        for v in self.measured.values():
            v.clear()
        return out
