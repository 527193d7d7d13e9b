"""Monotone level recalibration of quality estimates (ivos_rl/quality/level_calibration.py) and its
use by cross-validation, the shipped checkpoint and the estimator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivos_rl.errors import CheckpointError, ConfigError, InputValidationError
from ivos_rl.quality.crossval import cross_validate
from ivos_rl.quality.feature_estimator import FeatureQualityEstimator, save_feature_checkpoint
from ivos_rl.quality.feature_model import FeatureModelConfig, fit_feature_model
from ivos_rl.quality.feature_train import train_features
from ivos_rl.quality.features import FEATURE_NAMES, quality_features
from ivos_rl.quality.level_calibration import LevelCalibration, fit_level_calibration
from ivos_rl.quality.stop import StopRule
from tests.test_quality_calibration import _synthetic_rows


def test_affine_fit_by_hand() -> None:
    pred = np.array([0.0, 0.2, 0.4, 0.6])
    cal = fit_level_calibration(pred, 0.5 * pred + 0.1, "affine")
    assert cal.kind == "affine" and cal.a == pytest.approx(0.5) and cal.b == pytest.approx(0.1)
    np.testing.assert_allclose(cal.apply(np.array([0.0, 1.0, 3.0])), [0.1, 0.6, 1.0], atol=1e-6)  # clipped
    with pytest.raises(InputValidationError, match="slope"):
        fit_level_calibration(pred, 1.0 - pred, "affine")  # estimates that rank backwards
    with pytest.raises(InputValidationError, match="constant"):
        fit_level_calibration(np.full(3, 0.5), np.array([0.1, 0.2, 0.3]), "affine")


def test_isotonic_fit_by_hand() -> None:
    # the first two violate the order: pooled to (x .15, y .15); then (.3, .5), (.4, .6)
    cal = fit_level_calibration(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.2, 0.1, 0.5, 0.6]), "isotonic")
    assert cal.knots_x == pytest.approx((0.15, 0.3, 0.4)) and cal.knots_y == pytest.approx((0.15, 0.5, 0.6))
    # between knots: linear (0.2 -> .15 + (.05 / .15) * .35); beyond them slope 1 (no ties), then clipped
    got = cal.apply(np.array([0.2, 0.05, 0.1, 0.5, 0.9]))
    np.testing.assert_allclose(got, [0.15 + 0.35 / 3, 0.05, 0.1, 0.7, 1.0], atol=1e-6)
    # equal estimates form one group first: (.5, .5) -> truth mean .3
    tied = fit_level_calibration(np.array([0.5, 0.5, 0.7]), np.array([0.2, 0.4, 0.9]), "isotonic")
    assert tied.knots_x == pytest.approx((0.5, 0.7)) and tied.knots_y == pytest.approx((0.3, 0.9))


def test_isotonic_keeps_the_order_everywhere_and_lowers_the_error() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(2000)
    pred = 0.5 + 0.3 * truth + 0.03 * rng.normal(size=2000)  # ranks well, wrong level and scale
    cal = fit_level_calibration(pred, truth, "isotonic")
    inside = np.sort(rng.uniform(cal.knots_x[0], cal.knots_x[-1], 400))  # (beyond: the by-hand test)
    assert (np.diff(cal.apply(inside)) > 0).all()  # strictly increasing: no new ties
    assert np.abs(cal.apply(pred) - truth).mean() < 0.5 * np.abs(pred - truth).mean()


def test_none_round_trip_and_bad_input() -> None:
    ident = fit_level_calibration(np.array([0.2, 1.3]), np.array([0.1, 0.2]), "none")
    np.testing.assert_allclose(ident.apply(np.array([0.2, 1.3, -0.1])), [0.2, 1.0, 0.0], atol=1e-7)
    cal = LevelCalibration("isotonic", knots_x=(0.1, 0.5), knots_y=(0.2, 0.4))
    assert LevelCalibration.from_dict(cal.to_dict()) == cal
    with pytest.raises(ConfigError, match="kind"):
        fit_level_calibration(np.array([0.1, 0.2]), np.array([0.1, 0.2]), "platt")
    with pytest.raises(ConfigError, match="increasing"):
        LevelCalibration("isotonic", knots_x=(0.5, 0.1), knots_y=(0.2, 0.4))
    with pytest.raises(ConfigError, match="slope"):
        LevelCalibration("affine", a=-1.0)
    with pytest.raises(InputValidationError, match="finite"):
        fit_level_calibration(np.array([0.1, np.nan]), np.array([0.1, 0.2]), "isotonic")


def test_cross_validation_fits_the_map_on_inner_estimates_and_applies_it() -> None:
    rows = _synthetic_rows()
    folds = [["v0", "v1"], ["v2", "v3"], ["v4", "v5"], ["v6", "v7"], ["v8", "v9"]]
    cand = [FeatureModelConfig(hidden=8, layers=1, members=1, epochs=3, batch_size=128, lr=1e-2)]
    seen: dict[int, LevelCalibration] = {}
    cv = cross_validate(
        rows, folds, cand, inner_folds=1, thresholds=[0.0], level_calibration="affine",
        on_fold=lambda i, model, rule, cal: seen.__setitem__(i, cal),
    )
    assert sorted(seen) == [0, 1, 2, 3, 4] and all(c.kind == "affine" for c in seen.values())
    for i, fold in enumerate(folds):
        sel = np.isin(rows.sequence, fold)
        assert cv["recipes"][i]["level_calibration"] == seen[i].to_dict()
        np.testing.assert_allclose(cv["oof_pred"][sel], seen[i].apply(cv["oof_raw"][sel]), atol=1e-6)
    assert "pooled_raw" in cv and cv["pooled_raw"]["propagation"]["n"] == len(rows)
    plain = cross_validate(rows, folds, cand, inner_folds=1, thresholds=[0.0])
    np.testing.assert_array_equal(plain["oof_pred"], plain["oof_raw"])  # no map: the raw estimates
    np.testing.assert_array_equal(plain["oof_raw"], cv["oof_raw"])  # the map never changes the model


def test_estimator_applies_the_checkpoint_map(tmp_path: Path) -> None:
    rows = _synthetic_rows(n_videos=2)
    model = fit_feature_model(rows.x, rows.jf, rows.names, FeatureModelConfig(members=1, epochs=1), seed=0)
    cal = LevelCalibration("affine", a=0.5, b=0.2)
    kw = {"stop_rule": StopRule(), "backends": ["b"], "split": {"train": ["v0", "v1"], "held_out": []}}
    path = save_feature_checkpoint(tmp_path / "m.features.pt", model, level_calibration=cal, **kw)
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    probs = np.zeros((3, 1, 8, 8), np.uint8)
    probs[:, 0, 2:5, 2:6] = 220
    _, qk = FeatureQualityEstimator.from_checkpoint(path).predict(frames, probs, history=[0])
    direct, _ = model.predict(quality_features(frames, probs, [0]).reshape(3, len(FEATURE_NAMES)))
    np.testing.assert_allclose(qk[:, 0], np.clip(0.5 * direct + 0.2, 0, 1), atol=1e-6)
    plain = save_feature_checkpoint(tmp_path / "p.features.pt", model, **kw)  # no map stored
    assert FeatureQualityEstimator.from_checkpoint(plain).level_calibration.kind == "none"
    import torch

    payload = torch.load(path, weights_only=True)
    payload["level_calibration"] = {"kind": "affine", "a": -2.0}
    torch.save(payload, tmp_path / "bad.features.pt")
    with pytest.raises(CheckpointError, match="slope"):
        FeatureQualityEstimator.from_checkpoint(tmp_path / "bad.features.pt")


def test_train_features_refuses_a_map_it_cannot_fit() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"cv": False, "level_calibration": "affine", "data": {"dirs": ["nowhere"]}})
    with pytest.raises(ConfigError, match="cv=true"):
        train_features(cfg)  # a map needs out-of-fold estimates (checked before any row is read)
    with pytest.raises(ConfigError, match="level_calibration"):
        train_features(OmegaConf.merge(cfg, {"cv": True, "level_calibration": "platt"}))
