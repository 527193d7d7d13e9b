"""Interaction dicts (scribbles and/or clicks): the simulated user's Protocol and the rules on them.

An interaction dict holds one list per frame under each kind it carries: ``"scribbles"`` (DAVIS
strokes, :mod:`ivos_rl.scribbles`) and/or ``"clicks"`` (:mod:`ivos_rl.clicks`), plus the
``"sequence"`` name. Every round loop of the package (the round engine, the DAVIS-Interactive
session, the backend checker) uses the definitions here, so that they exist once:

* :class:`Robot` -- what a simulated user is (scribble robot, click robot, annotator models);
* :func:`fuse_interactions` -- all interactions so far, per frame, A's marks before B's;
* :func:`count_marks` -- the one "the robot drew nothing" rule: a mark is a click or a stroke
  with at least one path point; an interaction with no mark changes nothing;
* :func:`first_annotated_frame` -- the one definition of the initially annotated frame (the first
  frame holding a mark, as DAVIS-Interactive does).

This module depends on numpy only, so the lightweight parts of the package can use it.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Protocol

import numpy as np

from ivos_rl.errors import ScribbleError

__all__ = [
    "KINDS",
    "Robot",
    "check_interaction",
    "count_marks",
    "first_annotated_frame",
    "fuse_interactions",
    "marked_frames",
]

KINDS: tuple[str, ...] = ("scribbles", "clicks")


class Robot(Protocol):
    """A simulated user: answers the current prediction with marks on ``frame`` (or its own choice)."""

    def interact(
        self,
        sequence: str,
        pred_masks: np.ndarray,
        gt_masks: np.ndarray,
        nb_objects: int | None = None,
        frame: int | None = None,
    ) -> dict[str, Any]: ...


def check_interaction(inter: Any, n_frames: int, who: str) -> None:
    """Structural check of an interaction dict: a ``sequence`` and one list per frame per kind."""
    if not isinstance(inter, dict) or "sequence" not in inter:
        raise ScribbleError(f"{who} is not an interaction dict with a 'sequence' key: {type(inter).__name__}")
    kinds = [k for k in KINDS if k in inter]
    if not kinds:
        raise ScribbleError(f"{who} has neither 'scribbles' nor 'clicks' (keys: {sorted(inter)})")
    for k in kinds:
        if not isinstance(inter[k], list) or len(inter[k]) != n_frames:
            got = len(inter[k]) if isinstance(inter[k], list) else type(inter[k]).__name__
            raise ScribbleError(f"{who}['{k}'] must list {n_frames} frames, got {got}")


def _is_mark(kind: str, item: Any) -> bool:
    """A click always counts; a stroke counts when its path has at least one point."""
    return kind == "clicks" or len(item.get("path", [])) > 0


def count_marks(interaction: dict[str, Any], frame: int | None = None) -> int:
    """Number of marks (clicks, non-empty strokes) on ``frame``, or on every frame when None."""
    total = 0
    for kind in KINDS:
        per_frame = interaction.get(kind) or []
        chosen = per_frame if frame is None else per_frame[frame : frame + 1]
        total += sum(1 for items in chosen for it in items if _is_mark(kind, it))
    return total


def marked_frames(interaction: dict[str, Any]) -> list[int]:
    """Sorted 0-based indices of the frames holding at least one mark (any kind)."""
    frames: set[int] = set()
    for kind in KINDS:
        for t, items in enumerate(interaction.get(kind) or []):
            if any(_is_mark(kind, it) for it in items):
                frames.add(t)
    return sorted(frames)


def first_annotated_frame(interaction: dict[str, Any], who: str = "interaction") -> int:
    """The initially annotated frame: the first frame holding a mark (``ScribbleError`` if none)."""
    frames = marked_frames(interaction)
    if not frames:
        raise ScribbleError(f"{who} annotates no frame (no stroke point and no click)")
    return frames[0]


def fuse_interactions(a: dict[str, Any], b: dict[str, Any], *, in_place: bool = False) -> dict[str, Any]:
    """Per-frame union of two interaction dicts of one sequence; neither input is modified.

    For two scribble dicts this equals davisinteractive's ``fuse_scribbles`` (A's extra keys are
    kept); when the kinds differ (scribbles first, clicks afterwards) the result holds both keys.
    A missing ``sequence`` on one side takes the other's; two different names are refused.
    ``in_place``: ``a`` itself is extended with copies of ``b``'s marks and returned (the same
    contents; only ``b`` is copied): for an owner that holds no other reference to ``a``, such as
    the round engine's fused state, which otherwise re-copied every mark so far each round.
    """
    seq_a, seq_b = a.get("sequence"), b.get("sequence")
    if seq_a is not None and seq_b is not None and seq_a != seq_b:
        raise ScribbleError(f"cannot fuse interactions of different sequences: {seq_a!r} and {seq_b!r}")
    n_a = {len(a[k]) for k in KINDS if k in a}
    n_b = {len(b[k]) for k in KINDS if k in b}
    if not n_a or not n_b:
        raise ScribbleError("cannot fuse a dict with neither 'scribbles' nor 'clicks'")
    if len(n_a | n_b) != 1:
        counts = ["/".join(str(c) for c in sorted(n)) for n in (n_a, n_b)]
        raise ScribbleError(f"cannot fuse interactions with {counts[0]} and {counts[1]} frames")
    n = n_a.pop()
    out: dict[str, Any] = a if in_place else {k: copy.deepcopy(v) for k, v in a.items() if k not in KINDS}
    if seq_a is not None or seq_b is not None or "sequence" in a:
        out["sequence"] = seq_a if seq_a is not None else seq_b
    for k in KINDS:
        if k in a or k in b:
            right = b.get(k, [[] for _ in range(n)])
            if in_place:
                left = a.setdefault(k, [[] for _ in range(n)])
                for x, y in zip(left, right, strict=True):
                    x.extend(copy_items(y))
            else:
                left = a.get(k, [[] for _ in range(n)])
                out[k] = [copy_items(x) + copy_items(y) for x, y in zip(left, right, strict=True)]
    return out


def copy_items(items: list[Any]) -> list[Any]:
    """Copies of one frame's strokes or clicks that share nothing mutable with the input.

    Strokes are dicts of scalars and a list of [x, y] points; copying exactly that is much
    cheaper than ``copy.deepcopy``, which dominated long sessions' fusing time. A read-only array
    that owns its data (the scribble robot's ``path_arrays``) cannot change and is shared; any other
    array is copied (a read-only view of a writable buffer changes with it).
    Anything else (tuples stay tuples, deeper nesting) is deep-copied.
    """
    out = []
    for item in items:
        if not isinstance(item, dict):
            out.append(copy.deepcopy(item))
            continue
        c = dict(item)
        for key, value in c.items():
            if isinstance(value, np.ndarray):
                c[key] = value if not value.flags.writeable and value.base is None else value.copy()
            elif isinstance(value, list) and _is_point_list(value):
                c[key] = list(map(list, value))
            elif isinstance(value, (list, dict)):
                c[key] = copy.deepcopy(value)
        out.append(c)
    return out


def _is_point_list(value: list[Any]) -> bool:
    """Whether ``value`` is a list of lists of numbers (ints or floats), nothing deeper.

    Exact ``list``/``int``/``float`` types are checked in bulk by C-level ``map`` (a stroke has
    ~1000 points, and a per-number generator dominated the round's fusing time); anything
    else (subclasses, bools, numpy scalars) gets the element-wise isinstance check.
    """
    numbers = itertools.chain.from_iterable(value)
    if set(map(type, value)) <= {list} and set(map(type, numbers)) <= {int, float}:
        return True
    return all(isinstance(p, list) and all(isinstance(v, (int, float)) for v in p) for p in value)
