"""Build environments and the random baseline from Hydra configs.

Training (``ivos_rl.agents.train``), the baseline command (``scripts/build_baseline.py``) and
evaluations all need the same pieces: dataset, backend, robot and quality source from their
config groups, the split into training and held-out sequences (the one of every trainer,
:func:`ivos_rl.data.splits.split_sequences`, checked against the quality net's own split), and the
random baseline matching the training env. Keeping this in one place guarantees the baseline is built
with exactly the env settings it is later used with (its cache records a fingerprint of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ivos_rl.data.splits import check_held_out_unseen, fold_split, read_split_record, split_sequences
from ivos_rl.envs.baseline import SAMPLES_KEY, RandomBaseline, build_random_baseline
from ivos_rl.envs.frame_recommendation import FrameRecommendationEnv
from ivos_rl.errors import CheckpointError, ConfigError
from ivos_rl.rounds import QualitySource, quality_source_from_cfg
from ivos_rl.utils.logging import get_logger

_log = get_logger(__name__)
# Env settings that change the random policy's outcomes (and therefore the baseline).
_BASELINE_ENV_KEYS = ("horizon", "subsequence_length", "subsequence_start", "interaction")


@dataclass
class Components:
    """The pluggable parts an environment is built from."""

    dataset: Any
    backend: Any
    robot: Any
    quality: QualitySource


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_components(cfg: DictConfig) -> Components:
    """Instantiate ``cfg.dataset``, ``cfg.backend``, ``cfg.robot`` (may be null) and the quality source.

    The quality source comes from the ``setting`` group (``configs/setting/{oracle,wild}.yaml``),
    through the same loader evaluation uses (:func:`ivos_rl.rounds.quality_source_from_cfg`).
    """
    if "quality" in cfg:
        raise ConfigError(
            "the top-level `quality` key is gone: choose the quality source with the setting group "
            "(setting=oracle, or setting=wild [setting.estimator.path=<model.features.pt>])"
        )
    for group in ("dataset", "backend", "setting"):
        if cfg.get(group) is None:
            raise ConfigError(f"config group {group!r} is missing (choose one, e.g. {group}=...)")
    quality = quality_source_from_cfg(cfg.setting)
    robot = instantiate(cfg.robot) if cfg.get("robot") is not None else None
    return Components(
        dataset=instantiate(cfg.dataset),
        backend=instantiate(cfg.backend),
        robot=robot,
        quality=quality,
    )


def quality_split(quality: Any) -> dict[str, Any] | None:
    """The split record of the videos a quality source was trained on (None: oracle or unrecorded).

    Quality estimators loaded from a checkpoint carry it as ``.split`` (see
    :func:`ivos_rl.data.splits.split_record`); any other quality object may do the same.
    """
    quality = _estimator(quality)
    if quality is None or isinstance(quality, str):
        return None
    return read_split_record(getattr(quality, "split", None), _quality_source(quality))


def _estimator(quality: Any) -> Any:
    """The quality net behind a :class:`QualitySource` (None in the Oracle setting); others as given."""
    return quality.estimator if isinstance(quality, QualitySource) else quality


def _quality_source(quality: Any) -> str:
    quality = _estimator(quality)
    return f"the quality net {getattr(quality, 'checkpoint_path', None) or type(quality).__name__}"


def agent_split(
    components: Components,
    val_sequences: int | Sequence[str],
    seed: int,
    fold: tuple[int, int, int] | None = None,
) -> tuple[list[str], list[str]]:
    """(train, held-out) videos of the agent, from the one split function of every trainer.

    ``fold`` = (k, n_folds, fold_seed): the held-out videos are cross-validation fold k of
    :func:`~ivos_rl.data.splits.video_folds` (the folds every experiment shares) instead of
    ``val_sequences``. In the Wild the agent's held-out videos must also be unseen by the quality
    net: a quality checkpoint that records its split is checked here and a leak is a
    :class:`ConfigError` naming the videos.
    """
    if fold is not None:
        k, n_folds, fold_seed = fold
        val_sequences = fold_split(components.dataset.sequences, n_folds, k, fold_seed)[1]
    train, held_out = split_sequences(components.dataset.sequences, val_sequences, seed)
    quality = components.quality
    check_held_out_unseen(held_out, quality_split(quality), _quality_source(quality), "the agent's held-out")
    return train, held_out


def train_fold(cfg: DictConfig) -> tuple[int, int, int] | None:
    """``cfg.train``'s cross-validation fold as (k, n_folds, fold_seed), None when ``train.fold`` is null."""
    fold = OmegaConf.select(cfg, "train.fold", default=None)
    if fold is None:
        return None
    return int(fold), int(OmegaConf.select(cfg, "train.n_folds", default=5)), int(
        OmegaConf.select(cfg, "train.fold_seed", default=0)
    )


def samples_of(
    dataset: Any, sequences: list[str], scribbles: Sequence[int] | None = None
) -> list[tuple[str, int]]:
    """(sequence, scribble_idx) pairs of ``sequences``, in dataset order.

    ``scribbles`` keeps only those initial-scribble indices (e.g. ``[1]``: one sample per video,
    which bounds the cost of the random baseline); a sequence lacking all of them is an error.
    """
    keep = set(sequences)
    pairs = [(s, i) for s, i in dataset.samples() if s in keep]
    if scribbles is None:
        return pairs
    wanted = {int(i) for i in scribbles}
    chosen = [(s, i) for s, i in pairs if i in wanted]
    missing = sorted(keep - {s for s, _ in chosen})
    if missing:
        raise ConfigError(f"sequences {missing} have none of the scribbles {sorted(wanted)}")
    return chosen


