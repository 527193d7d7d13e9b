"""The typed training configuration, built once from the Hydra config of ``train_agent``.

The training code reads settings only from :class:`TrainConfig` (no ``cfg.get(key, default)``
scattered through the loop): defaults live in ``configs/train_agent.yaml`` and
``configs/agent/ddqn.yaml``, and :meth:`TrainConfig.from_hydra` refuses a missing or ill-typed
key with a :class:`~ivos_rl.errors.ConfigError` that names it. Components that are built by Hydra
(network, learner, buffer, epsilon schedule, envs, logger, demonstration strategy) stay config
nodes and are instantiated by the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ivos_rl.errors import ConfigError
from ivos_rl.provenance import hydra_job_record

__all__ = ["DemoConfig", "HydraJob", "TrainConfig", "hydra_job"]


def _select(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]`` (dotted), refusing a key the config does not define."""
    missing = object()
    value = OmegaConf.select(cfg, key, default=missing)
    if value is missing:
        raise ConfigError(f"the training config has no {key!r} (see configs/train_agent.yaml)")
    return value


def _int(cfg: DictConfig, key: str, minimum: int = 0) -> int:
    value = _select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _bool(cfg: DictConfig, key: str) -> bool:
    value = _select(cfg, key)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class HydraJob:
    """Which job of a Hydra run this is: multirun jobs get their own output folders."""

    num: int
    multirun: bool
    overrides: tuple[str, ...]
    output_dir: Path


def hydra_job() -> HydraJob | None:
    """The current Hydra job (:func:`ivos_rl.provenance.hydra_job_record`), None outside ``@hydra.main``."""
    record = hydra_job_record()
    if record is None:
        return None
    return HydraJob(
        num=int(record["num"] or 0),
        multirun=record["mode"] == "MULTIRUN",
        overrides=tuple(record["overrides"]),
        output_dir=Path(record["output_dir"]),
    )


@dataclass(frozen=True)
class DemoConfig:
    """Demonstrations for the large-margin loss: ``episodes`` played by ``strategy`` before warm-up.

    ``strategy`` is a Hydra node of an :class:`ivos_rl.strategies.Strategy`; its (state, action)
    pairs fill the demonstration buffer and its transitions the replay buffer. ``episodes = 0``
    (default) disables demonstrations.
    """

    episodes: int = 0
    strategy: Any = None
    capacity: int = 5760
    batch_size: int = 32

    @classmethod
    def from_hydra(cls, cfg: DictConfig) -> DemoConfig:
        episodes = _int(cfg, "agent.demonstrations.episodes")
        strategy = _select(cfg, "agent.demonstrations.strategy")
        if episodes > 0 and strategy is None:
            raise ConfigError("agent.demonstrations.episodes > 0 needs agent.demonstrations.strategy")
        return cls(
            episodes=episodes,
            strategy=strategy,
            capacity=_int(cfg, "agent.demonstrations.capacity", 1),
            batch_size=_int(cfg, "agent.demonstrations.batch_size", 1),
        )


