"""Lookahead-value data: per round, the observation and the mean J&F after annotating each candidate.

A learned recommender can be trained by supervision from the one-step lookahead oracle
(:class:`~ivos_rl.strategies.oracle_lookahead.OracleLookaheadStrategy`): at every round of an
episode the round engine tries candidate frames on a fork of the backend
(:meth:`ivos_rl.rounds.RoundEngine.lookahead`) and records, beside what a recommender sees at
test time, the mean J&F each candidate's round would give. The episode then commits the oracle's
pick, or (for state diversity) with probability ``explore`` Farthest's pick or a random frame.

With a ``policy`` (any :class:`~ivos_rl.strategies.base.Strategy`, e.g. span-error in the Wild or
a distilled agent) the episode follows that policy instead of the oracle (DAgger-style rows: the
states a learned recommender visits, not the oracle's), and the policy's pick is always one of the
candidates, so its one-step gain on every row is measured, not approximated. The policy sees what
it sees in :mod:`ivos_rl.evaluation` (the run's quality, the backend's probabilities, the round
counts) and is reset per sample with the evaluation's seed, so with ``explore = 0`` the rows
follow exactly the trajectory its evaluation run plays.

One file per sample (``rows/<sequence>__<scribble>.npz``, written atomically), R = max_rounds - 1
decision rounds, N frames:

* ``quality`` (R, N): the quality the recommender sees (the run's :class:`QualitySource`: Wild =
  the estimator's guess; the manifest records which), ``oracle`` (R, N): true J&F per frame;
* ``entropy``, ``area_change`` (R, N): the output feature columns of :mod:`ivos_rl.state_features`;
  ``disagreement`` (R, N) too when the backend gives diagnostics (``backend.diagnostics=true``);
* ``history`` (R, max_rounds): annotated frames before the choice, padded with -1;
* ``values`` (R, N): mean J&F after annotating each candidate frame, NaN elsewhere;
* ``current`` (R,): mean J&F before the choice; ``chosen`` (R,): the frame committed;
  ``final`` (): mean J&F after the last round.

``manifest.json`` (:mod:`ivos_rl.provenance`) fingerprints the backend, quality source, robot,
videos, scribbles and knobs; a folder written for another setup is refused, one for the same
setup is resumed (finished samples are kept).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.errors import ConfigError, CorruptFileError, InputValidationError, MissingDataError
from ivos_rl.provenance import (
    ProvenanceError,
    describe_difference,
    fingerprint,
    read_manifest,
    write_manifest,
)
from ivos_rl.rounds import RoundEngine, SampleContext
from ivos_rl.scoring import oracle_quality
from ivos_rl.state_features import StateFeatures
from ivos_rl.strategies.base import Strategy, StrategyState, sample_seed
from ivos_rl.strategies.farthest import distance_to_annotations
from ivos_rl.strategies.oracle_lookahead import lookahead_candidates
from ivos_rl.strategies.span_error import SpanErrorStrategy
from ivos_rl.utils.io import atomic_write_bytes, ensure_writable_dir
from ivos_rl.utils.seed import name_rng

__all__ = [
    "ROW_KEYS",
    "LookaheadDataConfig",
    "choose_frame",
    "load_rows",
    "record_sample",
    "rows_path",
    "save_rows",
    "start_folder",
]

ROW_KEYS = ("quality", "oracle", "entropy", "area_change", "history", "values", "current", "chosen", "final")
#: Recorded only when the backend offers what they need (``disagreement``: its diagnostics).
OPTIONAL_ROW_KEYS = ("disagreement",)
_OUTPUT_FEATURES = StateFeatures(("entropy", "area_change"))
_DISAGREEMENT = StateFeatures(("disagreement",))
_SPAN = SpanErrorStrategy()


@dataclass(frozen=True)
class LookaheadDataConfig:
    """Knobs of one data run (all fingerprinted). Candidates as the oracle strategy's, see
    :func:`~ivos_rl.strategies.oracle_lookahead.lookahead_candidates`, plus with ``include_span`` the
    span-error picks (:class:`~ivos_rl.strategies.span_error.SpanErrorStrategy`, default knobs) under
    the true and the seen quality; ``explore`` is the probability of not following the oracle (half
    Farthest, half a uniformly random frame)."""

    max_rounds: int = 8
    n_grid: int = 6
    n_worst: int = 1
    include_annotated: bool = False
    include_span: bool = False
    explore: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.max_rounds, bool) or not isinstance(self.max_rounds, int) or self.max_rounds < 2:
            raise ConfigError(f"max_rounds must be an int >= 2, got {self.max_rounds!r}")
        if isinstance(self.n_grid, bool) or not isinstance(self.n_grid, int) or self.n_grid < 1:
            raise ConfigError(f"n_grid must be an int >= 1, got {self.n_grid!r}")
        if isinstance(self.n_worst, bool) or not isinstance(self.n_worst, int) or self.n_worst < 0:
            raise ConfigError(f"n_worst must be an int >= 0, got {self.n_worst!r}")
        if not 0.0 <= float(self.explore) <= 1.0:
            raise ConfigError(f"explore must be in [0, 1], got {self.explore!r}")


def choose_frame(
    values: dict[int, float],
    history: list[int],
    n: int,
    explore: float,
    rng: np.random.Generator,
    follow: int | None = None,
) -> int:
    """The frame to commit: ``follow`` (a policy's pick) or, when None, the oracle's pick (ties to the
    earliest frame); with probability ``explore`` instead Farthest's pick or a random frame."""
    best = max(values, key=lambda f: (values[f], -f)) if follow is None else int(follow)
    u = float(rng.random())
    if u >= explore:
        return best
    if u < explore / 2:
        return int(np.argmax(distance_to_annotations(n, history)))
    return int(rng.integers(n))


def record_sample(
    engine: RoundEngine, sample: SampleContext, cfg: LookaheadDataConfig, policy: Strategy | None = None
) -> dict[str, np.ndarray]:
    """Play one episode of ``cfg.max_rounds`` rounds on ``engine`` and return its rows (module docstring).

    ``engine`` needs a robot and a quality source (what the recommender will see). The random
    choices are seeded by the sample's name and ``cfg.seed``, so a sample's rows do not depend
    on which other samples run. ``policy`` (None: the oracle) is the recommender the episode follows.
    """
    rng = name_rng("lookahead_data", sample.sequence, sample.scribble_idx, cfg.seed)
    n, rounds = sample.n_frames, cfg.max_rounds - 1
    if policy is not None:
        policy.reset(seed=sample_seed(sample.sequence, sample.scribble_idx, cfg.seed))
    out: dict[str, np.ndarray] = {
        "quality": np.zeros((rounds, n), np.float32),
        "oracle": np.zeros((rounds, n), np.float32),
        "entropy": np.zeros((rounds, n), np.float32),
        "area_change": np.zeros((rounds, n), np.float32),
        "history": np.full((rounds, cfg.max_rounds), -1, np.int64),
        "values": np.full((rounds, n), np.nan, np.float32),
        "current": np.zeros(rounds, np.float32),
        "chosen": np.zeros(rounds, np.int64),
    }
    state = engine.start(sample)
    for r in range(rounds):
        scores = engine.score()
        truth = oracle_quality(scores)
        out["quality"][r] = engine.observe()
        out["oracle"][r] = truth
        output = engine.propagate()
        out["entropy"][r], out["area_change"][r] = _OUTPUT_FEATURES.from_output(output.probs, output.masks).T
        if output.diagnostics is not None and "runs_iou" in output.diagnostics:
            out.setdefault("disagreement", np.zeros((rounds, n), np.float32))[r] = _DISAGREEMENT.from_output(
                output.probs, output.masks, diagnostics=output.diagnostics
            )[:, 0]
        history = list(state.history)
        out["history"][r, : len(history)] = history
        out["current"][r] = scores.mean_jf
        view = StrategyState(round=r + 1, n_frames=n, history=tuple(history), quality=truth)
        candidates = lookahead_candidates(view, cfg.n_grid, cfg.n_worst, True, cfg.include_annotated)
        if cfg.include_span:
            seen = replace(view, quality=out["quality"][r])
            candidates = sorted(set(candidates) | {_SPAN.select(view), _SPAN.select(seen)})
        follow = None if policy is None else _policy_pick(engine, policy, r + 1, cfg.max_rounds)
        if follow is not None:
            candidates = sorted(set(candidates) | {follow})
        values = {f: float(engine.lookahead(f)) for f in candidates}
        out["values"][r, candidates] = [values[f] for f in candidates]
        choice = choose_frame(values, history, n, float(cfg.explore), rng, follow)
        out["chosen"][r] = choice
        engine.annotate(choice)
        engine.propagate()
    out["final"] = np.asarray(engine.score().mean_jf, np.float32)
    return out


def _policy_pick(engine: RoundEngine, policy: Strategy, rnd: int, max_rounds: int) -> int:
    """``policy``'s frame on the engine's current round, from the view :mod:`ivos_rl.evaluation` gives it."""
    view = engine.view(policy, rnd, max_rounds)
    frame = int(policy.select(view))
    if not 0 <= frame < view.n_frames:
        raise InputValidationError(f"policy {type(policy).__name__} picked frame {frame} of {view.n_frames}")
    return frame


def rows_path(folder: str | Path, sequence: str, scribble_idx: int) -> Path:
    return Path(folder) / "rows" / f"{sequence}__{int(scribble_idx)}.npz"


def save_rows(path: Path, rows: dict[str, np.ndarray]) -> Path:
    """Write one sample's rows atomically (an interrupted run leaves no half-written file)."""
    missing = [k for k in ROW_KEYS if k not in rows]
    if missing:
        raise ConfigError(f"lookahead rows lack {missing}")
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: rows[k] for k in ROW_KEYS + OPTIONAL_ROW_KEYS if k in rows})
    return atomic_write_bytes(path, buf.getvalue())


