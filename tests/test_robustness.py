"""Robustness study: rank-agreement statistics by hand, and the script's outputs on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from ivos_rl.annotators import build_annotators
from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.evaluation import evaluate
from ivos_rl.robustness import (
    auc_statistics,
    kendalls_w,
    mean_spearman,
    modal_ranking_fraction,
    rank_matrix,
    run_robustness,
    top1_agreement,
)
from ivos_rl.strategies import RandomStrategy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_rank_matrix_ranks_highest_auc_first_with_average_ties() -> None:
    np.testing.assert_array_equal(rank_matrix([[0.5, 0.5, 0.2], [0.1, 0.9, 0.3]]), [[1.5, 1.5, 3], [3, 1, 2]])


def test_kendalls_w_and_spearman_by_hand() -> None:
    same = [[1, 2, 3]] * 3
    assert kendalls_w(same) == pytest.approx(1.0) and mean_spearman(same) == pytest.approx(1.0)
    reversed_ = [[1, 2, 3], [3, 2, 1]]
    assert kendalls_w(reversed_) == pytest.approx(0.0) and mean_spearman(reversed_) == pytest.approx(-1.0)
    # R = (2, 5, 5), S = 4 + 1 + 1 = 6, W = 12 * 6 / (2^2 * (27 - 3)) = 0.75; rho = 1 - 6*2/(3*8) = 0.5
    swap = [[1, 2, 3], [1, 3, 2]]
    assert kendalls_w(swap) == pytest.approx(0.75) and mean_spearman(swap) == pytest.approx(0.5)
    # ties: R = (2.5, 3.5, 6), S = 6.5, T = 2^3 - 2 = 6 -> W = 78 / (4 * 24 - 2 * 6) = 78 / 84
    assert kendalls_w([[1.5, 1.5, 3], [1, 2, 3]]) == pytest.approx(78 / 84)
    assert np.isnan(kendalls_w([[1], [1]]))  # one strategy: no ranking to agree on
    assert np.isnan(mean_spearman([[1, 2, 3]]))  # one annotator: no pair


def test_majority_ranking_and_top1() -> None:
    ranks = [[1, 2], [1, 2], [2, 1]]
    frac, modal = modal_ranking_fraction(ranks)
    assert frac == pytest.approx(2 / 3) and modal == (1.0, 2.0)
    assert top1_agreement(ranks) == pytest.approx(2 / 3)
    assert top1_agreement([[1.5, 1.5], [1, 2]]) == pytest.approx(1.0)  # a tie for first counts


def test_auc_statistics_by_hand() -> None:
    df = auc_statistics([[0.5, 0.6], [0.7, 0.2]], ["a", "b"])
    np.testing.assert_allclose(df["mean"], [0.6, 0.4])
    np.testing.assert_allclose(df["std"], [np.sqrt(0.02), np.sqrt(0.08)])
    np.testing.assert_allclose(df["p5"], [0.51, 0.22])
    np.testing.assert_allclose(df["p95"], [0.69, 0.58])
    np.testing.assert_allclose(df["mean_rank"], [1.5, 1.5])
    assert auc_statistics([[0.5, 0.6]], ["a", "b"])["std"].tolist() == [0.0, 0.0]
    with pytest.raises(InputValidationError, match="NaN"):
        auc_statistics([[np.nan, 0.1]], ["a", "b"])
    with pytest.raises(InputValidationError, match="2 labels for 3"):
        auc_statistics([[0.1, 0.2, 0.3]], ["a", "b"])


def _cfg(synthetic_root: Path, out: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="robustness",
            overrides=[
                "n_annotators=2", "max_samples=2", "max_rounds=3",
                "runs.linspace=null", "runs.farthest=null", "runs.lookahead=null", f"output_dir={out}",
                *overrides,
            ],
        )
    with open_dict(cfg):
        cfg.dataset = OmegaConf.create(
            {"_target_": "ivos_rl.data.DavisDataset", "root": str(synthetic_root), "resolution": "480p"}
        )
    return cfg


def test_robustness_writes_table_and_plot(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "rob"
    cfg = _cfg(synthetic_root, out)
    res = run_robustness(cfg)
    auc = np.asarray(res["auc"])
    assert auc.shape == (2, 2) and np.all((auc > 0) & (auc <= 1))
    assert list(res["strategies"]) == ["random", "worst_oracle"]

    table = pd.read_csv(out / "robustness.csv", index_col="strategy")
    assert list(table.index) == ["random", "worst_oracle"]
    np.testing.assert_allclose(table["mean"], auc.mean(axis=0))
    np.testing.assert_allclose(table["std"], auc.std(axis=0, ddof=1))
    assert (table["p5"] <= table["mean"]).all() and (table["mean"] <= table["p95"]).all()
    per = pd.read_csv(out / "auc_per_annotator.csv", index_col="annotator")
    np.testing.assert_allclose(per.to_numpy(), auc)
    md = (out / "robustness.md").read_text()
    assert "| random |" in md and "Kendall's W" in md and "Spearman" in md
    assert (out / "auc_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["auc"] == res["auc"] and set(summary["rank_stability"]) >= {"kendalls_w", "mean_spearman"}
    assert (out / "config.yaml").is_file()
    # the two annotators are different users: at least one strategy's AUC differs between them
    assert np.any(auc[0] != auc[1])

    # cell (1, random) is exactly one evaluate() run with annotator 1 of the population
    robot = build_annotators(cfg.annotator, 2, seed=0)[1]
    direct = evaluate(
        DavisDataset(synthetic_root, resolution="480p"), SimulatedBackend(seed=0), RandomStrategy(seed=0),
        setting="wild", robot=robot, max_rounds=3, max_samples=2, progress=False,
    )
    assert direct.auc_rounds == pytest.approx(auc[1, 0])


def test_robustness_reports_gap_closed_with_the_lookahead(synthetic_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "rob"
    cfg = _cfg(synthetic_root, out)
    with open_dict(cfg):
        cfg.runs.lookahead = {
            "setting": "oracle",
            "strategy": {"_target_": "ivos_rl.strategies.OracleLookaheadStrategy", "n_grid": 4},
        }
    res = run_robustness(cfg)
    gaps = res["gap_closed"]
    assert gaps["random"]["gap closed"] == pytest.approx(0.0)
    assert gaps["lookahead"]["gap closed"] == pytest.approx(1.0)
    assert "worst_oracle" in gaps and gaps["worst_oracle"]["videos"] >= 1
    # the lookahead is an upper bound for one-step choices: on average at least Random's AUC
    auc = np.asarray(res["auc"])
    assert auc[:, 2].mean() >= auc[:, 0].mean()
    assert "Gap closed" in (out / "robustness.md").read_text()
    assert json.loads((out / "summary.json").read_text())["gap_closed"]["lookahead"]["gap closed"] == 1.0


def test_robustness_config_errors(synthetic_root: Path, tmp_path: Path) -> None:
    cfg = _cfg(synthetic_root, tmp_path / "a", "runs.random=null", "runs.worst_oracle=null")
    with pytest.raises(ConfigError, match="runs is empty"):
        run_robustness(cfg)
    cfg = _cfg(synthetic_root, tmp_path / "b", "runs.worst_oracle.setting=wild")
    with pytest.raises(ConfigError, match=r"needs cfg\.estimator"):
        run_robustness(cfg)
    cfg = _cfg(synthetic_root, tmp_path / "c", "n_annotators=0")
    with pytest.raises(ConfigError, match="n_annotators"):
        run_robustness(cfg)
    assert not (tmp_path / "b" / "robustness.csv").exists()
