"""Training of the frame-recommendation agent (IVOS-W §3.3, §4.2), Stable-Baselines3 / CleanRL style.

:func:`train` reads a Hydra config (``configs/train_agent.yaml``) into a typed
:class:`~ivos_rl.agents.config.TrainConfig` and assembles four objects:

* :class:`TrainState`: learner, replay buffer, actor, demonstrations, counters and history, with
  ``state_dict`` / ``load_state_dict`` (everything a resumed run needs);
* :class:`~ivos_rl.agents.validation.Validator`: held-out round-AUC of the greedy agent, with
  Random and Worst on the same samples;
* :class:`Checkpointer`: training checkpoints and the final policy file, with their metadata;
* :class:`Trainer`: :meth:`Trainer.collect_episode` plays one episode (demonstrations, then the
  random warm-up of §3.3, then epsilon-greedy) and, once the warm-up is over, calls
  :meth:`Trainer.learn` after every ``update_every``-th env step (1, the paper: after each), which
  makes ``updates_per_step`` double-DQN updates.

Before any compute the output folder is checked (writable; not holding another run unless
resuming with the same manifest fingerprint or told to overwrite, see :mod:`.run_dir`) and the
run manifest is written. Determinism and resuming: episode e resets the env with a seed derived
from (seed, e); the actor, the buffers and the learner own their random state, all of which (plus
the global RNGs) go into the checkpoint with the counters, so a run killed at any point and
resumed from its last checkpoint ends with the same weights (on CPU). TensorBoard events written
after the checkpoint by the killed run are purged on resume.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ivos_rl.agents.actor import EpsilonGreedyActor
from ivos_rl.agents.buffer import DemonstrationBuffer, PrioritizedReplayBuffer, ReplayBuffer
from ivos_rl.agents.checkpoint import (
    load_training_checkpoint,
    save_policy,
    save_training_checkpoint,
    set_global_rng_state,
)
from ivos_rl.agents.config import HydraJob, TrainConfig
from ivos_rl.agents.ddqn import DDQNLearner
from ivos_rl.agents.decomposition import NStepCollector, StepRecord
from ivos_rl.agents.heldout import HELDOUT_DIR, score_held_out
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.agents.run_dir import (
    CHECKPOINT_NAME,
    POLICY_NAME,
    TENSORBOARD_DIR,
    check_resumable,
    prepare_output_dir,
)
from ivos_rl.agents.validation import Policy, Validator, strategy_policy
from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.data.splits import SPLIT_KEY, split_record
from ivos_rl.envs.factory import (
    Components,
    agent_split,
    build_components,
    load_or_build_baseline,
    make_env,
    samples_of,
)
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.provenance import file_sha256, write_manifest
from ivos_rl.utils.logging import get_logger
from ivos_rl.utils.seed import seed_everything

_log = get_logger(__name__)
_HISTORY_KEPT = 1000  # recent losses/returns kept in checkpoints (only the last 100 are reported)
# train.* keys that change neither the weights nor the reported numbers (or may grow on resume).
_UNFINGERPRINTED_TRAIN_KEYS = ("total_steps", "checkpoint_every", "eval_every", "output_dir", "resume",
                               "overwrite", "progress")


def _episode_seed(seed: int, episode: int) -> int:
    """Env reset seed of episode ``episode``: independent of everything but (seed, episode)."""
    return int(np.random.SeedSequence([int(seed), 1, int(episode)]).generate_state(1)[0])


def _component_seed(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 2, int(stream)]))


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


class TrainState:
    """What changes while training: learner, buffers, actor, counters, history, last validation."""

    def __init__(
        self,
        learner: DDQNLearner,
        buffer: ReplayBuffer,
        actor: EpsilonGreedyActor,
        demos: DemonstrationBuffer | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.learner, self.buffer, self.actor, self.demos = learner, buffer, actor, demos
        self.validator = validator
        self.counters = {"episode": 0, "global_step": 0, "agent_step": 0}
        self.history: dict[str, list[float]] = {"loss": [], "episode_return": [], "jf_final": []}
        self.last_eval: dict[str, float] = {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict(),
            "actor": self.actor.state_dict(),
            "demos": None if self.demos is None else self.demos.state_dict(),
            "counters": dict(self.counters),
            "history": {k: v[-_HISTORY_KEPT:] for k, v in self.history.items()},
            "references": None if self.validator is None else self.validator.references,
            "last_eval": dict(self.last_eval),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.buffer.load_state_dict(state["buffer"])
        self.actor.load_state_dict(state["actor"])
        if (state["demos"] is None) != (self.demos is None):
            raise CheckpointError("checkpoint and configuration disagree on demonstrations (on/off)")
        if self.demos is not None:
            self.demos.load_state_dict(state["demos"])
        self.counters = {k: int(v) for k, v in state["counters"].items()}
        self.history = {k: list(v) for k, v in state["history"].items()}
        if self.validator is not None:
            self.validator.references = state["references"]
        self.last_eval = dict(state["last_eval"])


def resume_checkpoint(folder: Path, resume: str | None) -> Path | None:
    """The checkpoint ``train.resume`` points at (``auto``: the one in ``folder``), or None."""
    if resume is None:
        return None
    return folder / CHECKPOINT_NAME if resume == "auto" else Path(resume)


class Checkpointer:
    """Writes training checkpoints (with ``meta``, checked on resume) and the final policy file."""

    def __init__(self, folder: Path, meta: dict[str, Any], every: int) -> None:
        self.folder, self.meta, self.every = folder, meta, int(every)

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT_NAME

    def restore(self, state: TrainState, resume: str | None) -> bool:
        """Load the checkpoint named by ``resume`` into ``state``; False when ``auto`` finds none."""
        path = resume_checkpoint(self.folder, resume)
        if path is None:
            return False
        if not path.is_file():
            if resume == "auto":
                return False
            raise CheckpointError(f"train.resume={resume!r}: no checkpoint at {path}")
        payload = load_training_checkpoint(path, expected_meta=self.meta)
        state.load_state_dict(payload["state"])
        set_global_rng_state(payload["global_rng"])
        c = state.counters
        _log.info("resumed from %s at episode %d / step %d", path, c["episode"], c["global_step"])
        return True

    def maybe_save(self, state: TrainState, final: bool) -> None:
        if state.counters["episode"] % self.every == 0 or final:
            save_training_checkpoint(self.path, state.state_dict(), self.meta)

    def save_policy(self, qnet: QNetwork, extra: dict[str, Any]) -> Path:
        return save_policy(self.folder / POLICY_NAME, qnet, {**self.meta, **extra})


class Trainer:
    """The loop: :meth:`collect_episode` until ``total_steps``, validating and checkpointing on schedule."""

    def __init__(
        self,
        tc: TrainConfig,
        env: Any,
        state: TrainState,
        checkpointer: Checkpointer,
        writer: Any = None,
        demo_policy: tuple[Any, Policy] | None = None,
    ) -> None:
        self.tc, self.env, self.state, self.checkpointer, self.writer = tc, env, state, checkpointer, writer
        self.demo_policy = demo_policy
        self.horizon = int(env.horizon)
        self.collector = NStepCollector(
            self.horizon, tc.n_step, state.learner.gamma, enabled=tc.decomposition, deduplicate=tc.deduplicate
        )
        #: Wall seconds of this process in the env (reset + step) and in learning updates: what the
        #: effective training throughput is made of (not checkpointed: a resumed run counts anew).
        self.seconds = {"env": 0.0, "learn": 0.0}

    def _log_scalar(self, tag: str, value: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, self.state.counters["global_step"])

    def _act(self, phase: str, obs: np.ndarray, info: dict[str, Any]) -> tuple[int, float]:
        """(action, epsilon) of this episode's phase: demonstration, random warm-up or epsilon-greedy."""
        actor = self.state.actor
        if phase == "demo":
            assert self.demo_policy is not None and self.state.demos is not None
            action = self.demo_policy[1](obs, info)
            self.state.demos.add(obs, action)
            return action, 1.0
        if phase == "warmup":
            return actor.random_action(obs.shape[0]), 1.0
        action, eps = actor.act(obs, self.state.counters["agent_step"])
        self.state.counters["agent_step"] += 1
        return action, eps

    def _phase(self, episode: int) -> str:
        if episode < self.tc.demos.episodes:
            return "demo"
        return "warmup" if episode < self.tc.learning_starts else "learn"

    def collect_episode(self) -> None:
        """Play one episode, storing its transitions and learning after every step."""
        counters = self.state.counters
        episode = counters["episode"]
        phase = self._phase(episode)
        seed = _episode_seed(self.tc.seed, episode)
        if phase == "demo":
            assert self.demo_policy is not None
            self.demo_policy[0].reset(seed=seed)
        tic = time.perf_counter()
        obs, info = self.env.reset(seed=seed)
        self.seconds["env"] += time.perf_counter() - tic
        ep_return, eps = 0.0, 1.0
        for _ in range(self.horizon):
            action, eps = self._act(phase, obs, info)
            tic = time.perf_counter()
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            self.seconds["env"] += time.perf_counter() - tic
            step = StepRecord(obs, action, next_obs, int(info["t"]), info["reward_intermediate"],
                              info["reward_terminal"])
            for tr in self.collector.push(step):
                self.state.buffer.add(tr.obs, tr.action, tr.reward, tr.next_obs, tr.done, tr.n_steps)
            ep_return += reward
            counters["global_step"] += 1
            if phase == "learn" and counters["global_step"] % self.tc.update_every == 0:
                tic = time.perf_counter()
                self.learn()
                self.seconds["learn"] += time.perf_counter() - tic
            obs = next_obs
            if terminated or truncated:
                break
        counters["episode"] += 1
        self._end_episode(ep_return, info, eps)

    def learn(self) -> None:
        """``updates_per_step`` double-DQN updates (none until the buffer holds one batch)."""
        st = self.state
        if len(st.buffer) < self.tc.batch_size:
            return
        for _ in range(self.tc.updates_per_step):
            batch = st.buffer.sample(self.tc.batch_size)
            demos = None
            if st.demos is not None and len(st.demos) > 0 and st.learner.demo_weight > 0.0:
                demos = st.demos.sample(self.tc.demos.batch_size)
            upd = st.learner.update(batch, demos)
            if isinstance(st.buffer, PrioritizedReplayBuffer):
                st.buffer.update_priorities(batch.indices, upd["td_errors"])
            st.history["loss"].append(upd["loss"])
            self._log_scalar("train/loss", upd["loss"])
            if demos is not None:
                self._log_scalar("train/demo_loss", upd["demo_loss"])

    def _end_episode(self, ep_return: float, info: dict[str, Any], eps: float) -> None:
        st = self.state
        jf_final = float(info["performance"]["J_AND_F"])
        st.history["episode_return"].append(ep_return)
        st.history["jf_final"].append(jf_final)
        self._log_scalar("train/episode_return", ep_return)
        self._log_scalar("train/goal_reward", float(info["r_goal"]))
        self._log_scalar("train/jf_final", jf_final)
        self._log_scalar("train/epsilon", eps)
        done = st.counters["global_step"] >= self.tc.total_steps
        if st.validator is not None and (st.counters["episode"] % self.tc.eval_every == 0 or done):
            self.validate()
        self.checkpointer.maybe_save(st, final=done)

    def validate(self) -> dict[str, float]:
        """Held-out round-AUC of the greedy agent (network in eval mode meanwhile)."""
        st = self.state
        assert st.validator is not None
        st.learner.policy.eval()
        result = st.validator(st.actor.greedy)
        st.learner.policy.train()
        st.last_eval = result
        self._log_scalar("eval/auc_rounds", result["agent"])
        self._log_scalar("eval/auc_rounds_random", result["random"])
        self._log_scalar("eval/auc_rounds_worst", result["worst"])
        return result

    def run(self) -> dict[str, Any]:
        """Train until ``total_steps`` env steps; return counters, recent losses/returns, validation."""
        from tqdm.auto import tqdm

        counters = self.state.counters
        bar = tqdm(total=self.tc.total_steps, initial=counters["global_step"], desc="train agent",
                   unit="step", disable=not self.tc.progress)
        while counters["global_step"] < self.tc.total_steps:
            before = counters["global_step"]
            self.collect_episode()
            bar.update(counters["global_step"] - before)
            if self.state.last_eval:
                bar.set_postfix(auc=f"{self.state.last_eval['agent']:.3f}")
        bar.close()
        hist = self.state.history
        recent = hist["loss"][-100:]
        return {
            **counters,
            "loss": float(np.mean(recent)) if recent else math.nan,
            "mean_return_last": float(np.mean(hist["episode_return"][-20:])),
            "jf_final_last": float(np.mean(hist["jf_final"][-20:])),
            "eval": self.state.last_eval,
            # this process's env transition-cache use and time split (throughput benchmark)
            "cache_hits": int(getattr(self.env, "cache_hits", 0)),
            "cache_misses": int(getattr(self.env, "cache_misses", 0)),
            "rounds_restored": int(getattr(self.env, "rounds_restored", 0)),
            "seconds_env": self.seconds["env"],
            "seconds_learn": self.seconds["learn"],
        }


