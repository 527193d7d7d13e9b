"""The propagation backend's opt-in speed knobs (configs/backend/propagation_fast.yaml, v3 candidate):
the cropped cut, the warp cache, the motion-bounded propagation box, locality and the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.backends import check_backend
from ivos_rl.backends._colour_model import quantise_colours
from ivos_rl.backends._interactive_seg import FrameSegmenter, SegParams, Stroke, _border_labels, _Window
from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.backends.propagation import PropagationBackend, _FlowCache, _reached_box, _WarpMaps
from ivos_rl.errors import InputValidationError
from ivos_rl.robot import ScribbleRobot
from ivos_rl.testing import moving_clip, on_frame, stroke, texture

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def fast_backend(**overrides: Any) -> PropagationBackend:
    """The backend of ``backend=propagation_fast``, composed by Hydra as the scripts do."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("evaluate", overrides=["backend=propagation_fast"])
    backend = instantiate(cfg.backend, **overrides)
    assert isinstance(backend, PropagationBackend)
    return backend


def _two_colour_frame() -> tuple[np.ndarray, np.ndarray]:
    """A 60 x 80 green frame with a red 20 x 30 object (rows 20..39, columns 25..54)."""
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:] = (40, 120, 40)
    rgb[20:40, 25:55] = (200, 30, 30)
    truth = np.zeros((60, 80), np.uint8)
    truth[20:40, 25:55] = 1
    return rgb, truth


def _path(points: list[tuple[int, int]], shape: tuple[int, int]) -> np.ndarray:
    """(x, y) pixel points as a normalised stroke path of a (H, W) frame."""
    return np.asarray([[x / (shape[1] - 1), y / (shape[0] - 1)] for x, y in points], np.float64)


def test_the_cropped_cut_equals_the_full_cut_when_the_strokes_are_far_from_the_border() -> None:
    # The current prediction misses the object's right third (columns 45..54). A 7 px object
    # stroke on row 30, columns 46..53, corrects it: with change_radius 1 the cut may change
    # pixels within 7 px of it, so the window is the stroke's box grown by 7 + crop_margin 4:
    # rows 19..41, columns 35..64, well inside the frame.
    rgb, truth = _two_colour_frame()
    bins = quantise_colours(rgb[None], 16)[0]
    before = truth.copy()
    before[:, 45:] = 0
    prior = np.stack([before == 0, before == 1]).astype(np.float32)
    old = [Stroke(1, _path([(28, 25), (40, 35)], (60, 80)), 1),
           Stroke(0, _path([(5, 5), (70, 5)], (60, 80)), 1)]
    new = [Stroke(1, _path([(46, 30), (53, 30)], (60, 80)), 2)]
    full = FrameSegmenter(2, 16, SegParams()).segment(rgb, bins, old + new, new, prior, None)
    cropped_seg = FrameSegmenter(2, 16, SegParams(crop_margin=4.0))
    assert cropped_seg._window(new, (60, 80)) == (slice(19, 42), slice(35, 65))
    cropped = cropped_seg.segment(rgb, bins, old + new, new, prior, None)
    assert np.array_equal(cropped, full)
    # The correction happened, and only within 7 px of the stroke (rows 23..37 of the missing part).
    assert (cropped[23:38, 46:54] == 1).all() and (cropped[:20] == 0).all()
    assert (cropped[20:23, 50] == 0).all() and (cropped[38:40, 50] == 0).all()


def test_a_window_as_large_as_the_frame_or_no_prior_means_the_whole_frame() -> None:
    seg = FrameSegmenter(2, 16, SegParams(crop_margin=4.0))
    long = [Stroke(1, _path([(0, 30), (79, 30)], (60, 80)), 2)]  # 79 px: the reach covers the frame
    assert seg._window(long, (60, 80)) is None
    assert FrameSegmenter(2, 16, SegParams())._window(long[:1], (60, 80)) is None  # knob off
    no_radius = FrameSegmenter(2, 16, SegParams(crop_margin=4.0, change_radius=0.0))
    assert no_radius._window(long, (60, 80)) is None


