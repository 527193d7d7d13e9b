"""Held-out tables of distillation variants (agents/distill_table.py): hand-computed ratios, and the
seed ensemble re-scored from a real (tiny) cross-validated run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ivos_rl.agents.distill_cv import run
from ivos_rl.agents.distill_table import ablation_table, run_scores, variant_dirs
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.lookahead_data import rows_path, save_rows, start_folder
from ivos_rl.provenance import ProvenanceError
from ivos_rl.testing import lookahead_record

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _scores(ensemble: list[float], seed_mean: list[float] | None = None) -> pd.DataFrame:
    """Two videos: Farthest gains 0.01 each, the oracle 0.04 and 0.08, span-error 0.02."""
    return pd.DataFrame(
        {
            "ensemble": ensemble,
            "seed_mean": seed_mean or ensemble,
            "farthest": [0.01, 0.01],
            "span": [0.02, 0.02],
            "oracle": [0.04, 0.08],
        },
        index=["a/1", "b/1"],
    )


def test_ablation_table_ratios_and_differences_by_hand() -> None:
    scores = {"recipe": _scores([0.02, 0.04], [0.01, 0.03]), "paper": _scores([0.01, 0.01])}
    table = ablation_table(scores, "recipe", n_boot=200)
    recipe, paper = table.loc["recipe"], table.loc["paper"]
    assert recipe["gain x100"] == pytest.approx(3.0) and recipe["seed mean x100"] == pytest.approx(2.0)
    assert recipe["minus recipe"] == "+0.00 [+0.00, +0.00]"
    # share of the oracle's gain = 0.03 / 0.06; gap closed = (0.03 - 0.01) / (0.06 - 0.01)
    assert recipe["share of oracle gain"].startswith("0.50 [") and recipe["gap closed"].startswith("0.40 [")
    assert paper["gap closed"] == "0.00 [0.00, 0.00]"  # it picks Farthest's gains exactly
    assert paper["minus recipe"].startswith("-2.00 [") and paper["minus Farthest"] == "+0.00 [+0.00, +0.00]"
    assert table.loc["oracle", "share of oracle gain"] == "1.00 [1.00, 1.00]"
    assert list(table.index) == ["recipe", "paper", "Farthest", "span-error", "oracle"]
    assert set(table["videos"]) == {2}


def test_ablation_table_refuses_variants_scored_on_other_rounds() -> None:
    other = _scores([0.02, 0.04])
    other["oracle"] = [0.05, 0.08]
    with pytest.raises(InputValidationError, match="other rows"):
        ablation_table({"recipe": _scores([0.02, 0.04]), "x": other}, "recipe")
    with pytest.raises(ConfigError, match="reference"):
        ablation_table({"x": other}, "recipe")


def _toy_rows(tmp: Path, n_videos: int = 6, n: int = 10) -> Path:
    """Two rounds per video; the best tried frame is the lowest-quality one (not Farthest's)."""
    folder = tmp / "rows"
    start_folder(folder, {"backend": "b", "quality": "q", "samples": [[f"v{v}", 1] for v in range(n_videos)]})
    history = np.array([[0, -1, -1], [0, 5, -1]])
    for v in range(n_videos):
        rng = np.random.default_rng(v)
        q = rng.uniform(0.4, 0.9, (2, n)).astype(np.float32)
        values = np.full((2, n), np.nan, np.float32)
        for r in range(2):
            cand = sorted({2, 5, 9, int(np.argmin(q[r]))})
            values[r, cand] = 0.5 + 0.02 * rng.random(len(cand))
            values[r, int(np.argmin(q[r]))] = 0.6
        zeros = np.zeros((2, n), np.float32)
        save_rows(
            rows_path(folder, f"v{v}", 1),
            lookahead_record(q, history, values, 0.6, entropy=zeros, area_change=zeros),
        )
    return folder


def _distill(rows: Path, out: Path, features: str, seeds: str) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="distill_agent",
            overrides=[
                f"data_dir={rows}",
                f"out_dir={out}",
                "n_folds=3",
                "inner_folds=2",
                f"seeds={seeds}",
                "distill.epochs=2",
                "distill.hidden=8",
                "distill.decoder_hidden=8",
                f"distill.state_features={features}",
                "grid=[{demo_weight: 1.0}]",
            ],
        )
    run(cfg)


def test_run_scores_rescore_every_held_out_video_with_the_seed_ensemble(tmp_path: Path) -> None:
    rows = _toy_rows(tmp_path)
    _distill(rows, tmp_path / "runs" / "recipe", "[distance,entropy]", "[0,1]")
    _distill(rows, tmp_path / "runs" / "paper", "[]", "[0]")
    dirs = variant_dirs(tmp_path / "runs", None, "recipe")
    assert list(dirs) == ["recipe", "paper"]
    scores = {name: run_scores(d) for name, d in dirs.items()}
    for s in scores.values():
        assert list(s.index) == [f"v{v}/1" for v in range(6)]  # each video held out by one of 3 folds
        assert (s["oracle"] >= s[["ensemble", "seed_mean", "farthest", "span"]].max(axis=1) - 1e-12).all()
    one = scores["paper"]  # one seed: the ensemble is that policy, so both columns agree exactly
    np.testing.assert_array_equal(one["ensemble"].to_numpy(), one["seed_mean"].to_numpy())
    pd.testing.assert_series_equal(scores["recipe"]["farthest"], one["farthest"])  # the same held-out rounds
    table = ablation_table(scores, "recipe", n_boot=100)
    assert set(table["videos"]) == {6}
    with pytest.raises(InputValidationError, match="no run folder"):
        variant_dirs(tmp_path / "runs", ["recipe", "no_span"], "recipe")
    # a moved run tree is read from where it now is (its summaries record paths of where it ran)
    moved = shutil.move(str(tmp_path / "runs" / "paper"), str(tmp_path / "elsewhere"))
    pd.testing.assert_frame_equal(run_scores(moved), one)
    fold0 = Path(moved) / "fold0" / "summary.json"
    summary = json.loads(fold0.read_text())
    fold0.write_text(json.dumps({**summary, "test": summary["test"][:-1]}))
    with pytest.raises(ProvenanceError, match=r"fold0/summary.json: policy .* held out"):
        run_scores(moved)
    fold0.write_text("{not json")
    with pytest.raises(InputValidationError, match=r"fold0/summary.json: not a readable"):
        run_scores(moved)
