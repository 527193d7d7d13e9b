"""Optical-flow quality signals (ivos_rl.quality.motion): hand-checkable pieces, a translating texture,
the optional column group in features / rows / models / the estimator."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.feature_estimator import FeatureQualityEstimator, save_feature_checkpoint
from ivos_rl.quality.feature_gbt import GBTConfig, model_from_any_state, state_of
from ivos_rl.quality.feature_model import FeatureModelConfig, fit_feature_model, model_columns
from ivos_rl.quality.feature_rows import load_feature_rows
from ivos_rl.quality.features import FEATURE_NAMES, feature_names, quality_features
from ivos_rl.quality.motion import (
    MOTION_NAMES,
    MotionCache,
    _chain_sum,
    _fb_fails,
    _warped_iou,
    motion_fields,
)
from ivos_rl.quality.samples import generate_samples
from ivos_rl.quality.stop import StopRule
from ivos_rl.robot import ScribbleRobot

SMALL = FeatureModelConfig(hidden=8, members=2, epochs=3, batch_size=64, lr=1e-2)
ALL = feature_names(groups=["motion"])


def _translating(t: int = 5, dx: int = 2, h: int = 60, w: int = 80) -> np.ndarray:
    """(t, h, w, 3) frames of a smooth random texture shifted right by ``dx`` px per frame."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (h, w + dx * t)).astype(np.float32), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    frames = [big[:, dx * (t - i) : dx * (t - i) + w] for i in range(t)]  # content moves +dx per frame
    return np.repeat(np.stack(frames)[..., None], 3, axis=-1)


def test_chain_sum_by_hand() -> None:
    per_frame = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    anchor = np.array([0, 0, 0, 4, 4])  # frames 0 and 4 annotated; frame 2 nearer to 0 (tie -> 0)
    # t=1: frame 1 alone; t=2: frames 1 and 2; t=3 (before its anchor 4): frame 3 alone; anchors: 0
    assert _chain_sum(per_frame, anchor).tolist() == [0.0, 2.0, 5.0, 4.0, 0.0]


def test_fb_check_by_hand() -> None:
    flow = np.zeros((1, 2, 2), np.float32)
    flow[..., 0] = 2.0  # 2 px to the right
    consistent = -flow
    assert not _fb_fails(flow, consistent).any()  # |f + b|^2 = 0
    # back flow of 0: |f + b|^2 = 4 > 0.01 * 4 + 0.5
    assert _fb_fails(flow, np.zeros_like(flow)).all()


def test_warped_iou_with_identity_maps_is_the_plain_iou() -> None:
    mask = np.zeros((3, 4, 4), bool)
    mask[0, :2, :2] = True  # 4 px
    mask[1, :2, :3] = True  # 6 px, contains frame 0's: IoU 4/6
    mask[2] = False  # empty after a non-empty frame: IoU 0
    ident = np.stack(np.meshgrid(np.arange(4, dtype=np.float32), np.arange(4, dtype=np.float32)), -1)
    maps = np.repeat(ident[None], 3, axis=0)
    np.testing.assert_allclose(_warped_iou(mask, maps, -1), [1.0, 4 / 6, 0.0])
    np.testing.assert_allclose(_warped_iou(mask, maps, 1), [4 / 6, 0.0, 1.0])


def test_translating_texture_gives_its_motion_and_no_failures() -> None:
    frames = _translating()
    fields = motion_fields(frames)
    t, h, w = fields.shape
    inner = (slice(10, h - 10), slice(10, w - 10))
    ident_x = np.arange(w, dtype=np.float32)[None, :]
    for i in range(t - 1):
        # a pixel of frame i lies 2 px to the right on frame i+1, and 2 px to the left on frame i-1
        assert np.median((fields.next_map[i, ..., 0] - ident_x)[inner]) == pytest.approx(2.0, abs=0.3)
        assert np.median((fields.prev_map[i + 1, ..., 0] - ident_x)[inner]) == pytest.approx(-2.0, abs=0.3)
    assert fields.fail[:, inner[0], inner[1]].mean() < 0.05
    assert fields.err[:, inner[0], inner[1]].mean() < 0.03  # grey levels / 255
    # the end frames have one neighbour; their map towards the missing one is the identity
    np.testing.assert_array_equal(fields.prev_map[0, ..., 0], np.broadcast_to(ident_x, (h, w)))


def test_a_mask_that_follows_the_object_agrees_with_its_warped_neighbours() -> None:
    frames = _translating()
    t, h, w = frames.shape[:3]
    moving = np.zeros((t, 1, h, w), np.uint8)
    static = np.zeros((t, 1, h, w), np.uint8)
    for i in range(t):
        moving[i, 0, 20:40, 20 + 2 * i : 40 + 2 * i] = 255  # moves with the texture
        static[i, 0, 20:40, 20:40] = 255  # the same 20x20 square on every frame
    cache = MotionCache()
    x_move = quality_features(frames, moving, [0], groups=["motion"], motion_cache=cache)
    x_static = quality_features(frames, static, [0], groups=["motion"], motion_cache=cache)
    col = {n: i for i, n in enumerate(ALL)}
    mid = slice(1, t - 1)
    # moving: the warped neighbour lands on the mask; static: it lands 2 px off (IoU 18*20/(22*20))
    assert (x_move[mid, 0, col["warp_iou_prev"]] > 0.95).all()
    assert (x_static[mid, 0, col["warp_iou_prev"]] < 0.9).all()
    # the plain IoU says the opposite: it does not see the motion
    assert (x_static[mid, 0, col["iou_prev"]] == 1.0).all() and (x_move[mid, 0, col["iou_prev"]] < 0.9).all()
    # the first len(FEATURE_NAMES) columns do not depend on the motion group
    np.testing.assert_array_equal(x_move[..., : len(FEATURE_NAMES)], quality_features(frames, moving, [0]))
    assert x_move.shape == (t, 1, len(ALL)) and ALL[len(FEATURE_NAMES) :] == MOTION_NAMES
    assert (x_move[0, 0, col["flow_fail_anchor"]], x_move[0, 0, col["warp_err_anchor"]]) == (0.0, 0.0)


