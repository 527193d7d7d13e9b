"""Degraded rows (issue #15): spoiled copies of a round's output with their true J&F, marked in a column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ivos_rl.backends.base import labels_from_probs
from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.context import rows_with_context
from ivos_rl.quality.degraded import KINDS, DegradeConfig, degrade, plan
from ivos_rl.quality.feature_model import (
    FeatureModelConfig,
    fit_feature_model,
    model_from_state,
    model_state,
    point_loss,
)
from ivos_rl.quality.feature_rows import FILE, FeatureRows, load_feature_rows
from ivos_rl.quality.features import FEATURE_NAMES
from ivos_rl.quality.samples import generate_samples, load_samples
from ivos_rl.robot import ScribbleRobot
from ivos_rl.scoring import score_masks

CFG = DegradeConfig(shift_px=2, radius=1, partial=0.5)


def _square(t: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(probs (T, 1, 10, 10) uint8, gt (T, 10, 10)): a 4x4 object at rows/cols 3..6 on every frame,
    predicted exactly."""
    gt = np.zeros((t, 10, 10), np.uint8)
    gt[:, 3:7, 3:7] = 1
    return (gt[:, None] * 255).astype(np.uint8), gt


def _j(probs: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return score_masks(gt, labels_from_probs(probs), 1).j[:, 0]


def test_degraded_copies_have_hand_checked_j() -> None:
    probs, gt = _square()
    hist = [0]  # frame 0 annotated: kept by every kind but empty / full
    np.testing.assert_allclose(_j(probs, gt), [1, 1, 1])
    np.testing.assert_allclose(_j(degrade(probs, hist, "empty", CFG), gt), [0, 0, 0])  # all-empty: J = 0
    np.testing.assert_allclose(_j(degrade(probs, hist, "full", CFG), gt), [0.16] * 3)  # 16 / 100 pixels
    # 2 px to the right: overlap 4 x 2 = 8, union 24
    np.testing.assert_allclose(_j(degrade(probs, hist, "shift", CFG), gt), [1, 1 / 3, 1 / 3])
    np.testing.assert_allclose(_j(degrade(probs, hist, "erode", CFG), gt), [1, 4 / 16, 4 / 16])  # 2x2
    np.testing.assert_allclose(_j(degrade(probs, hist, "dilate", CFG), gt), [1, 16 / 36, 16 / 36])  # 6x6
    probs4, gt4 = _square(4)
    part = _j(degrade(probs4, [1], "partial", CFG, ("v", 1, 2)), gt4)
    empty = np.flatnonzero(part == 0)
    assert part[1] == 1 and len(empty) in (1, 2) and set(part) <= {0.0, 1.0}  # a block of 2, frame 1 kept
    assert np.array_equal(empty, np.arange(empty[0], empty[-1] + 1))
    with pytest.raises(InputValidationError, match="kind"):
        degrade(probs, hist, "blur", CFG)
    with pytest.raises(InputValidationError, match="uint8"):
        degrade(probs.astype(np.float32), hist, "empty", CFG)


def test_plan_is_drawn_from_names_and_options_are_checked() -> None:
    cfg = DegradeConfig(rounds=(1, 3, 5, 8), per_trajectory=2)
    a = plan(cfg, "bear", 1, n_rounds=8)
    assert a == plan(cfg, "bear", 1, n_rounds=8)  # the same names give the same plan
    pairs = [(r, k) for r, kinds in a.items() for k in kinds]
    assert len(pairs) == 2 and all(r in (1, 3, 5, 8) and k in KINDS for r, k in pairs)
    assert all(r <= 3 for r in plan(cfg, "bear", 1, n_rounds=3))  # only rounds the trajectory plays
    plans = {str(plan(cfg, s, i, 8)) for s in ("bear", "boat", "dog") for i in (1, 2, 3)}
    assert len(plans) > 1
    assert plan(DegradeConfig(rounds=(8,)), "bear", 1, n_rounds=5) == {}
    for bad in ({"kinds": ["blur"]}, {"rounds": [0]}, {"per_trajectory": 0}, {"partial": 1.0}, {"typo": 1}):
        with pytest.raises(ConfigError):
            DegradeConfig.from_dict(bad)


def test_generation_adds_marked_degraded_rows_and_keeps_the_rest(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """Default: no degraded column in features.npz. With the option: the same original rows and crops,
    plus degraded rows whose targets are the copies' true J&F (an all-empty copy has J = 0)."""
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    opts = {"crop_size": 16, "n_rounds": 2, "max_initial": 1, "frames_per_round": 2, "progress": False,
            "strategies": ["worst"]}
    plain = generate_samples(ds, SimulatedBackend(seed=0), ScribbleRobot(), tmp_path / "a", seed=1, **opts)
    spoil = {"kinds": ["empty", "shift"], "rounds": [1, 2], "per_trajectory": 2}
    more = generate_samples(
        ds, SimulatedBackend(seed=0), ScribbleRobot(), tmp_path / "b", seed=1, degraded=spoil, **opts
    )
    with np.load(tmp_path / "a" / FILE) as data:
        assert "degraded" not in data.files
    assert "degraded" not in plain and more["degraded"]["kinds"] == ["empty", "shift"]
    a, b = load_feature_rows(tmp_path / "a"), load_feature_rows(tmp_path / "b")
    assert a.original.all() and not b.original.all()
    orig = b.subset(b.original)
    assert np.array_equal(orig.x, a.x) and np.array_equal(orig.jf, a.jf)
    assert [sh["n"] for sh in plain["shards"]] == [sh["n"] for sh in more["shards"]]
    assert len(load_samples(tmp_path / "b")) == len(load_samples(tmp_path / "a"))  # crops pair with originals
    deg = b.subset(~b.original)
    assert set(deg.degraded.tolist()) == {"empty", "shift"}
    n_pairs = len(ds.sequences) * 2  # every trajectory gets both pairs drawn from 2 kinds x 2 rounds
    assert len(np.unique(deg.trajectory_keys() + "|" + deg.round.astype(str))) == n_pairs
    empty = deg.subset(deg.degraded == "empty")
    present = empty.x[:, FEATURE_NAMES.index("empty")] == 1
    assert present.all() and (empty.j == 0).sum() > 0
    np.testing.assert_allclose(empty.jf, 0.5 * (empty.j + empty.f), atol=1e-6)
    # each degraded round is a context group of its own (rows_with_context refuses mixed groups)
    assert len(rows_with_context(b)) == len(b)


def _rows(n_videos: int, degraded: str = "") -> FeatureRows:
    """4 frames x 2 rounds of one object per video; targets from two features."""
    n = 8 * n_videos
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    y = (1 / (1 + np.exp(-x[:, 3]))).astype(np.float32)
    idx = np.arange(n)
    return FeatureRows(
        x=x, jf=y, j=y, f=y, sequence=np.repeat([f"v{i}" for i in range(n_videos)], 8), frame=idx % 4,
        object_id=np.ones(n, np.int16), round=(idx // 4) % 2 + 1, strategy=np.full(n, "worst"),
        init=np.ones(n, np.int16), backend=np.full(n, "b"), names=FEATURE_NAMES,
        degraded=np.full(n, degraded),
    )


def test_training_adds_only_degraded_rows_and_scores_the_originals(tmp_path: Path) -> None:
    from ivos_rl.quality.feature_train import train_features

    _rows(6).save(tmp_path / "rows")
    extra = FeatureRows.concatenate([_rows(6), _rows(6, "empty")])
    extra.jf[~extra.original] = 0.0
    extra.save(tmp_path / "deg")
    cfg = OmegaConf.create(
        {
            "seed": 0, "num_threads": 1,
            "data": {"dirs": [str(tmp_path / "rows")], "degraded_dirs": [str(tmp_path / "deg")]},
            "folds": {"n": 3, "seed": 0, "sequences": None}, "cv": True, "ship": False,
            "score_backend": None, "inner_folds": 1,
            "candidates": [{"hidden": 8, "members": 1, "epochs": 2, "batch_size": 16}],
            "stop_thresholds": [0.01], "output": str(tmp_path / "m.features.pt"),
        }
    )
    report = train_features(cfg)
    assert report["n_rows"] == 96 and report["degraded_rows"] == {"empty": 48}
    assert sum(r["n"] for r in report["cv"]["per_fold"]) == 48  # figures on the original rows only
    summary = report["cv"]["degraded"]["empty"]
    assert summary["n"] == 48 and summary["mean_true"] == 0 and summary["videos"] == 6
    with np.load(tmp_path / "m.features.oof.npz") as oof:
        assert len(oof["jf"]) == 48
    with np.load(tmp_path / "m.features.degraded.oof.npz") as deg:
        assert len(deg["jf"]) == 48 and set(deg["degraded"].tolist()) == {"empty"}
    cfg.data.degraded_dirs = [str(tmp_path / "rows")]
    with pytest.raises(ConfigError, match="no degraded"):
        train_features(cfg)


def test_point_losses_by_hand_and_l1_fits_the_median() -> None:
    err = torch.tensor([0.02, -0.2])
    np.testing.assert_allclose(point_loss(err, "mse").numpy(), [0.0004, 0.04], rtol=1e-5)
    np.testing.assert_allclose(point_loss(err, "l1").numpy(), [0.02, 0.2], rtol=1e-5)
    # Huber, delta 0.05: 0.02^2 / 0.1 = 0.004 inside, 0.2 - 0.025 = 0.175 beyond
    np.testing.assert_allclose(point_loss(err, "huber", 0.05).numpy(), [0.004, 0.175], rtol=1e-5)
    with pytest.raises(ConfigError, match="loss"):
        FeatureModelConfig(loss="mae")
    # one constant input, targets six 0s and four 1s: MSE -> the mean 0.4, L1 -> the median 0
    x = np.zeros((10, len(FEATURE_NAMES)), np.float32)
    y = np.array([0] * 6 + [1] * 4, np.float32)
    base = {"hidden": 4, "layers": 1, "members": 1, "epochs": 300, "batch_size": 10, "lr": 3e-2}
    mse = fit_feature_model(x, y, FEATURE_NAMES, FeatureModelConfig(**base), seed=0).predict(x[:1])[0][0]
    l1_cfg = FeatureModelConfig(**base, loss="l1")
    l1 = fit_feature_model(x, y, FEATURE_NAMES, l1_cfg, seed=0)
    assert abs(mse - 0.4) < 0.03 and l1.predict(x[:1])[0][0] < 0.1
    state = model_state(l1)
    assert state["config"]["loss"] == "l1" and model_from_state(state).config.loss == "l1"
    plain = fit_feature_model(x, y, FEATURE_NAMES, FeatureModelConfig(**base))
    assert "loss" not in model_state(plain)["config"]  # default files stay loadable by older code
