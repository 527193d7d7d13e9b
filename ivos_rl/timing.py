"""Where the seconds of an interactive round come from: measured wall time or a declared model.

DAVIS-Interactive's time-AUC and J&F@60s integrate the metric over the cumulative time of the
rounds, so they depend on how long the segmenter *and* the frame recommender take. Measured time
(the round engine's clock, :class:`ivos_rl.rounds.RoundTimings`) makes them change from run to run
and with the machine's load; a :class:`RoundTimeModel` declares the seconds of each part of a
round instead, so ``auc_time`` becomes reproducible:

* backend: ``backend_s + backend_s_per_frame * n_frames`` in each round where the backend runs
  (not after an annotation where the robot drew nothing);
* recommender: ``recommender_s + recommender_s_per_frame * n_frames`` in each round that
  recommends a frame (quality net + agent), counted inside the time budget like the backend,
  because a user waits for both.

The measured seconds stay in the report rows (``backend_seconds``, ``recommender_seconds``), so
the recommender's latency is reported apart from the backend's in both modes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ivos_rl.errors import ConfigError

__all__ = ["PARTS", "RoundTimeModel"]

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

    def round_seconds(self, backend_ran: bool, recommended: bool, n_frames: int) -> float:
        """Declared ``timing`` of a round: the backend if it ran, plus the recommender if it chose."""
        total = self.seconds("backend", n_frames) if backend_ran else 0.0
        return total + (self.seconds("recommender", n_frames) if recommended else 0.0)
