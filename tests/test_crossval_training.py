"""Held-out cross-validation of a training recipe (train.fold, +cv=folds): the fold is never trained on, its
score is the standalone evaluation's, and a sweep's runs are grouped into the table's rows by variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ivos_rl.agents.checkpoint import load_policy
from ivos_rl.agents.strategy import AgentStrategy
from ivos_rl.agents.train import train
from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data.davis import DavisDataset
from ivos_rl.data.splits import fold_split
from ivos_rl.envs.baseline import RandomBaseline
from ivos_rl.errors import InputValidationError
from ivos_rl.evaluation import evaluate, load_sample_results
from ivos_rl.reporting import run_heldout_report
from ivos_rl.sweeps import sweep_labels
from tests.test_agent_train import CONFIGS, tiny_config

FOLD = ("+cv=folds", "train.n_folds=3", "heldout.max_rounds=3", "train.total_steps=24", "~logger")


def test_a_fold_run_holds_its_fold_out_and_scores_it_like_evaluate(
    synthetic_root: Path, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.json"
    result = train(tiny_config(synthetic_root, tmp_path / "f1", baseline, *FOLD, "train.fold=1"))
    ds = DavisDataset(synthetic_root, resolution="480p", image_set="2017/train")
    train_videos, test_videos = fold_split(ds.sequences, 3, 1, seed=0)
    assert result["val_sequences"] == test_videos and result["train_sequences"] == train_videos
    _, meta = load_policy(result["policy"])
    assert meta["split"] == {"train": train_videos, "held_out": test_videos, "seed": None,
                             "fold": 1, "n_folds": 3, "fold_seed": 0}
    samples = load_sample_results(tmp_path / "f1" / "heldout")
    assert sorted({s.sequence for s in samples}) == test_videos
    assert len(samples) == result["heldout"]["samples"]
    # the number `scripts/evaluate.py strategy=agent strategy.path=<run>/agent.pt` gives (Oracle, 3 rounds)
    policy = AgentStrategy.from_checkpoint(result["policy"])
    alone = evaluate(ds, SimulatedBackend(seed=0), policy, setting="oracle", max_rounds=3,
                     sequences=tuple(test_videos), progress=False, mask_ap=False)
    assert result["heldout"]["auc_rounds"] == alone.auc_rounds
    # the random baseline cache only ever held fold 1's training samples so far; fold 0 adds what it lacks
    assert {s for s, _ in RandomBaseline.load(baseline).samples} == set(train_videos)
    other = train(tiny_config(synthetic_root, tmp_path / "f0", baseline, *FOLD, "train.fold=0"))
    assert {s for s, _ in RandomBaseline.load(baseline).samples} == set(ds.sequences)
    # the report pools the folds of the sweep (one variant: "runs"), one column per fold
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        overrides = [f"heldout.sweep={tmp_path}", f"output_dir={tmp_path / 'report'}", "n_boot=50"]
        cfg = compose("report", overrides)
    per_run = run_heldout_report(cfg)["per_run"]
    assert per_run["fold1"]["runs"] == pytest.approx(100 * result["heldout"]["auc_rounds"])
    assert per_run["fold0"]["runs"] == pytest.approx(100 * other["heldout"]["auc_rounds"])


def _run(root: Path, name: str, overrides: list[str], heldout: bool = True) -> None:
    folder = root / name
    (folder / "heldout" / "samples").mkdir(parents=True)
    fold = next((int(o.split("=")[1]) for o in overrides if o.startswith("train.fold=")), None)
    manifest = {"kind": "train_agent", "fingerprint": "f", "hydra_job": {"overrides": overrides},
                "fields": {"train": {"fold": fold}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    evaluation = {"kind": "evaluate", "fingerprint": "e"}  # not a training run: skipped
    (folder / "heldout" / "manifest.json").write_text(json.dumps(evaluation))
    if heldout:
        (folder / "heldout" / "summary.json").write_text("{}")


def test_sweep_runs_are_grouped_by_the_overrides_that_vary(tmp_path: Path) -> None:
    common = ["+experiment=agent_davis2016", "+cv=folds"]
    for job, (mode, fold, seed) in enumerate([("q_only", 0, 0), ("q_only", 1, 0), ("both", 0, 0),
                                              ("both", 0, 1), ("both", 1, 0)]):
        _run(tmp_path, str(job), [*common, f"env.state_mode={mode}", f"train.fold={fold}", f"seed={seed}",
                                  f"train.output_dir=out/{job}"])
    _run(tmp_path, "unfinished", [*common, "env.state_mode=h_only", "train.fold=0"], heldout=False)
    labels = sweep_labels(str(tmp_path))
    h = lambda job: str(tmp_path / str(job) / "heldout")  # noqa: E731
    assert labels == {
        "env.state_mode=q_only": {"fold0": [h(0)], "fold1": [h(1)]},
        "env.state_mode=both": {"fold0": [h(2), h(3)], "fold1": [h(4)]},  # seeds of a fold together
    }
    assert list(sweep_labels(str(tmp_path / "2"))) == ["runs"]  # one variant: nothing varies
    with pytest.raises(InputValidationError, match="no training run with a held-out evaluation"):
        sweep_labels(str(tmp_path / "unfinished"))
