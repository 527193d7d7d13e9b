"""check_backend catches each kind of contract violation (so passing it means something)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ivos_rl.backends import BackendCheckError, BackendOutput, SimulatedBackend, check_backend
from ivos_rl.errors import InputValidationError

T, H, W = 4, 16, 20


def make_clip() -> tuple[np.ndarray, np.ndarray]:
    frames = np.zeros((T, H, W, 3), np.uint8)
    gt = np.zeros((T, H, W), np.uint8)
    gt[:, 4:12, 5:15] = 1
    frames[gt == 1] = (200, 50, 50)
    return frames, gt


def rounds() -> list[tuple[int, dict[str, Any]]]:
    fg = {"path": [[6 / (W - 1), 8 / (H - 1)], [12 / (W - 1), 8 / (H - 1)]], "object_id": 1}
    bg = {"path": [[1 / (W - 1), 1 / (H - 1)], [1 / (W - 1), 14 / (H - 1)]], "object_id": 0}
    return [
        (1, {"scribbles": [[], [fg, bg], [], []], "sequence": "c"}),
        (3, {"scribbles": [[], [], [], [fg]], "sequence": "c"}),
    ]


class Broken(SimulatedBackend):
    """A simulator with one injected defect."""

    def __init__(self, defect: str) -> None:
        super().__init__(seed=0)
        self.defect = defect
        self._total = 0

    def reset(self, frames: Any, n_objects: int, **kw: Any) -> None:
        if self.defect == "accepts_mixed_sizes" and isinstance(frames, list):
            return
        super().reset(frames, n_objects, **kw)

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        if self.defect == "accepts_out_of_range" and frame_idx >= T:
            return super().interact(1, rounds()[0][1])
        if self.defect == "builtin_error" and frame_idx < 0:
            raise IndexError("negative frame")
        out = super().interact(frame_idx, interaction)
        probs, masks = out.probs.copy(), out.masks.copy()
        if self.defect == "ignores_strokes":
            masks[frame_idx, 1, 1] = 1
            probs[frame_idx, 0, 1, 1] = 255
        elif self.defect == "inconsistent_masks":
            masks[:] = 0
        elif self.defect == "wrong_shape":
            probs, masks = probs[:, :, :-1], masks[:, :-1]
        elif self.defect == "nondeterministic":  # depends on a counter that reset() does not clear
            self._total += 1
            probs[0, 0, 0, 0] = self._total % 100  # a background pixel: stays below 0.5
        return BackendOutput(probs=probs, masks=masks)


def test_a_correct_backend_passes() -> None:
    frames, gt = make_clip()
    outs = check_backend(SimulatedBackend(seed=0), frames, gt, 1, interactions=rounds())
    assert len(outs) == 2


@pytest.mark.parametrize(
    ("defect", "message"),
    [
        ("accepts_mixed_sizes", "mixed sizes was accepted"),
        ("accepts_out_of_range", r"frame_idx=4\) was accepted"),
        ("builtin_error", "raised IndexError"),
        ("ignores_strokes", "stroke pixels on the annotated frame"),
        ("inconsistent_masks", "labels background .* where an object wins"),
        ("wrong_shape", "probs shape"),
        ("nondeterministic", "not deterministic"),
    ],
)
def test_each_defect_is_reported(defect: str, message: str) -> None:
    frames, gt = make_clip()
    with pytest.raises(BackendCheckError, match=message):
        check_backend(Broken(defect), frames, gt, 1, interactions=rounds())


def test_bad_arguments_to_the_check_itself() -> None:
    frames, gt = make_clip()
    with pytest.raises(InputValidationError, match="gt_masks"):
        check_backend(SimulatedBackend(), frames, gt[:, :-1], 1, interactions=rounds())
    with pytest.raises(BackendCheckError, match="ran no round"):
        check_backend(SimulatedBackend(), frames, gt, 1, interactions=[])


class WantsAll(SimulatedBackend):
    """Asks for all scribbles so far; records which frames hold strokes in each call."""

    wants_all_scribbles = True

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[list[int]] = []

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        out = super().interact(frame_idx, interaction)  # refused calls are not recorded
        self.seen.append([t for t, s in enumerate(interaction["scribbles"]) if s])
        return out


def test_backends_wanting_all_scribbles_receive_the_fused_history() -> None:
    frames, gt = make_clip()
    backend = WantsAll()
    check_backend(backend, frames, gt, 1, interactions=rounds())
    assert backend.seen == [[1], [1, 3], [1], [1, 3]]  # first run, then the determinism re-run


class SoftmaxLike(SimulatedBackend):
    """Two objects whose winning probability is only 0.4 (background 0.3): an argmax labelling."""

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        masks = super().interact(frame_idx, interaction).masks
        probs = np.full((masks.shape[0], 2, *masks.shape[1:]), 25, np.uint8)  # background 0.8
        for k in (1, 2):
            probs[:, k - 1][masks == k] = 102  # 0.4
            probs[:, 2 - k][masks == k] = 77  # 0.3 for the other object, background 0.3
        return BackendOutput(probs=probs, masks=masks)


def test_mask_rule_argmax_accepts_softmax_labelling() -> None:
    frames, gt = make_clip()
    gt[:, 12:, 15:] = 2
    strokes = [
        {"path": [[0.4, 0.5], [0.6, 0.5]], "object_id": 1},
        {"path": [[0.9, 0.9], [1.0, 1.0]], "object_id": 2},
    ]
    two = [(1, {"scribbles": [[], strokes, [], []], "sequence": "c"})]
    check_backend(SoftmaxLike(seed=0), frames, gt, 2, interactions=two, mask_rule="argmax")
    with pytest.raises(BackendCheckError, match="mask_rule='threshold'"):
        check_backend(SoftmaxLike(seed=0), frames, gt, 2, interactions=two)
    with pytest.raises(InputValidationError, match="mask_rule"):
        check_backend(SoftmaxLike(seed=0), frames, gt, 2, interactions=two, mask_rule="max")  # type: ignore[arg-type]
