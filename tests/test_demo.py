"""The default job (configs/demo.yaml) on the embedded real sample with the shipped checkpoints."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from ivos_rl.compare import compare_strategies
from ivos_rl.provenance import file_sha256, files_sha256, read_manifest

ROOT = Path(__file__).resolve().parents[1]


def _demo_config(tmp_path: Path, *overrides: str):  # type: ignore[no-untyped-def]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="demo", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(ROOT)
        cfg.output_dir = str(tmp_path)
    return cfg


def test_demo_compares_every_strategy_and_writes_its_table(tmp_path: Path) -> None:
    # the simulated backend keeps this fast; everything else is the default job's configuration
    cfg = _demo_config(tmp_path, "backend=simulated", "max_rounds=3", "progress=false")
    results = compare_strategies(cfg)
    assert set(results) == {
        "random", "linspace", "farthest", "farthest_wild", "span_error_wild", "worst_wild", "agent_wild",
        "worst_oracle",
    }
    table = pd.read_csv(tmp_path / "table.csv", index_col=0)
    assert len(table) == 8
    for label, res in results.items():
        assert len(res["curve"]) == 4 and res["curve"][0] == 0.0  # J&F 0 before any interaction
        assert table.loc[label].iloc[-1] == pytest.approx(res["auc_rounds"], abs=5e-4)  # rows are the labels
    assert (tmp_path / "curves.png").stat().st_size > 0
    # three videos, one initial scribble each, one saved result per sample and strategy
    assert len(list((tmp_path / "agent_wild" / "samples").glob("*.json"))) == 3
    # each run's manifest fingerprints the checkpoints its numbers depend on, by content
    fields = {k: read_manifest(tmp_path / k)["fields"] for k in results}
    # every Wild run uses the default estimator (feature model v2.4), the one the agent's rows used
    shared = cfg.estimator.path
    assert shared.endswith("features-davis2016-propagation_accurate-v2.4.features.pt")
    for label in ("farthest_wild", "span_error_wild", "worst_wild", "agent_wild"):
        assert fields[label]["quality_checkpoint"] == file_sha256(shared)
    # the shipped agent: the 3-seed ensemble
    members = list(cfg.runs.agent_wild.strategy.path)
    assert [Path(m).name for m in members] == [f"dagger2_seed{s}.pt" for s in range(3)]
    assert fields["agent_wild"]["agent_checkpoint"] == files_sha256(members)
    for label in ("worst_oracle", "farthest"):
        assert not {"quality_checkpoint", "agent_checkpoint"} & set(fields[label])


def test_a_run_may_bring_its_own_estimator(tmp_path: Path) -> None:
    # no shared estimator: Worst in the Wild is skipped, span-error runs on the estimator its run names
    own = ROOT / "checkpoints" / "quality" / "features-davis2016-propagation_accurate-v2.4.features.pt"
    cfg = _demo_config(
        tmp_path, "backend=simulated", "max_rounds=2", "progress=false", "estimator=null",
        "runs.random=null", "runs.linspace=null", "runs.farthest=null", "runs.agent_wild=null",
        "+runs.span_error_wild.estimator._target_=ivos_rl.quality.feature_estimator.FeatureQualityEstimator"
        ".from_checkpoint", f"+runs.span_error_wild.estimator.path={own}",
    )
    results = compare_strategies(cfg)
    assert set(results) == {"span_error_wild", "worst_oracle"}
    assert read_manifest(tmp_path / "span_error_wild")["fields"]["quality_checkpoint"] == file_sha256(own)


@pytest.mark.slow
def test_default_demo_with_the_propagation_backend(tmp_path: Path) -> None:
    results = compare_strategies(_demo_config(tmp_path, "progress=false"))
    assert all(0.0 < r["auc_rounds"] < 1.0 for r in results.values())
