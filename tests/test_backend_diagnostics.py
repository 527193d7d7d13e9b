"""Backend diagnostics: the optional ``BackendOutput.diagnostics`` field and the propagation
backend's agreement of the two runs that reach a frame (issue #15: signals a backend knows about
its own output, as extra quality-model columns)."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.backends import check_backend
from ivos_rl.backends.base import BackendOutput
from ivos_rl.backends.cached import backend_fingerprint, decode_entry, encode_entry
from ivos_rl.backends.propagation import DIAGNOSTIC_NAMES, PropagationBackend, _Crop
from ivos_rl.errors import BackendError, InputValidationError
from ivos_rl.quality.features import feature_names, quality_features
from ivos_rl.robot import ScribbleRobot
from ivos_rl.testing import moving_clip


def _output(**diagnostics: np.ndarray) -> BackendOutput:
    return BackendOutput(
        probs=np.zeros((3, 2, 4, 5), np.uint8), masks=np.zeros((3, 4, 5), np.uint8), diagnostics=diagnostics
    )


def test_diagnostics_must_be_finite_float32_per_frame_and_object() -> None:
    ok = _output(runs_iou=np.ones((3, 2), np.float32))
    assert ok.diagnostics is not None and ok.diagnostics["runs_iou"].shape == (3, 2)
    assert BackendOutput(probs=ok.probs, masks=ok.masks).diagnostics is None  # third-party backends
    with pytest.raises(BackendError, match="runs_iou"):
        _output(runs_iou=np.ones((3, 1), np.float32))  # one object short
    with pytest.raises(BackendError, match="float32"):
        _output(runs_iou=np.ones((3, 2), np.float64))
    with pytest.raises(BackendError, match="finite"):
        _output(runs_iou=np.full((3, 2), np.nan, np.float32))


def _square(top: int, left: int, shape: tuple[int, int] = (10, 10), size: int = 4) -> np.ndarray:
    """(2, H, W) uint8 soft labels: a ``size`` x ``size`` object square, background elsewhere."""
    soft = np.zeros((2, *shape), np.uint8)
    soft[0] = 255
    soft[0, top : top + size, left : left + size] = 0
    soft[1, top : top + size, left : left + size] = 255
    return soft


def test_run_agreement_is_the_iou_of_the_two_runs_and_their_disagreement_over_the_output_area() -> None:
    # Frames 0 and 4 annotated; frame 2 is reached by the run from 0 (a 4x4 square at column 2)
    # and the run from 4 (the same square one column to the right): intersection 12, union 20,
    # so IoU 0.6; they disagree on 8 pixels, over the output's 16-pixel mask: 0.5.
    be = PropagationBackend(working_height=None, diagnostics=True)
    be.reset(np.zeros((5, 10, 10, 3), np.uint8), 1)
    full = (slice(0, 10), slice(0, 10))
    be._segs = {0: np.zeros((10, 10), np.uint8), 4: np.zeros((10, 10), np.uint8)}
    be._runs[(0, 1)] = [_Crop(full, _square(3, 2)) for _ in range(3)]
    be._runs[(4, -1)] = [_Crop(full, _square(3, 3)) for _ in range(3)]
    be._soft[2] = _square(3, 2)
    assert be._run_agreement(2) == pytest.approx(np.array([[0.6, 0.5]]))
    # Runs that agree exactly: IoU 1, nothing disagrees.
    be._runs[(4, -1)] = [_Crop(full, _square(3, 2)) for _ in range(3)]
    assert be._run_agreement(2) == pytest.approx(np.array([[1.0, 0.0]]))
    # An annotated frame, and a frame with an annotation on one side only: (1, 0).
    assert be._run_agreement(0) == pytest.approx(np.array([[1.0, 0.0]]))
    del be._segs[4]
    assert be._run_agreement(2) == pytest.approx(np.array([[1.0, 0.0]]))


def test_run_agreement_clips_the_disagreement_when_the_output_lost_the_object() -> None:
    be = PropagationBackend(working_height=None, diagnostics=True)
    be.reset(np.zeros((3, 10, 10, 3), np.uint8), 1)
    full = (slice(0, 10), slice(0, 10))
    be._segs = {0: np.zeros((10, 10), np.uint8), 2: np.zeros((10, 10), np.uint8)}
    be._runs[(0, 1)] = [_Crop(full, _square(0, 0))]
    be._runs[(2, -1)] = [_Crop(full, _square(6, 6))]
    be._soft[1] = _square(0, 0, size=0)  # empty output mask: 32 disagreeing pixels / max(0, 1), clipped
    assert be._run_agreement(1) == pytest.approx(np.array([[0.0, 4.0]]))


def _rounds(diagnostics: bool, frames_to_annotate: tuple[int, ...] = (0, 9, 4)) -> list[BackendOutput]:
    frames, gt = moving_clip(t=10, two_objects=True)
    be = PropagationBackend(diagnostics=diagnostics)
    be.reset(frames, 2, sequence="clip")
    robot, pred, outs = ScribbleRobot(), np.zeros_like(gt), []
    for frame in frames_to_annotate:
        out = be.interact(frame, robot.interact("clip", pred, gt, nb_objects=2, frame=frame))
        pred = out.masks
        outs.append(out)
    return outs


def test_diagnostics_change_no_output_and_follow_the_annotations() -> None:
    plain, diag = _rounds(False), _rounds(True)
    for a, b in zip(plain, diag, strict=True):
        assert np.array_equal(a.probs, b.probs) and np.array_equal(a.masks, b.masks)
        assert a.changed_frames == b.changed_frames and a.diagnostics is None
        assert b.diagnostics is not None and tuple(b.diagnostics) == DIAGNOSTIC_NAMES
    first = diag[0].diagnostics
    assert first is not None  # one annotated frame: every frame is reached by one run
    assert np.array_equal(first["runs_iou"], np.ones((10, 2), np.float32))
    assert np.array_equal(first["runs_xor_rel"], np.zeros((10, 2), np.float32))
    second = diag[1].diagnostics
    assert second is not None
    iou = second["runs_iou"]
    assert iou[0].tolist() == [1.0, 1.0] and iou[9].tolist() == [1.0, 1.0]  # annotated
    assert ((iou[1:9] >= 0) & (iou[1:9] <= 1)).all()
    assert (iou[1:9] > 0.5).all()  # both runs track the textured squares on this clip
    third = diag[2].diagnostics
    assert third is not None
    # Frame 4 is annotated now; frames outside its span (none here: 0 and 9 bound it) keep theirs.
    assert third["runs_iou"][4].tolist() == [1.0, 1.0]


def test_diagnostics_enter_the_fingerprint_only_when_on_and_pass_check_backend() -> None:
    default = backend_fingerprint(PropagationBackend())
    assert backend_fingerprint(PropagationBackend(diagnostics=False)) == default
    fp = backend_fingerprint(PropagationBackend(diagnostics=True))
    assert fp != default and '"diagnostics": ["runs_iou", "runs_xor_rel"]' in fp
    frames, gt = moving_clip(t=5, two_objects=True)
    outs = check_backend(PropagationBackend(diagnostics=True), frames, gt, 2, robot=ScribbleRobot(),
                         n_rounds=3, mask_rule="argmax")
    assert all(o.diagnostics is not None for o in outs)
    with pytest.raises(InputValidationError, match="diagnostics"):
        PropagationBackend(diagnostics="yes")  # type: ignore[arg-type]


def test_a_fork_keeps_its_own_diagnostics() -> None:
    frames, gt = moving_clip(t=8)
    be = PropagationBackend(diagnostics=True)
    be.reset(frames, 1, sequence="clip")
    robot = ScribbleRobot()
    be.interact(0, robot.interact("clip", np.zeros_like(gt), gt, nb_objects=1, frame=0))
    fork = be.fork()
    out = fork.interact(7, robot.interact("clip", np.zeros_like(gt), gt, nb_objects=1, frame=7))
    assert out.diagnostics is not None and out.diagnostics["runs_iou"][3, 0] < 1.0 + 1e-6
    assert np.array_equal(be._agree[:, :, 0], np.ones((8, 1), np.float32))  # the original is untouched


def test_quality_features_read_the_diagnostics_as_named_columns() -> None:
    out = _rounds(True)[1]
    frames, _ = moving_clip(t=10, two_objects=True)
    x = quality_features(frames, out.probs, [0, 9], out.diagnostics)
    names = feature_names(out.diagnostics or {})
    assert names[-2:] == ("diag_runs_iou", "diag_runs_xor_rel") and x.shape == (10, 2, len(names))
    assert out.diagnostics is not None
    assert np.array_equal(x[:, :, -2], out.diagnostics["runs_iou"])


def test_the_backend_cache_keeps_diagnostics_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    diag = {"runs_iou": rng.random((3, 2), dtype=np.float32), "runs_xor_rel": np.zeros((3, 2), np.float32)}
    out = _output(**diag)
    back = decode_entry(encode_entry("k", out), "k")
    assert back.diagnostics is not None and set(back.diagnostics) == set(diag)
    for name, arr in diag.items():
        assert back.diagnostics[name].dtype == np.float32 and np.array_equal(back.diagnostics[name], arr)
    plain = BackendOutput(probs=out.probs, masks=out.masks)
    assert decode_entry(encode_entry("k", plain), "k").diagnostics is None


def test_a_cache_entry_with_malformed_diagnostics_is_refused_as_damaged() -> None:
    import json

    from ivos_rl.errors import CorruptFileError

    blob = encode_entry("k", _output(runs_iou=np.ones((3, 2), np.float32)))
    magic = blob[: blob.index(b"\n") + 1]  # the entry's magic line
    n_head = int.from_bytes(blob[len(magic) : len(magic) + 4], "little")
    head = json.loads(blob[len(magic) + 4 : len(magic) + 4 + n_head])
    payload = blob[len(magic) + 4 + n_head :]
    for bad, match in (([1, 2], "expected an object"), ({"runs_iou": [[1.0]]}, "runs_iou")):
        new = json.dumps({**head, "diagnostics": bad}, sort_keys=True).encode()
        with pytest.raises(CorruptFileError, match=match):
            decode_entry(magic + len(new).to_bytes(4, "little") + new + payload, "k")
