"""Reporting: the Table-1 numbers are the saved reports' numbers; bootstrap; curves; overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from ivos_rl.agents import QNetwork
from ivos_rl.agents.strategy import AgentStrategy
from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.evaluation import evaluate
from ivos_rl.reporting import (
    collect_runs,
    overlay_gif,
    paired_bootstrap,
    per_sample_auc,
    run_report,
    table1,
    to_markdown,
)
from ivos_rl.strategies import LinspaceStrategy, RandomStrategy, WorstStrategy


def test_paired_bootstrap_on_a_constant_difference() -> None:
    a = pd.Series({"s1/1": 0.8, "s1/2": 0.6, "s2/1": 0.5})
    b = a - 0.1
    mean, lo, hi = paired_bootstrap(a, b, n_boot=200)
    assert mean == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)


def test_to_markdown_shape() -> None:
    df = pd.DataFrame({"x": [1.0, 2.5]}, index=pd.Index(["a", "b"], name="row"))
    assert to_markdown(df).splitlines() == ["| row | x |", "|---|---|", "| a | 1.000 |", "| b | 2.500 |"]


def test_table_matches_saved_reports(synthetic_root: Path, tmp_path: Path) -> None:
    ds = DavisDataset(synthetic_root, resolution="480p")
    runs = tmp_path / "runs"
    kw = {"max_rounds": 3, "max_samples": 3, "progress": False, "setting": "oracle"}
    res = {}
    for name, strat in {"worst": WorstStrategy(), "linspace": LinspaceStrategy(3)}.items():
        res[name] = evaluate(ds, SimulatedBackend(seed=0), strat, out_dir=runs / name, **kw)
    for seed in (0, 1):
        rnd = RandomStrategy(seed=seed)
        evaluate(ds, SimulatedBackend(seed=0), rnd, out_dir=runs / f"random{seed}", **kw)
    torch.manual_seed(0)
    agent = AgentStrategy(QNetwork(hidden=8, decoder_hidden=8))
    evaluate(ds, SimulatedBackend(seed=0), agent, out_dir=runs / "agent", **kw)
    found = collect_runs(runs)
    assert len(found) == 5
    table = table1(found, n_boot=100)
    col = table.columns[0]
    assert table.loc["oracle / worst", col].startswith(f"{res['worst'].auc_rounds * 100:.2f}")
    # Random and Linspace never look at quality: one "any" row each, compared with the agent too
    assert table.loc["any / random", col].endswith("(2)")  # two seeds: mean ± std (2)
    assert "any / linspace" in table.index and "oracle / linspace" not in table.index
    compared = {f"oracle / agent - {other}" for other in ("worst", "random", "linspace")}
    assert compared <= set(table.index)
    # one AUC per (sequence, scribble) sample, each a valid area under a [0, 1] curve
    per = per_sample_auc(res["worst"].samples)
    assert len(per) == 3 and np.all((per >= 0) & (per <= 1))

    cfg = OmegaConf.create({"runs_dir": str(runs), "n_boot": 50, "output_dir": str(tmp_path / "rep"),
                            "overlay_sequences": None})
    out = run_report(cfg)
    assert (tmp_path / "rep" / "table1.md").is_file()
    assert all(Path(p).is_file() for p in out["plots"])  # type: ignore[union-attr]


def test_overlay_gif_marks_frames(tmp_path: Path) -> None:
    frames = np.zeros((3, 20, 30, 3), np.uint8)
    masks = np.zeros((3, 20, 30), np.uint8)
    masks[:, 5:10, 5:10] = 1
    path = overlay_gif(frames, masks, [1], tmp_path / "o.gif")
    with Image.open(path) as im:
        assert im.n_frames == 3
        im.seek(1)
        rgb = np.array(im.convert("RGB"))
    assert tuple(rgb[0, 15]) == (255, 0, 0)  # red border on the annotated frame
