"""Cross-validated distillation of the lookahead oracle (``scripts/distill_agent.py``).

Per test fold of :func:`ivos_rl.data.splits.video_folds` (the folds every experiment shares):
the knobs (``grid``) and the number of epochs are chosen on an inner split of the fold's
*training* videos only (mean offline gain over ``seeds``, :func:`~ivos_rl.agents.distill.offline_gain`),
then one policy per seed is trained on all the training videos with that choice and written as
``fold<k>/seed<s>/agent.pt``, a policy file :class:`~ivos_rl.agents.strategy.AgentStrategy` loads
(state mode, state features, horizon, split and the data's backend fingerprint recorded). The
test videos' rows are only scored (offline, for the report), never used for a choice.
``final=true`` applies the same recipe with all videos as training videos (``all/seed<s>/``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos_rl.agents.checkpoint import save_policy
from ivos_rl.agents.distill import DistillConfig, Row, build_rows, fit, offline_gain
from ivos_rl.data.splits import SPLIT_KEY, fold_split, split_record
from ivos_rl.errors import ConfigError
from ivos_rl.lookahead_data import load_rows
from ivos_rl.provenance import read_manifest
from ivos_rl.utils.io import atomic_write_json, ensure_writable_dir
from ivos_rl.utils.logging import get_logger
from ivos_rl.utils.seed import name_seed

__all__ = ["INNER_SEEDS", "choose_knobs", "inner_fold_splits", "load_data", "train_split"]

_log = get_logger(__name__)
POLICY_NAME = "agent.pt"
_CURVE_KEYS = ("gain_agent", "gain_farthest", "gain_span", "gain_oracle")
INNER_SEEDS = ("shared", "own")
"""How the inner folds of an outer fold's training videos are drawn (``inner_seed``): ``shared`` with
the shared folds' seed 0, the recipe up to session 8, so with 5 outer folds the inner folds are the
other global folds and, with ``inner_splits=2``, outer folds 2-4 all validate on global folds 0-1
(the same 12 videos); ``own`` with a seed drawn from the names of the outer fold's own training
videos, so each outer fold validates on its own draw."""


def inner_fold_splits(
    videos: Sequence[str], inner_folds: int, inner_splits: int, inner_seed: str = "shared"
) -> list[tuple[list[str], list[str]]]:
    """(inner train, inner validation) videos of inner folds 0 .. ``inner_splits`` - 1 of ``videos``
    (see :data:`INNER_SEEDS` for ``inner_seed``)."""
    if isinstance(inner_splits, bool) or not isinstance(inner_splits, int):
        raise ConfigError(f"inner_splits must be an int, got {inner_splits!r}")
    if not 1 <= inner_splits <= inner_folds:
        raise ConfigError(f"inner_splits must be in [1, inner_folds={inner_folds}], got {inner_splits}")
    if inner_seed not in INNER_SEEDS:
        raise ConfigError(f"inner_seed must be one of {list(INNER_SEEDS)}, got {inner_seed!r}")
    names = sorted(set(map(str, videos)))
    seed = 0 if inner_seed == "shared" else name_seed("inner folds", *names)
    return [fold_split(names, inner_folds, k, seed=seed) for k in range(inner_splits)]


def _rows(
    data: Sequence[tuple[str, dict[str, np.ndarray]]],
    videos: Sequence[str],
    cfg: DistillConfig,
    flip: bool | None = None,
) -> list[Row]:
    keep = set(videos)
    return build_rows([(s, r) for s, r in data if s in keep], cfg, flip)


def choose_knobs(
    data: Sequence[tuple[str, dict[str, np.ndarray]]],
    videos: Sequence[str],
    base: DistillConfig,
    grid: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    inner_folds: int,
    val_data: Sequence[tuple[str, dict[str, np.ndarray]]] | None = None,
    inner_splits: int = 1,
    inner_seed: str = "shared",
) -> tuple[DistillConfig, dict[str, Any]]:
    """The (knobs, epochs) of ``grid`` x 1..base.epochs (0.. for a residual head) with the best mean
    inner-validation gain.

    ``videos`` are training videos only; inner folds 0 .. ``inner_splits`` - 1 of them
    (:func:`inner_fold_splits`, drawn as ``inner_seed`` says) validate in turn (the rest train), the
    gains averaged over splits and seeds. The validation rows come from
    ``val_data`` (default ``data``): e.g. only the rows on the states a policy visits, where the
    proxy is measured on the states it will be judged on.
    """
    val_data = data if val_data is None else val_data
    splits = inner_fold_splits(videos, inner_folds, inner_splits, inner_seed)
    trials = []
    for knobs in grid or [{}]:
        cfg = replace(base, **knobs)
        curves = []
        for inner_train, inner_val in splits:
            train_rows, val_rows = _rows(data, inner_train, cfg), _rows(val_data, inner_val, cfg, flip=False)
            if not val_rows:
                raise ConfigError(f"no validation rows for the inner videos {inner_val}")
            curves += [fit(train_rows, cfg, seed, validate=val_rows)[1] for seed in seeds]
        mean = {k: np.mean([[p[k] for p in c] for c in curves], axis=0) for k in _CURVE_KEYS}
        epoch = int(np.argmax(mean["gain_agent"]))  # the earliest best (a residual's curve starts at 0)
        trials.append(
            {
                "knobs": dict(knobs),
                "epochs": int(curves[0][epoch]["epoch"]),
                "inner_gain": float(mean["gain_agent"][epoch]),
                "inner_farthest": float(mean["gain_farthest"][epoch]),
                "inner_span": float(mean["gain_span"][epoch]),
                "inner_oracle": float(mean["gain_oracle"][epoch]),
                "curve": mean["gain_agent"].tolist(),
            }
        )
    best = max(trials, key=lambda t: t["inner_gain"])
    chosen = replace(base, **best["knobs"], epochs=best["epochs"])
    inner_train, inner_val = splits[0]
    return chosen, {
        "inner_train": inner_train,
        "inner_val": inner_val,
        "inner_splits": [{"train": t, "val": v} for t, v in splits],
        "inner_seed": inner_seed,
        "trials": trials,
        "chosen": best,
    }


def train_split(
    data: Sequence[tuple[str, dict[str, np.ndarray]]],
    train: Sequence[str],
    test: Sequence[str],
    base: DistillConfig,
    grid: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    inner_folds: int,
    out: Path,
    meta: dict[str, Any],
    selection_seeds: Sequence[int] | None = None,
    eval_data: Sequence[tuple[str, dict[str, np.ndarray]]] | None = None,
    inner_splits: int = 1,
    inner_seed: str = "shared",
) -> dict[str, Any]:
    """Choose knobs on ``train`` (with ``selection_seeds``, default ``seeds``), train one policy per
    seed on ``train``, score it on ``test`` (offline, for the report only). ``eval_data`` (default
    ``data``) holds the rows both the inner validation and the test scores are measured on."""
    tic = time.process_time()
    chooser_seeds = seeds if selection_seeds is None else selection_seeds
    cfg, selection = choose_knobs(
        data, train, base, grid, chooser_seeds, inner_folds, eval_data, inner_splits, inner_seed
    )
    train_rows = _rows(data, train, cfg)
    test_rows = _rows(data if eval_data is None else eval_data, test, cfg, flip=False) if test else []
    policies, scores = [], []
    for seed in seeds:
        qnet, _ = fit(train_rows, cfg, seed)
        folder = ensure_writable_dir(out / f"seed{seed}")
        policy_meta = {
            **meta,
            "trainer": "lookahead_distill",
            "distill": cfg.record(),
            "seed": int(seed),
            "state_mode": "both",
            "state_features": list(cfg.features.groups),
            "horizon": cfg.horizon,
            "train_sequences": sorted(train),
            "held_out_sequences": sorted(test),
            SPLIT_KEY: split_record(train, test, None),
        }
        policies.append(str(save_policy(folder / POLICY_NAME, qnet, policy_meta)))
        if test_rows:
            scores.append(_test_scores(qnet, test_rows, test, cfg.network() if cfg.residual else None))
    summary = {
        "train": sorted(train),
        "test": sorted(test),
        "selection": selection,
        "policies": policies,
        "test_offline": scores,
        "cpu_seconds": time.process_time() - tic,
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def _test_scores(qnet: Any, rows: Sequence[Row], videos: Sequence[str], prior: Any = None) -> dict[str, Any]:
    """Offline gains on the test rows, overall and per video; with ``prior`` (an untrained residual
    network: span-error's picks) also the prior's gain as ``gain_prior``, for the same rows."""

    def score(subset: Sequence[Row]) -> dict[str, float]:
        out = offline_gain(qnet, subset)
        if prior is not None:
            out["gain_prior"] = offline_gain(prior, subset)["gain_agent"]
        return out

    per_video = {v: score([r for r in rows if r.sequence == v]) for v in videos}
    return {**score(rows), "per_video": per_video}


def load_data(
    data_dir: str | Path | Sequence[str | Path],
) -> tuple[list[tuple[str, dict[str, np.ndarray]]], dict[str, Any], list[str]]:
    """(rows, policy metadata, planned videos) of one lookahead-data folder or several.

    Several folders (e.g. one per CV fold, each recorded with the quality estimator of its own fold,
    or rows following the oracle and rows following a policy) must share the backend; two folders
    may hold the same (video, scribble) only when they followed different recommenders or knobs
    (the same rows twice are refused). The planned videos (for the shared folds) are every video
    the data runs were asked for, not only those written so far.
    """
    dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    if not dirs:
        raise ConfigError("data_dir names no lookahead-data folder")
    data: list[tuple[str, dict[str, np.ndarray]]] = []
    records, planned, seen = [], set(), set()  # type: ignore[var-annotated]
    for d in dirs:
        rows = load_rows(d)
        manifest = read_manifest(d)
        assert manifest is not None  # load_rows refuses a folder without one
        fields = manifest["fields"]
        how = json.dumps([fields.get("knobs"), fields.get("policy")], sort_keys=True)
        samples = {(how, str(s), int(i)) for s, i in fields["samples"]}
        clash = sorted(f"{s}/{i}" for _, s, i in samples & seen)
        if clash:
            raise ConfigError(f"lookahead-data folders overlap on samples {clash} with the same knobs ({d})")
        data += rows
        planned |= {s for _, s, _ in samples}
        seen |= samples
        records.append((str(d), manifest))
    backends = {json.dumps(m["fields"]["backend"], sort_keys=True) for _, m in records}
    if len(backends) > 1:
        raise ConfigError(f"lookahead-data folders {[d for d, _ in records]} differ in backend")
    info = [{"path": d, "fingerprint": m["fingerprint"]} for d, m in records]
    quality = [m["fields"]["quality"] for _, m in records]
    meta = {
        "backend_fingerprint": records[0][1]["fields"]["backend"],
        "quality": quality[0] if len(quality) == 1 else quality,
        "lookahead_data": info[0] if len(info) == 1 else info,
    }
    return data, meta, sorted(planned)


def run(cfg: Any) -> dict[str, Any]:
    """Entry point of ``scripts/distill_agent.py`` (``configs/distill_agent.yaml``)."""
    from omegaconf import OmegaConf

    # One thread by default: torch's default (every core) oversubscribes a machine running one
    # distillation per core, which made a 5-fold run several times slower on 2 cores (session 18).
    torch.set_num_threads(int(cfg.get("num_threads") or 1))

    keys = (
        "distill",
        "grid",
        "seeds",
        "selection_seeds",
        "final",
        "folds",
        "n_folds",
        "fold_seed",
        "inner_folds",
    )
    plain = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
        for k in keys
    }
    base = DistillConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in plain["distill"].items()})
    grid = list(plain.get("grid") or [])
    seeds = [int(s) for s in plain["seeds"]]
    chooser = plain.get("selection_seeds")
    chooser = seeds if chooser is None else [int(s) for s in chooser]
    if not seeds or not chooser:
        raise ConfigError("seeds and selection_seeds must list at least one seed")
    data, meta, planned = load_data(cfg.data_dir)
    eval_data = None
    if cfg.get("eval_dir") is not None:  # the rows validation and test scores are measured on
        eval_data, eval_meta, eval_planned = load_data(cfg.eval_dir)
        meta["eval_data"] = eval_meta["lookahead_data"]
        planned = sorted(set(planned) | set(eval_planned))
    videos = sorted({s for s, _ in data})
    out = ensure_writable_dir(Path(str(cfg.out_dir)))
    inner = {
        "eval_data": eval_data,
        "inner_splits": int(cfg.get("inner_splits", 1)),
        "inner_seed": str(cfg.get("inner_seed", "shared")),
    }
    n_inner = int(plain["inner_folds"])
    results: dict[str, Any] = {}
    if plain.get("final"):
        results["all"] = train_split(
            data, videos, [], base, grid, seeds, n_inner, out / "all", meta, chooser, **inner
        )
    else:
        folds = plain.get("folds")
        for k in range(int(plain["n_folds"])) if folds is None else [int(f) for f in folds]:
            train, test = fold_split(planned, int(plain["n_folds"]), k, seed=int(plain["fold_seed"]))
            train, test = [v for v in train if v in videos], [v for v in test if v in videos]
            fold_out = out / f"fold{k}"
            results[f"fold{k}"] = train_split(
                data, train, test, base, grid, seeds, n_inner, fold_out, meta, chooser, **inner
            )
            _log.info("fold %d: %s", k, results[f"fold{k}"]["test_offline"])
    # one file per call: folds may run in separate processes (folds=[k]) into the same out_dir
    atomic_write_json(out / f"results-{'-'.join(results)}.json", results)
    return results


def offline_table(results: dict[str, Any]) -> Any:
    """One-step gains on the test folds' rows (mean over seeds per video), as a "gap closed" table.

    Rows Farthest, agent, oracle, span-error's pick (and a residual head's prior): gain x100 (mean
    J&F after the round minus before), gap closed = (agent - Farthest) / (oracle - Farthest) with
    paired bootstrap intervals over videos (:func:`ivos_rl.reporting.gap_closed`, floor Farthest,
    ceiling the lookahead oracle). A label scored on only some videos (the prior, when only some
    folds chose a residual head) is left out rather than shrinking the table to those videos.
    """
    import pandas as pd

    from ivos_rl.reporting import gap_closed

    per: dict[str, dict[str, list[float]]] = {
        "farthest": {},
        "agent": {},
        "oracle": {},
        "prior": {},
        "span": {},
    }
    for fold in results.values():
        for seed_scores in fold["test_offline"]:
            for video, s in seed_scores["per_video"].items():
                for label, key in (
                    ("farthest", "gain_farthest"),
                    ("agent", "gain_agent"),
                    ("oracle", "gain_oracle"),
                    ("prior", "gain_prior"),
                    ("span", "gain_span"),
                ):
                    if key in s:
                        per[label].setdefault(f"{video}/1", []).append(float(s[key]))
    if not per["agent"]:
        raise ConfigError("no test-fold scores in these results (final=true runs have none)")
    series = {
        k: pd.Series({v: float(np.mean(x)) for v, x in d.items()})
        for k, d in per.items()
        if d and set(d) == set(per["agent"])
    }
    return gap_closed(series, "farthest", "oracle")