def _flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """Scalar hyper-parameters for TensorBoard's hparams tab."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not str(k).startswith("_"):
                    walk(v, f"{prefix}{k}.")
        elif isinstance(node, (bool, int, float, str)):
            out[prefix[:-1]] = node

    for group in ("agent", "env", "train"):
        walk(_plain(cfg[group]), f"{group}.")
    out["seed"] = int(cfg.seed)
    return out


def quality_fingerprint(cfg: DictConfig) -> Any:
    """The ``setting`` group as the manifest records it: ``"oracle"`` or the estimator's config.

    The same values the former top-level ``quality`` key produced, so manifests written before
    training moved to the ``setting`` group still match (resume keeps working).
    """
    setting = _plain(cfg.setting)
    if isinstance(setting, str):
        return setting
    return "oracle" if setting.get("name") == "oracle" else setting.get("estimator")


def run_fields(
    cfg: DictConfig, comps: Components, train_seqs: list[str], held_out: list[str]
) -> dict[str, Any]:
    """What determines this run's weights and validation numbers (the manifest's fingerprint).

    ``train.total_steps`` is left out on purpose: resuming a finished run to train longer is legal.
    """
    train_keys = {k: v for k, v in _plain(cfg.train).items() if k not in _UNFINGERPRINTED_TRAIN_KEYS}
    baseline = {k: v for k, v in (_plain(cfg.get("baseline")) or {}).items() if k != "progress"}
    quality = quality_fingerprint(cfg)
    quality_file = quality.get("path") if isinstance(quality, dict) else None
    return {
        "quality_sha256": file_sha256(quality_file) if quality_file else None,
        "dataset": _plain(cfg.dataset),
        "train_sequences": train_seqs,
        "held_out_sequences": held_out,
        "backend": backend_fingerprint(comps.backend),
        "robot": _plain(cfg.get("robot")),
        "quality": quality,
        "env": _plain(cfg.env),
        "eval_env": _plain(cfg.get("eval_env")),
        "agent": _plain(cfg.agent),
        "baseline": baseline,
        "train": train_keys,
        "seed": int(cfg.seed),
    }


def _start_run(cfg: DictConfig, tc: TrainConfig, comps: Components) -> tuple[list[str], list[str]]:
    """Split the videos, refuse an incompatible resume, write the manifest; (train, held-out) names."""
    n_val = list(tc.val_sequences) if isinstance(tc.val_sequences, tuple) else tc.val_sequences
    # the one split of every trainer; held-out videos a recorded quality net trained on are refused
    fold = None if tc.fold is None else (tc.fold, tc.n_folds, tc.fold_seed)
    train_seqs, val_seqs = agent_split(comps, n_val, tc.seed, fold)
    if fold is not None:
        _log.info("train.fold=%d of %d (fold seed %d): test videos %s (train.val_sequences unused)",
                  *fold, val_seqs)
    fields = run_fields(cfg, comps, train_seqs, val_seqs)
    ck = resume_checkpoint(tc.output_dir, tc.resume)
    if ck is not None:
        check_resumable(tc.output_dir, fields, ck)
        if ck.parent.resolve() != tc.output_dir.resolve():
            check_resumable(ck.parent, fields, ck)
    write_manifest(tc.output_dir, kind="train_agent", fields=fields, config=_plain(cfg))  # + the Hydra job
    return train_seqs, val_seqs


def _build_envs(
    cfg: DictConfig, tc: TrainConfig, comps: Components, train_seqs: list[str], val_seqs: list[str]
) -> tuple[Any, Validator | None]:
    """Training env (with its random baseline) and the validator's env on held-out samples."""
    scribbles = None if tc.scribbles is None else list(tc.scribbles)
    train_samples = samples_of(comps.dataset, train_seqs, scribbles)
    val_samples = samples_of(comps.dataset, val_seqs, scribbles)[: tc.max_val_samples]
    baseline = load_or_build_baseline(cfg, comps, train_samples) if tc.use_goal else None
    env = make_env(cfg.env, comps, train_samples, baseline)
    if env.subsequence_length is None:
        raise ConfigError("training needs fixed-length states: set env.subsequence_length (paper: 25)")
    validator = None
    if val_samples and tc.eval_every > 0:
        if cfg.get("eval_env") is None:
            raise ConfigError("train.eval_every > 0 needs an eval_env config (e.g. env@eval_env: eval)")
        validator = Validator(make_env(cfg.eval_env, comps, val_samples, None), val_samples, tc.seed)
    return env, validator


