"""PropagationBackend: contract, propagation of a moving object, refinement, multi-object, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.backends import build_backend, check_backend
from ivos_rl.backends._prompts import stroke_label_map
from ivos_rl.backends.propagation import PropagationBackend
from ivos_rl.errors import BackendError, InputValidationError, IvosError, ScribbleError
from ivos_rl.metrics import batched_jaccard
from ivos_rl.robot import ScribbleRobot
from ivos_rl.testing import CLIP_SIZE, moving_clip, on_frame, stroke

H, W = CLIP_SIZE
SHARED = Path("/work/shared/data/davis2016-train")


def test_reproduces_a_translated_object() -> None:
    frames, gt = moving_clip()
    t = len(frames)
    be = PropagationBackend()
    be.reset(frames, 1, sequence="clip")
    out = be.interact(0, on_frame(t, 0, [stroke(1, [(9, 15), (16, 15)]), stroke(0, [(2, 40), (60, 40)])]))
    jac = batched_jaccard(gt, out.masks, nb_objects=1)
    # A 14x14 square that is off by one pixel column and one row still has J = 13*13/(2*196-169)
    # = 0.76; the textured object differs from the background in colour and brightness and
    # moves 2 px/frame, so every frame must be within about one pixel of the truth.
    assert jac.min() >= 0.75, jac
    assert jac.mean() >= 0.85, jac
    # The mask follows the motion: its centroid moves right by ~2 px per frame.
    xs = [np.nonzero(m)[1].mean() for m in out.masks]
    assert np.allclose(np.diff(xs), 2.0, atol=0.75), xs


def test_refines_a_frame_annotated_twice_and_keeps_every_stroke() -> None:
    # The object is a red top half and a blue bottom half; a stroke on the red half alone leaves
    # the blue half out, the robot's correction stroke on round 2 must bring it in.
    frames, gt = moving_clip(t=4)
    frames[:, 15:22][gt[:, 15:22] == 1] = (60, 90, 230)
    t = len(frames)
    be = PropagationBackend()
    be.reset(frames, 1, sequence="clip")
    first = on_frame(t, 1, [stroke(1, [(10, 10), (19, 11)])])
    out1 = be.interact(1, first)
    j1 = batched_jaccard(gt, out1.masks, nb_objects=1)[1]
    second = ScribbleRobot().interact("clip", out1.masks, gt, nb_objects=1, frame=1)
    assert second["scribbles"][1], "the robot must find an error to correct"
    out2 = be.interact(1, second)
    j2 = batched_jaccard(gt, out2.masks, nb_objects=1)[1]
    assert j1 < 0.8 and j2 > j1 + 0.1, (j1, j2)
    # No pixel of either round's strokes may lose its label (the later round wins on overlaps).
    required = stroke_label_map(first["scribbles"][1] + second["scribbles"][1], H, W)
    on = required >= 0
    assert np.array_equal(out2.masks[1][on], required[on])


def test_two_objects_are_tracked_separately() -> None:
    frames, gt = moving_clip(t=6, two_objects=True)
    t = len(frames)
    be = PropagationBackend()
    be.reset(frames, 2, sequence="clip")
    out = be.interact(2, on_frame(t, 2, [
        stroke(1, [(13, 15), (21, 15)]),
        stroke(2, [(50, 23), (50, 31)]),
        stroke(0, [(2, 42), (40, 42)]),
    ]))
    per_obj = batched_jaccard(gt, out.masks, nb_objects=2, average_over_objects=False)
    assert per_obj.shape == (t, 2)
    assert per_obj.min() >= 0.7, per_obj
    # Probabilities compete: at most one object above 0.5 anywhere.
    assert ((out.probs > 127).sum(axis=1) <= 1).all()


def _fast_knobs() -> dict[str, Any]:
    """The seg/prop knobs of configs/backend/propagation_fast.yaml (the v3 candidate)."""
    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[1] / "configs" / "backend" / "propagation_fast.yaml"
    cfg = OmegaConf.load(path)
    return {k: dict(cfg[k]) for k in ("seg", "prop")}


@pytest.mark.parametrize("kwargs", [{"prop": {"keep_previous": 0.0}}, {"prop": {"keep_previous": 1.0}},
                                    _fast_knobs(), {"prop": {"uniform_weight": 0.5, "uniform_reach": 8.0}},
                                    {"prop": {"uniform_reach": 8.0, "reach_motion": 4.0, "reach_memory": 2}}],
                         ids=["keep0", "keep1", "fast", "prior", "motion_reach"])
def test_rounds_are_local_frames_outside_the_span_are_byte_identical(kwargs: dict[str, Any]) -> None:
    # Annotations on 0, 8, then 4: frame 4's span is 1..7 (between its annotated neighbours 0
    # and 8); re-annotating 4 changes 1..7 again; 11 changes 9..11 (from 8 to the video's end).
    frames, gt = moving_clip(t=12, two_objects=True)
    be = PropagationBackend(**kwargs)
    be.reset(frames, 2, sequence="clip")
    robot = ScribbleRobot()
    expected_spans = {0: range(12), 8: range(1, 12), 4: range(1, 8), 11: range(9, 12)}
    prev = None
    strokes_so_far: dict[int, list[dict[str, Any]]] = {}
    for frame in (0, 8, 4, 4, 11):
        pred = np.zeros_like(gt) if prev is None else prev.masks
        inter = robot.interact("clip", pred, gt, nb_objects=2, frame=frame)
        if frame == 4 and strokes_so_far.get(4):  # second round on 4: force a correction
            inter["scribbles"][4] = [stroke(0, [(30, 40), (40, 40)])]
        assert inter["scribbles"][frame], frame
        strokes_so_far.setdefault(frame, []).extend(inter["scribbles"][frame])
        out = be.interact(frame, inter)
        span = expected_spans[frame]
        assert out.changed_frames == tuple(span)
        assert out.changed_mask().tolist() == [t in span for t in range(12)]
        if prev is not None:
            for t in range(12):
                if t not in span:
                    assert np.array_equal(out.masks[t], prev.masks[t]), (frame, t)
                    assert np.array_equal(out.probs[t], prev.probs[t]), (frame, t)
        # Every annotated frame keeps all of its strokes so far (later strokes win on overlaps).
        for a, strokes in strokes_so_far.items():
            required = stroke_label_map(strokes, H, W)
            on = required >= 0
            assert np.array_equal(out.masks[a][on], required[on]), a
        prev = out


def test_fork_is_independent_and_gives_the_rounds_a_deep_copy_gives() -> None:
    # After rounds on 0 and 8, a fork and a deep copy both annotate 4 (span 1..7); the original
    # then annotates 11 instead. The fork must equal the deep copy byte for byte, the original
    # must not see the fork's round (its 11-round equals a fresh backend's), and the fork must
    # share the read-only flows rather than copy them.
    frames, gt = moving_clip(t=12, two_objects=True)
    robot = ScribbleRobot()

    def rounds(be: PropagationBackend, order: tuple[int, ...]) -> list[Any]:
        outs = []
        for frame in order:
            pred = np.zeros_like(gt) if not outs else outs[-1].masks
            outs.append(be.interact(frame, robot.interact("clip", pred, gt, nb_objects=2, frame=frame)))
        return outs

    be = PropagationBackend()
    be.reset(frames, 2, sequence="clip")
    base = rounds(be, (0, 8))
    fork, deep = be.fork(), copy.deepcopy(be)
    soft_before = be._soft.copy()
    assert fork is not be and fork._flows is be._flows and fork._soft is not be._soft
    pred = robot.interact("clip", base[-1].masks, gt, nb_objects=2, frame=4)
    out_fork, out_deep = fork.interact(4, pred), deep.interact(4, pred)
    assert out_fork.changed_frames == out_deep.changed_frames == tuple(range(1, 8))
    assert np.array_equal(out_fork.probs, out_deep.probs) and np.array_equal(out_fork.masks, out_deep.masks)
    assert 4 in fork._segs and 4 not in be._segs and np.array_equal(be._soft, soft_before)
    fresh = PropagationBackend()
    fresh.reset(frames, 2, sequence="clip")
    expected = rounds(fresh, (0, 8, 11))[-1]
    last = be.interact(11, robot.interact("clip", base[-1].masks, gt, nb_objects=2, frame=11))
    assert np.array_equal(last.probs, expected.probs) and np.array_equal(last.masks, expected.masks)
    unstarted = PropagationBackend().fork()  # before any reset: a plain copy, nothing to share
    assert not unstarted._ready


def test_a_correction_fades_out_towards_the_annotated_neighbour() -> None:
    # A static video: the square is marked as the object on frame 0, then wiped out as
    # background on frame 8. Without certainty weighting, frame t in 1..7 mixes the new run
    # (background, weight t/8) with its previous labels (object, weight 1 - t/8): the square
    # stays foreground before the midpoint and disappears after it; frame 4 is a tie.
    frames, gt = moving_clip(t=1)
    frames, gt = np.repeat(frames, 9, axis=0), np.repeat(gt, 9, axis=0)
    be = PropagationBackend(prop={"fusion_certainty": 0.0})
    be.reset(frames, 1, sequence="clip")
    first = be.interact(0, on_frame(9, 0, [stroke(1, [(8, 15), (17, 15)]), stroke(0, [(2, 40), (60, 40)])]))
    assert batched_jaccard(gt, first.masks, nb_objects=1).min() >= 0.8
    wipe = [stroke(0, [(5, y), (22, y)]) for y in range(7, 24, 2)]
    out = be.interact(8, on_frame(9, 8, wipe))
    assert out.masks[8].sum() == 0
    # The new run carries no object at all (frame 8 has none), so the square's centre keeps
    # (1 - t/8) of its previous probability (+-1 grey level of uint8 rounding).
    before, after = first.probs[:, 0, 15, 13].astype(int), out.probs[:, 0, 15, 13].astype(int)
    assert (before[1:8] >= 240).all(), before
    for t in range(1, 8):
        assert abs(after[t] - before[t] * (1 - t / 8)) <= 1, (t, before[t], after[t])
        assert out.masks[t, 15, 13] == (1 if t < 4 else 0), t


def test_backend_output_changed_frames_is_validated_and_the_version_is_fingerprinted() -> None:
    from ivos_rl.backends.base import BackendOutput
    from ivos_rl.backends.cached import backend_fingerprint

    probs, masks = np.zeros((3, 1, 2, 2), np.uint8), np.zeros((3, 2, 2), np.uint8)
    assert BackendOutput(probs, masks).changed_mask().all()  # unknown: every frame
    assert BackendOutput(probs, masks, changed_frames=(0, 2)).changed_mask().tolist() == [True, False, True]
    for bad in ((3,), (2, 1), (1, 1), [0], (True,)):
        with pytest.raises(BackendError, match="changed_frames"):
            BackendOutput(probs, masks, changed_frames=bad)  # type: ignore[arg-type]
    assert '"version": "2"' in backend_fingerprint(PropagationBackend())


def test_non_default_seg_and_prop_parameters_enter_the_fingerprint() -> None:
    from ivos_rl.backends.cached import backend_fingerprint

    default = backend_fingerprint(PropagationBackend())
    # The default fingerprint is what it was before parameters entered it (runs, caches and
    # checkpoints recorded with it stay valid).
    assert default == (
        '{"class": "ivos_rl.backends.propagation.PropagationBackend", "config": {"colour_bins": 16, '
        '"flow_cache_dir": null, "flow_cache_size": 2, "flow_preset": "fine", "working_height": 240}, '
        '"version": "2"}'
    )
    assert backend_fingerprint(PropagationBackend(seg={"change_radius": 1.0})) == default  # = the default
    other = backend_fingerprint(PropagationBackend(seg={"change_radius": 0.0}, prop={"keep_previous": 0.5}))
    assert '"seg": {"change_radius": 0.0}' in other and '"prop": {"keep_previous": 0.5}' in other


def test_deterministic_and_flow_cache() -> None:
    frames, _ = moving_clip(t=5)
    t = len(frames)
    inter = on_frame(t, 2, [stroke(1, [(12, 12), (20, 18)])])
    be = PropagationBackend()
    be.reset(frames, 1, sequence="clip")
    flows = be._fwd
    a = be.interact(2, inter)
    assert set(be.last_timings) == {"cut", "propagate"} and min(be.last_timings.values()) >= 0.0
    binned = be._flows.motion_bins[(2, 16)]
    be.reset(frames, 1, sequence="clip")
    assert be._fwd is flows  # same video again: flows come from the cache
    b = be.interact(2, inter)
    assert be._flows.motion_bins[(2, 16)] is binned  # and so does the annotated frame's binned motion
    c = PropagationBackend(flow_cache_size=0)
    c.reset(frames, 1, sequence="clip")
    cc = c.interact(2, inter)
    for other in (b, cc):
        assert np.array_equal(a.probs, other.probs) and np.array_equal(a.masks, other.masks)


def test_flow_disk_cache_is_reused_and_damaged_files_are_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ivos_rl.backends.propagation as prop

    frames, _ = moving_clip(t=5)
    inter = on_frame(len(frames), 2, [stroke(1, [(12, 12), (20, 18)])])
    first = PropagationBackend(flow_cache_size=0, flow_cache_dir=tmp_path)
    first.reset(frames, 1, sequence="clip")
    a = first.interact(2, inter)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1

    def no_flows(*_args: Any, **_kw: Any) -> None:
        raise AssertionError("flows should have come from the disk cache")

    with monkeypatch.context() as m:  # a new backend (another run) reads the file
        m.setattr(prop, "compute_flows", no_flows)
        second = PropagationBackend(flow_cache_size=0, flow_cache_dir=tmp_path)
        second.reset(frames, 1, sequence="clip")
        b = second.interact(2, inter)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.masks, b.masks)

    files[0].write_bytes(b"not a zip file")  # damaged: recomputed and replaced, not trusted
    third = PropagationBackend(flow_cache_size=0, flow_cache_dir=tmp_path)
    third.reset(frames, 1, sequence="clip")
    assert np.array_equal(third.interact(2, inter).probs, a.probs)
    fwd, _ = prop.load_flows(files[0], (len(frames) - 1, H, W))
    assert fwd.shape == (len(frames) - 1, H, W, 2)


def test_working_resolution_is_resized_back_and_strokes_pinned_at_input_size() -> None:
    frames, gt = moving_clip(t=4)
    big = np.repeat(np.repeat(frames, 2, axis=1), 2, axis=2)  # 96 x 128
    gt_big = np.repeat(np.repeat(gt, 2, axis=1), 2, axis=2)
    be = PropagationBackend(working_height=48)
    be.reset(big, 1)
    s = {"path": [[18 / 127, 30 / 95], [34 / 127, 30 / 95]], "object_id": 1}
    scribbles: list[list[dict[str, Any]]] = [[] for _ in range(4)]
    scribbles[0] = [s]
    out = be.interact(0, {"scribbles": scribbles})
    assert out.masks.shape == (4, 96, 128) and out.probs.shape == (4, 1, 96, 128)
    assert batched_jaccard(gt_big, out.masks, nb_objects=1).mean() >= 0.8
    on = stroke_label_map([s], 96, 128) >= 0
    assert (out.masks[0][on] == 1).all()


def test_bad_input_raises_typed_errors_and_leaves_no_trace() -> None:
    frames, _ = moving_clip(t=4)
    t = len(frames)
    be = PropagationBackend()
    good = on_frame(t, 0, [stroke(1, [(9, 15), (16, 15)])])
    with pytest.raises(BackendError):
        be.interact(0, good)  # before reset
    with pytest.raises(InputValidationError, match="mixes frame sizes"):
        be.reset([frames[0], frames[1][:-1]], 1)
    with pytest.raises(InputValidationError, match="n_objects"):
        be.reset(frames, 0)
    be.reset(frames, 1, sequence="clip")
    for bad_idx in (t, -1):
        with pytest.raises(InputValidationError, match="frame_idx"):
            be.interact(bad_idx, good)
    with pytest.raises(ScribbleError, match=r"object_id.? ?=?2"):
        be.interact(0, on_frame(t, 0, [stroke(2, [(9, 15), (16, 15)])]))
    with pytest.raises(ScribbleError, match="frame_idx=0"):
        be.interact(0, on_frame(t, 0, []))
    two_frames = on_frame(t, 0, [stroke(1, [(9, 15), (16, 15)])])
    two_frames["scribbles"][1] = [stroke(1, [(11, 15), (18, 15)])]
    with pytest.raises(ScribbleError, match="besides frame_idx"):
        be.interact(0, two_frames)
    with pytest.raises(ScribbleError):  # no stroke on the frame said to be annotated
        be.interact(1, good)
    with pytest.raises(ScribbleError):  # pixel coordinates instead of normalised ones
        be.interact(0, on_frame(t, 0, [{"path": [[10.0, 15.0], [16.0, 15.0]], "object_id": 1}]))
    with pytest.raises(ScribbleError, match="sequence"):
        be.interact(0, {**good, "sequence": "other"})
    # None of the refused calls changed the state: the result equals a fresh backend's.
    after_errors = be.interact(0, good)
    fresh = PropagationBackend()
    fresh.reset(frames, 1, sequence="clip")
    expected = fresh.interact(0, good)
    assert np.array_equal(after_errors.masks, expected.masks)
    assert np.array_equal(after_errors.probs, expected.probs)


def test_internal_failure_is_a_backend_error_and_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    frames, _ = moving_clip(t=4)
    t = len(frames)
    first = on_frame(t, 0, [stroke(1, [(9, 15), (16, 15)])])
    second = on_frame(t, 3, [stroke(1, [(15, 15), (22, 15)])])
    be = PropagationBackend()
    be.reset(frames, 1, sequence="clip")
    be.interact(0, first)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise FloatingPointError("simulated numerical failure")

    monkeypatch.setattr(be, "_blend", broken)
    with pytest.raises(BackendError, match="frame 3"):
        be.interact(3, second)
    monkeypatch.undo()
    after = be.interact(3, second)
    fresh = PropagationBackend()
    fresh.reset(frames, 1, sequence="clip")
    fresh.interact(0, first)
    expected = fresh.interact(3, second)
    assert np.array_equal(after.probs, expected.probs) and np.array_equal(after.masks, expected.masks)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(InputValidationError, match="working_height"):
        PropagationBackend(working_height=4)
    with pytest.raises(InputValidationError, match="flow_preset"):
        PropagationBackend(flow_preset="ultra")
    with pytest.raises(InputValidationError, match=r"unknown prop parameters \['nope'\]"):
        PropagationBackend(prop={"nope": 1.0})
    with pytest.raises(InputValidationError, match=r"seg\.smoothness"):
        PropagationBackend(seg={"smoothness": float("nan")})
    with pytest.raises(InputValidationError, match=r"seg\.iterations must be a whole number"):
        PropagationBackend(seg={"iterations": 1.5})
    assert PropagationBackend(seg={"iterations": 3.0}).seg_params.iterations == 3


def test_check_backend_and_registry() -> None:
    frames, gt = moving_clip(t=5, two_objects=True)
    be = build_backend("propagation")
    assert isinstance(be, PropagationBackend)
    outputs = check_backend(be, frames, gt, 2, robot=ScribbleRobot(), n_rounds=3, mask_rule="argmax")
    assert len(outputs) >= 2
    with pytest.raises(IvosError):
        build_backend("propagation", colour_bins=1)


def test_real_excerpt_improves_over_rounds(davis_excerpt_root: Path) -> None:
    """Two committed real DAVIS clips (10 frames, 240p): robot rounds must raise the mean J."""
    from ivos_rl.data import DavisDataset

    ds = DavisDataset(davis_excerpt_root, resolution="240p")
    seq = ds.sequences[0]
    frames, gt = ds.load_frames(seq), ds.load_masks(seq)
    robot = ScribbleRobot()
    be = PropagationBackend()
    be.reset(frames, 1, sequence=seq)
    pred = np.zeros_like(gt)
    scores = []
    for _ in range(3):
        inter = robot.interact(seq, pred, gt, nb_objects=1)
        frame = next(i for i, s in enumerate(inter["scribbles"]) if s)
        pred = be.interact(frame, inter).masks
        scores.append(float(batched_jaccard(gt, pred, nb_objects=1).mean()))
    assert scores[0] >= 0.5 and scores[-1] >= scores[0] and scores[-1] >= 0.7, scores


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="shared DAVIS-2016 data not available")
def test_real_davis_sequence_rounds() -> None:
    """bear (82 frames, 240p): the worst-frame robot loop reaches J&F >= 0.75 by round 4."""
    from ivos_rl.data import DavisDataset
    from ivos_rl.metrics import batched_j_and_f

    ds = DavisDataset(SHARED, resolution="240p", sequences=["bear"])
    frames, gt = ds.load_frames("bear"), ds.load_masks("bear")
    robot = ScribbleRobot()
    be = PropagationBackend()
    be.reset(frames, 1, sequence="bear")
    pred = np.zeros_like(gt)
    curve = []
    for _ in range(4):
        inter = robot.interact("bear", pred, gt, nb_objects=1)
        frame = next(i for i, s in enumerate(inter["scribbles"]) if s)
        pred = be.interact(frame, inter).masks
        curve.append(float(batched_j_and_f(gt, pred, nb_objects=1).mean()))
    assert curve[-1] >= 0.75 and curve[-1] > curve[0], curve


def test_fast_rasteriser_paints_the_pixels_of_scribbles2mask() -> None:
    from ivos_rl.backends._interactive_seg import Stroke, rasterise

    rng = np.random.default_rng(3)
    strokes = [Stroke(int(rng.integers(0, 3)), rng.random((int(rng.integers(1, 40)), 2)), 1)
               for _ in range(6)]
    for shape in ((48, 64), (240, 427), (7, 5)):
        expected = stroke_label_map([s.as_dict() for s in strokes], *shape)
        assert np.array_equal(rasterise(strokes, shape), expected)


def test_cached_backend_keeps_changed_frames_on_hits(tmp_path: Path) -> None:
    from ivos_rl.backends.cached import CachedBackend, decode_entry, encode_entry

    frames, _ = moving_clip(t=6)
    rounds = [(0, on_frame(6, 0, [stroke(1, [(9, 15), (16, 15)])])),
              (3, on_frame(6, 3, [stroke(0, [(2, 40), (60, 40)])]))]
    outs = []
    for _ in range(2):  # the second pass is served from disk
        cached = CachedBackend(PropagationBackend(), tmp_path)
        cached.reset(frames, 1, sequence="clip")
        outs.append([cached.interact(k, inter) for k, inter in rounds])
    assert cached.stats["hits"] == 2
    for live, hit in zip(*outs, strict=True):
        assert hit.changed_frames == live.changed_frames and np.array_equal(hit.probs, live.probs)
    assert outs[1][0].changed_frames == tuple(range(6)) and outs[1][1].changed_frames == (1, 2, 3, 4, 5)
    # An entry written before the field existed (same format, header without it) reads as unknown.
    blob = encode_entry("k", outs[0][0])
    magic = blob.index(b"\n") + 1
    n_head = int.from_bytes(blob[magic : magic + 4], "little")
    header = json.loads(blob[magic + 4 : magic + 4 + n_head])
    assert header.pop("changed_frames") == [0, 1, 2, 3, 4, 5]
    head = json.dumps(header, sort_keys=True).encode()
    old_style = blob[:magic] + len(head).to_bytes(4, "little") + head + blob[magic + 4 + n_head :]
    assert decode_entry(old_style, "k").changed_frames is None


def test_the_cut_may_only_change_labels_near_the_new_strokes() -> None:
    from ivos_rl.backends._interactive_seg import Stroke, _local_changes

    # Prediction: object on rows 2..5, columns 2..9 of a 20 x 20 frame. The cut moved two
    # regions: it added columns 10..13 next to a new object stroke (length 4 px, at column 11),
    # and it dropped a far block (rows 14..17) that no stroke touched. With a reach of
    # max(0.5 x 4, 3) = 3 px around the stroke, only the first change is kept.
    prior = np.zeros((2, 20, 20), np.float32)
    prior[0] = 1.0
    prior[:, 2:6, 2:10] = [[[0.0]], [[1.0]]]
    prior[:, 14:18, 2:6] = [[[0.0]], [[1.0]]]
    cut = np.argmax(prior, axis=0).astype(np.uint8)
    cut[2:6, 10:14] = 1
    cut[14:18, 2:6] = 0
    new = [Stroke(1, np.array([[11 / 19, 2 / 19], [11 / 19, 6 / 19]]), 1)]
    out = _local_changes(cut, prior, new, 0.5)
    expected = np.argmax(prior, axis=0).astype(np.uint8)
    expected[2:6, 10:14] = 1  # every changed pixel within 3 px of column 11 (rows 2..6)
    assert np.array_equal(out, expected)


def test_connected_changes_keep_a_region_the_stroke_reaches_whole() -> None:
    from ivos_rl.backends._interactive_seg import Stroke, _local_changes

    # Prediction: object on rows 2..5, columns 2..9 of a 20 x 20 frame. The cut grew it over
    # columns 10..17 (one region, touching a new object stroke at column 11, length 4 px) and
    # dropped a far block (rows 14..17) that no stroke comes near. Reach max(0.5 x 4, 3) = 3 px:
    # pixel by pixel only columns 10..14 of the grown region are within it; connected, the whole
    # region 10..17 is kept. The far block stays refused either way.
    prior = np.zeros((2, 20, 20), np.float32)
    prior[0] = 1.0
    prior[:, 2:6, 2:10] = [[[0.0]], [[1.0]]]
    prior[:, 14:18, 2:6] = [[[0.0]], [[1.0]]]
    before = np.argmax(prior, axis=0).astype(np.uint8)
    cut = before.copy()
    cut[2:6, 10:18] = 1
    cut[14:18, 2:6] = 0
    new = [Stroke(1, np.array([[11 / 19, 2 / 19], [11 / 19, 6 / 19]]), 1)]
    pixelwise = _local_changes(cut, prior, new, 0.5)
    expected = before.copy()
    expected[2:6, 10:15] = 1
    assert np.array_equal(pixelwise, expected)
    connected = _local_changes(cut, prior, new, 0.5, connected=True)
    expected[2:6, 10:18] = 1
    assert np.array_equal(connected, expected)
    # a cut that changed nothing near the stroke keeps the prediction
    only_far = before.copy()
    only_far[14:18, 2:6] = 0
    assert np.array_equal(_local_changes(only_far, prior, new, 0.5, connected=True), before)


def test_seg_switches_take_booleans_only() -> None:
    from ivos_rl.backends.cached import backend_fingerprint

    default = backend_fingerprint(PropagationBackend())
    assert PropagationBackend(seg={"change_connected": False}).seg_params.change_connected is False
    on = PropagationBackend(seg={"change_connected": True})
    assert on.seg_params.change_connected is True
    assert '"change_connected": true' in backend_fingerprint(on) != default
    with pytest.raises(InputValidationError, match=r"seg\.change_connected must be true or false"):
        PropagationBackend(seg={"change_connected": 1})


def test_flows_of_thin_frames_are_padded_not_crashing() -> None:
    # OpenCV's DIS raises on some thin frames and crashes the process on others (20x100, 8x64 with
    # opencv-python-headless 5.0): run them in a child so that a crash fails this test, not pytest
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from ivos_rl.backends._flow import DIS_PRESETS, compute_flows\n"
        "for preset in DIS_PRESETS:\n"
        "    for h, w in [(20, 100), (8, 64), (5, 100), (100, 5), (12, 40), (1, 1)]:\n"
        "        g = np.random.default_rng(0).integers(0, 255, (3, h, w), dtype=np.uint8)\n"
        "        fwd, bwd = compute_flows(g, preset)\n"
        "        assert fwd.shape == bwd.shape == (2, h, w, 2) and np.isfinite(fwd).all(), (preset, h, w)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_dis_flow_is_plain_dis_on_frames_of_usual_size() -> None:
    import cv2

    from ivos_rl.backends._flow import DIS_MIN_SIDE, dis_flow

    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (DIS_MIN_SIDE, 60)).astype(np.float32)
    a = cv2.GaussianBlur(noise, (0, 0), 2).astype(np.uint8)
    b = np.roll(a, 2, axis=1)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    np.testing.assert_array_equal(dis_flow(dis, a, b), dis.calc(a, b, None))  # no padding from 32 px on
