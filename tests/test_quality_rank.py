"""Within-round ranking term of the feature quality model (issue #15): hand-checked loss, batches of
whole groups, lambda 0 unchanged, and the Spearman recipe choice with its PCC guard."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.assessment import within_group_spearman
from ivos_rl.quality.crossval import _pick
from ivos_rl.quality.feature_model import (
    FeatureModelConfig,
    fit_feature_model,
    group_batches,
    model_from_state,
    model_state,
    pairwise_rank_loss,
)
from ivos_rl.quality.feature_rows import FeatureRows
from ivos_rl.quality.features import FEATURE_NAMES
from tests.test_quality_degraded import _rows as degraded_rows


def test_pairwise_rank_loss_by_hand() -> None:
    g = torch.tensor([3, 3])
    # one pair: row 0 is better (0.8 > 0.5 + margin); logits 1 vs 0: log(1 + e^-1)
    loss = pairwise_rank_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.5]), g)
    assert float(loss) == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-6)
    # the wrong order costs log(1 + e^1)
    loss = pairwise_rank_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.8, 0.5]), g)
    assert float(loss) == pytest.approx(math.log1p(math.exp(1.0)), rel=1e-6)
    # targets within the margin, or rows of different groups: no pair, loss 0
    assert float(pairwise_rank_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.505, 0.5]), g)) == 0.0
    two = torch.tensor([1, 2])
    assert float(pairwise_rank_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.5]), two)) == 0.0
    # a 3-row group with equal logits: 3 ordered pairs, each log 2; a 1-row group beside it adds nothing
    loss = pairwise_rank_loss(
        torch.zeros(4), torch.tensor([0.9, 0.5, 0.1, 0.0]), torch.tensor([7, 7, 7, 9])
    )
    assert float(loss) == pytest.approx(math.log(2.0), rel=1e-6)


def test_group_batches_keep_groups_whole() -> None:
    group = torch.tensor([5, 1, 5, 2, 2, 2, 1, 9, 5, 9])
    batches = group_batches(group, 3, torch.Generator().manual_seed(0))
    rows = torch.cat(batches).tolist()
    assert sorted(rows) == list(range(10))  # every row exactly once
    for b in batches:  # a group is in one batch only, and only the last batch may be short
        for g in group[b].unique().tolist():
            assert set(torch.nonzero(group == g).reshape(-1).tolist()) <= set(b.tolist())
    assert all(len(b) >= 3 for b in batches[:-1])


def _xy(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32)
    return x, (1 / (1 + np.exp(-x[:, 3]))).astype(np.float32)


def test_lambda_zero_is_todays_training_and_state() -> None:
    x, y = _xy()
    small = {"hidden": 4, "layers": 1, "members": 2, "epochs": 3, "batch_size": 16}
    plain = fit_feature_model(x, y, FEATURE_NAMES, FeatureModelConfig(**small), seed=1)
    zero = fit_feature_model(
        x, y, FEATURE_NAMES, FeatureModelConfig(**small, rank_weight=0.0), seed=1, groups=np.arange(64) // 8
    )
    for k, v in model_state(plain)["state"].items():
        assert torch.equal(v, model_state(zero)["state"][k])
    assert "rank_weight" not in model_state(plain)["config"]  # files stay loadable by older code
    ranked = fit_feature_model(
        x, y, FEATURE_NAMES, FeatureModelConfig(**small, rank_weight=1.0), seed=1, groups=np.arange(64) // 8
    )
    assert not np.array_equal(ranked.predict(x)[0], plain.predict(x)[0])
    state = model_state(ranked)
    assert state["config"]["rank_weight"] == 1.0 and model_from_state(state).config.rank_weight == 1.0
    with pytest.raises(ConfigError, match="groups"):
        fit_feature_model(x, y, FEATURE_NAMES, FeatureModelConfig(**small, rank_weight=1.0))
    with pytest.raises(InputValidationError, match="groups"):
        bad = np.ones(3, int)
        fit_feature_model(x, y, FEATURE_NAMES, FeatureModelConfig(**small, rank_weight=1.0), groups=bad)
    with pytest.raises(ConfigError, match="rank_weight"):
        FeatureModelConfig(rank_weight=-0.1)


def test_ranking_term_learns_the_order_a_pooled_fit_inverts() -> None:
    """Across rounds the one informative column falls with the level (-3 x level), within a round it
    rises with the target: MSE follows the pooled trend (wrong order inside each round), the ranking
    term the within-round one."""
    rng = np.random.default_rng(0)
    level = np.repeat(rng.uniform(0.2, 0.8, 40), 10)
    within = rng.uniform(0, 1, 400)
    x = np.zeros((400, len(FEATURE_NAMES)), np.float32)
    x[:, 3] = -3 * level + 0.3 * within
    y = (level + 0.1 * (within - 0.5)).astype(np.float32)
    groups = np.repeat(np.arange(40), 10)
    base = {"hidden": 8, "layers": 1, "members": 1, "epochs": 40, "batch_size": 50, "lr": 1e-2}
    mse = fit_feature_model(x, y, FEATURE_NAMES, FeatureModelConfig(**base), seed=0).predict(x)[0]
    cfg = FeatureModelConfig(**base, rank_weight=5.0)
    ranked = fit_feature_model(x, y, FEATURE_NAMES, cfg, seed=0, groups=groups).predict(x)[0]
    assert within_group_spearman(mse, y, groups) < 0 < 0.8 < within_group_spearman(ranked, y, groups)


def test_within_group_spearman_by_hand() -> None:
    pred = np.array([1, 2, 3, 3, 2, 1, 0.5, 0.6])
    true = np.array([1, 2, 3, 1, 2, 3, 0.1, 0.2])
    # group 0: same order (1), group 1: reversed (-1), group 2 has 2 rows: skipped -> mean 0
    assert within_group_spearman(pred, true, np.array([0, 0, 0, 1, 1, 1, 2, 2])) == pytest.approx(0.0)
    assert within_group_spearman(pred[:3], true[:3], np.zeros(3)) == pytest.approx(1.0)
    assert math.isnan(within_group_spearman(pred[6:], true[6:], np.zeros(2)))


def test_spearman_choice_keeps_the_pcc_guard() -> None:
    # candidate 2 has the best Spearman but its inner PCC .68 is below .70 - .01: candidate 1 wins
    pick, scores = _pick([0.30, 0.40, 0.50], [0.70, 0.695, 0.68], "spearman")
    assert pick == 1 and math.isnan(scores[2])
    assert _pick([0.30, 0.40, 0.50], [0.70, 0.695, 0.68], "pcc")[0] == 2  # other criteria: no guard


def _rows(n_videos: int) -> FeatureRows:
    """4 frames x 2 rounds of one object per video (test_quality_degraded's rows), in two trajectories."""
    worst, other = degraded_rows(n_videos), degraded_rows(n_videos)
    other.strategy = np.full(len(other), "random")
    return FeatureRows.concatenate([worst, other])


def test_round_groups_are_trajectory_round_object() -> None:
    rows = _rows(2)  # rows 0-3 and 4-7: video v0's two rounds (worst); rows 16-19: its first round (random)
    g = rows.round_groups()
    assert len(np.unique(g)) == 2 * 2 * 2  # videos x trajectories x rounds
    assert (g[:4] == g[0]).all() and len({g[0], g[4], g[8], g[16]}) == 4


def test_train_features_with_a_ranking_candidate(tmp_path: Path) -> None:
    from ivos_rl.quality.feature_train import train_features

    _rows(6).save(tmp_path / "rows")
    small = {"hidden": 8, "members": 1, "epochs": 2, "batch_size": 16}
    cfg = OmegaConf.create(
        {
            "seed": 0, "num_threads": 1,
            "data": {"dirs": [str(tmp_path / "rows")]},
            "folds": {"n": 3, "seed": 0, "sequences": None}, "cv": True, "ship": True,
            "score_backend": None, "inner_folds": 2, "select_by": "spearman",
            "candidates": [small, {**small, "rank_weight": 0.5}],
            "stop_thresholds": [0.01], "output": str(tmp_path / "m.features.pt"),
        }
    )
    report = train_features(cfg)
    recipes = report["cv"]["recipes"]
    assert len(recipes) == 3 and all(r["criterion"] == "spearman" for r in recipes)
    assert report["recipe"] in (0, 1) and (tmp_path / "m.features.pt").is_file()
