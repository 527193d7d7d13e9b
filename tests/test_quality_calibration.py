"""Calibration metrics, the stop rule and the cross-validation driver of the feature model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.calibration import coverage, format_reliability, reliability
from ivos_rl.quality.crossval import backend_label, cross_validate
from ivos_rl.quality.feature_estimator import FeatureQualityEstimator, load_feature_checkpoint
from ivos_rl.quality.feature_model import FeatureModelConfig, uncertainty_scale
from ivos_rl.quality.feature_rows import FeatureRows
from ivos_rl.quality.feature_train import train_features
from ivos_rl.quality.features import FEATURE_NAMES
from ivos_rl.quality.stop import (
    StopRule,
    Trajectory,
    evaluate_stop,
    fit_stop_rule,
    sample_trajectory,
    trajectories,
)


def test_reliability_and_ece_by_hand() -> None:
    # bin [0.2, 0.3): estimates .2, .2 vs truths .4, .4 (gap .2); bin [0.9, 1]: 1.0 vs 1.0 (gap 0)
    rel = reliability(np.array([0.2, 0.2, 1.0, 1.0]), np.array([0.4, 0.4, 1.0, 1.0]))
    assert rel["ece"] == pytest.approx(0.5 * 0.2)
    assert [(b["lo"], b["n"]) for b in rel["bins"]] == [(0.2, 2), (0.9, 2)]
    assert "ECE 0.1000" in format_reliability(rel)
    with pytest.raises(InputValidationError):
        reliability(np.array([0.1]), np.array([0.1, 0.2]))


def test_coverage_and_uncertainty_scale_by_hand() -> None:
    pred, target = np.zeros(4), np.array([0.1, -0.1, 0.3, -0.3])
    sd = np.full(4, 0.1)
    # the 80% interval is +-1.2816 sd = +-0.128: two of four targets inside
    assert coverage(pred, sd, target, 0.8) == pytest.approx(0.5)
    assert uncertainty_scale(pred, sd, target) == pytest.approx(np.sqrt((1 + 1 + 9 + 9) / 4))
    with pytest.raises(InputValidationError):
        coverage(pred, sd, target, 1.5)


def test_stop_rule_gain_fit_and_evaluation() -> None:
    rule = StopRule(a=0.2, b=0.1)
    assert rule.expected_gain(np.array([1.0, 0.5])) == pytest.approx(0.2 * 0.25 + 0.1 * 0.5)
    assert rule.should_stop(np.ones(3), 0.001) and not rule.should_stop(np.zeros(3), 0.1)
    # trajectories whose gain is exactly 0.5 x the mean deficit: the fit recovers (0.5, 0)
    trajs = []
    for start in (0.3, 0.5):
        true, est = [start], []
        for _ in range(4):
            est.append(np.full(5, true[-1]))
            true.append(true[-1] + 0.5 * (1 - true[-1]))
        trajs.append(Trajectory(f"t{start}", "worst", np.array(true[:4]), np.stack(est)))
    fitted = fit_stop_rule(trajs)
    assert fitted.a == pytest.approx(0.5, abs=1e-6) and fitted.b == pytest.approx(0.0, abs=1e-6)
    # threshold 0.1: trajectory 0.3 gains .35, .175, .0875 -> stops after round 3 (index 2) of 4
    table = evaluate_stop(fitted, trajs[:1], [0.1, 0.0])
    assert table[0]["rounds_saved"] == 1 and table[0]["jf_cost"] == pytest.approx(0.5 * (1 - 0.825))
    assert table[1]["rounds_saved"] == 0 and table[1]["jf_cost"] == 0
    with pytest.raises(InputValidationError):
        rule.should_stop(np.ones(3), -1.0)


def test_sample_trajectory_from_an_evaluated_sample() -> None:
    from ivos_rl.evaluation import SampleResult

    # 2 rounds, 2 frames, 2 objects; round 1: object 1 J&F (0.2, 0.4) -> 0.3, object 2 (0.5, 0.7) -> 0.6
    rows = [
        {"interaction": r, "object_id": k, "frame": f, "j_and_f": v}
        for r, per_obj in ((1, {1: (0.2, 0.4), 2: (0.5, 0.7)}), (2, {1: (0.8, 0.8), 2: (0.6, 1.0)}))
        for k, vals in per_obj.items()
        for f, v in enumerate(vals)
    ]
    scores = [[[0.1, 0.3], [0.5, 0.5]], [[0.9, 0.7], [0.8, 0.8]]]  # per round (T, K)
    sample = SampleResult("v", 1, 2, [0, 1], [1], rows, 0.0, quality_scores=scores)
    tr = sample_trajectory(sample)
    np.testing.assert_allclose(tr.true, [0.45, 0.8])
    np.testing.assert_allclose(tr.est, [[0.2, 0.5], [0.8, 0.8]])
    # gain = 1.0 x mean deficit: round 1 expects 0.65, so threshold 0.7 stops there (saves round 2,
    # costs 0.8 - 0.45) and 0.3 goes on to the last round
    table = evaluate_stop(StopRule(a=1.0), [tr], [0.3, 0.7])
    assert table[0]["rounds_saved"] == 0 and table[1]["rounds_saved"] == 1
    assert table[1]["jf_cost"] == pytest.approx(0.35)
    with pytest.raises(InputValidationError, match="mask_ap"):
        sample_trajectory(SampleResult("v", 1, 2, [0, 1], [1], rows, 0.0, quality_scores=scores[:1]))


def _synthetic_rows(n_videos: int = 10, t: int = 20, rounds: int = 3) -> FeatureRows:
    """Two objects per frame; the target is a smooth function of two features plus video noise."""
    rng = np.random.default_rng(0)
    parts = []
    for v in range(n_videos):
        for r in range(1, rounds + 1):
            n = t * 2
            x = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
            jf = (1 / (1 + np.exp(-(x[:, 3] + 0.5 * r - 1)))).astype(np.float32)
            parts.append(
                FeatureRows(
                    x=x,
                    jf=jf,
                    j=jf,
                    f=jf,
                    sequence=np.full(n, f"v{v}"),
                    frame=np.repeat(np.arange(t), 2).astype(np.int32),
                    object_id=np.tile([1, 2], t).astype(np.int16),
                    round=np.full(n, r, np.int16),
                    strategy=np.full(n, "worst"),
                    init=np.ones(n, np.int16),
                    backend=np.full(n, '{"class": "x.PropagationBackend", "config": {}}'),
                    names=FEATURE_NAMES,
                )
            )
    return FeatureRows.concatenate(parts)


def test_cross_validation_is_by_video_and_reports_every_fold() -> None:
    rows = _synthetic_rows()
    folds = [["v0", "v1"], ["v2", "v3"], ["v4", "v5"], ["v6", "v7"], ["v8", "v9"]]
    cands = [FeatureModelConfig(hidden=8, layers=1, members=2, epochs=5, batch_size=128, lr=1e-2)] * 2
    cv = cross_validate(rows, folds, cands, seed=0, inner_folds=1, thresholds=[0.0, 1.0])
    assert [r["fold"] for r in cv["per_fold"]] == [0, 1, 2, 3, 4]
    assert all(r["backend"] == "propagation" and r["n"] == 2 * 3 * 40 for r in cv["per_fold"])
    assert np.isfinite(cv["oof_pred"]).all()  # every row predicted exactly once, out of fold
    assert cv["pooled"]["propagation"]["pcc"] > 0.5
    assert all(len(s["table"]) == 2 and s["table"][1]["rounds_saved"] == 2 for s in cv["stop"])
    assert backend_label('{"class": "a.b.SimulatedBackend"}') == "simulated"
    with pytest.raises(ConfigError):
        cross_validate(rows, folds, [])


def test_trajectories_average_objects_per_frame() -> None:
    rows = _synthetic_rows(n_videos=1, t=3, rounds=2)
    est = np.arange(len(rows), dtype=np.float64)
    (tr,) = trajectories(rows, est)
    assert tr.est.shape == (2, 3)
    assert tr.est[0].tolist() == [0.5, 2.5, 4.5]  # rows (0, 1), (2, 3), (4, 5): two objects per frame
    first = rows.jf[:6].reshape(3, 2).mean(axis=1).mean()
    assert tr.true[0] == pytest.approx(first)


def test_train_features_cross_validates_and_ships(tmp_path: Path) -> None:
    rows = _synthetic_rows()
    for v in range(10):
        rows.subset(rows.sequence == f"v{v}").save(tmp_path / f"v{v}")
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "num_threads": 1,
            "cv": True,
            "ship": True,
            "score_backend": "propagation",
            "inner_folds": 1,
            "stop_thresholds": [0.0, 0.5],
            "data": {"dirs": [str(tmp_path / f"v{v}") for v in range(10)]},
            "folds": {"n": 5, "seed": 0, "sequences": None},
            "candidates": [{"hidden": 8, "layers": 1, "members": 2, "epochs": 3, "batch_size": 128}],
            "output": str(tmp_path / "m.features.pt"),
            "fold_dir": str(tmp_path / "folds"),
        }
    )
    report = train_features(cfg)
    assert len(report["cv"]["per_fold"]) == 5 and report["n_videos"] == 10 and report["sd_scale"] > 0
    for i, test in enumerate(report["folds"]):  # each fold's model: trained without its videos
        fold_ckpt = load_feature_checkpoint(tmp_path / "folds" / f"fold{i}.pt")
        assert fold_ckpt["split"]["held_out"] == sorted(test) and fold_ckpt["split"]["fold"] == i
        assert not set(fold_ckpt["split"]["train"]) & set(test) and len(fold_ckpt["split"]["train"]) == 8
    # the fold model scores its test videos exactly as the out-of-fold file says
    est = FeatureQualityEstimator.from_checkpoint(tmp_path / "folds" / "fold0.pt")
    oof = np.load(tmp_path / "m.features.oof.npz")
    sel = np.isin(rows.sequence, report["folds"][0])
    pred, _ = est.model.predict(rows.x[sel])
    cols = ("sequence", "round", "frame", "object_id")
    want = dict(zip(zip(*(oof[c].tolist() for c in cols), strict=True), oof["pred"], strict=True))
    got = [want[k] for k in zip(*(getattr(rows, c)[sel].tolist() for c in cols), strict=True)]
    np.testing.assert_allclose(pred, got, atol=1e-6)
    ckpt = load_feature_checkpoint(tmp_path / "m.features.pt")
    assert ckpt["split"]["train"] == [f"v{v}" for v in range(10)] and len(ckpt["backends"]) == 1
    assert (tmp_path / "m.features.reliability.png").stat().st_size > 0
    assert (tmp_path / "m.features.report.json").is_file()
    bad = OmegaConf.merge(cfg, {"folds": {"sequences": ["v0", "v1"]}})
    with pytest.raises(ConfigError, match=r"not in folds\.sequences"):
        train_features(bad)
