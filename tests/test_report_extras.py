"""report.py: per-round J&F, cross-setting comparison with paired intervals, overlay checks; demo title.

Issue #17 items 9 and 11. Hand-made results make the numbers checkable by hand: with rounds
[r1, r2] the round-AUC of the curve [0, r1, r2] over x = 0, 1/2, 1 is (2 r1 + r2) / 4.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from ivos_rl.backends import SimulatedBackend
from ivos_rl.compare import default_title
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.evaluation import EvaluationResult, SampleResult, evaluate, summarize_samples
from ivos_rl.reporting import compare_to_reference, curves_figure, round_table, run_report
from ivos_rl.strategies import LinspaceStrategy, WorstStrategy


def _result(per_video: dict[str, list[float]]) -> EvaluationResult:
    """One sample per video, one object, one frame; J&F after round i is per_video[video][i - 1]."""
    samples = []
    for video, rounds in per_video.items():
        rows = [
            {"session_id": "s", "sequence": video, "scribble_idx": 1, "interaction": i, "object_id": 1,
             "frame": 0, "jaccard": v, "contour": v, "j_and_f": v, "timing": float(i)}
            for i, v in enumerate(rounds, start=1)
        ]
        samples.append(SampleResult(video, 1, 1, [0], [0] * len(rounds), rows, 0.0))
    report, summary = summarize_samples(samples)
    return EvaluationResult(report=report, summary=summary, samples=samples)


def _meta(strategy: str, setting: str, needs_quality: bool = True) -> dict[str, object]:
    return {"strategy": strategy, "setting": setting, "backend": "sim", "dataset": "toy",
            "needs_quality": needs_quality}


RUNS = [
    (_meta("worst", "oracle"), _result({"a": [0.4, 0.8], "b": [0.4, 0.8]})),   # AUC 0.4 each
    (_meta("agent", "wild"), _result({"a": [0.6, 0.8], "b": [0.4, 1.0]})),     # AUC 0.5, 0.45
    (_meta("random", "wild", False), _result({"a": [0.2, 0.4], "b": [0.2, 0.4]})),  # 0.2, seed 0
    (_meta("random", "oracle", False), _result({"a": [0.4, 0.4], "b": [0.4, 0.4]})),  # 0.3, seed 1
]


def test_round_table_by_hand() -> None:
    table = round_table(RUNS)
    agent = table.loc["sim/toy | wild / agent"]
    assert agent["1"] == pytest.approx(0.5) and agent["2"] == pytest.approx(0.9)
    assert agent["AUC"] == pytest.approx((2 * 0.5 + 0.9) / 4) and agent["runs"] == 1
    rnd = table.loc["sim/toy | any / random"]  # quality-free: both settings' runs are one strategy
    assert rnd["runs"] == 2 and rnd["1"] == pytest.approx(0.3) and rnd["AUC"] == pytest.approx(0.25)


def test_agent_wild_against_worst_oracle_by_hand() -> None:
    comp = compare_to_reference(RUNS, "worst", "oracle", n_boot=2000)
    # agent - worst per video: +0.10 (a), +0.05 (b); two videos -> bootstrap means in {.05, .075, .10}
    assert comp.loc["wild / agent", "sim/toy"] == "+7.50 [+5.00, +10.00] (2 videos)"
    assert comp.loc["any / random", "sim/toy"] == "-15.00 [-15.00, -15.00] (2 videos)"
    assert "oracle / worst" not in comp.index
    with pytest.raises(InputValidationError, match="not among the runs"):
        compare_to_reference(RUNS, "worst", "wild")


def test_report_writes_rounds_and_comparison(synthetic_root: Path, tmp_path: Path) -> None:
    ds = DavisDataset(synthetic_root, resolution="480p")
    runs = tmp_path / "runs"
    kw = {"max_rounds": 2, "max_samples": 2, "progress": False, "setting": "oracle"}
    worst = evaluate(ds, SimulatedBackend(seed=0), WorstStrategy(), out_dir=runs / "w", **kw)
    evaluate(ds, SimulatedBackend(seed=0), LinspaceStrategy(2), out_dir=runs / "l", save_predictions=True,
             **kw)
    cfg = OmegaConf.create({"runs_dir": str(runs), "n_boot": 50, "output_dir": str(tmp_path / "rep"),
                            "overlay_sequences": None,
                            "reference": {"strategy": "worst", "setting": "oracle"}})
    run_report(cfg)
    rounds = (tmp_path / "rep" / "rounds.md").read_text()
    assert f"{worst.curve_rounds[1]:.3f}" in rounds and f"{worst.curve_rounds[2]:.3f}" in rounds
    assert "any / linspace" in (tmp_path / "rep" / "comparison.md").read_text()

    # overlays: a dataset config that is not the runs' is refused before anything is generated
    seq = worst.samples[0].sequence
    elsewhere = tmp_path / "data" / "synthetic"
    bad = OmegaConf.merge(cfg, {"overlay_sequences": [seq], "reference": None,
                                "dataset": {"_target_": "ivos_rl.data.synthetic.synthetic_dataset",
                                            "root": str(elsewhere)}})
    with pytest.raises(ConfigError, match="same dataset overrides"):
        run_report(bad)
    assert not elsewhere.exists()
    good = OmegaConf.merge(bad, {"dataset": {"_target_": "ivos_rl.data.DavisDataset",
                                             "root": str(synthetic_root), "resolution": "480p"}})
    out = run_report(good)
    assert len(out["overlays"]) >= 1 and all(Path(p).is_file() for p in out["overlays"])  # type: ignore


def test_overlays_need_saved_predictions(synthetic_root: Path, tmp_path: Path) -> None:
    ds = DavisDataset(synthetic_root, resolution="480p")
    evaluate(ds, SimulatedBackend(seed=0), WorstStrategy(), setting="oracle", max_rounds=1, max_samples=1,
             progress=False, out_dir=tmp_path / "runs" / "w")
    cfg = OmegaConf.create({"runs_dir": str(tmp_path / "runs"), "n_boot": 10,
                            "output_dir": str(tmp_path / "r"), "overlay_sequences": [ds.sequences[0]],
                            "reference": None,
                            "dataset": {"root": str(synthetic_root)}})
    with pytest.raises(ConfigError, match="save_predictions=true"):
        run_report(cfg)


def test_demo_title_follows_the_data_and_fits_the_figure() -> None:
    results = {"worst": _result({"a": [0.4, 0.8], "b": [0.4, 0.8]})}
    cfg = OmegaConf.create({"max_rounds": 2, "backend": {"_target_": "ivos_rl.backends.SimulatedBackend"}})
    title = default_title(SimpleNamespace(root="/data/my-videos"), cfg, results)
    assert title == "my-videos: 2 video(s), 2 sample(s), SimulatedBackend, 2 rounds"
    long = "a very long plot title " * 8
    fig = curves_figure(results, long)
    fig.canvas.draw()
    box = fig.axes[0].title.get_window_extent(fig.canvas.get_renderer())
    width, height = fig.canvas.get_width_height()
    assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height  # not clipped at either edge
    assert fig.axes[0].get_title().count("\n") >= 2


def test_unwritable_output_folders_fail_before_any_compute(tmp_path: Path) -> None:
    from ivos_rl.compare import compare_strategies
    from ivos_rl.errors import OutputError

    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    # the dataset root does not exist: reaching instantiation would raise MissingDataError instead
    dataset = {"_target_": "ivos_rl.data.DavisDataset", "root": str(tmp_path / "no")}
    cfg = OmegaConf.create({"seed": 0, "output_dir": str(blocker / "out"), "dataset": dataset,
                            "runs": {"worst": {"setting": "oracle", "strategy": {"_target_": "x"}}}})
    with pytest.raises(OutputError, match=r"cannot create output folder .*a_file/out"):
        compare_strategies(cfg)
    rep = OmegaConf.create({"runs_dir": str(tmp_path / "none"), "output_dir": str(blocker), "n_boot": 1})
    with pytest.raises(OutputError, match="is not a folder"):
        run_report(rep)
