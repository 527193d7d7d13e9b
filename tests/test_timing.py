"""Round time model: declared seconds give exact timings; latency, max_time and Mask AP in runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError
from ivos_rl.evaluation import evaluate, load_sample_results, merge_runs
from ivos_rl.strategies import WorstStrategy
from ivos_rl.timing import RoundTimeModel


def test_model_seconds_are_affine_in_frames() -> None:
    model = RoundTimeModel(backend_s=1.0, backend_s_per_frame=0.5, recommender_s=0.25)
    assert model.seconds("backend", 10) == 6.0
    assert model.seconds("recommender", 10) == 0.25
    assert model.round_seconds(True, True, 10) == 6.25
    assert model.round_seconds(False, True, 10) == 0.25  # the robot drew nothing: no backend run
    assert model.round_seconds(True, False, 10) == 6.0  # the last round recommends nothing
    with pytest.raises(ConfigError, match="part"):
        model.seconds("robot", 10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_frames"):
        model.seconds("backend", 0)
    with pytest.raises(ConfigError, match="backend_s"):
        RoundTimeModel(backend_s=-1.0)
    with pytest.raises(ConfigError, match="recommender_s_per_frame"):
        RoundTimeModel(recommender_s_per_frame=float("nan"))


class _ConstantQuality:
    """A stand-in quality net: every (frame, object) scored 0.5, the frame score 1 - t / 100."""

    def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, k = probs.shape[:2]
        return 1.0 - np.arange(t) / 100.0, np.full((t, k), 0.5)


@pytest.fixture(scope="module")
def dataset(synthetic_root: Path) -> DavisDataset:
    return DavisDataset(synthetic_root, resolution="480p")


def test_declared_time_makes_the_time_curve_exact(dataset: DavisDataset, tmp_path: Path) -> None:
    model = RoundTimeModel(backend_s=2.0, recommender_s=1.0)
    kwargs = dict(setting="wild", max_rounds=3, max_samples=2, progress=False)
    quality = _ConstantQuality()
    backend, strategy = SimulatedBackend(seed=0), WorstStrategy()
    res = evaluate(dataset, backend, strategy, quality=quality, time_model=model, out_dir=tmp_path, **kwargs)
    timing = res.report.groupby("interaction")["timing"].unique()
    # rounds 1-2: backend 2 s + recommender 1 s; round 3 (last) recommends nothing: 2 s
    assert [list(v) for v in timing] == [[3.0], [3.0], [2.0]]
    assert res.summary["curve_time"]["time"][:4] == [0.0, 3.0, 6.0, 8.0]
    assert res.summary["time_mode"] == "model" and res.summary["time_model"]["backend_s"] == 2.0
    # measured latencies are reported apart, per round
    assert res.summary["recommender_seconds_per_round"] > 0.0 and res.summary["backend_seconds_per_round"] > 0
    again = evaluate(
        dataset, SimulatedBackend(seed=0), WorstStrategy(), quality=quality, time_model=model, **kwargs
    )
    assert again.summary["auc_time"] == res.summary["auc_time"]  # reproducible, unlike wall time
    # Mask AP per round, also after reloading the per-sample files and merging
    ap = res.summary["mask_ap"]
    assert ap is not None and len(ap["AP"]) == 3 and all(0.0 <= v <= 1.0 for v in ap["AP"])
    assert load_sample_results(tmp_path)[0].quality_scores == res.samples[0].quality_scores
    assert merge_runs([tmp_path], tmp_path / "merged").summary["mask_ap"] == ap


def test_max_time_ends_samples_at_the_declared_budget(dataset: DavisDataset, tmp_path: Path) -> None:
    # budget max_time x objects = 10 s; 4 s per round: round 3 ends at 12 s, past it: not scored
    n_obj = dataset.info(dataset.samples()[0][0]).n_objects
    res = evaluate(
        dataset, SimulatedBackend(seed=0), WorstStrategy(), setting="wild", quality=_ConstantQuality(),
        max_rounds=5, max_samples=1, progress=False, max_time=10.0 / n_obj, out_dir=tmp_path,
        time_model=RoundTimeModel(backend_s=3.0, recommender_s=1.0),
    )  # fmt: skip
    assert sorted(res.report["interaction"].unique()) == [1, 2]
    assert res.summary["global_timeout"] == pytest.approx(10.0)
    assert res.summary["mask_ap"]["AP"][0] >= 0.0 and len(res.summary["mask_ap"]["AP"]) == 2
    # a merged folder closes the time curve with the run's own max_time
    assert merge_runs([tmp_path], tmp_path / "merged").summary["global_timeout"] == pytest.approx(10.0)
