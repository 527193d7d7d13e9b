"""Gradient-boosted-tree feature quality model: exported trees, blend, checkpoints, recipes, CV."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.assessment import pearson
from ivos_rl.quality.crossval import cross_validate
from ivos_rl.quality.feature_estimator import (
    FeatureQualityEstimator,
    load_feature_checkpoint,
    save_feature_checkpoint,
)
from ivos_rl.quality.feature_gbt import (
    Forest,
    GBTConfig,
    GBTQualityModel,
    fit_gbt,
    fit_model,
    forest_from_sklearn,
    model_from_any_state,
    recipe_from_dict,
    state_of,
)
from ivos_rl.quality.feature_model import FeatureModelConfig, FeatureQualityModel
from ivos_rl.quality.feature_rows import FeatureRows
from ivos_rl.quality.features import FEATURE_NAMES, quality_features
from ivos_rl.quality.stop import StopRule

pytest.importorskip("sklearn")  # the `trees` extra (in `dev`): training needs it, loading does not
SMALL = GBTConfig(max_iter=60, learning_rate=0.2, max_leaf_nodes=8, min_samples_leaf=10, quantile_iter=20)
TINY_MLP = {"hidden": 8, "layers": 1, "members": 2, "epochs": 5, "batch_size": 64, "lr": 1e-2}


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose J&F is a step in ``entropy_box`` plus a slope in ``dist_min`` (+ small noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    y = 0.4 + 0.3 * (x[:, 3] < 0) - 0.05 * x[:, 12] + 0.02 * rng.normal(size=n)
    return x, np.clip(y, 0, 1).astype(np.float32)


def _stumps() -> Forest:
    """Two stumps by hand: node 0 splits x0 <= 0.5 (leaves 1: +0.1, 2: +0.3); node 3 splits
    x1 <= 2 with NaN going right (leaves 4: -0.05, 5: +0.05); baseline 0.5."""
    return Forest(
        feature=np.array([0, 0, 0, 1, 0, 0]),
        threshold=np.array([0.5, 0, 0, 2.0, 0, 0]),
        left=np.array([1, 0, 0, 4, 0, 0]),
        right=np.array([2, 0, 0, 5, 0, 0]),
        leaf=np.array([False, True, True, False, True, True]),
        value=np.array([0, 0.1, 0.3, 0, -0.05, 0.05]),
        missing_left=np.zeros(6, bool),
        roots=np.array([0, 3]),
        baseline=0.5,
        depth=1,
    )


def test_forest_walks_trees_by_hand() -> None:
    rows = np.array([[0.0, 0.0], [1.0, 3.0], [0.5, np.nan], [0.6, 2.0]])
    # 0.5 + 0.1 - 0.05; 0.5 + 0.3 + 0.05; x0 = 0.5 goes left, NaN right; x1 = 2 goes left
    np.testing.assert_allclose(_stumps().predict(rows), [0.55, 0.85, 0.65, 0.75])
    back = Forest.from_state(_stumps().to_state())
    np.testing.assert_allclose(back.predict(rows), [0.55, 0.85, 0.65, 0.75])


@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "quantile"])
def test_exported_trees_equal_sklearn(loss: str) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    x, y = _rows(800, 0)
    extra = {"quantile": 0.9} if loss == "quantile" else {}
    model = HistGradientBoostingRegressor(loss=loss, max_iter=30, max_leaf_nodes=7, **extra).fit(x, y)
    xt, _ = _rows(300, 1)
    xt[:5, 3] = np.nan  # missing values take the side the trees learned
    np.testing.assert_allclose(forest_from_sklearn(model).predict(xt), model.predict(xt), atol=1e-12)


def test_gbt_learns_is_deterministic_and_has_uncertainty() -> None:
    x, y = _rows(2000, 0)
    xt, yt = _rows(500, 1)
    m1 = fit_gbt(x, y, FEATURE_NAMES, SMALL, seed=0)
    p1, s1 = m1.predict(xt)
    p2, s2 = fit_gbt(x, y, FEATURE_NAMES, SMALL, seed=0).predict(xt)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(s1, s2)
    assert pearson(p1, yt) > 0.95 and np.mean(np.abs(p1 - yt)) < 0.04
    assert ((p1 >= 0) & (p1 <= 1)).all() and (s1 > 0).all()
    # q10..q90 should hold ~80% of the rows: the sd is their half-width / 1.2816
    assert 0.6 < np.mean(np.abs(yt - p1) <= 1.2816 * s1) < 0.97
    m1.sd_scale.fill_(2.0)
    np.testing.assert_allclose(m1.predict(xt)[1], 2 * s1, rtol=1e-6)
    with pytest.raises(InputValidationError):
        m1.predict(xt[:, :4])


def test_blend_is_the_mean_of_trees_and_mlp() -> None:
    x, y = _rows(1000, 0)
    cfg = GBTConfig(**{**SMALL.to_dict(), "mlp": TINY_MLP})
    blend = fit_gbt(x, y, FEATURE_NAMES, cfg, seed=0)
    assert isinstance(blend.mlp, FeatureQualityModel)
    xt, _ = _rows(50, 2)
    mu, sd = blend.predict(xt)
    trees = np.clip(blend.forests["mean"].predict(xt), 0, 1)
    mlp_mu, mlp_sd = blend.mlp.predict(xt)
    np.testing.assert_allclose(mu, 0.5 * (trees + mlp_mu), atol=1e-6)
    width = blend.forests["q90"].predict(xt) - blend.forests["q10"].predict(xt)
    var = 0.5 * (np.maximum(width / 2.5631, 1e-3) ** 2 + mlp_sd**2) + 0.25 * (trees - mlp_mu) ** 2
    np.testing.assert_allclose(sd, np.sqrt(var), rtol=1e-3)


def test_checkpoint_records_kind_and_loads_without_sklearn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _rows(1000, 0)
    model = fit_gbt(x, y, FEATURE_NAMES, GBTConfig(**{**SMALL.to_dict(), "monotone": {"entropy_box": -1}}))
    model.sd_scale.fill_(1.5)
    path = save_feature_checkpoint(
        tmp_path / "g.features.pt",
        model,
        stop_rule=StopRule(0.1, 0.0),
        backends=["backend-A"],
        split={"train": ["a"], "held_out": ["b"]},
    )
    payload = load_feature_checkpoint(path)
    assert payload["model"]["kind"] == "gbt" and payload["model"]["names"] == list(FEATURE_NAMES)
    assert payload["model"]["config"]["monotone"] == {"entropy_box": -1}
    monkeypatch.setitem(sys.modules, "sklearn", None)  # any sklearn import now fails
    est = FeatureQualityEstimator.from_checkpoint(path)
    assert isinstance(est.model, GBTQualityModel) and est.backends == ("backend-A",)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 24, 32, 3), dtype=np.uint8)
    probs = np.zeros((4, 1, 24, 32), np.float32)  # one object
    probs[:, 0, 6:18, 8:24] = 0.9
    q, qk = est.predict(frames, probs, history=[0])
    np.testing.assert_allclose(q, qk[:, 0])
    direct, sd = model.predict(quality_features(frames, probs, [0]).reshape(4, -1))
    np.testing.assert_allclose(qk[:, 0], direct, atol=1e-6)
    np.testing.assert_allclose(est.last_uncertainty, sd, atol=1e-6)


def test_training_without_sklearn_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _rows(50, 0)
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    with pytest.raises(ConfigError, match="scikit-learn"):
        fit_gbt(x, y, FEATURE_NAMES, SMALL)


def test_recipes_and_states_dispatch_by_kind() -> None:
    assert isinstance(recipe_from_dict({"hidden": 8}), FeatureModelConfig)
    assert recipe_from_dict({"kind": "gbt", "loss": "absolute_error"}) == GBTConfig(loss="absolute_error")
    for bad in (
        {"kind": "forest"},
        {"kind": "gbt", "loss": "poisson"},
        {"kind": "gbt", "depth": 3},
        {"kind": "gbt", "monotone": {"entropy_box": 2}},
        {"kind": "gbt", "max_leaf_nodes": 1},
        {"kind": "gbt", "mlp": {"hidden": 8, "context": True}},
        {"kind": "gbt", "mlp": {"width": 8}},
    ):
        with pytest.raises(ConfigError):
            recipe_from_dict(bad)
    x, y = _rows(300, 0)
    with pytest.raises(ConfigError, match="colour"):
        fit_gbt(x, y, FEATURE_NAMES, GBTConfig(monotone={"colour": 1}))
    mlp = fit_model(x, y, FEATURE_NAMES, FeatureModelConfig(hidden=4, members=1, epochs=1))
    assert "kind" not in state_of(mlp)  # MLP files stay loadable by older code
    assert isinstance(model_from_any_state(state_of(mlp)), FeatureQualityModel)
    with pytest.raises(ConfigError, match="kind"):
        model_from_any_state({**state_of(mlp), "kind": "forest"})


def test_cross_validation_chooses_among_kinds_by_pcc_minus_mae() -> None:
    n_vid, per = 6, 150
    x, y = _rows(n_vid * per, 0)
    rows = FeatureRows(
        x=x,
        jf=y,
        j=y,
        f=y,
        sequence=np.repeat([f"v{i}" for i in range(n_vid)], per),
        frame=np.tile(np.arange(per) % 30, n_vid),
        object_id=np.ones(n_vid * per, np.int16),
        round=np.tile(np.arange(per) // 30 + 1, n_vid).astype(np.int16),
        strategy=np.full(n_vid * per, "worst"),
        init=np.ones(n_vid * per, np.int16),
        backend=np.full(n_vid * per, "backend-A"),
        names=FEATURE_NAMES,
    )
    folds = [["v0", "v1"], ["v2", "v3"], ["v4", "v5"]]
    weak = FeatureModelConfig(hidden=2, members=1, epochs=1, lr=1e-4)  # barely trained: loses
    cv = cross_validate(rows, folds, [weak, SMALL], score_backend=None, inner_folds=1, criterion="pcc-mae")
    assert [r["recipe"] for r in cv["recipes"]] == [1, 1, 1]
    assert cv["pooled"]["backend-A"]["pcc"] > 0.9 and np.isfinite(cv["oof_sd"]).all()
    with pytest.raises(ConfigError, match="criterion"):
        cross_validate(rows, folds, [SMALL], score_backend=None, criterion="mae")


def test_train_features_ships_a_tree_checkpoint(tmp_path: Path) -> None:
    """The training entry point takes ``kind: gbt`` candidates, saves fold models and ships the
    recipe the folds chose, with its kind, split and signal names in the checkpoint."""
    from omegaconf import OmegaConf

    from ivos_rl.quality.feature_train import train_features

    x, y = _rows(480, 3)
    n = len(y)
    FeatureRows(
        x=x,
        jf=y,
        j=y,
        f=y,
        sequence=np.repeat([f"v{i}" for i in range(6)], n // 6),
        frame=np.arange(n) % 20,
        object_id=np.ones(n, np.int16),
        round=(np.arange(n) // 20 % 4 + 1).astype(np.int16),
        strategy=np.full(n, "worst"),
        init=np.ones(n, np.int16),
        backend=np.full(n, "backend-A"),
        names=FEATURE_NAMES,
    ).save(tmp_path / "rows")
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "num_threads": 1,
            "data": {"dirs": [str(tmp_path / "rows")], "exclude_sequences": []},
            "folds": {"n": 3, "seed": 0, "sequences": None},
            "cv": True,
            "ship": True,
            "score_backend": None,
            "inner_folds": 1,
            "select_by": "pcc-mae",
            "stop_thresholds": [0.01],
            "candidates": [
                {
                    "kind": "gbt",
                    "max_iter": 30,
                    "max_leaf_nodes": 4,
                    "min_samples_leaf": 5,
                    "quantile_iter": 10,
                }
            ],
            "fold_dir": str(tmp_path / "folds"),
            "output": str(tmp_path / "m.features.pt"),
        }
    )
    report = train_features(cfg)
    assert report["recipe"] == 0 and report["cv"]["pooled"]["backend-A"]["pcc"] > 0.8
    shipped = load_feature_checkpoint(tmp_path / "m.features.pt")
    assert shipped["model"]["kind"] == "gbt" and shipped["model"]["names"] == list(FEATURE_NAMES)
    assert shipped["split"]["train"] == [f"v{i}" for i in range(6)] and shipped["backends"] == ["backend-A"]
    for i, fold in enumerate(report["folds"]):
        split = load_feature_checkpoint(tmp_path / "folds" / f"fold{i}.pt")["split"]
        assert split["held_out"] == sorted(fold) and not set(split["train"]) & set(fold)
