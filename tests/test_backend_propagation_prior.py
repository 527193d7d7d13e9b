"""The prior of unreliable pixels in the propagation backend (``prop.uniform_weight`` /
``prop.uniform_reach``, opt-in, issue 14): the exact mix, its reach, locality and the contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ivos_rl.backends import check_backend
from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.backends.propagation import PropagationBackend, _unreliable_prior, _within_reach
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