def training_scribbles(cfg: DictConfig) -> list[int] | None:
    """``cfg.train.scribbles``: the initial-scribble indices used for training (null = all)."""
    value = OmegaConf.select(cfg, "train.scribbles", default=None)
    return None if value is None else [int(i) for i in value]


def make_env(
    env_cfg: DictConfig,
    components: Components,
    samples: list[tuple[str, int]],
    baseline: RandomBaseline | None = None,
    **overrides: Any,
) -> FrameRecommendationEnv:
    """Instantiate ``env_cfg`` (a ``_target_`` config) with the components and config overrides."""
    node = OmegaConf.merge(env_cfg, overrides) if overrides else env_cfg
    factory = instantiate(node, _partial_=True, _convert_="all")
    env = factory(
        dataset=components.dataset,
        backend=components.backend,
        robot=components.robot,
        quality=components.quality,
        baseline=baseline,
        samples=samples,
    )
    if not isinstance(env, FrameRecommendationEnv):
        raise ConfigError(f"env config must build a FrameRecommendationEnv, got {type(env).__name__}")
    return env


def _reward_metric(cfg: DictConfig) -> str:
    return str(OmegaConf.select(cfg, "env.reward.metric", default="J_AND_F"))


def _without_cache_settings(backend: Any) -> Any:
    """Backend config minus memoisation settings at any depth (``flow_cache_size``,
    ``flow_cache_dir``, ``prop.warp_cache``, ``prop.warp_cache_mb``...): they change speed, never
    outcomes, so they must not invalidate a cached baseline."""
    if not isinstance(backend, dict):
        return backend
    return {k: _without_cache_settings(v) for k, v in backend.items() if "cache" not in str(k)}


def baseline_meta(cfg: DictConfig, samples: list[tuple[str, int]]) -> dict[str, Any]:
    """Fingerprint of everything that determines the random policy's outcomes."""
    env = _plain(cfg.env)
    bl = _plain(cfg.baseline)
    return {
        "dataset": _plain(cfg.dataset),
        "backend": _without_cache_settings(_plain(cfg.backend)),
        "robot": _plain(cfg.get("robot")),
        "env": {k: env.get(k) for k in _BASELINE_ENV_KEYS},
        SAMPLES_KEY: [[s, int(i)] for s, i in samples],
        "n_episodes": int(bl["n_episodes"]),
        "seed": int(bl["seed"]),
        "sigma_mode": bl["sigma_mode"],
        "min_sigma": float(bl["min_sigma"]),
        "metric": _reward_metric(cfg),
    }


def _build(cfg: DictConfig, components: Components, samples: list[tuple[str, int]]) -> RandomBaseline:
    _log.info("building the random baseline of %d samples", len(samples))
    env = make_env(cfg.env, components, samples, reward={"use_goal": False})
    return build_random_baseline(
        env,
        n_episodes=int(cfg.baseline.n_episodes),
        seed=int(cfg.baseline.seed),
        sigma_mode=cfg.baseline.sigma_mode,
        min_sigma=float(cfg.baseline.min_sigma),
        meta=baseline_meta(cfg, samples),
        progress=bool(cfg.baseline.get("progress", True)),
        fit_metrics=[_reward_metric(cfg)],
    )


def load_or_build_baseline(
    cfg: DictConfig, components: Components, samples: list[tuple[str, int]], build: bool | None = None
) -> RandomBaseline:
    """The cached baseline at ``cfg.baseline.path`` for ``samples``: loaded, or built (and cached) if
    allowed (``build``; default ``cfg.baseline.build_if_missing``).

    A cache built for the same setup with other samples is extended with the samples it lacks (exact:
    :mod:`ivos_rl.envs.baseline`), so the folds of a cross-validation share one cache.
    """
    path = Path(str(cfg.baseline.path))
    build = bool(cfg.baseline.get("build_if_missing", False)) if build is None else build
    cached = None
    if path.is_file():
        cached = RandomBaseline.load(path, expected_meta=baseline_meta(cfg, samples), partial=True)
    todo = samples if cached is None else cached.missing(samples)
    if cached is not None and not todo:
        return cached
    if not build:
        what = "does not exist" if cached is None else f"lacks {len(todo)} of the training samples"
        raise CheckpointError(
            f"random baseline {path} {what}; build it with scripts/build_baseline.py "
            "or set baseline.build_if_missing=true"
        )
    baseline = _build(cfg, components, todo)
    if cached is not None:
        baseline = cached.merged(baseline)
    baseline.save(path)  # atomic: an interrupted build leaves any previous file intact
    _log.info("random baseline of %d samples -> %s", len(baseline.samples), path)
    return baseline


def build_baseline(cfg: DictConfig) -> Path:
    """The `build_baseline` command: cache the baseline for the training split of ``cfg``.

    An existing cache is checked against the configuration and kept, extended with the samples it
    lacks (``baseline.overwrite=true`` rebuilds it).
    """
    components = build_components(cfg)
    train_seqs, _ = agent_split(components, cfg.train.val_sequences, int(cfg.seed), train_fold(cfg))
    samples = samples_of(components.dataset, train_seqs, training_scribbles(cfg))
    path = Path(str(cfg.baseline.path))
    if bool(cfg.baseline.get("overwrite", False)):
        _build(cfg, components, samples).save(path)
    else:
        load_or_build_baseline(cfg, components, samples, build=True)
    return path