def start_folder(folder: str | Path, fields: dict[str, Any], config: dict[str, Any] | None = None) -> None:
    """Check ``folder`` may receive this run (same fingerprint, or no manifest) and write the manifest."""
    folder = ensure_writable_dir(folder)
    manifest = read_manifest(folder)
    if manifest is not None and manifest["fingerprint"] != fingerprint(fields):
        raise ProvenanceError(
            f"{folder} holds lookahead data of another setup "
            f"({describe_difference(manifest.get('fields', {}), fields)}); use a new folder"
        )
    write_manifest(folder, kind="lookahead_data", fields=fields, config=config)


def data_fields(
    cfg: LookaheadDataConfig,
    backend: str,
    quality: Any,
    robot: Any,
    samples: Sequence[tuple[str, int]],
    policy: Any = None,
) -> dict[str, Any]:
    """What determines the rows: backend fingerprint, quality source, robot, samples and knobs, and
    the followed policy's record when there is one (absent otherwise: oracle manifests unchanged)."""
    fields = {
        "backend": backend,
        "quality": quality,
        "robot": robot,
        "samples": [[str(s), int(i)] for s, i in samples],
        "knobs": asdict(cfg),
    }
    if policy is not None:
        fields["policy"] = policy
    return fields


def load_rows(
    folder: str | Path, sequences: Sequence[str] | None = None
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(sequence, rows) of every sample file in ``folder`` (only ``sequences`` when given), by name.

    A folder without a manifest, a requested sequence without rows, or a damaged file is refused.
    """
    folder = Path(folder)
    if read_manifest(folder) is None:
        raise MissingDataError("no lookahead-data manifest.json (run scripts/gen_lookahead_data.py)", folder)
    files = sorted((folder / "rows").glob("*.npz"))
    wanted = None if sequences is None else set(map(str, sequences))
    out = []
    for path in files:
        seq = path.stem.rsplit("__", 1)[0]
        if wanted is not None and seq not in wanted:
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                rows = {k: data[k] for k in ROW_KEYS}
                rows.update({k: data[k] for k in OPTIONAL_ROW_KEYS if k in data.files})
        except (OSError, ValueError, KeyError) as err:
            raise CorruptFileError(f"lookahead rows {path} cannot be read: {err}") from err
        out.append((seq, rows))
    if wanted is not None:
        missing = sorted(wanted - {s for s, _ in out})
        if missing:
            raise MissingDataError(f"no lookahead rows for sequences {missing}", folder)
    return out


def _samples(
    dataset: Any, sequences: Sequence[str] | None, scribbles: Sequence[int] | None
) -> list[tuple[str, int]]:
    """(sequence, scribble) pairs within ``sequences`` (in their order) / ``scribbles``; none is an error."""
    pairs = [(str(s), int(i)) for s, i in dataset.samples()]
    if sequences is not None:
        unknown = sorted(set(map(str, sequences)) - {s for s, _ in pairs})
        if unknown:
            raise ConfigError(f"sequences {unknown} have no samples in {dataset!r}")
        order = {str(s): k for k, s in enumerate(sequences)}  # the caller's order (e.g. folds interleaved)
        pairs = sorted(((s, i) for s, i in pairs if s in order), key=lambda p: (order[p[0]], p[1]))
    if scribbles is not None:
        pairs = [(s, i) for s, i in pairs if i in {int(k) for k in scribbles}]
    if not pairs:
        raise ConfigError(f"no samples for sequences={sequences} scribbles={scribbles}")
    return pairs


def _shard(samples: list[tuple[str, int]], shard: str | None) -> list[tuple[str, int]]:
    """Every n-th sample from the i-th for ``shard="i/n"`` (processes sharing one folder and manifest)."""
    if shard is None:
        return samples
    try:
        i, n = (int(v) for v in str(shard).split("/"))
    except ValueError:
        raise ConfigError(f"shard must be 'i/n' with integers, got {shard!r}") from None
    if not 0 <= i < n:
        raise ConfigError(f"shard {shard!r}: need 0 <= i < n")
    return samples[i::n]


def _policy(node: dict[str, Any] | None) -> tuple[Strategy | None, dict[str, Any] | None]:
    """The strategy a data run follows (``policy``, a ``_target_`` config) and its fingerprint record:
    the resolved config and, for a policy file (``path``), the file's content hash (a list of
    hashes for an ensemble's list of files)."""
    if node is None:
        return None, None
    from hydra.utils import instantiate

    from ivos_rl.provenance import files_sha256

    if not isinstance(node, dict) or "_target_" not in node:
        raise ConfigError(f"policy must be a strategy config with a _target_ (or null), got {node!r}")
    policy = instantiate(node)
    if not isinstance(policy, Strategy):
        raise ConfigError(f"policy {node['_target_']} is not a Strategy")
    path = node.get("path")
    return policy, {"config": node, "sha256": files_sha256(path) if path else None}


def generate(cfg: Any) -> dict[str, Any]:
    """Entry point of ``scripts/gen_lookahead_data.py`` (``configs/gen_lookahead_data.yaml``).

    Builds dataset, backend, robot, the quality source (``setting``) and the followed ``policy``
    (a strategy config; null: the oracle) from ``cfg``, writes the
    manifest (fingerprinting every sample, so shards share it), then one rows file per sample of
    this ``shard`` not yet written; returns counts and CPU seconds per sample.
    """
    import time

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ivos_rl.backends.cached import backend_fingerprint
    from ivos_rl.provenance import file_sha256
    from ivos_rl.rounds import load_sample, quality_source_from_cfg
    from ivos_rl.utils.logging import get_logger

    log = get_logger(__name__)
    knobs = LookaheadDataConfig(**OmegaConf.to_container(cfg.lookahead, resolve=True))  # type: ignore[arg-type]
    dataset, backend = instantiate(cfg.dataset), instantiate(cfg.backend)
    robot = instantiate(cfg.robot)
    quality = quality_source_from_cfg(cfg.setting)
    plain = OmegaConf.to_container(cfg, resolve=True)
    setting = plain["setting"]  # type: ignore[index]
    path = setting.get("estimator", {}) and setting["estimator"].get("path")
    quality_record = {"setting": setting, "sha256": file_sha256(path) if path else None}
    samples = _samples(dataset, cfg.get("sequences"), cfg.get("scribbles"))
    policy, policy_record = _policy(plain.get("policy"))  # type: ignore[union-attr]
    fields = data_fields(
        knobs, backend_fingerprint(backend), quality_record, plain.get("robot"), samples, policy_record  # type: ignore[union-attr]
    )
    start_folder(cfg.out_dir, fields, plain)  # type: ignore[arg-type]
    engine = RoundEngine(backend, robot, quality)
    seconds: dict[str, float] = {}
    todo = _shard(samples, cfg.get("shard"))
    # a second process may work the same shard from its end: each skips what the other has written
    for seq, idx in todo[::-1] if cfg.get("reverse", False) else todo:
        target = rows_path(cfg.out_dir, seq, idx)
        if target.is_file():
            continue
        tic = time.process_time()
        rows = record_sample(engine, load_sample(dataset, seq, idx), knobs, policy)
        save_rows(target, rows)
        seconds[f"{seq}__{idx}"] = time.process_time() - tic
        log.info(
            "%s/%d: %d frames, %.1f CPU s, final J&F %.3f",
            seq,
            idx,
            rows["quality"].shape[1],
            seconds[f"{seq}__{idx}"],
            float(rows["final"]),
        )
    return {"samples": len(samples), "written": len(seconds), "cpu_seconds": seconds}
