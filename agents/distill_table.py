"""Held-out tables of cross-validated distillation runs (``scripts/distill_report.py``).

A run folder of :func:`ivos_rl.agents.distill_cv.run` (``fold<k>/summary.json`` + one policy per
seed) is scored on its test folds' rows again, this time with the **seed ensemble** (argmax of the
mean Q over the fold's seeds, :class:`~ivos_rl.agents.ensemble.MeanQNetwork`, the way the shipped
agent acts), next to the per-seed mean the summaries already hold. The rows are the ones the run
validated and scored on (the policies record their folders and fingerprints; a changed folder is
refused), so nothing here chooses anything: it only re-reads held-out videos.

:func:`ablation_table` then compares variants (e.g. ``configs/experiment/table6_distill.yaml``'s
state groups) per held-out video with paired 95% bootstrap intervals over videos.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ivos_rl.agents.checkpoint import load_policy
from ivos_rl.agents.distill import DistillConfig, build_rows, offline_gain
from ivos_rl.agents.distill_cv import load_data
from ivos_rl.agents.ensemble import MeanQNetwork
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.provenance import ProvenanceError
from ivos_rl.reporting import gap_closed, paired_bootstrap

__all__ = ["SCORE_COLUMNS", "ablation_table", "report", "run_scores", "variant_dirs", "write_report"]

SCORE_COLUMNS = ("ensemble", "seed_mean", "farthest", "span", "oracle")
"""Per held-out video: one-step gains (mean J&F after the round minus before, over its rows) of the
seed ensemble's pick, the mean over seeds of each seed's pick, Farthest's, span-error's and the
lookahead oracle's (the best tried frame)."""


def _data_folders(meta: dict[str, Any]) -> list[dict[str, str]]:
    """The (path, fingerprint) records of the rows a policy was scored on (eval rows, else its data)."""
    record = meta.get("eval_data") or meta.get("lookahead_data")
    if record is None:
        raise InputValidationError("policy records no lookahead-data folders (not a distilled policy?)")
    return [record] if isinstance(record, dict) else list(record)