@dataclass(frozen=True)
class TrainConfig:
    """Every scalar setting of a training run (see ``configs/train_agent.yaml`` for meanings)."""

    seed: int
    output_dir: Path
    total_steps: int
    warmup_episodes: int
    checkpoint_every: int
    eval_every: int
    val_sequences: int | tuple[str, ...]
    scribbles: tuple[int, ...] | None
    max_val_samples: int | None
    resume: str | None
    overwrite: bool
    progress: bool
    batch_size: int
    updates_per_step: int
    update_every: int  # env steps between learning rounds (SB3's train_freq; 1 = the paper)
    decomposition: bool
    deduplicate: bool
    n_step: int
    use_goal: bool  # env.reward.use_goal: the goal reward needs the random baseline
    demos: DemoConfig = field(default_factory=DemoConfig)
    job: HydraJob | None = None
    fold: int | None = None  # held-out cross-validation: this fold of the shared video folds is the test set
    n_folds: int = 5
    fold_seed: int = 0

    @classmethod
    def from_hydra(cls, cfg: DictConfig, job: HydraJob | None = None) -> TrainConfig:
        """Read and check the settings; ``job`` (default: the current Hydra job) places multirun outputs.

        A multirun whose ``train.output_dir`` is not Hydra's per-job folder gets
        ``<train.output_dir>/job<N>``, so jobs never share (and overwrite) one folder.
        """
        job = hydra_job() if job is None else job
        out = Path(str(_select(cfg, "train.output_dir")))
        if job is not None and job.multirun and out.resolve() != job.output_dir.resolve():
            out = out / f"job{job.num}"
        val = _select(cfg, "train.val_sequences")
        if not isinstance(val, int) or isinstance(val, bool):
            val = tuple(str(s) for s in OmegaConf.to_container(val) or [])  # type: ignore[union-attr]
        scribbles = _select(cfg, "train.scribbles")
        max_val = _select(cfg, "train.max_val_samples")
        resume = _select(cfg, "train.resume")
        fold = _select(cfg, "train.fold")
        return cls(
            seed=_int(cfg, "seed"),
            output_dir=out,
            total_steps=_int(cfg, "train.total_steps", 1),
            warmup_episodes=_int(cfg, "train.warmup_episodes"),
            checkpoint_every=_int(cfg, "train.checkpoint_every", 1),
            eval_every=_int(cfg, "train.eval_every"),
            val_sequences=val,
            scribbles=None if scribbles is None else tuple(int(i) for i in scribbles),
            max_val_samples=None if max_val is None else _int(cfg, "train.max_val_samples", 1),
            resume=None if resume is None else str(resume),
            overwrite=_bool(cfg, "train.overwrite"),
            progress=_bool(cfg, "train.progress"),
            batch_size=_int(cfg, "agent.batch_size", 1),
            updates_per_step=_int(cfg, "agent.updates_per_step", 1),
            update_every=_int(cfg, "agent.update_every", 1),
            decomposition=_bool(cfg, "agent.decomposition.enabled"),
            deduplicate=_bool(cfg, "agent.decomposition.deduplicate"),
            n_step=_int(cfg, "agent.n_step", 1),
            use_goal=_bool(cfg, "env.reward.use_goal"),
            demos=DemoConfig.from_hydra(cfg),
            job=job,
            fold=None if fold is None else _int(cfg, "train.fold"),
            n_folds=_int(cfg, "train.n_folds", 2),
            fold_seed=_int(cfg, "train.fold_seed"),
        ).checked(cfg)

    def checked(self, cfg: DictConfig) -> TrainConfig:
        """Refuse combinations that would fail later, after compute (e.g. no robot for a robot env)."""
        if self.resume is not None and self.overwrite:
            raise ConfigError("train.resume and train.overwrite=true contradict each other; choose one")
        if not self.use_goal and _select(cfg, "env.reward.use_aux") is False:
            raise ConfigError(
                "env.reward.use_goal and env.reward.use_aux are both false: every reward would be 0 and the "
                "agent would learn nothing (Table 5 has goal only, aux only and both)"
            )
        if self.fold is not None:
            if self.fold >= self.n_folds:
                raise ConfigError(f"train.fold must be in [0, train.n_folds={self.n_folds}), got {self.fold}")
            if self.eval_every > 0:
                # validation would run on the test fold: its curves are test results seen while training
                raise ConfigError(
                    f"train.fold={self.fold} holds that fold out as the test videos; set train.eval_every=0 "
                    "(validating on them would show test results during training)"
                )
        if _select(cfg, "robot") is None:
            envs = ["env"] + (["eval_env"] if self.eval_every > 0 else [])
            needs = [e for e in envs if OmegaConf.select(cfg, f"{e}.interaction") == "robot"]
            if needs:
                raise ConfigError(
                    f"robot is null but {', '.join(f'{e}.interaction=robot' for e in needs)}: a null robot "
                    "needs env.interaction=fast (simulated backend only), which validation follows"
                )
        return self

    @property
    def learning_starts(self) -> int:
        """Episodes before the learner's first update: demonstrations, then random warm-up."""
        return self.demos.episodes + self.warmup_episodes