def test_the_window_border_keeps_the_current_labels_except_on_the_frame_border() -> None:
    # Window rows 0..4, columns 2..6 of a 10 x 10 frame whose prediction is object on column 4:
    # its top row lies on the frame's border (free); the other three sides are clamped in full.
    labels = np.zeros((10, 10), np.uint8)
    labels[:, 4] = 1
    prior = np.stack([labels == 0, labels == 1]).astype(np.float32)
    win = _Window((10, 10), (slice(0, 5), slice(2, 7)))
    clamp = _border_labels(win.crop(prior, 1), win)
    expected = np.full((5, 5), -1, np.int16)
    expected[-1] = [0, 0, 1, 0, 0]
    expected[:, 0] = 0
    expected[:, -1] = 0
    assert np.array_equal(clamp, expected)


def test_the_warp_cache_gives_the_same_outputs() -> None:
    frames, gt = moving_clip(t=8, two_objects=True)
    outs = []
    for prop in ({}, {"warp_cache": 1}):
        be = PropagationBackend(prop=prop)
        be.reset(frames, 2, sequence="clip")
        robot, pred, rounds = ScribbleRobot(), np.zeros_like(gt), []
        for frame in (0, 5, 2):
            inter = robot.interact("clip", pred, gt, nb_objects=2, frame=frame)
            if not inter["scribbles"][frame]:  # nothing to correct there: a background stroke
                inter["scribbles"][frame] = [stroke(0, [(30, 40), (40, 40)])]
            out = be.interact(frame, inter)
            pred = out.masks
            rounds.append(out)
        outs.append(rounds)
    for a, b in zip(*outs, strict=True):
        assert np.array_equal(a.probs, b.probs) and np.array_equal(a.masks, b.masks)
        assert a.changed_frames == b.changed_frames


def _shift_maps(h: int, w: int, dx: float, dy: float) -> _WarpMaps:
    """Sampling maps of a uniform motion: target pixel (x, y) samples the source at (x + dx, y + dy)."""
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    ones = np.ones((h, w), np.float32)
    return _WarpMaps(xs + dx, ys + dy, ones, 0 * ones)


def test_the_motion_box_holds_the_pixels_whose_samples_read_the_source_box() -> None:
    # Source box rows 10..19, columns 20..29 of a 40 x 60 frame; every pixel samples 3 px to its
    # right. A bilinear sample at x reads the source box when 19 < x < 30 (+1 px each side for
    # OpenCV's fixed-point maps: 18 < x < 31), i.e. target columns 16..27; rows 9..20 likewise;
    # then the margin (2 px).
    src = (slice(10, 20), slice(20, 30))
    assert _reached_box(src, _shift_maps(40, 60, 3.0, 0.0), 2.0) == (slice(7, 23), slice(14, 30))
    # The content moves 5 px down (each pixel samples 5 px above): rows 14..25 (+ margin 0).
    assert _reached_box(src, _shift_maps(40, 60, 0.0, -5.0), 0.0) == (slice(14, 26), slice(19, 31))
    # A source box on the top border: samples above the frame read its (replicated) first row,
    # so every row whose sample lies above row 11 counts, from the frame's top.
    top = (slice(0, 10), slice(20, 30))
    assert _reached_box(top, _shift_maps(40, 60, 0.0, -5.0), 0.0) == (slice(0, 16), slice(19, 31))
    # Samples that all land 30 rows below (rows 30..69: below the box or the frame): none reached.
    assert _reached_box(src, _shift_maps(40, 60, 0.0, 30.0), 2.0) is None


