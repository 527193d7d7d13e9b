"""The evaluation loop on synthetic data with the simulated backend: files, numbers, resume, shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError
from ivos_rl.evaluation import evaluate, load_sample_results, merge_results, parse_shard
from ivos_rl.strategies import LinspaceStrategy, RandomStrategy, WorstStrategy
from ivos_rl.summary import auc_rounds


@pytest.fixture(scope="module")
def dataset(synthetic_root: Path) -> DavisDataset:
    return DavisDataset(synthetic_root, resolution="480p")


def test_evaluate_writes_files_and_consistent_numbers(dataset: DavisDataset, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = evaluate(
        dataset, SimulatedBackend(seed=0), WorstStrategy(), setting="oracle",
        max_rounds=4, max_samples=3, out_dir=out, progress=False,
    )
    for name in ("report.csv", "summary.json", "frames.json"):
        assert (out / name).is_file()
    assert len(list((out / "samples").glob("*.json"))) == 3
    summary = json.loads((out / "summary.json").read_text())
    # IVOS-W keys and ours agree
    assert summary["auc"] == pytest.approx(summary["auc_rounds"])
    assert summary["curve"]["J_AND_F"] == summary["curve_rounds"]["J_AND_F"]
    # the round curve is the mean over (sample, object) of per-object frame means, per round
    report = pd.read_csv(out / "report.csv")
    per_obj = report.groupby(["sequence", "scribble_idx", "interaction", "object_id"])["j_and_f"].mean()
    by_round = per_obj.groupby(level="interaction").mean()
    assert res.curve_rounds == pytest.approx([0.0, *by_round.tolist()])
    assert res.auc_rounds == pytest.approx(auc_rounds(res.curve_rounds))
    # Worst in Oracle never repeats a frame within 4 rounds of 12-frame videos
    for s in res.samples:
        assert len(s.annotated_frames) == 4
        assert len(set(s.annotated_frames)) == 4


def test_strategy_choice_is_what_the_robot_annotates(dataset: DavisDataset) -> None:
    res = evaluate(
        dataset, SimulatedBackend(seed=0), LinspaceStrategy(n_rounds=4), setting="wild",
        max_rounds=4, max_samples=1, progress=False,
    )
    s = res.samples[0]
    assert s.annotated_frames[1:] == s.recommended_frames
    assert len(s.recommended_frames) == 3  # round 1 is the initial scribble


def test_resume_skips_finished_samples(dataset: DavisDataset, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    full = evaluate(dataset, SimulatedBackend(seed=1), RandomStrategy(seed=3), max_rounds=3,
                    max_samples=3, progress=False)
    # "interrupted" run: only the first two samples finished
    evaluate(dataset, SimulatedBackend(seed=1), RandomStrategy(seed=3), max_rounds=3,
             max_samples=2, out_dir=out, progress=False)
    assert len(load_sample_results(out)) == 2
    resumed = evaluate(dataset, SimulatedBackend(seed=1), RandomStrategy(seed=3), max_rounds=3,
                       max_samples=3, out_dir=out, progress=False)
    assert resumed.auc_rounds == pytest.approx(full.auc_rounds)
    assert [s.annotated_frames for s in resumed.samples] == [s.annotated_frames for s in full.samples]


def test_shards_merge_to_the_whole(dataset: DavisDataset, tmp_path: Path) -> None:
    kw = {"max_rounds": 3, "max_samples": 4, "progress": False}
    whole = evaluate(dataset, SimulatedBackend(seed=2), RandomStrategy(seed=0), **kw)
    dirs = []
    for i in range(2):
        d = tmp_path / f"shard{i}"
        evaluate(dataset, SimulatedBackend(seed=2), RandomStrategy(seed=0), shard=f"{i}/2", out_dir=d, **kw)
        dirs.append(d)
    merged = merge_results(dirs)
    assert merged.auc_rounds == pytest.approx(whole.auc_rounds)
    np.testing.assert_allclose(merged.curve_rounds, whole.curve_rounds)


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="i/n"):
        parse_shard("2-of-3")
    with pytest.raises(ConfigError, match="invalid"):
        parse_shard("3/3")
    assert parse_shard("1/4") == (1, 4)