def _build_state(cfg: DictConfig, tc: TrainConfig, env: Any, validator: Validator | None) -> TrainState:
    """Network, learner, buffers and actor, each with its own seeded random stream."""
    torch.manual_seed(tc.seed)
    qnet = instantiate(cfg.agent.qnet)
    if not isinstance(qnet, QNetwork):
        raise ConfigError(f"agent.qnet must build a QNetwork, got {type(qnet).__name__}")
    learner = instantiate(cfg.agent.learner, _partial_=True)(qnet)
    if not isinstance(learner, DDQNLearner):
        raise ConfigError(f"agent.learner must build a DDQNLearner, got {type(learner).__name__}")
    obs_shape = tuple(env.observation_space.shape)
    make_buffer = instantiate(cfg.agent.buffer, _partial_=True)
    buffer = make_buffer(obs_shape=obs_shape, seed=_component_seed(tc.seed, 0))
    actor = EpsilonGreedyActor(qnet, instantiate(cfg.agent.epsilon), seed=_component_seed(tc.seed, 1))
    demos = None
    if tc.demos.episodes > 0:
        demos = DemonstrationBuffer(tc.demos.capacity, obs_shape, seed=_component_seed(tc.seed, 2))
    return TrainState(learner, buffer, actor, demos, validator)


