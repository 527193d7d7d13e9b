"""The typed training config: read once from Hydra, typed errors naming the key, multirun folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from ivos_rl.agents.config import HydraJob, TrainConfig
from ivos_rl.agents.train import quality_fingerprint
from ivos_rl.envs.factory import build_components
from ivos_rl.errors import ConfigError
from ivos_rl.rounds import QualitySource

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        overrides = ("+debug=tiny", "paths.output_dir=out/x", *overrides)
        return compose("train_agent", overrides=list(overrides))


def test_debug_tiny_settings_are_read_once_and_typed() -> None:
    tc = TrainConfig.from_hydra(_cfg())
    assert tc.output_dir == Path("out/x") and tc.total_steps == 90 and tc.warmup_episodes == 4
    assert tc.val_sequences == ("synthetic-001",) and tc.scribbles is None and tc.max_val_samples == 1
    assert (tc.batch_size, tc.updates_per_step, tc.update_every, tc.n_step) == (8, 1, 1, 1)
    assert tc.decomposition and tc.deduplicate and tc.use_goal and not tc.overwrite
    assert tc.demos.episodes == 0 and tc.learning_starts == 4
    assert TrainConfig.from_hydra(_cfg("train.val_sequences=2", "train.scribbles=[1]")).val_sequences == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.total_steps=0", r"train\.total_steps must be an int >= 1, got 0"),
        ("agent.n_step=0", r"agent\.n_step must be an int >= 1"),
        ("agent.update_every=0", r"agent\.update_every must be an int >= 1, got 0"),
        ("train.overwrite=yes", r"train\.overwrite must be true or false, got 'yes'"),
        ("~train.overwrite", r"no 'train\.overwrite'"),
        ("agent.demonstrations.episodes=3", r"needs agent\.demonstrations\.strategy"),
        ("env.reward.use_goal=false env.reward.use_aux=false", r"both false: every reward would be 0"),
    ],
)
def test_bad_settings_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_hydra(_cfg(*override.split()))


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


def _compose(config: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config, overrides=["+debug=tiny", "paths.output_dir=out/x", *overrides])


def test_training_and_evaluation_read_quality_from_the_same_setting_group(synthetic_root: Path) -> None:
    train_cfg = _compose("train_agent", f"dataset.root='{synthetic_root}'")
    eval_cfg = _compose("evaluate", "setting=oracle")
    assert train_cfg.setting == eval_cfg.setting == {"name": "oracle", "estimator": None}
    comps = build_components(train_cfg)
    assert isinstance(comps.quality, QualitySource) and comps.quality.is_oracle
    # the manifest keeps the value the former `quality: oracle` key gave, so old runs still resume
    assert quality_fingerprint(train_cfg) == "oracle"


def test_wild_training_fingerprints_the_estimator_config() -> None:
    cfg = _compose("train_agent", "setting=wild", "setting.estimator.path=nets/qa.pt")
    assert cfg.setting.name == "wild"
    assert quality_fingerprint(cfg) == {
        "_target_": "ivos_rl.quality.feature_estimator.FeatureQualityEstimator.from_checkpoint",
        "path": "nets/qa.pt",
    }


def test_the_former_quality_key_is_refused_with_the_replacement_named() -> None:
    cfg = _compose("train_agent")
    with open_dict(cfg):
        cfg.quality = "oracle"  # an old config file's key (`quality` is also a group name on the CLI)
    with pytest.raises(ConfigError, match=r"setting=oracle, or setting=wild"):
        build_components(cfg)


def test_one_smoke_config_serves_evaluation_and_training() -> None:
    ev = _compose("evaluate")
    tr = _compose("train_agent")
    assert ev.dataset == tr.dataset and ev.backend == tr.backend
    assert ev.backend._target_.endswith("SimulatedBackend") and ev.dataset.n_sequences == 3
    assert (ev.max_rounds, ev.max_samples) == (2, 3) and tr.train.total_steps == 90


def test_a_cross_validation_fold_is_never_validated_on() -> None:
    tc = TrainConfig.from_hydra(_cfg("train.fold=2", "train.n_folds=3", "train.eval_every=0"))
    assert (tc.fold, tc.n_folds, tc.fold_seed) == (2, 3, 0)
    assert TrainConfig.from_hydra(_cfg("+cv=folds", "train.fold=0")).eval_every == 0  # the cv group sets it
    with pytest.raises(ConfigError, match=r"train\.fold=1 holds that fold out .* set train\.eval_every=0"):
        TrainConfig.from_hydra(_cfg("train.fold=1"))  # debug/tiny validates every 10 episodes
    with pytest.raises(ConfigError, match=r"train\.fold must be in \[0, train\.n_folds=3\), got 3"):
        TrainConfig.from_hydra(_cfg("train.fold=3", "train.n_folds=3", "train.eval_every=0"))
    with pytest.raises(ConfigError, match=r"train\.n_folds must be an int >= 2, got 1"):
        TrainConfig.from_hydra(_cfg("train.fold=0", "train.n_folds=1", "train.eval_every=0"))
