"""Conformance check run by the tests of every backend.

``check_backend`` drives a backend through a few interaction rounds and verifies the contract
of :mod:`ivos_rl.backends.base` that the rest of ivos-rl relies on:

* outputs are :class:`BackendOutput` with probs ``(T, K, H, W)`` uint8 and masks ``(T, H, W)`` in
  ``0..K``;
* masks agree with probs by the backend's labelling rule: ``mask_rule="threshold"`` (the rule
  of :func:`labels_from_probs`): a pixel labelled ``k`` has ``probs[k] >= 128`` (p > 0.5) and no
  other object higher, a background pixel has every ``probs <= 127``; ``mask_rule="argmax"``
  (softmax backends): background competes with ``255 - sum(probs)`` and the label is the
  largest of background and objects, up to ``K // 2 + 1`` grey levels of quantisation;
* the annotated frame respects every stroke drawn on it so far (later strokes win): no stroke
  pixel ends up with another label;
* determinism: a second ``reset`` with the same inputs and the same interactions gives
  bit-identical outputs, even after the bad calls below;
* bad input raises an :class:`IvosError` subclass: frames of mixed sizes, ``frame_idx`` out of
  range, an object id above ``K``, no stroke on the annotated frame.

A violation raises :class:`BackendCheckError` naming the round, frame and what is wrong.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ivos_rl.backends._prompts import stroke_label_map
from ivos_rl.backends.base import BackendOutput, VOSBackend
from ivos_rl.errors import BackendError, InputValidationError, IvosError
from ivos_rl.interactions import Robot, count_marks, first_annotated_frame
from ivos_rl.scribbles import fuse_scribbles

__all__ = ["BackendCheckError", "check_backend"]


class BackendCheckError(BackendError):
    """A backend violated the :class:`VOSBackend` contract during :func:`check_backend`."""


def check_backend(
    backend: VOSBackend,
    frames: np.ndarray,
    gt_masks: np.ndarray,
    n_objects: int,
    robot: Robot | None = None,
    interactions: Sequence[tuple[int, dict[str, Any]]] | None = None,
    *,
    n_rounds: int = 3,
    sequence: str = "check-backend",
    mask_rule: Literal["threshold", "argmax"] = "threshold",
) -> list[BackendOutput]:
    """Validate ``backend`` on one sample; return the outputs of the rounds (first run).

    Interactions are ``interactions`` (a list of ``(frame_idx, scribble dict of that round)``)
    when given, otherwise produced by ``robot`` (default :class:`ivos_rl.robot.ScribbleRobot`)
    for ``n_rounds`` rounds on the backend's own predictions, starting from empty masks.
    ``gt_masks`` is handed to ``reset`` only when the backend declares ``uses_ground_truth``.
    ``mask_rule`` names how the backend derives masks from probs (see the module docstring).
    """
    if mask_rule not in ("threshold", "argmax"):
        raise InputValidationError(f"mask_rule must be 'threshold' or 'argmax', got {mask_rule!r}")
    frames = np.asarray(frames)
    gt_masks = np.asarray(gt_masks)
    if frames.ndim != 4 or gt_masks.shape != frames.shape[:3]:
        raise InputValidationError(
            f"check_backend needs frames (T, H, W, 3) and gt_masks (T, H, W), got {frames.shape} and "
            f"{gt_masks.shape}"
        )
    if interactions is None and robot is None:
        from ivos_rl.robot import ScribbleRobot

        robot = ScribbleRobot()
    gt_arg = gt_masks if backend.uses_ground_truth else None
    name = type(backend).__name__

    _expect_error(
        f"{name}.reset with frames of mixed sizes",
        lambda: backend.reset(_mixed_sizes(frames), n_objects, sequence=sequence, gt_masks=gt_arg),
    )

    # First run: bad calls interleaved before the first round must leave no trace.
    backend.reset(frames, n_objects, sequence=sequence, gt_masks=gt_arg)
    plan: list[tuple[int, dict[str, Any]]] = []
    outputs: list[BackendOutput] = []
    pred = np.zeros_like(gt_masks)
    for rnd in range(len(interactions) if interactions is not None else n_rounds):
        if interactions is not None:
            frame_idx, inter = interactions[rnd]
        else:
            assert robot is not None
            inter = robot.interact(sequence, pred, gt_masks, nb_objects=n_objects)
            if count_marks(inter) == 0:
                break  # the robot found nothing to correct
            frame_idx = first_annotated_frame(inter)
        if rnd == 0:
            _check_bad_interactions(backend, frame_idx, inter, frames.shape[0], n_objects)
        plan.append((int(frame_idx), inter))
        out = backend.interact(int(frame_idx), _payload(backend, plan))
        _check_output(out, frames, n_objects, plan, rnd, name, mask_rule)
        outputs.append(out)
        pred = out.masks
    if not plan:
        raise BackendCheckError("check_backend ran no round: no interaction was given or produced")

    # Second run: same inputs, same interactions -> identical outputs.
    backend.reset(frames, n_objects, sequence=sequence, gt_masks=gt_arg)
    for rnd in range(len(plan)):
        again = backend.interact(plan[rnd][0], _payload(backend, plan[: rnd + 1]))
        first = outputs[rnd]
        if not (np.array_equal(again.probs, first.probs) and np.array_equal(again.masks, first.masks)):
            diff = int((again.probs != first.probs).sum())
            raise BackendCheckError(
                f"{name} is not deterministic: round {rnd + 1} differs after a fresh reset "
                f"({diff} probability values changed)"
            )
    return outputs


def _payload(backend: VOSBackend, plan: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """This round's scribbles, or all rounds' fused when the backend wants them all."""
    if not backend.wants_all_scribbles:
        return plan[-1][1]
    return functools.reduce(fuse_scribbles, [inter for _, inter in plan])


def _mixed_sizes(frames: np.ndarray) -> list[np.ndarray]:
    """The video as a list whose second frame is one row taller (or a single such pair)."""
    taller = np.zeros((frames.shape[1] + 1, *frames.shape[2:]), dtype=frames.dtype)
    return [frames[0], taller, *list(frames[2:])]


def _expect_error(what: str, call: Any) -> None:
    """Run ``call`` and require an :class:`IvosError` (the typed-error contract)."""
    try:
        call()
    except BackendCheckError:
        raise
    except IvosError:
        return
    except Exception as exc:  # a builtin error instead of a typed one is a contract violation
        raise BackendCheckError(f"{what} raised {type(exc).__name__} ({exc}), not an IvosError") from exc
    raise BackendCheckError(f"{what} was accepted; it must raise an IvosError")


def _check_bad_interactions(
    backend: VOSBackend, frame_idx: int, inter: dict[str, Any], n_frames: int, n_objects: int
) -> None:
    """Out-of-range frames, an object id above K and empty scribbles must all be refused."""
    name = type(backend).__name__
    for bad_idx in (n_frames, -1):
        _expect_error(f"{name}.interact(frame_idx={bad_idx})", lambda i=bad_idx: backend.interact(i, inter))
    too_high = copy.deepcopy(inter)
    too_high["scribbles"][frame_idx][0]["object_id"] = n_objects + 1
    _expect_error(
        f"{name}.interact with object_id={n_objects + 1}", lambda: backend.interact(frame_idx, too_high)
    )
    empty = {"scribbles": [[] for _ in range(n_frames)], "sequence": inter.get("sequence")}
    _expect_error(f"{name}.interact with empty scribbles", lambda: backend.interact(frame_idx, empty))


def _check_output(
    out: Any,
    frames: np.ndarray,
    n_objects: int,
    plan: list[tuple[int, dict[str, Any]]],
    rnd: int,
    name: str,
    mask_rule: str,
) -> None:
    """Shapes, label range, mask/prob consistency and stroke respect for one round's output."""
    where = f"{name} round {rnd + 1}"
    if not isinstance(out, BackendOutput):
        raise BackendCheckError(f"{where}: interact returned {type(out).__name__}, not BackendOutput")
    t, h, w = frames.shape[:3]
    if out.probs.shape != (t, n_objects, h, w):
        raise BackendCheckError(f"{where}: probs shape {out.probs.shape}, expected {(t, n_objects, h, w)}")
    if int(out.masks.max(initial=0)) > n_objects:
        raise BackendCheckError(f"{where}: masks hold label {int(out.masks.max())} > n_objects={n_objects}")

    _check_labels(out, n_objects, mask_rule, where)

    frame_idx = plan[-1][0]
    required = np.full((h, w), -1, np.int16)
    for f, inter in plan:
        if f == frame_idx:
            lab = stroke_label_map(inter["scribbles"][f], h, w)
            required = np.where(lab >= 0, lab, required).astype(np.int16)
    on_stroke = required >= 0
    wrong = on_stroke & (out.masks[frame_idx] != required)
    if wrong.any():
        raise BackendCheckError(
            f"{where}: {int(wrong.sum())} of {int(on_stroke.sum())} stroke pixels on the annotated frame "
            f"{frame_idx} have another label than their stroke"
        )


