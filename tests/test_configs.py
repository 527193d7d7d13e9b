"""Every top-level config composes, every ablation sweep composes, cheap groups instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ivos_rl.strategies import Strategy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TOP_LEVEL = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def _compose(name: str, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=True)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_config_composes(name: str) -> None:
    cfg = _compose(name)
    assert cfg is not None


def test_every_experiment_is_known() -> None:
    assert {"table1_strategies", "table4_reward_function", "table6_state", "table7_decomposition"} <= set(
        EXPERIMENTS
    )


# Evaluation (not training) sweeps; each has its own composition test.
EVAL_EXPERIMENTS = {e for e in EXPERIMENTS if e.startswith("table1_")} | {"headroom"}


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if e not in EVAL_EXPERIMENTS])
def test_agent_ablation_composes(experiment: str) -> None:
    cfg = _compose("train_agent", [f"+experiment={experiment}"])
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    for key, values in params.items():
        known = OmegaConf.select(cfg, key) is not None or key in cfg.hydra.runtime.choices  # value or group
        assert known, f"{experiment} sweeps unknown key {key}"
        for value in str(values).split(","):
            _compose("train_agent", [f"+experiment={experiment}", f"{key}={value}"])


def test_state_feature_configs_match_the_network_width() -> None:
    from ivos_rl.state_features import StateFeatures

    for path in sorted((CONFIGS / "state_features").glob("*.yaml")):
        cfg = _compose("train_agent", ["+experiment=table6_features", f"state_features={path.stem}"])
        assert cfg.agent.qnet.in_features == 2 + StateFeatures.parse(list(cfg.env.state_features)).width
        assert list(cfg.eval_env.state_features) == list(cfg.env.state_features)


@pytest.mark.parametrize("experiment", ["table1_strategies", "table1_baselines"])
def test_table1_sweep_composes_for_every_cell(experiment: str) -> None:
    cfg = _compose("evaluate", [f"+experiment={experiment}"])
    params = cfg.hydra.sweeper.params
    for strategy in str(params.strategy).split(","):
        for setting in str(params.setting).split(","):
            c = _compose("evaluate", [f"strategy={strategy}", f"setting={setting}"])
            assert c.setting == setting


def test_headroom_sweep_composes_with_one_folder_per_strategy() -> None:
    cfg = _compose("evaluate", ["+experiment=headroom"])
    assert cfg.setting == "oracle" and cfg.backend._target_.endswith("CachedBackend")
    assert "sequences" in cfg.hydra.job.config.override_dirname.exclude_keys
    for strategy in str(cfg.hydra.sweeper.params.strategy).split(","):
        c = _compose("evaluate", ["+experiment=headroom", f"strategy={strategy}"])
        assert isinstance(instantiate(c.strategy), Strategy)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "strategy").glob("*.yaml")))
def test_strategy_configs_instantiate(name: str) -> None:
    cfg = _compose("evaluate", [f"strategy={name}", f"paths.root_dir={CONFIGS.parent}"])
    assert isinstance(instantiate(cfg.strategy), Strategy)  # agent: the shipped policy


@pytest.mark.parametrize("name", ["propagation", "simulated"])
def test_backend_configs_instantiate(name: str) -> None:
    from ivos_rl.backends import VOSBackend

    cfg = _compose("evaluate", [f"backend={name}"])
    assert isinstance(instantiate(cfg.backend), VOSBackend)
