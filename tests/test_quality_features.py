"""Appearance-free quality features, feature rows from the loop, the feature model and its estimator."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import CheckpointError, InputValidationError
from ivos_rl.quality.assessment import pearson
from ivos_rl.quality.feature_estimator import (
    FeatureQualityEstimator,
    load_feature_checkpoint,
    save_feature_checkpoint,
)
from ivos_rl.quality.feature_model import FeatureModelConfig, fit_feature_model
from ivos_rl.quality.feature_rows import load_feature_rows
from ivos_rl.quality.features import FEATURE_NAMES, feature_names, quality_features, temporal_features
from ivos_rl.quality.samples import generate_samples
from ivos_rl.quality.stop import StopRule
from ivos_rl.robot import ScribbleRobot

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
SMALL = FeatureModelConfig(hidden=16, members=2, epochs=20, batch_size=64, lr=1e-2)


def _video(t: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """10x10 frames: a red 5x5 object at rows/cols 0..4 on blue; object 1 certain (p=1) on its 25
    pixels; object 2 a 2x2 square at rows/cols 8..9 whose probability is 0.6 (uncertain)."""
    frames = np.zeros((t, 10, 10, 3), np.uint8)
    frames[..., 2] = 200
    frames[:, :5, :5] = (220, 0, 0)
    probs = np.zeros((t, 2, 10, 10), np.uint8)
    probs[:, 0, :5, :5] = 255
    probs[:, 1, 8:, 8:] = 153  # 0.6
    return frames, probs


def test_temporal_features_by_hand() -> None:
    tf = temporal_features([2, 7, 7], 10)  # 3 rounds, frame 7 annotated twice
    annotated, prev, nxt, dmin, _, one_sided, rnd = tf.T
    assert annotated.tolist() == [0, 0, 1, 0, 0, 0, 0, 1, 0, 0]
    assert prev[5] == pytest.approx(0.3) and nxt[5] == pytest.approx(0.2) and dmin[5] == pytest.approx(0.2)
    assert prev[0] == 1.0 and nxt[0] == pytest.approx(0.2)  # nothing before frame 0
    assert one_sided.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    assert (rnd == 3).all()
    with pytest.raises(InputValidationError, match="history"):
        temporal_features([], 10)
    with pytest.raises(InputValidationError, match="outside"):
        temporal_features([10], 10)


def test_probability_shape_and_colour_features_by_hand() -> None:
    frames, probs = _video()
    x = quality_features(frames, probs, history=[0])
    assert x.shape == (4, 2, len(FEATURE_NAMES)) and x.dtype == np.float32
    a, b = x[1, 0], x[1, 1]
    assert a[COL["area"]] == pytest.approx(0.25) and b[COL["area"]] == pytest.approx(0.04)
    assert a[COL["entropy_box"]] < 1e-4 and a[COL["margin_box"]] > 0.999 and a[COL["uncertain_box"]] == 0
    # object 2: every pixel of its box (clipped 2x2 enlarged -> 3x3 within the frame) ...
    assert b[COL["p_in"]] == pytest.approx(0.6, abs=1e-3)
    assert b[COL["uncertain_rel"]] == pytest.approx(1.0)  # 4 uncertain pixels / 4 mask pixels
    assert a[COL["iou_prev"]] == 1 and a[COL["log_area_ratio_next"]] == 0
    # the colour model (fitted on frame 0) says red = object 1: full agreement inside its box
    assert a[COL["colour_agree"]] == pytest.approx(1.0) and a[COL["colour_llr_in"]] > 2
    assert a[COL["boundary_ratio"]] == pytest.approx(10 / 5)  # 5 + 5 boundary edges / sqrt(25)


def test_features_react_to_a_bad_mask() -> None:
    frames, probs = _video()
    probs[2, 0] = 0
    probs[2, 0, 5:, 5:] = 255  # frame 2: object 1 jumps onto blue background
    x = quality_features(frames, probs, history=[0])
    assert x[2, 0, COL["iou_prev"]] == 0 and x[2, 0, COL["iou_next"]] == 0
    assert x[2, 0, COL["colour_agree"]] < 0.5 < x[1, 0, COL["colour_agree"]]
    assert x[2, 0, COL["colour_llr_in"]] < 0 < x[1, 0, COL["colour_llr_in"]]
    probs[3] = 0
    x = quality_features(frames, probs, history=[0])
    assert x[3, 0, COL["empty"]] == 1 and x[3, 0, COL["area"]] == 0 and x[1, 0, COL["empty"]] == 0


def test_diagnostics_are_extra_columns() -> None:
    frames, probs = _video()
    diag = {"flow_err": np.arange(8, dtype=np.float32).reshape(4, 2)}
    x = quality_features(frames, probs, [0], diagnostics=diag)
    assert feature_names(diag) == (*FEATURE_NAMES, "diag_flow_err")
    assert x.shape[2] == len(FEATURE_NAMES) + 1 and x[3, 1, -1] == 7
    with pytest.raises(InputValidationError, match="flow_err"):
        quality_features(frames, probs, [0], diagnostics={"flow_err": np.zeros(4)})


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic rows whose target is a smooth function of two of the features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    y = 1 / (1 + np.exp(-(1.5 * x[:, 3] - x[:, 12])))
    return x, y.astype(np.float32)


def test_feature_model_learns_and_is_deterministic() -> None:
    x, y = _rows(1000, 0)
    xt, yt = _rows(500, 1)
    m1 = fit_feature_model(x, y, FEATURE_NAMES, SMALL, seed=3)
    m2 = fit_feature_model(x, y, FEATURE_NAMES, SMALL, seed=3)
    p1, s1 = m1.predict(xt)
    p2, _ = m2.predict(xt)
    np.testing.assert_array_equal(p1, p2)
    assert pearson(p1, yt) > 0.95 and np.mean(np.abs(p1 - yt)) < 0.06
    assert (s1 > 0).all() and s1.shape == (500,)
    p3, _ = fit_feature_model(x, y, FEATURE_NAMES, SMALL, seed=4).predict(xt)
    assert not np.array_equal(p1, p3)
    with pytest.raises(InputValidationError):
        fit_feature_model(x[:, :3], y, FEATURE_NAMES, SMALL)


def test_estimator_checkpoint_multi_object_and_backend_warning(tmp_path: Path) -> None:
    x, y = _rows(600, 0)
    model = fit_feature_model(x, y, FEATURE_NAMES, SMALL, seed=0)
    path = save_feature_checkpoint(
        tmp_path / "q.features.pt",
        model,
        stop_rule=StopRule(0.1, 0.02),
        backends=["backend-A"],
        split={"train": ["a", "b"], "held_out": []},
    )
    assert load_feature_checkpoint(path)["split"]["train"] == ["a", "b"]
    est = FeatureQualityEstimator.from_checkpoint(path)
    frames, probs = _video()
    q, qk = est.predict(frames, probs, history=[0, 3])
    assert qk.shape == (4, 2) and q.shape == (4,)
    np.testing.assert_allclose(q, qk.mean(axis=1), atol=1e-6)  # frame score = mean over objects
    assert est.last_uncertainty is not None and est.last_uncertainty.shape == (4,)
    direct, _ = model.predict(quality_features(frames, probs, [0, 3]).reshape(8, -1))
    np.testing.assert_allclose(qk.reshape(-1), np.clip(direct, 0, 1), atol=1e-6)
    assert est.expected_gain(np.array([0.5, 1.0])) == pytest.approx(0.1 * 0.25 + 0.02 * 0.5)
    with pytest.raises(InputValidationError, match="history"):
        est.predict(frames, probs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert est.check_backend("backend-A")
        assert not est.check_backend("backend-B")
        assert not est.check_backend("backend-B")
    assert len(caught) == 1
    assert "backend-A" in str(caught[0].message) and "backend-B" in str(caught[0].message)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        FeatureQualityEstimator.from_checkpoint(tmp_path / "bad.pt")


def test_feature_rows_from_the_interactive_loop(synthetic_root: Path, tmp_path: Path) -> None:
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    backend = SimulatedBackend(seed=0)
    opts = {"crop_size": 16, "n_rounds": 2, "max_initial": 2, "frames_per_round": 2, "progress": False}
    manifest = generate_samples(ds, backend, ScribbleRobot(), tmp_path / "s", seed=1, **opts)
    rows = load_feature_rows(tmp_path / "s")
    assert manifest["feature_rows"] == "features.npz"
    assert rows.names == FEATURE_NAMES and rows.x.shape == (len(rows), len(FEATURE_NAMES))
    assert set(rows.backend.tolist()) == {manifest["backend_fingerprint"]}
    assert set(rows.init.tolist()) == {1, 2}  # two initial scribbles per sequence
    # every frame of every object is a row in each round of each trajectory
    first = rows.sequence == ds.sequences[0]
    key = first & (rows.init == 1) & (rows.strategy == "worst") & (rows.round == 1)
    info = ds.info(ds.sequences[0])
    assert key.sum() == info.n_frames * info.n_objects
    np.testing.assert_allclose(rows.jf, 0.5 * (rows.j + rows.f), atol=1e-6)
    assert ((rows.round == 1) <= (rows.x[:, COL["round"]] == 1)).all()


def test_recommend_reports_uncertainty_gain_and_stop() -> None:
    from ivos_rl.recommend import Recommender
    from ivos_rl.strategies import build_strategy

    x, y = _rows(300, 0)
    est = FeatureQualityEstimator(fit_feature_model(x, y, FEATURE_NAMES, SMALL), StopRule(a=1.0, b=0.0))
    rec = Recommender(est, strategy=build_strategy("worst"))
    frames, probs = _video()
    r = rec.recommend(frames, probs, history=[0], stop_threshold=1.01)  # any deficit <= 1 < 1.01
    q, _ = est.predict(frames, probs, history=[0])
    assert r.expected_gain == pytest.approx(float(np.mean(1 - q)), abs=1e-6) and r.stop is True
    assert r.frame == int(np.argmin(q))
    out = r.to_json()
    assert len(out["uncertainty"]) == 4 and out["stop"] is True
    assert rec.recommend(frames, probs, history=[0], stop_threshold=0.0).stop is False
    assert rec.recommend(frames, probs, history=[0]).stop is None
    with pytest.raises(InputValidationError, match="history"):
        rec.recommend(frames, probs, history=[])


def test_backend_check_ignores_cache_settings_and_labels_versions() -> None:
    from ivos_rl.quality.crossval import backend_label

    x, y = _rows(200, 0)
    a = '{"class": "m.PropagationBackend", "config": {"flow_cache_dir": "c/f", "fine": 1}, "version": "2"}'
    b = '{"class": "m.PropagationBackend", "config": {"flow_cache_dir": null, "fine": 1}, "version": "2"}'
    c = '{"class": "m.PropagationBackend", "config": {"flow_cache_dir": null, "fine": 2}, "version": "2"}'
    est = FeatureQualityEstimator(fit_feature_model(x, y, FEATURE_NAMES, SMALL), backends=[a], name="ab")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert est.check_backend(b) and not est.check_backend(c)
    assert len(caught) == 1
    assert (
        backend_label(a) == "propagation-v2"
        and backend_label('{"class": "m.SimulatedBackend"}') == "simulated"
    )


# v2.2 (relative `cen` columns) scores an all-empty video almost like the true masks (bear 0.72 vs
# 0.73, v2.1 0.22; its card): within a round every frame is equally empty, so the relative columns say
# "average frame". Its card flags it and `quality=features` stays on v2.1; only the shift check applies.
@pytest.mark.parametrize(("version", "empty_margin"), [("v2.1", 0.2), ("v2.2", None)])
def test_shipped_feature_model_ranks_masks_sensibly(
    davis_excerpt_root: Path, version: str, empty_margin: float | None
) -> None:
    """True masks score above 25-px shifted copies (annotated frame 0 kept true) and far above none."""
    name = f"features-davis2016-propagation-{version}.features.pt"
    path = Path(__file__).parents[1] / "checkpoints" / "quality" / name
    est = FeatureQualityEstimator.from_checkpoint(path)
    ds = DavisDataset(davis_excerpt_root, "240p", image_set="2016/train")
    for seq in ds.sequences:
        frames, gt = ds.load_frames(seq), ds.load_masks(seq)
        true = ((gt == 1) * 255).astype(np.uint8)[:, None]
        shifted = np.roll(true, 25, axis=-1)
        shifted[0] = true[0]
        q_true = est.predict(frames, true, history=[0])[0].mean()
        assert q_true > est.predict(frames, shifted, history=[0])[0].mean(), seq
        if empty_margin is not None:
            q_empty = est.predict(frames, np.zeros_like(true), history=[0])[0].mean()
            assert q_true > q_empty + empty_margin, seq


def _save_rows(out: Path, videos: list[str], seed: int) -> None:
    """Feature rows of ``videos`` (4 frames x 3 Worst rounds each, one object) in ``out``."""
    from ivos_rl.quality.feature_rows import FeatureRows

    n = 12 * len(videos)
    x, y = _rows(n, seed)
    idx = np.arange(n)
    FeatureRows(
        x=x,
        jf=y,
        j=y,
        f=y,
        sequence=np.repeat(np.array(videos), 12),
        frame=idx % 4,
        object_id=np.ones(n, np.int64),
        round=(idx // 4) % 3 + 1,
        strategy=np.full(n, "worst"),
        init=np.ones(n, np.int64),
        backend=np.full(n, "backend-A"),
        names=FEATURE_NAMES,
    ).save(out)


def _ship_cfg(tmp_path: Path, data: dict[str, object]) -> DictConfig:
    """A train_quality_features config that ships a tiny model (no CV) from ``data``."""
    return OmegaConf.create(
        {
            "seed": 0,
            "num_threads": 1,
            "data": data,
            "folds": {"n": 3, "seed": 0, "sequences": None},
            "cv": False,
            "ship": True,
            "score_backend": None,
            "inner_folds": 1,
            "candidates": [{"hidden": 8, "members": 1, "epochs": 2, "batch_size": 16}],
            "stop_thresholds": [0.01],
            "output": str(tmp_path / "m.features.pt"),
        }
    )


def test_train_features_excludes_held_out_videos(tmp_path: Path) -> None:
    """data.exclude_sequences drops every row of the named videos before training (a test fold)."""
    from ivos_rl.errors import ConfigError
    from ivos_rl.quality.feature_train import train_features

    _save_rows(tmp_path / "a", ["v1", "v2", "v3"], 0)
    _save_rows(tmp_path / "b", ["v4", "v5"], 1)
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    cfg = _ship_cfg(tmp_path, {"dirs": dirs, "exclude_sequences": ["v2", "v5"]})
    report = train_features(cfg)
    split = load_feature_checkpoint(tmp_path / "m.features.pt")["split"]
    assert split["train"] == ["v1", "v3", "v4"] and split["held_out"] == ["v2", "v5"]
    assert report["n_rows"] == 36 and report["excluded"] == ["v2", "v5"]
    cfg.data.exclude_sequences = ["v2", "typo"]
    with pytest.raises(ConfigError, match="typo"):
        train_features(cfg)


def test_train_features_drops_columns_by_pattern(tmp_path: Path) -> None:
    """data.drop_columns leaves the matching columns out of the model (3 of 25 here: the two
    one-sided distances by a `dist_[pn]*` pattern plus `round`); a pattern that matches nothing or
    one that matches every column is a ConfigError naming it."""
    from ivos_rl.errors import ConfigError
    from ivos_rl.quality.feature_train import train_features

    _save_rows(tmp_path / "a", ["v1", "v2", "v3"], 0)
    cfg = _ship_cfg(tmp_path, {"dirs": [str(tmp_path / "a")], "drop_columns": ["dist_[pn]*", "round"]})
    report = train_features(cfg)
    names = load_feature_checkpoint(tmp_path / "m.features.pt")["model"]["names"]
    assert report["dropped_columns"] == ["dist_prev", "dist_next", "round"]
    assert len(names) == len(FEATURE_NAMES) - 3
    assert {"dist_prev", "dist_next", "round"}.isdisjoint(names) and "dist_min" in names
    cfg.data.drop_columns = ["diag_*"]
    with pytest.raises(ConfigError, match=r"diag_\*"):
        train_features(cfg)
    cfg.data.drop_columns = ["*"]
    with pytest.raises(ConfigError, match="leave no feature column"):
        train_features(cfg)


def test_estimator_accepts_a_model_of_fewer_signals_and_refuses_one_of_more() -> None:
    """A model trained on a subset of the signals (data.drop_columns) predicts from the full
    extractor output through its own columns; one that needs a diagnostic the input lacks is
    refused, naming the column."""
    x, y = _rows(300, 0)
    keep = [i for i, n in enumerate(FEATURE_NAMES) if n != "round"]
    sub = fit_feature_model(x[:, keep], y, tuple(FEATURE_NAMES[i] for i in keep), SMALL)
    est = FeatureQualityEstimator(sub, StopRule(a=1.0, b=0.0))
    frames, probs = _video()
    q, qk = est.predict(frames, probs, history=[0])
    full = quality_features(frames, probs, [0])
    mu, _ = sub.predict(full.reshape(-1, full.shape[-1])[:, keep])
    np.testing.assert_allclose(qk, np.clip(mu.reshape(qk.shape), 0, 1), atol=1e-6)
    np.testing.assert_allclose(q, qk.mean(axis=1), atol=1e-6)  # the frame score: mean over objects
    wide = np.concatenate([x, np.zeros((len(x), 1), np.float32)], axis=1)
    more = fit_feature_model(wide, y, (*FEATURE_NAMES, "diag_runs_iou"), SMALL)
    with pytest.raises(InputValidationError, match="diag_runs_iou"):
        FeatureQualityEstimator(more, StopRule(a=1.0, b=0.0)).predict(frames, probs, history=[0])
