"""The ground truth's side of J, F and the robot, built once per sample (``GroundTruth``): the same
figures and answers as without it, typed errors for an object that does not fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ivos_rl.errors import InputValidationError
from ivos_rl.metrics import (
    GroundTruth,
    batched_f_measure,
    batched_j_and_f,
    batched_jaccard,
    batched_jaccard_and_f_measure,
)
from ivos_rl.robot import ScribbleRobot
from ivos_rl.rounds import RoundEngine, SampleContext, robot_options
from ivos_rl.scoring import score_masks, update_scores


def _rows(rows: list[int], size: int = 10) -> np.ndarray:
    """(T, size, size) uint8: object 1 fills the first ``rows[t]`` rows of frame t."""
    stack = np.zeros((len(rows), size, size), np.uint8)
    for t, r in enumerate(rows):
        stack[t, :r] = 1
    return stack


def test_hand_checked_scores_with_and_without_the_truth() -> None:
    # truth: the top 5 rows (50 px; its boundary is row 4). Frame 0 predicts 6 rows: J = 50 / 60,
    # its boundary (row 5) lies 1 px from row 4, within the 1 px tolerance (ceil(.008 x 14.1)): F = 1.
    # Frame 1 predicts 8 rows: J = 50 / 80, boundary row 7 is 3 px away: P = R = 0, F = 0.
    gt, pred = _rows([5, 5]), _rows([6, 8])
    truth = GroundTruth.build(gt, 1)
    for t in (None, truth):
        j, f = batched_jaccard_and_f_measure(gt, pred, nb_objects=1, truth=t)
        np.testing.assert_allclose(j[:, 0], [50 / 60, 50 / 80])
        np.testing.assert_allclose(f[:, 0], [1.0, 0.0])
        np.testing.assert_allclose(batched_jaccard(gt, pred, truth=t), [50 / 60, 50 / 80])
        np.testing.assert_allclose(batched_f_measure(gt, pred, truth=t), [1.0, 0.0])
        np.testing.assert_allclose(batched_j_and_f(gt, pred, truth=t), [(50 / 60 + 1) / 2, 50 / 160])
    assert truth.ids.tolist() == [1] and truth.objects == (1,) and truth.shape == (2, 10, 10)


def test_many_objects_frames_threads_and_windows_give_the_same_bits() -> None:
    rng = np.random.default_rng(0)
    gt = np.zeros((7, 40, 50), np.uint8)
    gt[:, 5:25, 5:30] = 1
    gt[:, 20:35, 25:45] = 2
    gt[:, 0:3, 0:50] = 255  # void
    gt[3] = 0  # a frame without objects
    gt[5, gt[5] == 2] = 0  # object 2 absent on frame 5
    pred = gt.copy()
    noise = rng.random(gt.shape) < 0.05
    pred[noise] = rng.integers(0, 3, int(noise.sum()))
    pred[6] = 0
    truth = GroundTruth.build(gt, 2)
    plain_j, plain_f = batched_jaccard_and_f_measure(gt, pred, nb_objects=2)
    for threads in (1, 3):
        j, f = batched_jaccard_and_f_measure(gt, pred, nb_objects=2, truth=truth, threads=threads)
        assert j.tobytes() == plain_j.tobytes() and f.tobytes() == plain_f.tobytes()
    some = [6, 0, 3]
    j, f = batched_jaccard_and_f_measure(gt, pred, nb_objects=2, truth=truth, frames=some)
    assert j.tobytes() == plain_j[some].tobytes() and f.tobytes() == plain_f[some].tobytes()
    # present ids by default (1 and 2), a window of frames 3-5 (both present on frame 4)
    by_present = batched_jaccard(gt, pred, truth=GroundTruth.build(gt))
    assert by_present.tobytes() == batched_jaccard(gt, pred).tobytes()
    win = truth.window(3, 3)
    assert win.shape == (3, 40, 50) and win.ids.tolist() == [1, 2]
    assert truth.window(5, 1).ids.tolist() == [1]
    j, f = batched_jaccard_and_f_measure(gt[3:6], pred[3:6], nb_objects=2, truth=win)
    assert j.tobytes() == plain_j[3:6].tobytes() and f.tobytes() == plain_f[3:6].tobytes()
    # update_scores only re-scores the changed frames, with or without the truth
    before = score_masks(gt, pred, 2)
    after = pred.copy()
    after[1] = gt[1]
    for t in (None, truth):
        got = update_scores(before, gt, after, 2, [1], truth=t)
        ref = score_masks(gt, after, 2, truth=t)
        assert got.j.tobytes() == ref.j.tobytes() and got.f.tobytes() == ref.f.tobytes()
        assert got.j[1].tolist() == [1.0, 1.0]


def test_a_truth_that_does_not_fit_is_a_typed_error() -> None:
    gt, pred = _rows([5, 5]), _rows([6, 8])
    truth = GroundTruth.build(gt, 1)
    with pytest.raises(InputValidationError, match="shaped"):
        batched_jaccard_and_f_measure(gt[:1], pred[:1], nb_objects=1, truth=truth)
    with pytest.raises(InputValidationError, match="bound_th"):
        batched_f_measure(gt, pred, bound_th=3, truth=truth)
    with pytest.raises(InputValidationError, match="not object 2"):
        batched_jaccard(gt, pred, nb_objects=2, truth=truth)
    with pytest.raises(InputValidationError, match="GroundTruth"):
        batched_jaccard(gt, pred, truth=gt)  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="frames"):
        batched_jaccard_and_f_measure(gt, pred, truth=truth, frames=[2])
    with pytest.raises(InputValidationError, match="window"):
        truth.window(1, 2)
    with pytest.raises(InputValidationError, match="bound_th must be a number"):
        batched_f_measure(gt, pred, bound_th="wide", truth=truth)  # type: ignore[arg-type]
    frames = np.zeros((*gt.shape, 3), np.uint8)
    for sample_truth in (truth, None):  # the same refusal with and without a truth
        sample = SampleContext("toy", 1, frames, gt, 1, {"annotations": []}, sample_truth)
        with pytest.raises(InputValidationError, match=r"window \[1, 3\) outside the 2 frames of 'toy'"):
            sample.window(1, 2)
        assert sample.window(1, 1).n_frames == 1
    with pytest.raises(InputValidationError, match="no object"):
        GroundTruth.build(np.zeros((2, 4, 4), np.uint8))
    robot = ScribbleRobot()
    with pytest.raises(InputValidationError, match="shaped"):
        robot.interact("toy", pred[:1], gt[:1], nb_objects=1, frame=0, truth=truth)


def test_the_truth_is_read_only() -> None:
    truth = GroundTruth.build(_rows([5, 0, 9]), 1)
    part = truth.parts[0][0]
    assert part.crop is not None and part.boundary is not None
    for a in (truth.ids, *truth.frame_ids, part.crop, part.boundary.src, part.boundary.near):
        assert not a.flags.writeable
    assert truth.parts[1][0].box is None and truth.frame_ids[1].size == 0


def test_the_robot_and_the_engine_give_the_same_answers_with_the_truth() -> None:
    gt = np.zeros((4, 48, 64), np.uint8)
    gt[:, 10:40, 12:50] = 1
    pred = np.zeros_like(gt)
    pred[:, 14:30, 20:40] = 1
    truth = GroundTruth.build(gt, 1)
    robot = ScribbleRobot()
    for frame in (None, 2):
        plain = robot.interact("toy", pred, gt, nb_objects=1, frame=frame)
        assert robot.interact("toy", pred, gt, nb_objects=1, frame=frame, truth=truth) == plain
    assert robot_options(robot, truth=truth) == {"truth": truth} and robot_options(robot, truth=None) == {}
    assert robot_options(object(), truth=truth) == {}  # robots of the plain protocol get no keyword

    class PlainOverride(ScribbleRobot):  # inherits engine_keywords, overrides interact with the protocol's
        def interact(self, sequence, pred_masks, gt_masks, nb_objects=None, frame=None):  # type: ignore[no-untyped-def, override]
            return super().interact(sequence, pred_masks, gt_masks, nb_objects=nb_objects, frame=frame)

    assert robot_options(PlainOverride(), truth=truth, path_arrays=True) == {}

    from ivos_rl.backends.simulated import SimulatedBackend

    initial = robot.interact("toy", np.zeros_like(gt), gt, nb_objects=1, frame=1)
    sample = SampleContext("toy", 1, np.zeros((*gt.shape, 3), np.uint8), gt, 1, initial, truth)
    runs = []
    for s in (sample, replace(sample, truth=None)):
        engine = RoundEngine(SimulatedBackend(seed=0), robot)
        engine.start(s)
        scores = [engine.score()]
        for frame in (3, 0):
            engine.annotate(frame)
            engine.propagate()
            scores.append(engine.score())
        runs.append([(x.j.tobytes(), x.f.tobytes()) for x in scores] + [repr(engine.state.interactions)])
    assert runs[0] == runs[1]