def test_frames_smaller_than_dis_accepts_are_padded() -> None:
    # DIS refuses images with both sides < 12 px; a 10x10 video of one static square has no motion
    frames = np.zeros((3, 10, 10, 3), np.uint8)
    frames[:, 2:6, 2:6] = 200
    fields = motion_fields(frames)
    ident_x = np.broadcast_to(np.arange(10, dtype=np.float32), (10, 10))
    np.testing.assert_allclose(fields.next_map[0, ..., 0], ident_x, atol=0.05)
    assert not fields.fail.any() and fields.err.max() < 0.01


def test_thin_grids_give_fields() -> None:
    # DIS crashes on such grids unpadded (tests/test_backend_propagation.py checks the padding in a child)
    for h, w in [(5, 100), (20, 100), (100, 5), (1, 1)]:
        frames = np.random.default_rng(0).integers(0, 255, (3, h, w, 3), dtype=np.uint8)
        fields = motion_fields(frames)
        assert fields.shape == (3, h, w) and np.isfinite(fields.next_map).all()


def test_signal_groups_must_be_a_list_of_known_names() -> None:
    frames, probs = np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 1, 8, 8), np.uint8)
    for bad in (None, "motion", ["motion", "motion"], ["optical"]):
        with pytest.raises(InputValidationError, match="signal groups"):
            quality_features(frames, probs, [0], groups=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="signal groups"):
            FeatureModelConfig(signal_groups=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="signal groups"):
            GBTConfig(signal_groups=bad)  # type: ignore[arg-type]


def test_motion_cache_computes_a_video_once() -> None:
    frames = _translating()
    cache = MotionCache()
    first = cache.get(frames)
    assert cache.get(frames.copy()) is first  # same content: the same fields
    assert cache.get(frames[::-1].copy()) is not first


def test_recipes_use_the_motion_columns_only_when_asked() -> None:
    assert model_columns(ALL, SMALL) == FEATURE_NAMES
    assert model_columns(ALL, FeatureModelConfig(signal_groups=("motion",))) == ALL
    with pytest.raises(ConfigError, match="motion"):
        model_columns(FEATURE_NAMES, FeatureModelConfig(signal_groups=("motion",)))
    with pytest.raises(ConfigError, match="signal_groups"):
        GBTConfig(signal_groups=("motion",), mlp={"hidden": 8})  # a blend's MLP must see the trees' columns
    with pytest.raises(ConfigError, match="optical"):
        FeatureModelConfig(signal_groups=("optical",))


def test_estimator_with_a_motion_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(ALL))).astype(np.float32)
    y = (1 / (1 + np.exp(-x[:, len(FEATURE_NAMES)]))).astype(np.float32)  # a motion column matters
    cfg = FeatureModelConfig(hidden=8, members=2, epochs=3, batch_size=64, lr=1e-2, signal_groups=["motion"])
    model = fit_feature_model(x, y, ALL, cfg, seed=0)
    assert model.names == ALL and model_from_any_state(state_of(model)).config.signal_groups == ("motion",)
    assert "signal_groups" not in state_of(fit_feature_model(x, y, ALL, SMALL, seed=0))["config"]  # old files
    path = save_feature_checkpoint(
        tmp_path / "m.features.pt", model, stop_rule=StopRule(), backends=["b"],
        split={"train": ["a"], "held_out": []},
    )
    est = FeatureQualityEstimator.from_checkpoint(path)
    frames = _translating()
    probs = np.zeros((5, 1, 60, 80), np.uint8)
    probs[:, 0, 20:40, 20:40] = 255
    q, qk = est.predict(frames, probs, history=[0])
    direct, _ = model.predict(quality_features(frames, probs, [0], groups=["motion"]).reshape(5, -1))
    np.testing.assert_allclose(qk[:, 0], np.clip(direct, 0, 1), atol=1e-6)
    assert q.shape == (5,)


def test_feature_rows_with_motion_columns(synthetic_root: Path, tmp_path: Path) -> None:
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    opts = {"crop_size": 16, "n_rounds": 2, "max_initial": 1, "frames_per_round": 1, "progress": False}
    seqs = ds.sequences[:1]
    manifests = {}
    for name, motion in (("plain", False), ("motion", True)):
        manifests[name] = generate_samples(
            ds, SimulatedBackend(seed=0), ScribbleRobot(), tmp_path / name, seed=1, sequences=seqs,
            signal_groups=["motion"] if motion else [], **opts,
        )
    plain, with_motion = load_feature_rows(tmp_path / "plain"), load_feature_rows(tmp_path / "motion")
    assert manifests["motion"]["signal_groups"] == ["motion"] and "signal_groups" not in manifests["plain"]
    assert plain.names == FEATURE_NAMES and with_motion.names == ALL
    np.testing.assert_array_equal(with_motion.x[:, : len(FEATURE_NAMES)], plain.x)  # same rounds
    assert np.isfinite(with_motion.x).all()
    with pytest.raises(ConfigError, match="feature_rows"):
        generate_samples(
            ds, SimulatedBackend(seed=0), ScribbleRobot(), tmp_path / "x", sequences=seqs,
            signal_groups=["motion"], feature_rows=False, **opts,
        )
