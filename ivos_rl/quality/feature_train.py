"""Entry point of ``scripts/train_quality_features.py``: cross-validate, then ship a feature model.

Steps: load the feature rows of ``cfg.data.dirs`` (plus the degraded rows of ``cfg.data.degraded_dirs``,
:mod:`ivos_rl.quality.degraded`: trained on, never scored as the model's figures); cross-validate
over the shared video folds (:func:`ivos_rl.data.splits.video_folds`, nested recipe choice, see
:mod:`ivos_rl.quality.crossval`);
refit on every video with the recipe the outer folds chose most often (ties: the earlier candidate);
fit the stop rule on all Worst trajectories; write the checkpoint (backend fingerprints and split
inside), a JSON report and a reliability-diagram PNG next to it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ivos_rl.data.splits import video_folds
from ivos_rl.errors import ConfigError
from ivos_rl.quality.assessment import write_predictions
from ivos_rl.quality.calibration import format_reliability
from ivos_rl.quality.context import rows_with_context
from ivos_rl.quality.crossval import Model, backend_label, backend_mask, cross_validate, fit_rows
from ivos_rl.quality.feature_estimator import save_feature_checkpoint
from ivos_rl.quality.feature_gbt import Recipe, recipe_from_dict
from ivos_rl.quality.feature_model import uncertainty_scale
from ivos_rl.quality.feature_rows import FeatureRows, load_feature_rows
from ivos_rl.quality.level_calibration import KINDS as LEVEL_KINDS
from ivos_rl.quality.level_calibration import LevelCalibration, fit_level_calibration
from ivos_rl.quality.stop import StopRule, fit_stop_rule, trajectories
from ivos_rl.utils.io import atomic_path, atomic_write_json
from ivos_rl.utils.logging import get_logger

log = get_logger(__name__)


def _candidates(cfg: DictConfig) -> list[Recipe]:
    """Recipes of ``cfg.candidates`` (``kind: gbt`` -> trees, otherwise the MLP ensemble)."""
    raw = OmegaConf.to_container(cfg.candidates, resolve=True)
    if not isinstance(raw, list) or not raw or not all(isinstance(c, dict) for c in raw):
        raise ConfigError(f"candidates must be a non-empty list of feature-model recipes, got {raw!r}")
    return [recipe_from_dict(c) for c in raw]  # type: ignore[arg-type]


def format_folds(per_fold: list[dict[str, Any]]) -> str:
    """Plain-text per-fold table (fold, backend, PCC, MAE, MSE, n)."""
    lines = ["fold backend       PCC    MAE    MSE      n"]
    for r in per_fold:
        lines.append(
            f"{r['fold']:4d} {r['backend']:<12} {r['pcc']:.3f}  {r['mae']:.3f}  {r['mse']:.4f} {r['n']:6d}"
        )
    return "\n".join(lines)


def _plot_reliability(pooled: dict[str, Any], path: Path) -> None:
    """Reliability diagram (one line per backend) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, m in pooled.items():
        bins = m["reliability"]["bins"]
        ax.plot(
            [b["pred"] for b in bins],
            [b["true"] for b in bins],
            "o-",
            label=f"{name} (ECE {m['reliability']['ece']:.3f})",
        )
    ax.set(
        xlabel="estimated J&F", ylabel="true J&F", xlim=(0, 1), ylim=(0, 1), title="out-of-fold reliability"
    )
    ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _folds(cfg: DictConfig, seqs: list[str]) -> list[list[str]]:
    """The shared folds of ``cfg.folds.sequences`` (all the dataset's videos; null: those with rows),
    restricted to the videos that have rows (a partial generation keeps every video in its fold)."""
    names = list(cfg.folds.get("sequences") or seqs)
    unknown = sorted(set(seqs) - set(names))
    if unknown:
        raise ConfigError(f"feature rows of videos {unknown} are not in folds.sequences")
    folds = [
        [s for s in f if s in set(seqs)]
        for f in video_folds(names, int(cfg.folds.n), seed=int(cfg.folds.seed))
    ]
    if any(not f for f in folds):
        raise ConfigError(f"a cross-validation fold has no video with feature rows: {folds}")
    return folds


def _exclude(rows: FeatureRows, names: Sequence[str] | None) -> tuple[FeatureRows, list[str]]:
    """``rows`` without every row of the videos ``names`` (a held-out test fold: none of its rows,
    of any backend, reach training); ConfigError for a name that has no row (a typo would
    otherwise leak a test video silently)."""
    held_out = sorted(str(n) for n in (names or []))
    missing = sorted(set(held_out) - set(rows.sequence.tolist()))
    if missing:
        raise ConfigError(f"data.exclude_sequences names videos without feature rows: {missing}")
    keep = ~np.isin(rows.sequence, held_out)
    if not keep.any():
        raise ConfigError("data.exclude_sequences leaves no feature row to train on")
    return rows.subset(keep), held_out


