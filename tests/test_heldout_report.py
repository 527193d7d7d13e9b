"""Held-out tables from per-fold folders (ivos_rl.reporting: collect_labelled, heldout_table), by hand.

One object, one frame per sample; with J&F r1, r2 after rounds 1 and 2 the round-AUC of the curve
[0, r1, r2] over x = 0, 1/2, 1 is (2 r1 + r2) / 4, so every figure below is checkable by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.evaluation import EvaluationResult, SampleResult, summarize_samples, write_outputs
from ivos_rl.reporting import (
    collect_labelled,
    common_samples,
    heldout_table,
    label_runs,
    per_run_table,
    pool_runs,
    run_report,
)


def _write_run(folder: Path, strategy: str, curves: dict[tuple[str, int], list[float]],
               setting: str = "wild", needs_quality: bool = True) -> Path:
    """An evaluation folder (summary.json + samples/) whose sample (video, scribble) has J&F ``curves``."""
    samples = []
    for (video, scribble), rounds in curves.items():
        rows = [
            {"session_id": "s", "sequence": video, "scribble_idx": scribble, "interaction": i, "object_id": 1,
             "frame": 0, "jaccard": v, "contour": v, "j_and_f": v, "timing": float(i)}
            for i, v in enumerate(rounds, start=1)
        ]
        samples.append(SampleResult(video, scribble, 1, [0], [0] * len(rounds), rows, 0.0))
    report, summary = summarize_samples(samples)
    summary.update({"strategy": strategy, "setting": setting, "backend": "sim", "dataset": "toy",
                    "needs_quality": needs_quality, "output_dir": str(folder)})
    write_outputs(EvaluationResult(report=report, summary=summary, samples=samples), folder)
    for s in samples:
        (folder / "samples" / f"{s.sequence}__{s.scribble_idx:03d}.json").write_text(json.dumps(s.to_json()))
    return folder


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    """Two folds of videos {a, b} | {c, d}, scribbles 1 and 2. Curves give AUC (2 r1 + r2) / 4:
    agent  [.6, .8] -> .50 on every sample;  farthest [.4, .8] -> .40;  random seed 0 [.2, .4] -> .20,
    seed 1 [.4, .4] -> .30 (their mean .25);  lookahead (scribble 1 only) [.8, 1.] -> .65."""
    folds = (("a", "b"), ("c", "d"))

    def curves(rounds: list[float], scribbles: tuple[int, ...] = (1, 2)) -> list[dict]:
        return [{(v, s): rounds for v in fold for s in scribbles} for fold in folds]

    for name, strategy, rounds, scribbles in (
        ("agent", "agent_ensemble", [0.6, 0.8], (1, 2)),
        ("farthest", "farthest", [0.4, 0.8], (1, 2)),
        ("random0", "random", [0.2, 0.4], (1, 2)),
        ("random1", "random", [0.4, 0.4], (1, 2)),
        ("lookahead", "oracle_lookahead", [0.8, 1.0], (1,)),
    ):
        for i, c in enumerate(curves(rounds, scribbles)):
            _write_run(tmp_path / "eval" / name / f"fold{i}", strategy, c)
    return tmp_path / "eval"


def test_folds_pool_and_seeds_average(runs: Path) -> None:
    per = collect_labelled({"agent": str(runs / "agent"),
                            "random": [str(runs / "random0"), str(runs / "random1")]})
    assert len(per["agent"]) == 8 and per["agent"].to_numpy() == pytest.approx([0.5] * 8)  # 4 videos x 2
    assert per["random"].to_numpy() == pytest.approx([0.25] * 8)
    only_1 = collect_labelled({"agent": str(runs / "agent")}, scribbles=[1])["agent"]
    assert sorted(only_1.index) == ["a/1", "b/1", "c/1", "d/1"]


def test_table_by_hand(runs: Path) -> None:
    per = collect_labelled({"agent": str(runs / "agent"), "farthest": str(runs / "farthest"),
                            "random": [str(runs / "random0"), str(runs / "random1")]})
    table = heldout_table(per, refs=["agent"], n_boot=200)
    assert list(table.index) == ["agent", "farthest", "random"]  # best first
    assert table.loc["agent", "AUC x100"] == "50.00" and table.loc["random", "AUC x100"] == "25.00"
    assert table.loc["farthest", "samples"] == "8" and table.loc["farthest", "videos"] == "4"
    # a constant difference per video: every bootstrap draw gives it
    assert table.loc["farthest", "agent minus it [95% CI]"] == "+10.00 [+10.00, +10.00]"
    assert table.loc["random", "agent minus it [95% CI]"] == "+25.00 [+25.00, +25.00]"
    assert table.loc["random", "videos agent wins"] == "4/4"
    assert table.loc["agent", "agent minus it [95% CI]"] == ""
    with pytest.raises(ConfigError, match="'best' is not a label"):
        heldout_table(per, refs=["best"])


def test_a_label_mixing_methods_is_refused(runs: Path) -> None:
    with pytest.raises(InputValidationError, match=r"differ in strategy.*farthest"):
        collect_labelled({"mixed": [str(runs / "agent"), str(runs / "farthest")]})
    # Random never reads quality: its Oracle and Wild runs are one method (as in run_report's grouping)
    _write_run(runs / "random_oracle" / "fold0", "random", {("a", 1): [0.2, 0.4]}, setting="oracle",
               needs_quality=False)
    _write_run(runs / "random_wild" / "fold0", "random", {("a", 1): [0.4, 0.4]}, needs_quality=False)
    both = collect_labelled({"random": [str(runs / "random_oracle"), str(runs / "random_wild")]})["random"]
    assert both["a/1"] == pytest.approx(0.25)
    with pytest.raises(InputValidationError, match="no sample left"):
        collect_labelled({"agent": str(runs / "agent")}, scribbles=[3])


def test_gap_closed_on_the_samples_every_label_has(runs: Path) -> None:
    per = collect_labelled({"agent": str(runs / "agent"), "farthest": str(runs / "farthest"),
                            "lookahead": str(runs / "lookahead")})
    shared = common_samples(per)
    assert all(len(s) == 4 for s in shared.values())  # the lookahead ran scribble 1 only


def test_report_script_writes_the_heldout_table(runs: Path, tmp_path: Path) -> None:
    spec = {"runs": {"agent": str(runs / "agent"), "farthest": str(runs / "farthest"),
                     "random": [str(runs / "random0"), str(runs / "random1")],
                     "lookahead": str(runs / "lookahead")},
            "refs": ["agent"], "scribbles": None, "floor": "farthest", "ceiling": "lookahead"}
    cfg = OmegaConf.create({"runs_dir": "???", "n_boot": 100, "output_dir": str(tmp_path / "rep"),
                            "heldout": spec})
    out = run_report(cfg)
    md = (tmp_path / "rep" / "heldout.md").read_text()
    assert "| agent | 50.00 | 8 | 4 |" in md and "| lookahead | 65.00 | 4 | 4 |" in md
    assert "| agent | 50.00 | 50.00 |" in (tmp_path / "rep" / "heldout_runs.md").read_text()  # fold0, fold1
    gaps = out["gap_closed"]
    # on scribble 1: (50 - 40) / (65 - 40) = 0.4 of the Farthest-to-Lookahead room
    assert gaps["gap closed"]["agent"] == pytest.approx(0.4)  # type: ignore[index]
    assert (tmp_path / "rep" / "heldout_gap_closed.md").is_file()
    cfg.heldout.ceiling = None
    with pytest.raises(ConfigError, match="go together"):
        run_report(cfg)


def test_per_run_table_by_fold(tmp_path: Path) -> None:
    _write_run(tmp_path / "far" / "fold0", "farthest", {("a", 1): [0.4, 0.8]})  # AUC .40
    _write_run(tmp_path / "far" / "fold1", "farthest", {("b", 1): [0.6, 0.8]})  # .50
    _write_run(tmp_path / "r0" / "fold0", "random", {("a", 1): [0.2, 0.4]}, needs_quality=False)  # .20
    _write_run(tmp_path / "r1" / "fold0", "random", {("a", 1): [0.4, 0.4]}, needs_quality=False)  # .30
    runs = label_runs({"far": str(tmp_path / "far"), "random": [str(tmp_path / "r0"), str(tmp_path / "r1")]})
    assert [key for key, _ in runs["far"]] == ["fold0", "fold1"]
    table = per_run_table(runs)
    assert table.loc["far"].to_list() == pytest.approx([40.0, 50.0])
    assert table.loc["random", "fold0"] == pytest.approx(25.0)  # its two seeds averaged
    assert np.isnan(table.loc["random", "fold1"])  # no run there
    assert pool_runs(runs["far"]).to_dict() == pytest.approx({"a/1": 0.4, "b/1": 0.5})


def _train_run(folder: Path, fold: int, curves: dict[tuple[str, int], list[float]]) -> None:
    """A cross-validated training run with train.fold=``fold``: its manifest and ``heldout/`` evaluation."""
    _write_run(folder / "heldout", "agent", curves)
    manifest = {"kind": "train_agent", "fingerprint": "f", "hydra_job": {"overrides": [f"train.fold={fold}"]},
                "fields": {"train": {"fold": fold}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_per_run_table_keys_training_runs_by_their_fold(tmp_path: Path) -> None:
    # two multirun sweeps of one recipe, folds 0,1 and fold 3: both number their first job 0
    _train_run(tmp_path / "s01" / "0", 0, {("a", 1): [0.4, 0.8]})  # AUC .40
    _train_run(tmp_path / "s01" / "1", 1, {("b", 1): [0.6, 0.8]})  # .50
    _train_run(tmp_path / "s3" / "0", 3, {("d", 1): [0.2, 0.4]})  # .20
    runs = label_runs({"agent": [str(tmp_path / "s01"), str(tmp_path / "s3")]})
    assert [key for key, _ in runs["agent"]] == ["fold0", "fold1", "fold3"]
    table = per_run_table(runs)
    assert table.loc["agent"].to_dict() == pytest.approx({"fold0": 40.0, "fold1": 50.0, "fold3": 20.0})
    # a keyed spec keeps its own keys
    keyed = label_runs({"agent": {"k": [str(tmp_path / "s3" / "0" / "heldout")]}})
    assert [key for key, _ in keyed["agent"]] == ["k"]


def test_bad_heldout_specs_are_typed_errors(runs: Path, tmp_path: Path) -> None:
    def cfg(**heldout: object) -> object:
        spec = {"runs": {"agent": str(runs / "agent")}, "refs": [], "scribbles": None, "floor": None,
                "ceiling": None, **heldout}
        return OmegaConf.create({"n_boot": 10, "output_dir": str(tmp_path / "rep"), "heldout": spec})

    with pytest.raises(ConfigError, match="must map labels to folders"):
        run_report(cfg(runs=[str(runs / "agent")]))
    with pytest.raises(ConfigError, match=r"heldout.runs.agent: no folder given"):
        run_report(cfg(runs={"agent": []}))
    with pytest.raises(InputValidationError, match="no evaluation output"):
        run_report(cfg(runs={"agent": str(tmp_path / "empty")}))
    with pytest.raises(InputValidationError, match="gap closed needs a 'lookahead' result"):
        run_report(cfg(floor="agent", ceiling="lookahead"))
