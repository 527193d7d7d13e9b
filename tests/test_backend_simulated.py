"""SimulatedBackend: contract, determinism per seed and history, and its error model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ivos_rl import testing
from ivos_rl.backends import SimulatedBackend, check_backend
from ivos_rl.errors import BackendError, ConfigError, InputValidationError, ScribbleError
from ivos_rl.metrics import batched_jaccard
from ivos_rl.testing import on_frame

H, W = 32, 48


def make_clip(t: int = 8, two_objects: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Textured background, a 10x10 square moving right 1 px/frame, optionally a second square."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 120, size=(H, W, 3), dtype=np.uint8)
    frames = np.repeat(base[None], t, axis=0).copy()
    gt = np.zeros((t, H, W), np.uint8)
    for i in range(t):
        x = 4 + i
        gt[i, 6:16, x : x + 10] = 1
        frames[i, 6:16, x : x + 10] = (220, 40, 40)
        if two_objects:
            y = 18 + i // 2
            gt[i, y : y + 8, 30:40] = 2
            frames[i, y : y + 8, 30:40] = (40, 40, 220)
    return frames, gt


def stroke(obj: int, pts: list[tuple[int, int]]) -> dict[str, Any]:
    """A DAVIS stroke through pixel (x, y) points of an H x W frame."""
    return testing.stroke(obj, pts, size=(H, W))


def first_round(t: int, frame: int) -> dict[str, Any]:
    """Strokes inside both squares of ``make_clip`` plus a background stroke."""
    x = 4 + frame
    y = 18 + frame // 2
    return on_frame(t, frame, [
        stroke(1, [(x + 2, 10), (x + 7, 11)]),
        stroke(2, [(32, y + 3), (37, y + 4)]),
        stroke(0, [(1, 28), (20, 28)]),
    ])


def test_check_backend_passes_with_explicit_rounds() -> None:
    frames, gt = make_clip()
    t = len(frames)
    rounds = [
        (0, first_round(t, 0)),
        (7, first_round(t, 7)),
        # re-annotation of frame 0: a background stroke through object 1's square
        (0, on_frame(t, 0, [stroke(0, [(4, 11), (15, 11)])])),
    ]
    outs = check_backend(SimulatedBackend(seed=3), frames, gt, 2, interactions=rounds)
    assert len(outs) == 3
    # the later background stroke wins over the earlier object stroke on the crossing pixels
    assert (outs[2].masks[0, 11, 4:14] == 0).all()


def test_check_backend_passes_with_the_scribble_robot() -> None:
    frames, gt = make_clip(t=6)
    check_backend(SimulatedBackend(seed=0), frames, gt, 2, n_rounds=3)


def run(backend: SimulatedBackend, frames: np.ndarray, gt: np.ndarray, rounds: list) -> list:
    backend.reset(frames, int(gt.max()), sequence="clip", gt_masks=gt)
    return [backend.interact(f, r) for f, r in rounds]


def test_same_seed_same_output_other_seed_differs() -> None:
    frames, gt = make_clip(t=12)
    rounds = [(0, first_round(12, 0)), (11, first_round(12, 11))]
    a = run(SimulatedBackend(seed=5), frames, gt, rounds)
    b = run(SimulatedBackend(seed=5), frames, gt, rounds)
    c = run(SimulatedBackend(seed=6), frames, gt, rounds)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.probs, y.probs)
        np.testing.assert_array_equal(x.masks, y.masks)
    assert not np.array_equal(a[0].probs, c[0].probs)
    assert not np.array_equal(a[1].probs, c[1].probs)


def test_output_depends_on_history_not_on_instance() -> None:
    frames, gt = make_clip(t=12)
    sim = SimulatedBackend(seed=1)
    history = [(0, first_round(12, 0)), (6, first_round(12, 6))]
    h1 = run(sim, frames, gt, history)[-1]
    h2 = run(sim, frames, gt, [(3, first_round(12, 3)), (6, first_round(12, 6))])[-1]
    h1_again = run(SimulatedBackend(seed=1), frames, gt, history)[-1]
    np.testing.assert_array_equal(h1.probs, h1_again.probs)
    assert not np.array_equal(h1.probs, h2.probs)


def test_quality_decays_with_temporal_distance_and_annotation_helps() -> None:
    t = 24
    frames, gt = make_clip(t=t, two_objects=False)
    gt[:, :, :] = 0
    for i in range(t):  # a larger object so that J is not dominated by quantisation
        gt[i, 4:24, 4 + i : 20 + i] = 1
    sim = SimulatedBackend(seed=0, loss_rate=0.0)
    sim.reset(frames, 1, sequence="decay", gt_masks=gt)
    out = sim.interact(0, on_frame(t, 0, [stroke(1, [(8, 10), (14, 16)])]))
    j = batched_jaccard(gt, out.masks)
    assert j[0] > 0.9
    assert j[:4].mean() > j[10:14].mean() > j[-4:].mean()
    e = sim.error_levels()[:, 0]
    assert np.all(np.diff(e) > 0)  # error level grows monotonically away from the annotation
    # annotating the far end makes it good and the middle better than the far end was
    out2 = sim.interact(t - 1, on_frame(t, t - 1, [stroke(1, [(30, 10), (36, 16)])]))
    j2 = batched_jaccard(gt, out2.masks)
    assert j2[-1] > 0.9 > j[-1]
    assert j2[-4:].mean() > j[-4:].mean()


def test_appearance_change_raises_the_error_level() -> None:
    t = 12
    frames, gt = make_clip(t=t, two_objects=False)
    gt[:] = 0
    gt[:, 8:20, 10:26] = 1  # static object
    static = frames.copy()
    static[:] = static[0]
    changing = static.copy()
    changing[6:] = 255 - changing[6:]  # an abrupt global appearance change after frame 5
    inter = on_frame(t, 0, [stroke(1, [(12, 12), (20, 14)])])
    levels = []
    for video in (static, changing):
        sim = SimulatedBackend(seed=0)
        sim.reset(video, 1, sequence="app", gt_masks=gt)
        sim.interact(0, inter)
        levels.append(sim.error_levels()[:, 0])
    np.testing.assert_allclose(levels[0][:6], levels[1][:6])  # identical before the change
    assert np.all(levels[1][6:] > levels[0][6:] + 0.05)


def test_object_loss_is_controlled_by_loss_rate() -> None:
    t = 30
    frames, gt = make_clip(t=t, two_objects=False)
    inter = on_frame(t, 0, [stroke(1, [(6, 10), (10, 12)])])
    present = gt.reshape(t, -1).any(axis=1)
    lost_counts = []
    for rate in (0.0, 1.0):
        sim = SimulatedBackend(seed=2, loss_rate=rate, temporal_scale=5.0)
        sim.reset(frames, 1, sequence="loss", gt_masks=gt)
        out = sim.interact(0, inter)
        lost_counts.append(int((present & ~out.masks.reshape(t, -1).any(axis=1)).sum()))
    assert lost_counts[0] == 0
    assert lost_counts[1] > 0
    assert lost_counts[1] < t  # the annotated frame is never lost


def test_bad_inputs_raise_typed_errors() -> None:
    frames, gt = make_clip()
    sim = SimulatedBackend()
    with pytest.raises(BackendError, match="before reset"):
        sim.interact(0, first_round(8, 0))
    with pytest.raises(InputValidationError, match="gt_masks"):
        sim.reset(frames, 2)
    with pytest.raises(InputValidationError, match=r"object ids \[2\]"):
        sim.reset(frames, 1, gt_masks=gt)
    with pytest.raises(InputValidationError, match="mixes frame sizes"):
        sim.reset([frames[0], frames[1][:-2]], 2, gt_masks=gt)
    sim.reset(frames, 2, sequence="clip", gt_masks=gt)
    with pytest.raises(InputValidationError, match="frame_idx=8"):
        sim.interact(8, first_round(8, 0))
    bad = first_round(8, 0)
    bad["scribbles"][0][0]["object_id"] = 3
    with pytest.raises(ScribbleError, match="object_id 3 > number of objects 2"):
        sim.interact(0, bad)
    with pytest.raises(ScribbleError, match="no non-empty scribble on frame_idx=4"):
        sim.interact(4, first_round(8, 0))
    with pytest.raises(ConfigError, match="temporal_scale"):
        SimulatedBackend(temporal_scale=0)
    with pytest.raises(ConfigError, match="seed"):
        SimulatedBackend(seed=-1)


def test_failed_interaction_leaves_no_trace() -> None:
    frames, gt = make_clip()
    sim = SimulatedBackend(seed=4)
    sim.reset(frames, 2, sequence="clip", gt_masks=gt)
    with pytest.raises(ScribbleError):
        sim.interact(3, on_frame(8, 3, []))
    after_error = sim.interact(0, first_round(8, 0))
    clean = run(SimulatedBackend(seed=4), frames, gt, [(0, first_round(8, 0))])[0]
    np.testing.assert_array_equal(after_error.probs, clean.probs)


def test_void_pixels_are_treated_as_background() -> None:
    frames, gt = make_clip(two_objects=False)
    gt[:, 0, :] = 255
    sim = SimulatedBackend(seed=0)
    sim.reset(frames, 1, sequence="void", gt_masks=gt)
    out = sim.interact(0, on_frame(8, 0, [stroke(1, [(6, 10), (10, 12)])]))
    assert out.masks.max() <= 1
    assert not out.masks[:, 0, :].any()
