"""The propagation backend's opt-in configs: the speed knobs (configs/backend/propagation_fast.yaml, v3
candidate: the cropped cut, the warp cache, locality and the contract) and propagation_accurate.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ivos_rl.backends import check_backend
from ivos_rl.backends._colour_model import quantise_colours
from ivos_rl.backends._interactive_seg import FrameSegmenter, SegParams, Stroke, _border_labels, _Window
from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.backends.propagation import PropagationBackend
from ivos_rl.errors import InputValidationError
from ivos_rl.robot import ScribbleRobot
from ivos_rl.testing import moving_clip, stroke

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def fast_backend(name: str = "propagation_fast", **overrides: Any) -> PropagationBackend:
    """The backend of ``backend=<name>`` (default the fast one), composed by Hydra as the scripts do."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"backend={name}"])
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
    for prop in ({"warp_cache": 0}, {"warp_cache": 1}):
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
    # Same outputs, same fingerprint: a speed-only knob never splits runs or caches.
    assert backend_fingerprint(PropagationBackend(prop={"warp_cache": 1})) == backend_fingerprint(
        PropagationBackend()
    )


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
    assert fast != default and '"crop_margin": 8.0' in fast and "warp_cache" not in fast
    same = PropagationBackend(seg={"crop_margin": 0.0}, prop={"warp_cache": 0, "local_every": 1})
    assert backend_fingerprint(same) == default  # the knobs' defaults are the default backend
    assert '"local_every": 2' in backend_fingerprint(PropagationBackend(prop={"local_every": 2}))
    for prop in ({"warp_cache": 2}, {"local_every": 0}):
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


def test_the_accurate_config_bounds_the_prior_and_passes_check_backend() -> None:
    # configs/backend/propagation_accurate.yaml: version 2 + the unreliable-pixel prior within 64 px.
    be = fast_backend("propagation_accurate")
    assert be.prop_params.uniform_reach == 64.0 and be.prop_params.uniform_weight == 1.0
    assert be.seg_params == PropagationBackend().seg_params
    fp = backend_fingerprint(be)
    assert fp != backend_fingerprint(PropagationBackend()) and '"prop": {"uniform_reach": 64.0}' in fp
    frames, gt = moving_clip(t=5, two_objects=True)
    outputs = check_backend(be, frames, gt, 2, robot=ScribbleRobot(), n_rounds=3, mask_rule="argmax")
    assert len(outputs) >= 2


def test_the_warp_store_keeps_the_most_recent_pairs_within_its_budget() -> None:
    # Bounded memory for the default warp cache: entries of 4 x 4 x 4 B = 64 B, a 150 B budget
    # keeps two; the least recently used goes first, a read counts as a use, and a too-large
    # entry is computed but never kept.
    from ivos_rl.backends.propagation import _WarpMaps, _WarpStore

    def maps(v: float, side: int = 2) -> _WarpMaps:
        a = np.full((side, side), v, np.float32)
        return _WarpMaps(a, a.copy(), a.copy(), a.copy())

    store = _WarpStore(150)
    store.put(("v", 0, 1), maps(1.0))
    store.put(("v", 1, 2), maps(2.0))
    assert store.get(("v", 0, 1)) is not None  # now the most recent
    store.put(("v", 2, 3), maps(3.0))
    assert len(store) == 2 and store.nbytes == 128
    assert store.get(("v", 1, 2)) is None and store.get(("v", 0, 1)) is not None
    store.put(("w", 0, 1), maps(4.0, side=4))  # 256 B > budget
    assert store.get(("w", 0, 1)) is None and len(store) == 2


def test_the_default_warp_cache_is_bounded_and_speed_only() -> None:
    # On by default since session 12: its knobs never enter the fingerprint, and a budget too small
    # for one pair (or warp_cache=0) gives the same outputs as the default.
    default = PropagationBackend()
    assert default.prop_params.warp_cache == 1 and default.prop_params.warp_cache_mb > 0
    for prop in ({"warp_cache": 0}, {"warp_cache_mb": 0.0}, {"warp_cache_mb": 0.5}):
        assert backend_fingerprint(PropagationBackend(prop=prop)) == backend_fingerprint(default)
    frames, gt = moving_clip(t=6, two_objects=True)
    outs = []
    for prop in ({}, {"warp_cache": 0}, {"warp_cache_mb": 0.01}):
        be = PropagationBackend(prop=prop)
        be.reset(frames, 2, sequence="clip")
        robot, pred, rounds = ScribbleRobot(), np.zeros_like(gt), []
        for frame in (0, 4, 2):
            inter = robot.interact("clip", pred, gt, nb_objects=2, frame=frame)
            if not inter["scribbles"][frame]:
                inter["scribbles"][frame] = [stroke(0, [(30, 40), (40, 40)])]
            out = be.interact(frame, inter)
            pred = out.masks
            rounds.append(out)
        outs.append(rounds)
        if prop.get("warp_cache_mb") == 0.01:
            assert len(be._warp_store) == 0  # each pair's maps exceed 10 kB: none kept
    for other in outs[1:]:
        for a, b in zip(outs[0], other, strict=True):
            assert np.array_equal(a.probs, b.probs) and np.array_equal(a.masks, b.masks)
