"""The prior of unreliable pixels in the propagation backend (``prop.uniform_weight`` /
``prop.uniform_reach`` / the motion-scaled reach ``prop.reach_motion``, opt-in, issue 14): the exact
mix, its reach, locality and the contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ivos_rl.backends import check_backend, propagation
from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.backends.propagation import PropagationBackend, _object_motion, _unreliable_prior, _within_reach
from ivos_rl.errors import InputValidationError
from ivos_rl.robot import ScribbleRobot
from ivos_rl.testing import moving_clip

KNOBS = {"uniform_weight": 0.25, "uniform_reach": 2.0}


def _tiny() -> tuple[np.ndarray, np.ndarray]:
    """Warped labels (2, 1, 4): background .9/.2/1/1 (object .1/.8/0/0); trust 1, 1, 0, .5."""
    warped = np.array([[[0.9, 0.2, 1.0, 1.0]], [[0.1, 0.8, 0.0, 0.0]]], np.float32)
    conf = np.array([[1.0, 1.0, 0.0, 0.5]], np.float32)
    return warped, conf


def test_a_failed_check_pixel_gets_exactly_the_mix_of_uniform_and_warped() -> None:
    warped, conf = _tiny()
    # w = .25: pixel 2 (trust 0) gets .25 x 1/2 + .75 x its warped labels (1, 0) = (.875, .125);
    # pixel 3 (trust .5) half of that mix: .5 x 1 + .5 x .875 = .9375; trusted pixels unchanged.
    out = _unreliable_prior(warped, conf, 0.25, None)
    np.testing.assert_allclose(out[:, 0], [[0.9, 0.2, 0.875, 0.9375], [0.1, 0.8, 0.125, 0.0625]], atol=1e-7)
    # w = 1 is version 2's prior (uniform where the check fails); w = 0 the warp alone.
    v2 = conf * warped + (1.0 - conf) * np.float32(0.5)
    np.testing.assert_allclose(_unreliable_prior(warped, conf, 1.0, None), v2, atol=1e-7)
    assert np.array_equal(_unreliable_prior(warped, conf, 0.0, None), warped)
    # Beyond the reach (near False) a failed pixel keeps its warped labels.
    near = np.array([[True, True, False, True]])
    out = _unreliable_prior(warped, conf, 1.0, near)
    np.testing.assert_allclose(out[:, 0, 2:], [[1.0, 0.75], [0.0, 0.25]], atol=1e-7)


def test_the_reach_is_the_euclidean_distance_to_the_previous_objects() -> None:
    # One object pixel at (row 2, column 2) of a 5 x 7 frame (argmax; a .4 object elsewhere is not one).
    p = np.zeros((2, 5, 7), np.uint8)
    p[0] = 255
    p[:, 2, 2] = (55, 200)
    p[:, 0, 6] = (153, 102)
    near = _within_reach(p, 2.0)
    rows, cols = np.nonzero(near)
    d = np.hypot(rows - 2, cols - 2)
    assert (d <= 2.0).all()
    assert near.sum() == 13  # the 13 pixels of the radius-2 disc (distances 0, 1, sqrt 2, 2)
    assert not _within_reach(p[:, 3:], 100.0).any()  # no object pixel: no prior anywhere


def _run(prop: dict[str, float], t: int = 10) -> list[np.ndarray]:
    frames, gt = moving_clip(t=t, two_objects=True)
    be = PropagationBackend(prop=prop)
    be.reset(frames, 2, sequence="clip")
    robot, pred, masks = ScribbleRobot(), np.zeros_like(gt), []
    for frame in (0, 6):
        inter = robot.interact("clip", pred, gt, nb_objects=2, frame=frame)
        pred = be.interact(frame, inter).masks
        masks.append(pred)
    return masks


def test_full_weight_and_an_unbounded_reach_give_version_2() -> None:
    # Reach as wide as the frame's diagonal: the prior applies everywhere, as in version 2 (equal
    # up to float rounding of the algebraically same mix: masks identical on this clip).
    for a, b in zip(_run({}), _run({"uniform_reach": 1000.0}), strict=True):
        assert np.array_equal(a, b)


def test_the_knobs_pass_check_backend_and_enter_the_fingerprint() -> None:
    frames, gt = moving_clip(t=5, two_objects=True)
    be = PropagationBackend(prop=KNOBS)
    outputs = check_backend(be, frames, gt, 2, robot=ScribbleRobot(), n_rounds=3, mask_rule="argmax")
    assert len(outputs) >= 2
    default = backend_fingerprint(PropagationBackend())
    fp = backend_fingerprint(be)
    assert fp != default and '"uniform_reach": 2.0' in fp and '"uniform_weight": 0.25' in fp
    assert backend_fingerprint(PropagationBackend(prop={"uniform_weight": 1.0})) == default
    assert math.isinf(PropagationBackend().prop_params.uniform_reach)
    for prop in ({"uniform_weight": 1.5}, {"uniform_reach": -1.0}, {"uniform_reach": math.inf}):
        with pytest.raises(InputValidationError, match="uniform"):
            PropagationBackend(prop=prop)


MOTION = {"uniform_reach": 2.0, "reach_motion": 4.0}


def test_the_object_motion_is_a_quantile_of_the_flow_magnitude_over_object_pixels() -> None:
    # 11 object pixels moving (3k/5, 4k/5) px, k = 0..10: magnitudes exactly 0, 1, ..., 10; a pixel
    # outside the objects moving 100 px is ignored. Linear quantiles: .9 -> 9, 1 -> 10, .5 -> 5.
    k = np.arange(12, dtype=np.float32)
    motion2 = ((0.6 * k) ** 2 + (0.8 * k) ** 2).reshape(3, 4)
    motion2[2, 3] = 100.0**2
    objects = np.ones((3, 4), bool)
    objects[2, 3] = False
    assert _object_motion(objects, motion2, 0.9) == pytest.approx(9.0, abs=1e-5)
    assert _object_motion(objects, motion2, 1.0) == pytest.approx(10.0, abs=1e-5)
    assert _object_motion(objects, motion2, 0.5) == pytest.approx(5.0, abs=1e-5)
    assert _object_motion(np.zeros((3, 4), bool), motion2, 0.9) == 0.0  # no object: the floor


def _reaches(prop: dict[str, float], speeds: list[float], monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The reach of every step of one round on frame 0 of a 6-frame clip whose flows are replaced by a
    uniform vertical motion of ``speeds[t]`` px from frame t to t + 1 (exact in float16)."""
    frames, gt = moving_clip(t=len(speeds) + 1)
    be = PropagationBackend(prop=prop, flow_cache_size=0)
    be.reset(frames, 1, sequence="clip")
    for t, v in enumerate(speeds):
        be._fwd[t] = (0.0, v)
        be._bwd[t] = (0.0, -v)
    seen: list[float] = []

    def spy(p: np.ndarray, reach: float) -> np.ndarray:
        seen.append(reach)
        return _within_reach(p, reach)

    monkeypatch.setattr(propagation, "_within_reach", spy)
    be.interact(0, ScribbleRobot().interact("clip", np.zeros_like(gt), gt, nb_objects=1, frame=0))
    return seen


