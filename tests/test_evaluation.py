"""The evaluation loop on synthetic data with the simulated backend: files, numbers, resume, shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.data.synthetic import generate_dataset
from ivos_rl.errors import ConfigError, DatasetError, OutputError
from ivos_rl.evaluation import evaluate, load_sample_results, merge_results, merge_runs, parse_shard
from ivos_rl.provenance import ProvenanceError
from ivos_rl.reporting import collect_runs, run_report
from ivos_rl.robot import ScribbleRobot
from ivos_rl.strategies import LinspaceStrategy, RandomStrategy, WorstStrategy
from ivos_rl.summary import auc_rounds


@pytest.fixture(scope="module")
def dataset(synthetic_root: Path) -> DavisDataset:
    return DavisDataset(synthetic_root, resolution="480p")


def test_evaluate_writes_files_and_consistent_numbers(dataset: DavisDataset, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = evaluate(
        dataset,
        SimulatedBackend(seed=0),
        WorstStrategy(),
        setting="oracle",
        max_rounds=4,
        max_samples=3,
        out_dir=out,
        progress=False,
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
        dataset,
        SimulatedBackend(seed=0),
        LinspaceStrategy(n_rounds=4),
        setting="wild",
        max_rounds=4,
        max_samples=1,
        progress=False,
    )
    s = res.samples[0]
    assert s.annotated_frames[1:] == s.recommended_frames
    assert len(s.recommended_frames) == 3  # round 1 is the initial scribble


def test_resume_continues_an_interrupted_run(dataset: DavisDataset, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    kw = {"max_rounds": 3, "max_samples": 3, "progress": False}
    full = evaluate(dataset, SimulatedBackend(seed=1), RandomStrategy(seed=3), out_dir=out, **kw)
    # "killed" before the last sample finished: its file and the summary are missing
    last = sorted((out / "samples").glob("*.json"))[-1]
    last.unlink()
    (out / "summary.json").unlink()
    resumed = evaluate(dataset, SimulatedBackend(seed=1), RandomStrategy(seed=3), out_dir=out, **kw)
    assert last.is_file() and (out / "summary.json").is_file()
    assert resumed.auc_rounds == pytest.approx(full.auc_rounds)
    assert [s.annotated_frames for s in resumed.samples] == [s.annotated_frames for s in full.samples]
    assert {s.fingerprint for s in resumed.samples} == {
        json.loads((out / "manifest.json").read_text())["fingerprint"]
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [({"max_rounds": 4}, "max_rounds"), ({"setting": "oracle"}, "setting"), ({"seed": 1}, "seed")],
)
def test_resume_refuses_a_folder_of_another_setup(
    dataset: DavisDataset, tmp_path: Path, change: dict[str, object], field: str
) -> None:
    out = tmp_path / "run"
    kw: dict[str, object] = {"max_rounds": 3, "max_samples": 2, "progress": False, "setting": "wild"}
    evaluate(dataset, SimulatedBackend(seed=0), LinspaceStrategy(n_rounds=3), out_dir=out, **kw)
    before = json.loads((out / "manifest.json").read_text())["fingerprint"]
    with pytest.raises(ProvenanceError, match=rf"{before}.*{field}") as err:
        evaluate(
            dataset, SimulatedBackend(seed=0), LinspaceStrategy(n_rounds=3), out_dir=out, **{**kw, **change}
        )
    assert str(out) in str(err.value)
    # another strategy is another setup too
    with pytest.raises(ProvenanceError, match="strategy"):
        evaluate(
            dataset, SimulatedBackend(seed=0), WorstStrategy(), out_dir=out, **{**kw, "setting": "oracle"}
        )


def test_overwrite_replaces_only_what_evaluation_wrote(dataset: DavisDataset, tmp_path: Path) -> None:
    out = tmp_path / "run"
    kw = {"max_rounds": 2, "max_samples": 2, "progress": False}
    evaluate(dataset, SimulatedBackend(seed=0), RandomStrategy(seed=0), out_dir=out, **kw)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="overwrite=true"):
        evaluate(dataset, SimulatedBackend(seed=0), RandomStrategy(seed=1), out_dir=out, resume=False, **kw)
    res = evaluate(
        dataset,
        SimulatedBackend(seed=0),
        RandomStrategy(seed=1),
        out_dir=out,
        overwrite=True,
        **kw,
    )
    assert (out / "notes.txt").read_text() == "mine"
    assert len(load_sample_results(out)) == 2
    assert {s.fingerprint for s in load_sample_results(out)} == {res.summary["fingerprint"]}


def test_finished_run_and_empty_shard_have_nothing_to_do(
    dataset: DavisDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "done"
    kw = {"max_rounds": 2, "max_samples": 3, "progress": False}
    first = evaluate(dataset, SimulatedBackend(seed=0), RandomStrategy(seed=0), out_dir=out, **kw)
    (out / "summary.json").unlink()
    again = evaluate(dataset, SimulatedBackend(seed=0), RandomStrategy(seed=0), out_dir=out, **kw)
    assert "nothing to do" in capsys.readouterr().out
    assert again.auc_rounds == pytest.approx(first.auc_rounds) and (out / "summary.json").is_file()
    # 3 samples in 4 shards: shard 3 gets none, and still leaves a valid, empty shard folder
    empty = tmp_path / "s3"
    res = evaluate(
        dataset, SimulatedBackend(seed=0), RandomStrategy(seed=0), out_dir=empty, shard="3/4", **kw
    )
    assert "nothing to do" in capsys.readouterr().out
    assert res.samples == [] and (empty / "samples").is_dir() and (empty / "manifest.json").is_file()
    summary = json.loads((empty / "summary.json").read_text())
    assert summary["n_samples"] == 0 and summary["shard"] == "3/4"


def test_shards_merge_into_a_run_folder_that_report_reads(dataset: DavisDataset, tmp_path: Path) -> None:
    kw = {"max_rounds": 3, "max_samples": 3, "progress": False}
    whole = evaluate(dataset, SimulatedBackend(seed=2), RandomStrategy(seed=0), **kw)
    dirs = []
    for i in range(4):  # shard 3/4 is empty
        d = tmp_path / f"shard{i}"
        evaluate(dataset, SimulatedBackend(seed=2), RandomStrategy(seed=0), shard=f"{i}/4", out_dir=d, **kw)
        dirs.append(d)
    merged_dir = tmp_path / "all"
    merged = merge_runs(dirs, merged_dir)
    assert merged.auc_rounds == pytest.approx(whole.auc_rounds)
    np.testing.assert_allclose(merged.curve_rounds, whole.curve_rounds)
    assert len(list((merged_dir / "samples").glob("*.json"))) == 3
    manifest = json.loads((merged_dir / "manifest.json").read_text())
    assert manifest["shard"] == "0/1" and len(manifest["merged_from"]) == 4
    # the merged folder is a normal run folder: report.py reads it
    report_cfg = OmegaConf.create(
        {
            "runs_dir": str(merged_dir),
            "n_boot": 20,
            "output_dir": str(tmp_path / "rep"),
            "overlay_sequences": None,
        }
    )
    run_report(report_cfg)
    assert "random" in (tmp_path / "rep" / "table1.md").read_text()
    (runs,) = collect_runs(merged_dir)
    assert runs[1].auc_rounds == pytest.approx(whole.auc_rounds)


def test_merge_refuses_gaps_duplicates_and_mixed_setups(dataset: DavisDataset, tmp_path: Path) -> None:
    kw = {"max_rounds": 2, "max_samples": 3, "progress": False}
    dirs = []
    for i in range(2):
        d = tmp_path / f"s{i}"
        evaluate(dataset, SimulatedBackend(seed=0), RandomStrategy(seed=0), shard=f"{i}/2", out_dir=d, **kw)
        dirs.append(d)
    with pytest.raises(ConfigError, match=r"missing \[1\]"):
        merge_results(dirs[:1])
    with pytest.raises(ConfigError, match=r"twice \[0\]"):
        merge_results([dirs[0], dirs[0], dirs[1]])
    other = tmp_path / "other"
    evaluate(dataset, SimulatedBackend(seed=0), RandomStrategy(seed=5), shard="1/2", out_dir=other, **kw)
    with pytest.raises(ProvenanceError, match="strategy"):
        merge_results([dirs[0], other])
    next(iter((dirs[1] / "samples").glob("*.json"))).unlink()  # an unfinished shard
    with pytest.raises(DatasetError, match="in no shard"):
        merge_results(dirs)


def test_output_folder_is_checked_before_any_compute(dataset: DavisDataset, tmp_path: Path) -> None:
    class NeverRun(SimulatedBackend):
        def reset(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("computed before checking the output folder")

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="file"):
        evaluate(
            dataset, NeverRun(seed=0), RandomStrategy(seed=0), out_dir=blocker, max_rounds=2, progress=False
        )


def test_sequence_with_empty_frame_folder_is_an_error(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "ds", n_sequences=2, n_frames=4, size=(32, 40), max_objects=1, seed=0)
    ds = DavisDataset(root, resolution="480p")
    (root / "Scribbles" / ds.sequences[1]).rename(tmp_path / "moved")  # no scribble either
    for jpg in (root / "JPEGImages" / "480p" / ds.sequences[1]).glob("*.jpg"):
        jpg.unlink()
    with pytest.raises(DatasetError, match=ds.sequences[1]):
        evaluate(
            DavisDataset(root, resolution="480p"),
            SimulatedBackend(seed=0),
            RandomStrategy(seed=0),
            max_rounds=2,
            progress=False,
        )


def test_no_sample_hint_names_the_fix(tmp_path: Path) -> None:
    root = generate_dataset(
        tmp_path / "ds", n_sequences=1, n_frames=4, size=(32, 40), max_objects=1, seed=0, with_scribbles=False
    )
    with pytest.raises(DatasetError, match="init-scribbles") as err:
        evaluate(
            DavisDataset(root, resolution="480p"),
            SimulatedBackend(seed=0),
            RandomStrategy(seed=0),
            max_rounds=2,
            progress=False,
        )
    assert "initial_interaction=robot" not in str(err.value)


def test_report_rows_carry_per_round_component_seconds(dataset: DavisDataset) -> None:
    """A declared time model: backend 2 s, robot 0.5 s, strategy 0.25 s per round."""
    now = [0.0]

    class Timed(SimulatedBackend):
        def interact(self, frame_idx: int, interaction: dict[str, object]):  # type: ignore[no-untyped-def]
            now[0] += 2.0
            return super().interact(frame_idx, interaction)

    class SlowLinspace(LinspaceStrategy):
        def select(self, state):  # type: ignore[no-untyped-def]
            now[0] += 0.25
            return super().select(state)

    class SlowRobot(ScribbleRobot):
        def interact(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            now[0] += 0.5
            return super().interact(*args, **kwargs)

    res = evaluate(
        dataset,
        Timed(seed=0),
        SlowLinspace(n_rounds=3),
        robot=SlowRobot(),
        clock=lambda: now[0],
        max_rounds=3,
        max_samples=1,
        progress=False,
    )
    by_round = res.report.groupby("interaction")[
        ["robot_seconds", "backend_seconds", "recommender_seconds", "timing"]
    ].first()
    assert by_round.to_dict("list") == {
        "robot_seconds": [0.0, 0.5, 0.5],  # round 1 is the stored initial scribble
        "backend_seconds": [2.0, 2.0, 2.0],
        "recommender_seconds": [0.25, 0.25, 0.0],  # nothing to choose after the last round
        "timing": [2.25, 2.25, 2.0],
    }


def test_lookahead_hook_for_oracle_strategies(dataset: DavisDataset) -> None:
    seen: list[float] = []

    class PeekThenLinspace(LinspaceStrategy):
        needs_lookahead = True

        def select(self, state):  # type: ignore[no-untyped-def]
            seen.append(state.extras["lookahead"](3))
            return 3

    kw = {"max_rounds": 2, "max_samples": 1, "progress": False, "setting": "oracle"}
    peek = evaluate(dataset, SimulatedBackend(seed=0), PeekThenLinspace(n_rounds=2), **kw)
    plain = evaluate(dataset, SimulatedBackend(seed=0), _Fixed(3), **kw)
    # the value announced for frame 3 is round 2's mean J&F, and peeking changed nothing
    round2 = plain.report[plain.report["interaction"] == 2]["j_and_f"].mean()
    assert seen == [pytest.approx(round2)]
    pd.testing.assert_frame_equal(peek.report[["j_and_f"]], plain.report[["j_and_f"]])
    with pytest.raises(ConfigError, match="Oracle-only"):
        evaluate(dataset, SimulatedBackend(seed=0), PeekThenLinspace(n_rounds=2), **{**kw, "setting": "wild"})


class _Fixed(LinspaceStrategy):
    def select(self, state):  # type: ignore[no-untyped-def]
        return 3


def test_summary_names_evaluated_videos_a_model_was_trained_on(dataset: DavisDataset) -> None:
    first, second = dataset.sequences[:2]

    trained = WorstStrategy()
    trained.split = {"train": [first, "elsewhere"], "held_out": [second]}  # type: ignore[attr-defined]
    res = evaluate(  # a strategy with a split record, as a policy file gives AgentStrategy
        dataset, SimulatedBackend(seed=0), trained, setting="oracle", max_rounds=2,
        sequences=[first, second], scribbles=[1], progress=False,
    )
    assert res.summary["trained_on_evaluated"] == {"agent": [first]}
    plain = evaluate(
        dataset, SimulatedBackend(seed=0), WorstStrategy(), setting="oracle", max_rounds=2,
        sequences=[second], scribbles=[1], progress=False,
    )
    assert plain.summary["trained_on_evaluated"] == {}  # nothing recorded, nothing claimed


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="i/n"):
        parse_shard("2-of-3")
    with pytest.raises(ConfigError, match="invalid"):
        parse_shard("3/3")
    assert parse_shard("1/4") == (1, 4)


def test_metric_threads_change_no_figure(dataset: DavisDataset) -> None:
    """Scoring on a frame pool gives the same per-round J&F and choices as one thread."""
    runs = [
        evaluate(
            dataset,
            SimulatedBackend(seed=0),
            WorstStrategy(),
            setting="oracle",
            max_rounds=3,
            max_samples=2,
            metric_threads=threads,
            progress=False,
        )
        for threads in (1, 3)
    ]
    assert runs[0].curve_rounds == runs[1].curve_rounds
    assert [s.annotated_frames for s in runs[0].samples] == [s.annotated_frames for s in runs[1].samples]
    with pytest.raises(ConfigError, match="metric_threads"):
        evaluate(dataset, SimulatedBackend(seed=0), WorstStrategy(), setting="oracle", metric_threads=0)