def _split_record(tc: TrainConfig, train_seqs: list[str], held_out: list[str]) -> dict[str, Any]:
    """The run's :func:`split_record`; a cross-validation run also records its fold."""
    if tc.fold is not None:
        record = split_record(train_seqs, held_out, None)
        return {**record, "fold": tc.fold, "n_folds": tc.n_folds, "fold_seed": tc.fold_seed}
    return split_record(train_seqs, held_out, None if isinstance(tc.val_sequences, tuple) else tc.seed)


def _meta(
    tc: TrainConfig, env: Any, qnet: QNetwork, comps: Components, train_seqs: list[str], held_out: list[str]
) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (and what a policy file records): network,
    state, rewards, learning signals, the video split and the backend that produced the experience."""
    return {
        "train_sequences": list(train_seqs),
        "held_out_sequences": list(held_out),
        # the field every trainer writes (ivos_rl.data.splits); seed None = held-out videos named
        SPLIT_KEY: _split_record(tc, train_seqs, held_out),
        "backend_fingerprint": backend_fingerprint(comps.backend),
        "qnet": qnet.config(),
        "state_mode": env.state_mode.value,
        "state_features": list(env.state_features.groups),  # AgentStrategy rebuilds the same observation
        "obs_shape": list(env.observation_space.shape),
        "horizon": int(env.horizon),
        "reward": asdict(env.reward_config),
        "decomposition": [tc.decomposition, tc.deduplicate],
        "n_step": tc.n_step,
        "demo_episodes": tc.demos.episodes,
        "seed": tc.seed,
    }


def train(cfg: DictConfig | dict[str, Any], job: HydraJob | None = None) -> dict[str, Any]:
    """Train an agent as configured; return final counters, losses, validation AUCs and paths.

    ``job`` places a multirun job's outputs (default: read from Hydra when run by the script).
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    tc = TrainConfig.from_hydra(cfg, job)
    prepare_output_dir(tc.output_dir, resume=tc.resume, overwrite=tc.overwrite)
    seed_everything(tc.seed)
    comps = build_components(cfg)
    train_seqs, val_seqs = _start_run(cfg, tc, comps)
    env, validator = _build_envs(cfg, tc, comps, train_seqs, val_seqs)
    state = _build_state(cfg, tc, env, validator)
    meta = _meta(tc, env, state.learner.policy, comps, train_seqs, val_seqs)
    checkpointer = Checkpointer(tc.output_dir, meta, tc.checkpoint_every)
    checkpointer.restore(state, tc.resume)
    writer = None
    if cfg.get("logger") is not None:
        writer = instantiate(cfg.logger, log_dir=str(tc.output_dir / TENSORBOARD_DIR),
                             purge_step=state.counters["global_step"] or None)
    demo_policy = None
    if tc.demos.episodes > 0:
        strategy = instantiate(tc.demos.strategy)
        demo_policy = (strategy, strategy_policy(strategy, env.horizon))
    tic, cpu = time.perf_counter(), time.process_time()
    result = Trainer(tc, env, state, checkpointer, writer, demo_policy).run()
    cpu = time.process_time() - cpu  # this process's CPU: throughput on a shared machine
    policy_path = checkpointer.save_policy(state.learner.policy, {
        "subsequence_length": env.subsequence_length,
        "backend": getattr(comps.backend, "name", type(comps.backend).__name__),
        "quality": "oracle" if env.oracle else type(comps.quality.estimator).__name__,
        "episodes": state.counters["episode"],
        "global_step": state.counters["global_step"],
    })
    result.update(checkpoint=str(checkpointer.path), policy=str(policy_path), train_sequences=train_seqs,
                  val_sequences=val_seqs, output_dir=str(tc.output_dir), seconds=time.perf_counter() - tic,
                  cpu_seconds=cpu)
    if tc.fold is not None:
        result["heldout"] = score_held_out(cfg, comps, policy_path, val_seqs, tc.output_dir / HELDOUT_DIR)
        scored = result["heldout"]
        _log.info("held-out fold %d: round-AUC %.4f over %d samples", tc.fold, scored["auc_rounds"],
                  scored["samples"])
    if writer is not None:
        metrics = {"hparam/jf_final_last": result["jf_final_last"]}
        if state.last_eval:
            metrics["hparam/auc_rounds"] = state.last_eval["agent"]
        if tc.fold is not None:
            metrics["hparam/heldout_auc_rounds"] = result["heldout"]["auc_rounds"]
        writer.add_hparams(_flat_hparams(cfg), metrics, run_name=".")
        writer.close()
    env.close()
    if validator is not None:
        validator.close()
    return result