def _check_labels(out: BackendOutput, n_objects: int, mask_rule: str, where: str) -> None:
    """Masks must follow from probs by ``mask_rule`` (see the module docstring)."""
    probs = out.probs.astype(np.int32)
    pmax = probs.max(axis=1)
    if mask_rule == "threshold":
        bg_score, tol, fg_floor = np.full_like(pmax, 127), 0, 128
    else:
        bg_score, tol, fg_floor = 255 - probs.sum(axis=1), n_objects // 2 + 1, 0
    bad_bg = (out.masks == 0) & (pmax > bg_score + tol)
    if bad_bg.any():
        t_bad = int(np.nonzero(bad_bg)[0][0])
        raise BackendCheckError(
            f"{where}: frame {t_bad} labels background {int(bad_bg[t_bad].sum())} pixels where an object "
            f"wins under mask_rule={mask_rule!r}"
        )
    for k in range(1, n_objects + 1):
        pk = probs[:, k - 1]
        beaten = (pk + tol < pmax) | (pk < fg_floor)
        if mask_rule == "argmax":
            beaten |= pk + tol < bg_score
        bad = (out.masks == k) & beaten
        if bad.any():
            t_bad = int(np.nonzero(bad)[0][0])
            raise BackendCheckError(
                f"{where}: frame {t_bad} labels {int(bad[t_bad].sum())} pixels {k} although object {k} does "
                f"not win there under mask_rule={mask_rule!r}"
            )