def _load_checked(folders: list[dict[str, str]]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Rows of the recorded folders; ProvenanceError if one no longer has the recorded fingerprint."""
    data, meta, _ = load_data([f["path"] for f in folders])
    now = meta["lookahead_data"]
    now = [now] if isinstance(now, dict) else now
    for want, have in zip(folders, now, strict=True):
        if want["fingerprint"] != have["fingerprint"]:
            raise ProvenanceError(
                f"lookahead data {want['path']} changed since the policies were scored "
                f"(fingerprint {have['fingerprint']} != recorded {want['fingerprint']})"
            )
    return data


_SUMMARY_KEYS = ("test", "policies", "test_offline")


def _read_summary(path: Path) -> tuple[dict[str, Any], list[Path]]:
    """A fold's ``summary.json`` and its seed policies, found **in the run tree** beside it.

    distill_cv records each policy as ``<out>/seed<s>/agent.pt`` relative to the directory it ran from;
    reading them back through that path would depend on the current directory (and could load a newer
    run's files), so each is looked up as ``<summary's folder>/seed<s>/agent.pt``. Every error names
    the summary file."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputValidationError(f"{path}: not a readable distill_agent summary ({err})") from err
    missing = [k for k in _SUMMARY_KEYS if not isinstance(summary, dict) or k not in summary]
    if missing:
        raise InputValidationError(f"{path}: no {missing} (not a distill_agent.py fold summary)")
    policies = []
    for recorded in summary["policies"]:
        where = path.parent / Path(recorded).parent.name / Path(recorded).name
        if not where.is_file():
            raise InputValidationError(f"{path}: its policy {recorded} is not in the run tree ({where})")
        policies.append(where)
    return summary, policies


def _fold_scores(
    path: Path, cache: dict[str, list[tuple[str, dict[str, np.ndarray]]]]
) -> dict[str, dict[str, float]]:
    """Per test video of the fold ``path`` (its ``summary.json``): :data:`SCORE_COLUMNS` (the
    ensemble of the fold's seed policies, each checked to hold out exactly the fold's test videos)."""
    summary, paths = _read_summary(path)
    members = [load_policy(p) for p in paths]
    for p, (_, m) in zip(paths, members, strict=True):
        if "distill" not in m:
            raise InputValidationError(f"{path}: policy {p} is not a distilled policy (no 'distill' record)")
        if sorted(m.get("held_out_sequences", [])) != sorted(summary["test"]):
            raise ProvenanceError(
                f"{path}: policy {p} held out {m.get('held_out_sequences')}, the summary's test videos are "
                f"{summary['test']}"
            )
    records = {json.dumps([m["distill"], _data_folders(m)], sort_keys=True, default=str) for _, m in members}
    if len(records) != 1:
        raise ConfigError(
            f"{path}: the seed policies {[str(p) for p in paths]} differ in distill config or rows"
        )
    meta = members[0][1]
    folders = _data_folders(meta)
    key = json.dumps(folders, sort_keys=True)
    if key not in cache:
        cache[key] = _load_checked(folders)
    record = dict(meta["distill"])
    try:
        cfg = DistillConfig(**{**record, "state_features": tuple(record.get("state_features", ()))})
    except TypeError as err:  # a record written by another version of DistillConfig
        raise InputValidationError(
            f"{path}: its policies' distill record does not fit DistillConfig ({err})"
        ) from err
    test = set(summary["test"])
    rows = build_rows([(s, r) for s, r in cache[key] if s in test], cfg, flip=False)
    ensemble = MeanQNetwork([q for q, _ in members])
    out = {}
    for video in summary["test"]:
        mine = [r for r in rows if r.sequence == video]
        if not mine:
            raise InputValidationError(f"no held-out rows for {video} in {[f['path'] for f in folders]}")
        g = offline_gain(ensemble, mine)
        try:
            seeds = [float(s["per_video"][video]["gain_agent"]) for s in summary["test_offline"]]
        except (KeyError, TypeError) as err:
            raise InputValidationError(
                f"{path}: test_offline holds no gain_agent for {video} ({err})"
            ) from err
        out[video] = {
            "ensemble": g["gain_agent"],
            "seed_mean": float(np.mean(seeds)),
            "farthest": g["gain_farthest"],
            "span": g["gain_span"],
            "oracle": g["gain_oracle"],
        }
    return out


def run_scores(run_dir: str | Path) -> pd.DataFrame:
    """:data:`SCORE_COLUMNS` per held-out video (index "video/1": the bootstrap's sample keys) of
    every ``fold<k>/summary.json`` under ``run_dir``; each video is held out by exactly one fold."""
    summaries = sorted(Path(run_dir).glob("fold*/summary.json"))
    if not summaries:
        raise InputValidationError(f"no fold<k>/summary.json under {run_dir} (a distill_agent.py out_dir)")
    cache: dict[str, list[tuple[str, dict[str, np.ndarray]]]] = {}
    per: dict[str, dict[str, float]] = {}
    for path in summaries:
        scores = _fold_scores(path, cache)
        twice = sorted(set(scores) & set(per))
        if twice:
            raise InputValidationError(f"videos {twice} are held out by two folds of {run_dir}")
        per.update(scores)
    table = pd.DataFrame.from_dict(per, orient="index")[list(SCORE_COLUMNS)]
    table.index = [f"{v}/1" for v in table.index]
    return table.sort_index()


def _interval(mean: float, lo: float, hi: float) -> str:
    return f"{100 * mean:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"


def ablation_table(
    scores: Mapping[str, pd.DataFrame],
    reference: str,
    column: str = "ensemble",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per variant (``scores``: :func:`run_scores` of each) on the videos all share.

    Columns (x100 one-step J&F gain; intervals: paired 95% bootstrap over videos): the variant's
    ``column`` gain, the seed-mean gain, minus the ``reference`` variant, minus Farthest, share of the
    oracle's gain (gain / oracle gain, a ratio of means) and the Farthest-to-oracle gap closed. The
    last rows are Farthest, span-error and the oracle themselves (identical rows in every variant:
    checked, they are the same held-out rounds).
    """
    if reference not in scores:
        raise ConfigError(f"reference variant {reference!r} not among {sorted(scores)}")
    if column not in ("ensemble", "seed_mean"):
        raise ConfigError(f"column must be 'ensemble' or 'seed_mean', got {column!r}")
    videos = sorted(set.intersection(*(set(s.index) for s in scores.values())))
    if not videos:
        raise InputValidationError("the variants share no held-out video")
    base = scores[reference].loc[videos]
    for name, s in scores.items():
        for fixed in ("farthest", "span", "oracle"):
            if not np.allclose(s.loc[videos, fixed], base[fixed]):
                raise InputValidationError(
                    f"variant {name!r} was scored on other rows ({fixed} gains differ)"
                )
    series = {name: s.loc[videos, column] for name, s in scores.items()}
    series |= {"Farthest": base["farthest"], "span-error": base["span"], "oracle": base["oracle"]}
    series["(no annotation)"] = base["oracle"] * 0.0
    share = gap_closed(series, "(no annotation)", "oracle", n_boot=n_boot, seed=seed)
    gap = gap_closed(series, "Farthest", "oracle", n_boot=n_boot, seed=seed)
    rows = {}
    for name in [*scores, "Farthest", "span-error", "oracle"]:
        row = {
            "gain x100": 100 * float(series[name].mean()),
            "seed mean x100": 100 * float(scores[name].loc[videos, "seed_mean"].mean())
            if name in scores
            else None,
            f"minus {reference}": _interval(*paired_bootstrap(series[name], series[reference], n_boot, seed)),
            "minus Farthest": _interval(*paired_bootstrap(series[name], series["Farthest"], n_boot, seed)),
        }
        for label, t in (("share of oracle gain", share), ("gap closed", gap)):
            r = t.loc[name]
            row[label] = f"{r['gap closed']:.2f} [{r['gap 95% lo']:.2f}, {r['gap 95% hi']:.2f}]"
        row["videos"] = len(videos)
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "variant"
    return out


def write_report(scores: Mapping[str, pd.DataFrame], table: pd.DataFrame, out: Path, title: str) -> Path:
    """``table.md`` (the table), ``per_video.csv`` (every variant's scores) under ``out``."""
    from ivos_rl.reporting import to_markdown
    from ivos_rl.utils.io import atomic_write_text, ensure_writable_dir

    folder = ensure_writable_dir(out)
    text = f"{title}\n\n{to_markdown(table.fillna(''), '.2f')}\n"
    atomic_write_text(folder / "table.md", text)
    frame = pd.concat(dict(scores), axis=1)
    atomic_write_text(folder / "per_video.csv", frame.to_csv())
    return folder / "table.md"


def variant_dirs(runs_dir: str | Path, variants: Sequence[str] | None, reference: str) -> dict[str, Path]:
    """``{variant: folder}``: the named subfolders of ``runs_dir`` (default: every subfolder holding
    fold summaries, the reference first, then by name)."""
    root = Path(runs_dir)
    if variants is None:
        found = sorted(p.parent.parent.name for p in root.glob("*/fold*/summary.json"))
        variants = sorted(set(found), key=lambda v: (v != reference, v))
    if not variants:
        raise InputValidationError(
            f"no <variant>/fold<k>/summary.json under {root} (distill_agent.py out_dirs)"
        )
    missing = [v for v in variants if not (root / v).is_dir()]
    if missing:
        raise InputValidationError(f"no run folder for variants {missing} under {root}")
    return {v: root / v for v in variants}


def report(cfg: Any) -> pd.DataFrame:
    """Entry point of ``scripts/distill_report.py`` (``configs/distill_report.yaml``)."""
    variants = None if cfg.variants is None else [str(v) for v in cfg.variants]
    dirs = variant_dirs(cfg.runs_dir, variants, str(cfg.reference))
    scores = {name: run_scores(folder) for name, folder in dirs.items()}
    table = ablation_table(scores, str(cfg.reference), str(cfg.column), int(cfg.n_boot))
    title = (
        f"Held-out one-step gain of each variant's pick ({cfg.column}), {len(table.index) - 3} variants, "
        f"{int(table['videos'].iloc[0])} videos, runs {cfg.runs_dir}"
    )
    path = write_report(scores, table, Path(str(cfg.output_dir)), title)
    print(path.read_text())
    return table