def _drop_columns(rows: FeatureRows, patterns: Sequence[str] | None) -> tuple[FeatureRows, list[str]]:
    """``rows`` without the feature columns matching any of ``patterns`` (shell-style, e.g.
    ``diag_*``): an ablation of a signal group from the same rows (v2.1 from the rows v2.3 was
    trained on). ConfigError for a pattern that matches no column (a typo would otherwise train the
    unablated model silently) or one that leaves no column."""
    patterns = [str(p) for p in (patterns or [])]
    unmatched = [p for p in patterns if not any(fnmatchcase(n, p) for n in rows.names)]
    if unmatched:
        raise ConfigError(f"data.drop_columns {unmatched} match no feature column of {list(rows.names)}")
    drop = [any(fnmatchcase(n, p) for p in patterns) for n in rows.names]
    if all(drop):
        raise ConfigError(f"data.drop_columns {patterns} leave no feature column")
    if not any(drop):
        return rows, []
    keep = [i for i, d in enumerate(drop) if not d]
    x = np.ascontiguousarray(rows.x[:, keep])
    dropped = [n for n, d in zip(rows.names, drop, strict=True) if d]
    return dataclasses.replace(rows, x=x, names=tuple(rows.names[i] for i in keep)), dropped


def _fold_saver(
    fold_dir: Path, rows: FeatureRows, folds: list[list[str]], held_out: list[str], cfg: DictConfig
) -> Callable[[int, Model, StopRule, LevelCalibration], None]:
    """Writes each outer fold's model as ``fold_dir/fold<i>.pt``: a feature checkpoint whose split
    names the fold's videos as held out (a video's estimate can then always come from the model that
    never saw it, e.g. for Wild states or Worst-Wild on held-out folds)."""

    def save(i: int, model: Model, rule: StopRule, calib: LevelCalibration) -> None:
        train = sorted(s for j, f in enumerate(folds) if j != i for s in f)
        split = {
            "train": train,
            "held_out": sorted({*folds[i], *held_out}),
            "cv_folds": folds,
            "folds_seed": int(cfg.folds.seed),
            "fold": i,
        }
        path = save_feature_checkpoint(
            fold_dir / f"fold{i}.pt",
            model,
            stop_rule=rule,
            backends=np.unique(rows.backend[np.isin(rows.sequence, train)]).tolist(),
            split=split,
            metrics={"recipe": model.config.to_dict(), "fold": i},
            level_calibration=calib,
        )
        log.info("fold %d model (trained without %s) -> %s", i, folds[i], path)

    return save


def load_rows(cfg: DictConfig) -> FeatureRows:
    """The rows of ``cfg.data.dirs`` plus only the degraded rows of ``cfg.data.degraded_dirs`` (their
    original rows repeat rows of ``data.dirs``); ConfigError when a degraded folder holds none."""
    rows = load_feature_rows(list(cfg.data.dirs))
    extra = list(cfg.data.get("degraded_dirs") or [])
    if not extra:
        return rows
    more = load_feature_rows(extra)
    if more.original.all():
        raise ConfigError(f"data.degraded_dirs hold no degraded feature rows: {extra}")
    return FeatureRows.concatenate([rows, more.subset(~more.original)])


def _write_oof(
    out: Path, rows: FeatureRows, pred: np.ndarray, sd: np.ndarray, folds: list[list[str]], tag: str = ""
) -> None:
    """``<out><tag>.oof.npz``: out-of-fold estimates of the original rows (ivos_rl.quality.cv_report),
    and ``<out><tag>.degraded.oof.npz`` of the degraded rows (with their ``degraded`` kind) if any."""
    fold = np.full(len(rows), -1)
    for i, f in enumerate(folds):
        fold[np.isin(rows.sequence, f)] = i
    done = np.isfinite(pred)
    for sel, suffix in ((done & rows.original, ".oof.npz"), (done & ~rows.original, ".degraded.oof.npz")):
        if sel.any():
            extra = {} if suffix == ".oof.npz" else {"degraded": rows.degraded[sel]}
            write_predictions(
                out.with_suffix(tag + suffix), rows.subset(sel), rows.backend[sel], pred[sel], sd[sel],
                fold[sel], extra=extra,
            )