def _square_video(t: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(frames, labels, forward flows, backward flows) of a textured 14 x 14 square moving 2 px right
    per frame (rows 30..43, columns 40 + 2i .. 53 + 2i) on a static texture of 72 x 112, with the
    exact flows: the square's pixels move (2, 0), the background stays."""
    h, w = 72, 112
    rng = np.random.default_rng(0)
    base = texture(rng, h, w, 20, 90) * [0.5, 1.0, 0.8]
    red = texture(rng, 14, 14, 150, 220) * [1.0, 0.45, 0.3]
    frames = np.repeat(base[None], t, axis=0)
    gt = np.zeros((t, h, w), np.uint8)
    fwd = np.zeros((t - 1, h, w, 2), np.float16)
    bwd = np.zeros_like(fwd)
    for i in range(t):
        x = 40 + 2 * i
        frames[i, 30:44, x : x + 14] = red
        gt[i, 30:44, x : x + 14] = 1
        if i + 1 < t:
            fwd[i, 30:44, x : x + 14, 0] = 2
            bwd[i, 30:44, x + 2 : x + 16, 0] = -2
    return np.clip(frames, 0, 255).astype(np.uint8), gt, fwd, bwd


def test_the_motion_box_gives_the_full_frame_labels_of_a_moving_square() -> None:
    frames, gt, fwd, bwd = _square_video()
    t, h, w = gt.shape
    strokes = [stroke(1, [(43, 37), (50, 37)], (h, w)), stroke(0, [(10, 10), (100, 10)], (h, w))]
    outs = {}
    for name, prop in {"full": {"roi_margin": 1000.0}, "motion": {"motion_box": 4.0}}.items():
        be = PropagationBackend(prop=prop)
        be.reset(frames, 1, sequence="square")
        be._flows = _FlowCache(fwd, bwd)  # the exact flows instead of DIS's estimate
        be._fwd, be._bwd = fwd, bwd
        outs[name] = be.interact(0, on_frame(t, 0, strokes, "square"))
    full, motion = outs["full"], outs["motion"]
    assert np.array_equal(full.masks[0], gt[0])  # the cut found the square: frame 1's source box
    assert np.array_equal(motion.masks, full.masks)  # the same labels on every frame
    # Frame 1's box: pixels sampling rows 30..43 (+-2) = rows 29..44, and columns 40..53 (+-2):
    # background columns 39..54, the square's 42..55 (samples 2 px left); + 4 px.
    on = np.nonzero(motion.probs[1, 0])
    assert (on[0].min(), on[0].max(), on[1].min(), on[1].max()) == (25, 48, 35, 59)
    # What the box leaves out is only probability at the floor (2 % -> 5 / 255, 0 outside the box);
    # above it the two differ by at most 3 grey levels (~1 %: the blurs see the box's edge).
    diff = np.abs(full.probs.astype(int) - motion.probs)
    floor = full.probs <= 5
    assert diff[floor].max() == 5 and diff[~floor].max() <= 3


def test_the_fast_config_passes_check_backend() -> None:
    # Its locality test is test_backend_propagation.py's (parametrised with these knobs).
    frames, gt = moving_clip(t=5, two_objects=True)
    be = fast_backend()
    assert be.seg_params.crop_margin > 0 and be.prop_params.warp_cache == 1
    outputs = check_backend(be, frames, gt, 2, robot=ScribbleRobot(), n_rounds=3, mask_rule="argmax")
    assert len(outputs) >= 2


def test_the_knobs_enter_the_fingerprint_and_bad_values_are_refused() -> None:
    default = backend_fingerprint(PropagationBackend())
    fast = backend_fingerprint(fast_backend())
    assert fast != default and '"crop_margin": 8.0' in fast and '"warp_cache": 1' in fast
    assert '"motion_box": 4.0' in fast
    same = PropagationBackend(seg={"crop_margin": 0.0}, prop={"warp_cache": 0, "local_every": 1, "motion_box": 0.0})
    assert backend_fingerprint(same) == default  # the knobs' defaults are the default backend
    for prop in ({"warp_cache": 2}, {"local_every": 0}, {"motion_box": -1.0}):
        with pytest.raises(InputValidationError, match="prop"):
            PropagationBackend(prop=prop)


def test_hard_labelled_colour_samples_count_like_one_hot_weights() -> None:
    from ivos_rl.backends._colour_model import ColourModel

    # Bins 0, 1, 1, 2 labelled 0, 2, 2, 0: label 0 counts bins 0 and 2 once, label 2 bin 1 twice.
    bins, labels = np.array([[0, 1], [1, 2]]), np.array([[0, 2], [2, 0]])
    fast, slow = ColourModel(3, 2), ColourModel(3, 2)
    fast.add_labels(bins, labels)
    slow.add(bins, np.eye(3, dtype=np.float32)[labels].reshape(-1, 3).T)
    assert np.array_equal(fast.counts, slow.counts)
    assert fast.counts[0, :3].tolist() == [1.0, 0.0, 1.0] and fast.counts[2, :3].tolist() == [0.0, 2.0, 0.0]
    assert not fast.counts[1].any()
