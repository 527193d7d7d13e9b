"""One-step lookahead: the mean J&F a video would have after the user annotated a given frame.

This is what the ``oracle_lookahead`` strategy maximises (an upper bound for one-step frame
choices). The evaluation loop builds the callable once per round with :func:`make_lookahead`
and hands it to strategies that set ``needs_lookahead`` through
``StrategyState.extras["lookahead"]``; nothing it does is committed.

Trying a frame replays exactly what committing it would do: the robot annotates the frame on the
current masks (on a copy of the robot, so a seeded annotator's state does not advance), the answer
is fused with the interactions so far when the backend wants all of them, clicks become disk
scribbles for scribble-only backends, an answer without strokes leaves the masks unchanged, and a
*fork* of the backend runs the round. The value is the mean over frames and objects of J&F, the
session's score of a round. Ground truth is read, so this is an oracle: refused in the Wild setting.

Forking: a backend may define ``fork() -> VOSBackend`` (an independent copy of its per-sample
state, cheaper than a deep copy); otherwise :func:`copy.deepcopy` is used, which is correct for any
backend whose state is Python objects and arrays. A :class:`~ivos_rl.backends.cached.CachedBackend`
stores every tried round in the transition cache, so committing the chosen frame afterwards is a
cache hit; a hit does not advance its wrapped backend, so a backend with a ``sync()`` method is
synced once per round before the first fork (otherwise every fork would replay the rounds the hits
skipped, and a round's cost would grow with the round number).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from ivos_rl.backends.base import VOSBackend
from ivos_rl.errors import BackendError, InputValidationError
from ivos_rl.metrics import batched_jaccard_and_f_measure
from ivos_rl.session import fuse_interactions, interaction_to_scribbles

__all__ = ["LookaheadFn", "count_marks", "fork_backend", "make_lookahead", "mean_j_and_f"]

#: ``frame -> mean J&F after annotating that frame`` (not committed).
LookaheadFn = Callable[[int], float]


def count_marks(interaction: dict[str, Any]) -> int:
    """Number of non-empty strokes and clicks in an interaction dict (all frames)."""
    total = 0
    for kind in ("scribbles", "clicks"):
        for items in interaction.get(kind) or []:
            total += sum(1 for it in items if kind == "clicks" or len(it.get("path", [])) > 0)
    return total


def mean_j_and_f(gt: np.ndarray, masks: np.ndarray, n_objects: int) -> float:
    """The session's score of one round: J&F averaged over frames and objects."""
    jac, con = batched_jaccard_and_f_measure(gt, masks, n_objects)
    return float(np.mean(0.5 * np.asarray(jac, np.float64) + 0.5 * np.asarray(con, np.float64)))


def fork_backend(backend: VOSBackend) -> VOSBackend:
    """An independent copy of ``backend`` in its current state (see the module docstring)."""
    fork = getattr(backend, "fork", None)
    clone = fork() if callable(fork) else copy.deepcopy(backend)
    if clone is backend or not isinstance(clone, VOSBackend):
        raise BackendError(f"{type(backend).__name__}.fork() must return a new VOSBackend, got {clone!r}")
    return clone


def make_lookahead(
    backend: VOSBackend,
    robot: Any,
    *,
    sequence: str,
    gt: np.ndarray,
    n_objects: int,
    masks: np.ndarray,
    fused: dict[str, Any] | None,
    click_radius: float = 3.0,
) -> LookaheadFn:
    """The lookahead of one round: ``backend`` has run every committed interaction and produced
    ``masks``; ``fused`` is every interaction so far (needed when the backend wants all of them).

    Values are memoised per frame, so a strategy may ask twice at no cost.
    """
    if gt is None:
        raise InputValidationError("lookahead needs the ground truth (it is an oracle)")
    if backend.wants_all_scribbles and fused is None:
        raise InputValidationError(f"{type(backend).__name__} wants all interactions: give `fused`")
    n_frames = int(masks.shape[0])
    current = mean_j_and_f(gt, masks, n_objects)
    memo: dict[int, float] = {}
    synced = [False]

    def fork() -> VOSBackend:
        sync = getattr(backend, "sync", None)
        if callable(sync) and not synced[0]:
            sync()
            synced[0] = True
        return fork_backend(backend)

    def lookahead(frame: int) -> float:
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or not 0 <= frame < n_frames:
            raise InputValidationError(f"lookahead frame must be an int in [0, {n_frames}), got {frame!r}")
        frame = int(frame)
        if frame not in memo:
            answer = copy.deepcopy(robot).interact(sequence, masks, gt, nb_objects=n_objects, frame=frame)
            if count_marks(answer) == 0:
                memo[frame] = current  # nothing to correct: the user adds no stroke, masks stay
            else:
                inter = fuse_interactions(fused, answer) if backend.wants_all_scribbles else answer
                if not backend.accepts_clicks and "clicks" in inter:
                    inter = interaction_to_scribbles(inter, click_radius, masks.shape[1:3])
                out = fork().interact(frame, inter)
                memo[frame] = mean_j_and_f(gt, out.masks, n_objects)
        return memo[frame]

    return lookahead
