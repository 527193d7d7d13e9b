"""Gap closed = (AUC - Random) / (Lookahead - Random) with paired bootstrap intervals over videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import InputValidationError
from ivos_rl.evaluation import evaluate
from ivos_rl.reporting import collect_runs, gap_closed, gap_closed_tables, run_report
from ivos_rl.strategies import FarthestStrategy, OracleLookaheadStrategy, RandomStrategy


def _series(values: dict[str, float]) -> pd.Series:
    return pd.Series(values, dtype=np.float64)


def test_gap_closed_by_hand() -> None:
    # videos a, b, c; video a has two samples (averaged first: 0.45)
    rnd = _series({"a/1": 0.4, "a/2": 0.5, "b/1": 0.5, "c/1": 0.6})
    look = _series({"a/1": 0.65, "a/2": 0.65, "b/1": 0.7, "c/1": 0.9})
    # half-way on every video: a 0.55, b 0.6, c 0.75
    half = _series({"a/1": 0.55, "a/2": 0.55, "b/1": 0.6, "c/1": 0.75})
    t = gap_closed({"random": rnd, "lookahead": look, "half": half}, "random", "lookahead", n_boot=300)
    assert list(t.index) == ["random", "half", "lookahead"]  # sorted by AUC
    assert t.loc["random", "gap closed"] == pytest.approx(0.0)
    assert t.loc["lookahead", "gap closed"] == pytest.approx(1.0)
    # room per video .20, .20, .30 -> mean .2333; half closes .10, .10, .15 -> .1167 / .2333 = .5,
    # and every bootstrap draw also gives exactly .5
    assert t.loc["half", "gap closed"] == pytest.approx(0.5)
    assert t.loc["half", ["gap 95% lo", "gap 95% hi"]].tolist() == pytest.approx([0.5, 0.5])
    # half minus lookahead per video: -.10, -.10, -.15
    assert t.loc["half", "minus ceiling x100"] == pytest.approx(-100 * 0.35 / 3)
    assert (t["videos"] == 3).all()


def test_gap_closed_interval_is_paired_and_covers_the_point() -> None:
    rng = np.random.default_rng(0)
    keys = [f"v{i}/1" for i in range(12)]
    base = rng.uniform(0.4, 0.6, 12)
    rnd, look = _series(dict(zip(keys, base, strict=True))), _series(dict(zip(keys, base + 0.2, strict=True)))
    mid = _series(dict(zip(keys, base + rng.uniform(0.0, 0.2, 12), strict=True)))
    t = gap_closed({"r": rnd, "l": look, "m": mid}, "r", "l", n_boot=500)
    lo, hi, point = t.loc["m", ["gap 95% lo", "gap 95% hi", "gap closed"]]
    assert 0.0 < lo <= point <= hi < 1.0


def test_gap_closed_refuses_missing_reference() -> None:
    with pytest.raises(InputValidationError, match="lookahead"):
        gap_closed({"random": _series({"a/1": 0.5})}, "random", "lookahead")
    with pytest.raises(InputValidationError, match="no video"):
        gap_closed({"r": _series({"a/1": 0.5}), "l": _series({"b/1": 0.6})}, "r", "l")


def test_report_shows_gap_closed(synthetic_root: Path, tmp_path: Path) -> None:
    ds = DavisDataset(synthetic_root, resolution="480p")
    runs = tmp_path / "runs"
    kw = {"max_rounds": 3, "max_samples": 2, "progress": False, "setting": "oracle"}
    strategies = {"random0": RandomStrategy(seed=0), "random1": RandomStrategy(seed=1),
                  "farthest": FarthestStrategy(), "lookahead": OracleLookaheadStrategy(n_grid=4, n_worst=1)}
    for name, strat in strategies.items():
        evaluate(ds, SimulatedBackend(seed=0), strat, out_dir=runs / name, **kw)
    tables = gap_closed_tables(collect_runs(runs), n_boot=100)
    (col, t), = tables.items()
    assert t.loc["oracle / oracle_lookahead", "gap closed"] == pytest.approx(1.0)
    assert t.loc["any / random", "gap closed"] == pytest.approx(0.0)
    assert set(t.index) == {"any / random", "any / farthest", "oracle / oracle_lookahead"}
    cfg = OmegaConf.create({"runs_dir": str(runs), "n_boot": 50, "output_dir": str(tmp_path / "rep"),
                            "overlay_sequences": None})
    out = run_report(cfg)
    assert "any / farthest" in (tmp_path / "rep" / "gap_closed.md").read_text()
    assert col in out["gap_closed"]  # type: ignore[operator]