def test_the_reach_follows_the_motion_of_each_step(monkeypatch: pytest.MonkeyPatch) -> None:
    speeds = [5.0, 10.0, 5.0, 0.25, 5.0]
    # r_t = max(2, 4 x m_t): 20, 40, 20, 2 (4 x .25 = 1 < the floor 2), 20.
    assert _reaches(MOTION, speeds, monkeypatch) == pytest.approx([20.0, 40.0, 20.0, 2.0, 20.0])
    # Memory 2: m_t is the larger of this step's and the previous step's motion.
    memory = {**MOTION, "reach_memory": 2}
    assert _reaches(memory, speeds, monkeypatch) == pytest.approx([20.0, 40.0, 40.0, 20.0, 20.0])
    # c = 0 is the fixed reach r_min on every step.
    assert _reaches({"uniform_reach": 2.0}, speeds, monkeypatch) == [2.0] * 5


def test_a_negligible_motion_scale_is_the_fixed_reach_r_min() -> None:
    # c x m below r_min on every step: the motion path gives uniform_reach=r_min's outputs exactly.
    for a, b in zip(_run({"uniform_reach": 2.0, "reach_motion": 1e-6}), _run({"uniform_reach": 2.0}),
                    strict=True):
        assert np.array_equal(a, b)
    fixed = backend_fingerprint(PropagationBackend(prop={"uniform_reach": 2.0}))
    assert backend_fingerprint(PropagationBackend(prop={"uniform_reach": 2.0, "reach_motion": 0.0})) == fixed


def test_the_motion_reach_passes_check_backend_and_enters_the_fingerprint() -> None:
    frames, gt = moving_clip(t=5, two_objects=True)
    be = PropagationBackend(prop={**MOTION, "reach_memory": 2})
    outputs = check_backend(be, frames, gt, 2, robot=ScribbleRobot(), n_rounds=3, mask_rule="argmax")
    assert len(outputs) >= 2
    fp = backend_fingerprint(be)
    assert '"reach_motion": 4.0' in fp and '"reach_memory": 2' in fp and "reach_quantile" not in fp
    for prop in ({"reach_motion": 4.0}, {**MOTION, "reach_memory": 0}, {**MOTION, "reach_quantile": 1.5}):
        with pytest.raises(InputValidationError, match="reach_"):
            PropagationBackend(prop=prop)
