"""The typed training config: read once from Hydra, typed errors naming the key, multirun folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ivos_rl.agents.config import HydraJob, TrainConfig
from ivos_rl.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        overrides = ("+experiment=debug_tiny", "paths.output_dir=out/x", *overrides)
        return compose("train_agent", overrides=list(overrides))


def test_debug_tiny_settings_are_read_once_and_typed() -> None:
    tc = TrainConfig.from_hydra(_cfg())
    assert tc.output_dir == Path("out/x") and tc.total_steps == 90 and tc.warmup_episodes == 4
    assert tc.val_sequences == ("synthetic-001",) and tc.scribbles is None and tc.max_val_samples == 1
    assert (tc.batch_size, tc.updates_per_step, tc.n_step) == (8, 1, 1)
    assert tc.decomposition and tc.deduplicate and tc.use_goal and not tc.overwrite
    assert tc.demos.episodes == 0 and tc.learning_starts == 4
    assert TrainConfig.from_hydra(_cfg("train.val_sequences=2", "train.scribbles=[1]")).val_sequences == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.total_steps=0", r"train\.total_steps must be an int >= 1, got 0"),
        ("agent.n_step=0", r"agent\.n_step must be an int >= 1"),
        ("train.overwrite=yes", r"train\.overwrite must be true or false, got 'yes'"),
        ("~train.overwrite", r"no 'train\.overwrite'"),
        ("agent.demonstrations.episodes=3", r"needs agent\.demonstrations\.strategy"),
    ],
)
def test_bad_settings_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_hydra(_cfg(override))


def test_resume_and_overwrite_contradict() -> None:
    with pytest.raises(ConfigError, match="contradict"):
        TrainConfig.from_hydra(_cfg("train.resume=auto", "train.overwrite=true"))


def test_multirun_job_folders() -> None:
    job = HydraJob(num=3, multirun=True, overrides=("seed=3",), output_dir=Path("multirun/3"))
    assert TrainConfig.from_hydra(_cfg(), job).output_dir == Path("out/x/job3")  # fixed folder: per job
    own = HydraJob(num=3, multirun=True, overrides=(), output_dir=Path("out/x"))
    assert TrainConfig.from_hydra(_cfg(), own).output_dir == Path("out/x")  # Hydra's job folder already
    single = HydraJob(num=0, multirun=False, overrides=(), output_dir=Path("elsewhere"))
    assert TrainConfig.from_hydra(_cfg(), single).output_dir == Path("out/x")
