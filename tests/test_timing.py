"""Round time model: declared seconds drive the session clock; recommender latency and Mask AP in runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ivos_rl.backends import SimulatedBackend
from ivos_rl.data import DavisDataset
from ivos_rl.errors import ConfigError
from ivos_rl.evaluation import evaluate, load_sample_results, merge_results
from ivos_rl.strategies import WorstStrategy
from ivos_rl.timing import ManualClock, RoundTimeModel, RoundTimer


def test_model_seconds_are_affine_in_frames() -> None:
    model = RoundTimeModel(
        backend_s=1.0, backend_s_per_frame=0.5, recommender_s=0.25, recommender_s_per_frame=0.0
    )
    assert model.seconds("backend", 10) == 6.0
    assert model.seconds("recommender", 10) == 0.25
    with pytest.raises(ConfigError, match="part"):
        model.seconds("robot", 10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_frames"):
        model.seconds("backend", 0)
    with pytest.raises(ConfigError, match="backend_s"):
        RoundTimeModel(backend_s=-1.0)
    with pytest.raises(ConfigError, match="recommender_s_per_frame"):
        RoundTimeModel(recommender_s_per_frame=float("nan"))


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock()
    assert clock() == 0.0
    clock.advance(2.5)
    assert clock() == clock() == 2.5
    with pytest.raises(ConfigError, match="seconds"):
        clock.advance(-1)


def test_timer_declares_time_and_still_measures() -> None:
    ticks = iter([10.0, 10.75, 20.0, 20.5])  # fake wall clock: backend 0.75 s, recommender 0.5 s
    timer = RoundTimer(RoundTimeModel(backend_s=3.0, recommender_s_per_frame=0.1), wall=lambda: next(ticks))
    assert timer.deterministic and timer.clock() == 0.0
    with timer.part("backend", 4):
        pass
    with timer.part("recommender", 4):
        pass
    assert timer.clock() == pytest.approx(3.4)  # 3.0 + 4 x 0.1 declared, not the 1.25 s measured
    assert timer.take() == {"backend": [0.75], "recommender": [0.5]}
    assert timer.take() == {"backend": [], "recommender": []}
    wall = RoundTimer()
    assert not wall.deterministic and wall.clock is wall.wall


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
    kwargs = dict(setting="wild", quality=_ConstantQuality(), max_rounds=3, max_samples=2, progress=False)
    res = evaluate(
        dataset, SimulatedBackend(seed=0), WorstStrategy(), time_model=model, out_dir=tmp_path, **kwargs
    )
    timing = res.report.groupby("interaction")["timing"].unique()
    # rounds 1-2: backend 2 s + recommender 1 s; round 3 (last) recommends nothing: 2 s
    assert [list(v) for v in timing] == [[3.0], [3.0], [2.0]]
    assert res.summary["curve_time"]["time"][:4] == [0.0, 3.0, 6.0, 8.0]
    assert res.summary["time_mode"] == "model"
    # measured latencies are reported apart: 3 backend rounds and 2 recommending rounds per sample
    for s in res.samples:
        assert len(s.backend_seconds) == 3 and len(s.recommender_seconds) == 2
    assert res.summary["recommender_seconds_per_round"] > 0.0
    again = evaluate(dataset, SimulatedBackend(seed=0), WorstStrategy(), time_model=model, **kwargs)
    assert again.summary["auc_time"] == res.summary["auc_time"]  # reproducible, unlike wall time
    # Mask AP per round, also after reloading the per-sample files
    ap = res.summary["mask_ap"]
    assert ap is not None and len(ap["AP"]) == 3 and all(0.0 <= v <= 1.0 for v in ap["AP"])
    assert load_sample_results(tmp_path)[0].quality_scores == res.samples[0].quality_scores
    assert merge_results([tmp_path]).summary["mask_ap"] == ap
    # shards merge with the run's max_time: the time curve closes at mean objects x max_time
    objects = {s.sequence: s.n_objects for s in res.samples}
    merged = merge_results([tmp_path], max_time=50.0)
    assert merged.summary["global_timeout"] == pytest.approx(50.0 * np.mean(list(objects.values())))


def test_max_time_ends_samples_at_the_declared_budget(dataset: DavisDataset) -> None:
    # budget max_time x objects; 4 s per round: the 3rd submission (12 s) is past a budget < 12 s
    n_obj = dataset.info(dataset.samples()[0][0]).n_objects
    res = evaluate(
        dataset, SimulatedBackend(seed=0), WorstStrategy(), setting="wild", quality=_ConstantQuality(),
        max_rounds=5, max_samples=1, progress=False, max_time=10.0 / n_obj,
        time_model=RoundTimeModel(backend_s=3.0, recommender_s=1.0),
    )  # fmt: skip
    assert sorted(res.report["interaction"].unique()) == [1, 2]
    assert res.summary["global_timeout"] == pytest.approx(10.0)
    ap = res.summary["mask_ap"]["AP"]
    assert len(ap) == 3 and ap[2] == -1.0 and ap[0] >= 0.0  # the unscored round: undefined
