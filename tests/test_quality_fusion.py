"""Late-fusion quality net (crops + appearance-free signals): config, samples join, training,
estimator (history, uncertainty, cache, backend warning) and the side-by-side CV report."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import CheckpointError, ConfigError, DatasetError, InputValidationError
from ivos_rl.quality.assessment import write_predictions
from ivos_rl.quality.checkpoint import export_half, load_checkpoint, load_model, save_checkpoint
from ivos_rl.quality.cv_report import (
    Predictions,
    common_rows,
    compare_shares,
    load_predictions,
    model_report,
    paired_share,
    pick_share,
    round_picks,
    with_annotated,
    worst_pick,
)
from ivos_rl.quality.estimator import QualityEstimator
from ivos_rl.quality.feature_rows import FILE, FeatureRows, load_feature_rows
from ivos_rl.quality.features import FEATURE_NAMES, quality_features
from ivos_rl.quality.model import QualityNet, QualityNetConfig
from ivos_rl.quality.samples import generate_samples, load_samples
from ivos_rl.quality.train import train
from ivos_rl.robot import ScribbleRobot
from ivos_rl.state_features import StateFeatures
from ivos_rl.utils.seed import name_rng


@pytest.fixture(scope="module")
def generated(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fusion") / "samples"
    ds = DavisDataset(synthetic_root, image_set="2017/train")
    generate_samples(
        ds, SimulatedBackend(seed=0), ScribbleRobot(), out, seed=3, crop_size=32, n_rounds=2,
        max_initial=1, frames_per_round=3, strategies=["worst"], progress=False,
    )
    return out


def _net(seed: int = 0, features: str | tuple[str, ...] = "all") -> QualityNet:
    torch.manual_seed(seed)
    return QualityNet(backbone="mobilenet_v3_small", input_size=32, features=features).eval()


def test_config_resolves_all_and_round_trips() -> None:
    cfg = QualityNetConfig(features="all")
    assert cfg.features == FEATURE_NAMES and len(cfg.features) == 25
    assert QualityNetConfig.from_dict(cfg.to_dict()) == cfg
    assert QualityNetConfig().features == ()  # the paper's crop-only net by default
    with pytest.raises(ConfigError, match="twice"):
        QualityNetConfig(features=("area", "area"))
    with pytest.raises(ConfigError, match="fusion_hidden"):
        QualityNetConfig(features="all", fusion_hidden=0)


def test_fused_forward_needs_signals_and_stats_are_standardisation() -> None:
    net = _net(features=("area", "round"))
    rgb, prob = torch.rand(2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    with pytest.raises(InputValidationError, match="signal rows"):
        net(rgb, prob)
    with pytest.raises(InputValidationError, match="crop-only"):
        _net(features=())(rgb, prob, torch.zeros(2, 2))
    net.set_feature_stats(torch.tensor([[0.0, 1.0], [2.0, 5.0]]))
    np.testing.assert_allclose(net.feat_mean.numpy(), [1.0, 3.0])
    np.testing.assert_allclose(net.feat_std.numpy(), [2**0.5, 8**0.5], rtol=1e-6)  # unbiased std
    q = net(rgb, prob, torch.tensor([[0.0, 1.0], [2.0, 5.0]]))
    assert q.shape == (2,) and ((q > 0) & (q < 1)).all()


def test_samples_carry_the_signals_of_the_same_rounds(generated: Path) -> None:
    s = load_samples(generated)
    rows = load_feature_rows(generated)
    assert s.x is not None and s.x.shape == (len(s), len(rows.names)) and s.feature_names == rows.names
    assert s.fingerprint is not None and set(s.fingerprint.tolist()) == set(rows.backend.tolist())
    for i in (0, len(s) // 2, len(s) - 1):  # the paired row has the same key, target and signals
        sel = (
            (rows.sequence == s.sequence[i]) & (rows.round == s.round[i]) & (rows.frame == s.frame[i])
            & (rows.object_id == s.object_id[i]) & (rows.init == s.init[i]) & (rows.strategy == s.strategy[i])
        )
        assert sel.sum() == 1
        np.testing.assert_array_equal(s.x[i], rows.x[sel][0])
        assert s.jf[i] == pytest.approx(float(rows.jf[sel][0]), abs=1e-6)
    sig = s.signals(np.array([0, 1]), ("round", "area"))
    np.testing.assert_array_equal(sig[:, 0].numpy(), s.x[:2, FEATURE_NAMES.index("round")])
    with pytest.raises(ConfigError, match="lack signal"):
        s.signals(np.array([0]), ("no_such_signal",))


def test_feature_rows_of_another_pass_are_refused(generated: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(generated, copy)
    rows = load_feature_rows(copy)
    s = load_samples(copy)
    drop = (rows.sequence == s.sequence[0]) & (rows.frame == s.frame[0]) & (rows.round == s.round[0])
    rows.subset(~drop).save(copy)
    with pytest.raises(DatasetError, match="no feature row"):
        load_samples(copy)
    (copy / FILE).unlink()  # a folder without signals still loads (crop-only training)
    assert load_samples(copy).x is None


def test_fused_training_records_backends_and_held_out_predictions(generated: Path, tmp_path: Path) -> None:
    s = load_samples(generated)
    held = sorted(set(s.sequence.tolist()))[:1]
    cfg = {
        "seed": 0, "device": "cpu", "channels_last": True, "num_threads": 1,
        "data": {"dirs": [str(generated)], "val_sequences": held, "train_fraction": 0.5},
        "val_every": 3,  # > epochs: only the last epoch is validated, no initial validation
        "quality": {"backbone": "mobilenet_v3_small", "input_size": 32, "features": "all"},
        "batch_size": 8, "epochs": 1, "max_steps": None,
        "optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 0.0},
        "schedule": {"name": "constant", "warmup_steps": 0, "min_ratio": 0.0},
        "augment": {"hflip": 0.5}, "tensorboard": False, "resume": None, "output_dir": str(tmp_path / "run"),
    }
    metrics = train(cfg)
    n_train = int((~np.isin(s.sequence, held)).sum())
    kept = name_rng(0, "quality-train-fraction").random(n_train) < 0.5
    assert metrics["n_train"] == int(kept.sum())
    assert 0 < metrics["n_train"] < n_train and "initial_val_mse" not in metrics
    payload = load_checkpoint(metrics["checkpoint"])
    history = payload["metrics"]["history"]
    assert [h["epoch"] for h in history] == [1] and "pcc" in history[0]
    assert payload["backends"] == sorted(set(s.fingerprint.tolist()))
    assert payload["model_config"]["features"] == list(FEATURE_NAMES)
    assert payload["split"]["held_out"] == held
    model, _ = load_model(metrics["checkpoint"])
    train_x = s.x[~np.isin(s.sequence, held)][kept][:, : len(FEATURE_NAMES)]  # the kept training rows
    np.testing.assert_allclose(model.feat_mean.numpy(), train_x.mean(0), rtol=1e-4, atol=1e-5)
    preds = load_predictions([tmp_path / "run" / "held_out_predictions.npz"])
    assert set(preds.arrays["sequence"].tolist()) == set(held)
    assert np.isfinite(preds.arrays["sd"]).all() and (preds.arrays["sd"] > 0).all()
    assert len(preds) == int(np.isin(s.sequence, held).sum())


def _video(t: int = 6, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    probs = np.zeros((t, 1, h, w), np.uint8)
    for i in range(t):
        probs[i, 0, 6 : 14 + i, 4 + 2 * i : 14 + 2 * i] = 230
    return frames, probs


def test_fused_estimator_history_uncertainty_cache_and_backend_warning(tmp_path: Path) -> None:
    net = _net()
    frames, probs = _video()
    est = QualityEstimator(net, cache=True)
    crop_only = QualityEstimator(_net(features=()))
    assert est.needs_history and not crop_only.needs_history
    # the uncertainty state group: a fusion net reports it, a crop-only net is refused before any round
    assert est.reports_uncertainty and not crop_only.reports_uncertainty
    StateFeatures.parse(["uncertainty"]).check_quality(est, oracle=False)
    with pytest.raises(ConfigError, match="QualityEstimator reports none"):
        StateFeatures.parse(["uncertainty"]).check_quality(crop_only, oracle=False)
    with pytest.raises(InputValidationError, match="history"):
        est.predict(frames, probs)
    q, qk = est.predict(frames, probs, history=[0])
    assert q.shape == (6,) and qk.shape == (6, 1) and est.n_scored == 6
    assert est.last_uncertainty is not None and est.last_uncertainty.shape == (6,)
    assert (est.last_uncertainty > 0).all()
    # the same as the net on the crops and the signals directly
    x = torch.from_numpy(quality_features(frames, probs, [0]).reshape(6, -1))
    from ivos_rl.quality.crop import crop_inputs

    rgb, prob, _ = crop_inputs(frames, probs, 32)
    with torch.inference_mode():
        direct = net(rgb[:, 0], prob[:, 0], x).numpy()
    np.testing.assert_allclose(qk[:, 0], direct, atol=1e-5)
    # a new annotation changes the signals, not the crops: no CNN rerun, new estimates
    q2, _ = est.predict(frames, probs, history=[0, 5])
    assert est.n_scored == 6 and not np.allclose(q2, q)
    # checkpoint: backends recorded; another backend warns once, naming both
    path = save_checkpoint(tmp_path / "fused.pt", net, backends=['{"class": "A"}'])
    loaded = QualityEstimator.from_checkpoint(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert loaded.check_backend('{"class": "A"}')
        assert not loaded.check_backend('{"class": "B"}')
        assert not loaded.check_backend('{"class": "B"}')
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and '{"class": "A"}' in msgs[0] and '{"class": "B"}' in msgs[0]
    # shipping copy: float16, the out-of-fold uncertainty scale, backends kept
    shipped = export_half(path, tmp_path / "ship.pt", sd_scale=1.5)
    model, payload = load_model(shipped)
    assert float(model.sd_scale) == 1.5 and payload["backends"] == ['{"class": "A"}']
    with pytest.raises(CheckpointError, match="sd_scale"):
        export_half(save_checkpoint(tmp_path / "crop.pt", _net(features=())), tmp_path / "x.pt", sd_scale=1.5)


def _pred_file(path: Path, seqs: list[str], pred: list[float], jf: list[float]) -> Path:
    n = len(seqs)
    rows = FeatureRows(
        x=np.zeros((n, 1), np.float32), jf=np.array(jf, np.float32), j=np.zeros(n), f=np.zeros(n),
        sequence=np.array(seqs), frame=np.arange(n), object_id=np.ones(n, np.int16),
        round=np.ones(n, np.int16), strategy=np.full(n, "worst"), init=np.ones(n, np.int16),
        backend=np.full(n, '{"class": "x.PropagationBackend", "version": 2}'), names=("a",),
    )
    return write_predictions(path, rows, rows.backend, np.array(pred), np.full(n, 0.1), None)


def test_cv_report_by_hand(tmp_path: Path) -> None:
    f0 = _pred_file(tmp_path / "f0.npz", ["a", "a", "a"], [0.2, 0.5, 0.8], [0.1, 0.5, 0.9])
    f1 = _pred_file(tmp_path / "f1.npz", ["b", "b"], [0.4, 0.6], [0.4, 0.6])
    p = load_predictions([f0, f1])
    rep = model_report(p)
    per_fold = {r["fold"]: r for r in rep["per_fold"]}
    assert per_fold[0]["pcc"] == pytest.approx(1.0) and per_fold[0]["mae"] == pytest.approx(0.2 / 3)
    assert per_fold[1]["mae"] == pytest.approx(0.0, abs=1e-7)
    # fold 0 per fold: ECE (0.1 + 0 + 0.1) / 3 (one row per bin); the order is right: Spearman 1, regret 0
    assert per_fold[0]["ece"] == pytest.approx(0.2 / 3)
    assert per_fold[0]["within_spearman"] == pytest.approx(1.0)
    assert per_fold[0]["regret"] == pytest.approx(0.0, abs=1e-7)
    pooled = rep["pooled"]["propagation-v2"]
    assert pooled["n"] == 5 and pooled["mae"] == pytest.approx(0.04)
    # residuals 0.1, 0, 0.1, 0, 0 with sd 0.1: scale sqrt(2 / 5)
    assert pooled["sd_scale"] == pytest.approx((2 / 5) ** 0.5, rel=1e-5)
    with pytest.raises(DatasetError, match="twice"):
        load_predictions([f0, f0])
    other = load_predictions([_pred_file(tmp_path / "g.npz", ["a", "a"], [0.3, 0.3], [0.1, 0.5])])
    both = common_rows({"m": p, "n": other})
    assert len(both["m"]) == len(both["n"]) == 2
    np.testing.assert_array_equal(both["m"].arrays["frame"], both["n"].arrays["frame"])



def test_worst_pick_regret_and_within_round_pcc_by_hand(tmp_path: Path) -> None:
    # video a: the lowest estimate (0.2) is on frame 1 (true 0.5), the true worst is 0.1: regret 0.4
    a = _pred_file(tmp_path / "a.npz", ["a", "a", "a"], [0.5, 0.2, 0.8], [0.1, 0.5, 0.9])
    # video b: right pick (regret 0); two frames only, so no within-round PCC
    b = _pred_file(tmp_path / "b.npz", ["b", "b"], [0.3, 0.6], [0.4, 0.6])
    wp = worst_pick(load_predictions([a, b]))
    assert wp["rounds"] == 2 and wp["regret"] == pytest.approx(0.2)
    # PCC of (0.5, 0.2, 0.8) and (0.1, 0.5, 0.9): deviations (0, -0.3, 0.3), (-0.4, 0, 0.4): 0.12 / 0.12
    assert wp["within_pcc"] == pytest.approx(0.12 / np.sqrt(0.18 * 0.32))
    # Spearman: ranks (2, 1, 3) and (1, 2, 3): deviations (0, -1, 1), (-1, 0, 1): 1 / 2
    assert wp["within_spearman"] == pytest.approx(0.5)
    assert model_report(load_predictions([a, b]))["pooled"]["propagation-v2"]["worst_pick"] == wp


def test_val_fraction_zero_trains_on_every_video(generated: Path) -> None:
    from ivos_rl.quality.train import split_samples

    s = load_samples(generated)
    train_set, val_set, record = split_samples(s, None, 0.0)
    assert len(train_set) == len(s) and len(val_set) == 0
    assert record["held_out"] == [] and record["train"] == sorted(set(s.sequence.tolist()))
    with pytest.raises(ConfigError, match="val_fraction"):
        split_samples(s, None, 1.0)


def _annotated_rows(
    seqs: list[str],
    frames: list[int],
    annotated: list[int],
    jf: list[float],
    names: tuple[str, ...] = ("annotated",),
) -> FeatureRows:
    """Rows of one round per video; ``annotated`` is the only non-zero column of ``names``."""
    n = len(seqs)
    x = np.zeros((n, len(names)), np.float32)
    x[:, names.index("annotated")] = annotated
    return FeatureRows(
        x=x, jf=np.array(jf, np.float32), j=np.zeros(n),
        f=np.zeros(n), sequence=np.array(seqs), frame=np.array(frames), object_id=np.ones(n, np.int16),
        round=np.ones(n, np.int16), strategy=np.full(n, "worst"), init=np.ones(n, np.int16),
        backend=np.full(n, '{"class": "x.PropagationBackend", "version": 2}'), names=names,
    )


def test_worst_proxy_share_skips_annotated_frames_by_hand(tmp_path: Path) -> None:
    # video a: frame 3 is annotated (true 1.0, lowest estimate .1); video b: 3 frames, none annotated
    rows = _annotated_rows(["a"] * 4 + ["b"] * 3, [0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 1, 0, 0, 0],
                           [0.1, 0.5, 0.9, 1.0, 0.2, 0.6, 0.4])
    pred = [0.5, 0.2, 0.8, 0.1, 0.3, 0.6, 0.9]
    p = load_predictions([write_predictions(tmp_path / "p.npz", rows, rows.backend, np.array(pred), None)])
    # every frame a candidate: a picks frame 3 (1.0) against random .625 and oracle .1; b picks its
    # worst (.2) against random .4: share ((.625 - 1) + .2) / (.525 + .2)
    assert worst_pick(p)["share"] == pytest.approx((0.625 - 1.0 + 0.2) / (0.525 + 0.2), rel=1e-5)
    # without the annotated frame: a picks frame 1 (.5) = its random .5, oracle .1: share (0 + .2) / (.4 + .2)
    q = with_annotated(p, rows)
    wp = worst_pick(q)
    assert wp["share"] == pytest.approx(1 / 3, rel=1e-5) and wp["regret"] == pytest.approx(0.2, rel=1e-5)
    picks = round_picks(q)
    np.testing.assert_allclose(picks["picked"], [0.5, 0.2], rtol=1e-6)
    assert pick_share(picks) == pytest.approx(1 / 3, rel=1e-5)
    # paired over videos: against itself 0; a perfect estimate has share 1, so the difference is -2/3
    assert paired_share(q, q)["diff"] == 0.0 and paired_share(q, q)["hi"] == 0.0
    perfect = Predictions({**q.arrays, "pred": q.arrays["jf"].copy()})
    d = paired_share(q, perfect, n_boot=200)
    assert d["diff"] == pytest.approx(-2 / 3, rel=1e-5)
    assert -1.0 - 1e-6 <= d["lo"] <= d["diff"] <= d["hi"] <= 1e-6
    assert compare_shares({"m": q, "ok": perfect}, "ok")["m"]["propagation-v2"]["diff"] == d["diff"]
    with pytest.raises(DatasetError, match="no feature row"):
        with_annotated(p, rows.subset(np.arange(6)))


def test_cv_report_cli_worst_proxy_against_a_reference(tmp_path: Path) -> None:
    import json

    from ivos_rl.quality.cv_report import main

    rows = _annotated_rows(["a"] * 4, [0, 1, 2, 3], [0, 0, 0, 1], [0.1, 0.5, 0.9, 1.0], FEATURE_NAMES)
    rows.save(tmp_path / "rows")
    est = write_predictions(tmp_path / "e.npz", rows, rows.backend, np.array([0.5, 0.2, 0.8, 0.1]), None)
    ok = write_predictions(tmp_path / "o.npz", rows, rows.backend, rows.jf, None)
    out = tmp_path / "r.json"
    assert main([f"est={est}", f"ok={ok}", "--common", "--rows", str(tmp_path / "rows"), "--reference", "ok",
                 "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    # est picks frame 1 (.5) = the mean of frames 0-2: share 0; the perfect estimate picks frame 0: share 1
    share = report["models"]["est"]["pooled"]["propagation-v2"]["worst_pick"]["share"]
    assert share == pytest.approx(0.0, abs=1e-6)
    assert report["share_vs_reference"]["est"]["propagation-v2"]["diff"] == pytest.approx(-1.0, rel=1e-6)
    assert main([f"est={est}", "--reference", "nope", "--output", str(out)]) == 2