def train_features(cfg: DictConfig) -> dict[str, Any]:
    """Cross-validate (``cfg.cv``) and ship (``cfg.ship``) the feature model; returns the report."""
    torch.set_num_threads(int(cfg.get("num_threads") or 1))
    level_kind = str(cfg.get("level_calibration", "none"))
    if level_kind not in LEVEL_KINDS:
        raise ConfigError(f"level_calibration must be one of {LEVEL_KINDS}, got {level_kind!r}")
    if level_kind != "none" and not cfg.cv:
        raise ConfigError("level_calibration is fitted on out-of-fold estimates: it needs cv=true")
    rows, held_out = _exclude(load_rows(cfg), cfg.data.get("exclude_sequences"))
    rows, dropped = _drop_columns(rows, cfg.data.get("drop_columns"))
    seqs = sorted(set(rows.sequence.tolist()))
    folds = _folds(cfg, seqs)
    candidates = _candidates(cfg)
    if any(getattr(c, "context", False) for c in candidates):
        rows = rows_with_context(rows)  # every round's video context (ivos_rl.quality.context)
    report: dict[str, Any] = {
        "n_rows": len(rows),
        "n_videos": len(seqs),
        "excluded": held_out,
        "dropped_columns": dropped,
        "folds": folds,
        "backends": {backend_label(b): int((rows.backend == b).sum()) for b in np.unique(rows.backend)},
        "degraded_rows": dict(Counter(rows.degraded[~rows.original].tolist())),
        "candidates": [c.to_dict() for c in candidates],
    }
    pick, sd_scale = 0, 1.0
    out = Path(cfg.output)
    calib = LevelCalibration()
    if cfg.cv:
        fold_dir = cfg.get("fold_dir")
        cv = cross_validate(
            rows,
            folds,
            candidates,
            seed=int(cfg.seed),
            score_backend=cfg.score_backend,
            thresholds=list(cfg.stop_thresholds),
            inner_folds=cfg.inner_folds,
            on_fold=None if not fold_dir else _fold_saver(Path(fold_dir), rows, folds, held_out, cfg),
            criterion=str(cfg.get("select_by", "pcc")),
            level_calibration=level_kind,
        )
        oof_pred, oof_raw, oof_sd = cv.pop("oof_pred"), cv.pop("oof_raw"), cv.pop("oof_sd")
        report["cv"] = cv
        done = np.isfinite(oof_pred) & rows.original
        # out-of-fold rows for the side-by-side report (ivos_rl.quality.cv_report)
        _write_oof(out, rows, oof_pred, oof_sd, folds)
        if level_kind != "none":  # the same rows before the level map (before/after from one run)
            _write_oof(out, rows, oof_raw, oof_sd, folds, tag=".raw")
            # the shipped model's map: fitted on every video's out-of-fold raw estimates (scored backend)
            on = done & backend_mask(rows, cfg.score_backend)
            calib = fit_level_calibration(oof_raw[on], rows.jf[on], level_kind)
        # out-of-fold residuals of every video (original rows) set the shipped model's uncertainty scale
        sd_scale = uncertainty_scale(oof_pred[done], oof_sd[done], rows.jf[done])
        pick = Counter(r["recipe"] for r in cv["recipes"]).most_common(1)[0][0]
        print(format_folds(cv["per_fold"]))
        for name, m in cv["pooled"].items():
            print(
                f"{name}: pooled PCC {m['pcc']:.3f} MAE {m['mae']:.3f}, "
                f"80% interval coverage {m['coverage80']:.3f}"
            )
            print(format_reliability(m["reliability"]))
        for kind, d in cv["degraded"].items():
            print(
                f"degraded {kind}: {d['n']} rows / {d['videos']} videos, mean estimate {d['mean_pred']:.3f} "
                f"(true {d['mean_true']:.3f}, MAE {d['mae']:.3f}, highest video {d['max_video_pred']:.3f})"
            )
        _plot_reliability(cv["pooled"], out.with_suffix(".reliability.png"))
    report["recipe"] = pick
    if cfg.ship:
        model = fit_rows(rows, np.ones(len(rows), bool), candidates[pick], seed=int(cfg.seed))
        model.sd_scale.fill_(sd_scale)
        on_backend = backend_mask(rows, cfg.score_backend) & rows.original
        fitted, _ = model.predict_rows(rows.x[on_backend], rows.names)
        fitted = calib.apply(fitted) if calib.kind != "none" else fitted
        trajs = [t for t in trajectories(rows.subset(on_backend), fitted) if t.strategy == "worst"]
        rule = fit_stop_rule(trajs)
        split = {"train": seqs, "held_out": held_out, "cv_folds": folds, "folds_seed": int(cfg.folds.seed)}
        save_feature_checkpoint(
            out,
            model,
            stop_rule=rule,
            backends=np.unique(rows.backend).tolist(),
            split=split,
            metrics={
                "recipe": candidates[pick].to_dict(),
                "cv_per_fold": report.get("cv", {}).get("per_fold"),
            },
            level_calibration=calib,
        )
        report["level_calibration"] = calib.to_dict()
        report["stop_rule"] = rule.to_dict()
        report["sd_scale"] = sd_scale
        report["checkpoint"] = str(out)
    atomic_write_json(out.with_suffix(".report.json"), report)
    log.info("feature quality model: recipe %d, report %s", pick, out.with_suffix(".report.json"))
    return report
