"""The training loop of the frame-recommendation agent (IVOS-W §3.3, §4.2), in one function.

:func:`train` reads a Hydra config (see ``configs/train_agent.yaml``) and runs, CleanRL style:

1. build dataset/backend/robot/quality, split off held-out sequences, load or build the random
   baseline, make the training env (N'-frame subsequences) and the evaluation env (whole videos);
2. warm-up: ``warmup_episodes`` random-policy episodes fill the replay buffer (§3.3);
3. epsilon-greedy episodes; after every env step the step's task-decomposition transitions go to
   the buffer and the learner makes ``updates_per_step`` double-DQN updates;
4. every ``eval_every`` episodes: validation round-AUC of the greedy agent, with Random and Worst
   on the same held-out samples; every ``checkpoint_every`` episodes: a training checkpoint.

Determinism and resuming: episode e resets the env with a seed derived from (seed, e); the actor,
the buffer and the learner own their random state, all of which (plus the global RNGs) go into
the checkpoint with the counters. A run killed at any point and resumed from its last checkpoint
therefore replays the same episodes and updates and ends with the same weights (on CPU).
TensorBoard events written after the checkpoint by the killed run are purged on resume.
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
from ivos_rl.agents.checkpoint import (
    load_training_checkpoint,
    save_policy,
    save_training_checkpoint,
    set_global_rng_state,
)
from ivos_rl.agents.ddqn import DDQNLearner
from ivos_rl.agents.decomposition import StepRecord, transitions_for_step
from ivos_rl.agents.qnet import QNetwork
from ivos_rl.agents.validation import curve_auc, reference_curves, round_curves
from ivos_rl.envs.factory import (
    agent_split,
    build_components,
    load_or_build_baseline,
    make_env,
    samples_of,
    training_scribbles,
)
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.utils.logging import get_logger
from ivos_rl.utils.seed import seed_everything

_log = get_logger(__name__)
CHECKPOINT_NAME = "checkpoint.pt"
_HISTORY_KEPT = 1000  # recent losses/returns kept in checkpoints (only the last 100 are reported)
POLICY_NAME = "agent.pt"


def _episode_seed(seed: int, episode: int) -> int:
    """Env reset seed of episode ``episode``: independent of everything but (seed, episode)."""
    return int(np.random.SeedSequence([int(seed), 1, int(episode)]).generate_state(1)[0])


def _component_seed(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 2, int(stream)]))


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

    walk(OmegaConf.to_container(cfg.agent, resolve=True), "agent.")
    walk(OmegaConf.to_container(cfg.env, resolve=True), "env.")
    walk(OmegaConf.to_container(cfg.train, resolve=True), "train.")
    out["seed"] = int(cfg.seed)
    return out


def train(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """Train an agent as configured; return final counters, losses, validation AUCs and paths."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    tc = cfg.train
    ac = cfg.agent
    seed = int(cfg.seed)
    seed_everything(seed)
    out_dir = Path(str(tc.output_dir))
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- environment side ------------------------------------------------------------------
    comps = build_components(cfg)
    train_seqs, val_seqs = agent_split(comps, tc.val_sequences, seed)
    scribbles = training_scribbles(cfg)
    train_samples = samples_of(comps.dataset, train_seqs, scribbles)
    val_samples = samples_of(comps.dataset, val_seqs, scribbles)[: int(tc.get("max_val_samples", 10**9))]
    env_reward = OmegaConf.to_container(cfg.env.get("reward", {}), resolve=True) or {}
    baseline = load_or_build_baseline(cfg, comps, train_samples) if env_reward.get("use_goal", True) else None
    env = make_env(cfg.env, comps, train_samples, baseline)
    if env.subsequence_length is None:
        raise ConfigError("training needs fixed-length states: set env.subsequence_length (paper: 25)")
    eval_env = None
    if val_samples and int(tc.eval_every) > 0:
        if cfg.get("eval_env") is None:
            raise ConfigError("train.eval_every > 0 needs an eval_env config (e.g. env@eval_env: eval)")
        eval_env = make_env(cfg.eval_env, comps, val_samples, None)
    horizon = env.horizon
    obs_shape = tuple(env.observation_space.shape)

    # ---- agent side ------------------------------------------------------------------------
    torch.manual_seed(seed)
    qnet = instantiate(ac.qnet)
    if not isinstance(qnet, QNetwork):
        raise ConfigError(f"agent.qnet must build a QNetwork, got {type(qnet).__name__}")
    learner: DDQNLearner = instantiate(ac.learner, _partial_=True)(qnet)
    buffer = instantiate(ac.buffer, _partial_=True)(obs_shape=obs_shape, seed=_component_seed(seed, 0))
    actor = EpsilonGreedyActor(qnet, instantiate(ac.epsilon), seed=_component_seed(seed, 1))
    batch_size = int(ac.batch_size)
    decomposition = bool(ac.decomposition.enabled)
    dedup = bool(ac.decomposition.deduplicate)
    meta = {
        "qnet": qnet.config(),
        "state_mode": env.state_mode.value,
        "obs_shape": list(obs_shape),
        "horizon": horizon,
        "reward": asdict(env.reward_config),
        "decomposition": [decomposition, dedup],
        "seed": seed,
    }
    counters = {"episode": 0, "global_step": 0, "agent_step": 0}
    history: dict[str, list[float]] = {"loss": [], "episode_return": [], "jf_final": []}
    references: dict[str, Any] | None = None
    last_eval: dict[str, float] = {}

    resume = tc.get("resume")
    if resume:
        ck_path = out_dir / CHECKPOINT_NAME if str(resume) == "auto" else Path(str(resume))
        if ck_path.is_file():
            payload = load_training_checkpoint(ck_path, expected_meta=meta)
            st = payload["state"]
            learner.load_state_dict(st["learner"])
            buffer.load_state_dict(st["buffer"])
            actor.load_state_dict(st["actor"])
            counters = {k: int(v) for k, v in st["counters"].items()}
            history = {k: list(v) for k, v in st["history"].items()}
            references = st.get("references")
            last_eval = dict(st.get("last_eval", {}))
            set_global_rng_state(payload["global_rng"])
            ep, gs = counters["episode"], counters["global_step"]
            _log.info("resumed from %s at episode %d / step %d", ck_path, ep, gs)
        elif str(resume) != "auto":
            raise CheckpointError(f"train.resume={resume!r}: no checkpoint at {ck_path}")

    writer = None
    if cfg.get("logger") is not None:
        writer = instantiate(cfg.logger, purge_step=counters["global_step"] or None)

    def save_checkpoint() -> Path:
        state = {
            "learner": learner.state_dict(),
            "buffer": buffer.state_dict(),
            "actor": actor.state_dict(),
            "counters": dict(counters),
            "history": {k: v[-_HISTORY_KEPT:] for k, v in history.items()},
            "references": references,
            "last_eval": last_eval,
        }
        return save_training_checkpoint(out_dir / CHECKPOINT_NAME, state, meta)

    def evaluate() -> dict[str, float]:
        nonlocal references
        assert eval_env is not None
        qnet.eval()
        agent_curves = round_curves(eval_env, lambda o, _i: actor.greedy(o), val_samples, seed)
        qnet.train()
        if references is None:
            refs = reference_curves(eval_env, val_samples, seed)
            references = {k: curve_auc(v)[1] for k, v in refs.items()}
        result = {"agent": curve_auc(agent_curves)[1], **references}
        if writer is not None:
            step = counters["global_step"]
            writer.add_scalar("eval/auc_rounds", result["agent"], step)
            writer.add_scalar("eval/auc_rounds_random", result["random"], step)
            writer.add_scalar("eval/auc_rounds_worst", result["worst"], step)
        return result

    from tqdm.auto import tqdm

    total_steps = int(tc.total_steps)
    warmup = int(tc.warmup_episodes)
    bar = tqdm(total=total_steps, initial=counters["global_step"], desc="train agent", unit="step",
               disable=not bool(tc.get("progress", True)))
    tic = time.perf_counter()
    while counters["global_step"] < total_steps:
        episode = counters["episode"]
        warm = episode < warmup
        obs, info = env.reset(seed=_episode_seed(seed, episode))
        ep_return, eps = 0.0, 1.0
        for _ in range(horizon):
            if warm:
                action = actor.random_action(obs.shape[0])
            else:
                action, eps = actor.act(obs, counters["agent_step"])
                counters["agent_step"] += 1
            next_obs, reward, terminated, truncated, info = env.step(action)
            step = StepRecord(obs, action, next_obs, int(info["t"]), info["reward_intermediate"],
                              info["reward_terminal"])
            for tr in transitions_for_step(step, horizon, enabled=decomposition, deduplicate=dedup):
                buffer.add(tr.obs, tr.action, tr.reward, tr.next_obs, tr.done)
            ep_return += reward
            counters["global_step"] += 1
            bar.update(1)
            if not warm and len(buffer) >= batch_size:
                for _ in range(int(ac.updates_per_step)):
                    batch = buffer.sample(batch_size, beta=float(ac.get("per_beta", 0.4)))
                    upd = learner.update(batch)
                    buffer.update_priorities(batch.indices, upd["td_errors"])
                    history["loss"].append(upd["loss"])
                    if writer is not None:
                        writer.add_scalar("train/loss", upd["loss"], counters["global_step"])
            obs = next_obs
            if terminated or truncated:
                break
        counters["episode"] += 1
        jf_final = float(info["performance"]["J_AND_F"])
        history["episode_return"].append(ep_return)
        history["jf_final"].append(jf_final)
        if writer is not None:
            gs = counters["global_step"]
            writer.add_scalar("train/episode_return", ep_return, gs)
            writer.add_scalar("train/goal_reward", float(info["r_goal"]), gs)
            writer.add_scalar("train/jf_final", jf_final, gs)
            writer.add_scalar("train/epsilon", eps, gs)
        done = counters["global_step"] >= total_steps
        if eval_env is not None and (counters["episode"] % int(tc.eval_every) == 0 or done):
            last_eval = evaluate()
            bar.set_postfix(auc=f"{last_eval['agent']:.3f}", rand=f"{last_eval['random']:.3f}")
        if counters["episode"] % int(tc.checkpoint_every) == 0 or done:
            save_checkpoint()
    bar.close()

    policy_meta = {
        **meta,
        "subsequence_length": env.subsequence_length,
        "backend": getattr(comps.backend, "name", type(comps.backend).__name__),
        "quality": "oracle" if env.oracle else type(comps.quality).__name__,
        "episodes": counters["episode"],
        "global_step": counters["global_step"],
    }
    policy_path = save_policy(out_dir / POLICY_NAME, qnet, policy_meta)
    recent = history["loss"][-100:]
    result = {
        **counters,
        "loss": float(np.mean(recent)) if recent else math.nan,
        "mean_return_last": float(np.mean(history["episode_return"][-20:])),
        "jf_final_last": float(np.mean(history["jf_final"][-20:])),
        "eval": last_eval,
        "checkpoint": str(out_dir / CHECKPOINT_NAME),
        "policy": str(policy_path),
        "train_sequences": train_seqs,
        "val_sequences": val_seqs,
        "seconds": time.perf_counter() - tic,
    }
    if writer is not None:
        metrics = {"hparam/jf_final_last": result["jf_final_last"]}
        if last_eval:
            metrics["hparam/auc_rounds"] = last_eval["agent"]
        writer.add_hparams(_flat_hparams(cfg), metrics, run_name=".")
        writer.close()
    env.close()
    if eval_env is not None:
        eval_env.close()
    return result
