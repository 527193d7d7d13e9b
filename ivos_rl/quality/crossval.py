"""Cross-validation of the feature-only quality model over video folds, with nested recipe choice.

For each outer fold (the shared folds of :func:`ivos_rl.data.splits.video_folds`) the recipe is
chosen among ``candidates`` on the training folds only (train on three of them, validate on the
next one), the model is refitted on all training folds with that recipe, and the test fold is
scored: PCC / MAE / MSE per backend, reliability and ECE, interval coverage, and the stop signal
(its rule fitted on the training trajectories). Nothing is selected on a test fold. An optional
monotone level recalibration (:mod:`ivos_rl.quality.level_calibration`) is fitted on the chosen
recipe's inner validation estimates and applied to the outer fold; the raw estimates are kept too,
so one run reports both. Degraded rows (:mod:`ivos_rl.quality.degraded`) are trained on but never
scored as the model's figures: recipe scores, per-fold and pooled metrics, the level map and the stop
signal use the original rows only; the degraded rows get their own out-of-fold summary per kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ivos_rl.data.splits import check_disjoint
from ivos_rl.errors import ConfigError
from ivos_rl.quality.assessment import quality_metrics, within_group_spearman
from ivos_rl.quality.calibration import coverage, reliability
from ivos_rl.quality.feature_gbt import GBTQualityModel, Recipe, fit_model
from ivos_rl.quality.feature_model import FeatureQualityModel, uncertainty_scale
from ivos_rl.quality.feature_rows import FeatureRows
from ivos_rl.quality.level_calibration import LevelCalibration, fit_level_calibration
from ivos_rl.quality.stop import StopRule, evaluate_stop, fit_stop_rule, trajectories
from ivos_rl.utils.logging import get_logger

log = get_logger(__name__)


def backend_label(fingerprint: str) -> str:
    """Short backend name from a fingerprint: class name without ``Backend``, plus ``-v<version>``."""
    try:
        info = json.loads(fingerprint)
    except json.JSONDecodeError:
        return fingerprint[:16]
    name = str(info.get("class", "")).rsplit(".", 1)[-1].removesuffix("Backend").lower() or fingerprint[:16]
    return f"{name}-v{info['version']}" if info.get("version") is not None else name


Model = FeatureQualityModel | GBTQualityModel
CRITERIA = ("pcc", "pcc-mae", "spearman")
# select_by spearman: a candidate whose mean inner PCC is below the first candidate's minus this is out
SPEARMAN_PCC_SLACK = 0.01


def fit_rows(rows: FeatureRows, sel: np.ndarray, cfg: Recipe, seed: int) -> Model:
    """Fit recipe ``cfg`` on rows ``sel``, with their round groups when its ranking term needs them."""
    groups = rows.round_groups()[sel] if getattr(cfg, "rank_weight", 0.0) > 0 else None
    return fit_model(rows.x[sel], rows.jf[sel], rows.names, cfg, seed=seed, groups=groups)


def _score(pred: np.ndarray, target: np.ndarray, criterion: str, groups: np.ndarray) -> float:
    """Validation score of a recipe (higher is better): PCC, PCC - MAE (both targets of #15), or the
    within-round Spearman (``groups``: the rows' round groups; the order the Worst rule uses)."""
    if criterion == "spearman":
        return within_group_spearman(pred, target, groups)
    m = quality_metrics(pred, target)
    return float(m["pcc"] - (m["mae"] if criterion == "pcc-mae" else 0.0))


def _pick(scores: list[float], pccs: list[float], criterion: str) -> tuple[int, list[float]]:
    """Index of the best candidate and the scores it was chosen on: under ``spearman`` a candidate
    whose mean inner PCC falls more than :data:`SPEARMAN_PCC_SLACK` below the first candidate's (the
    reference recipe, e.g. no ranking term) is out (its score becomes NaN)."""
    if criterion == "spearman":
        floor = pccs[0] - SPEARMAN_PCC_SLACK
        keep = [i == 0 or p >= floor for i, p in enumerate(pccs)]
        scores = [s if k else float("nan") for s, k in zip(scores, keep, strict=True)]
    return int(np.nanargmax(scores)), scores


def choose_recipe(
    rows: FeatureRows,
    train_folds: Sequence[Sequence[str]],
    candidates: Sequence[Recipe],
    seed: int = 0,
    score_backend: str | None = None,
    n_val: int | None = None,
    criterion: str = "pcc",
) -> tuple[int, list[float], float, tuple[np.ndarray, np.ndarray]]:
    """(index, scores, uncertainty scale, (validation estimates, targets)) of the candidate with the
    best mean validation score (``criterion``: PCC, PCC - MAE, or the within-round Spearman among
    the candidates that keep the first one's PCC within :data:`SPEARMAN_PCC_SLACK`) when each of the
    first ``n_val`` training folds (all when None) is held out in turn from the others (inner
    cross-validation);
    ``score_backend`` restricts the scoring rows to one backend. The scale
    (:func:`uncertainty_scale`) and the returned estimates are the chosen candidate's validation
    rows (what a level recalibration is fitted on)."""
    scores, pccs, scales, vals = [], [], [], []
    groups = rows.round_groups() if criterion == "spearman" else np.zeros(len(rows), np.int64)
    for cfg in candidates:
        fold_scores, fold_pccs, val = [], [], []
        for fold in train_folds[:n_val]:
            val_sel = np.isin(rows.sequence, fold)
            train_sel = ~val_sel & np.isin(rows.sequence, [s for f in train_folds for s in f])
            model = fit_rows(rows, train_sel, cfg, seed)
            score_sel = val_sel & backend_mask(rows, score_backend) & rows.original
            pred, sd = model.predict_rows(rows.x[score_sel], rows.names)
            fold_scores.append(_score(pred, rows.jf[score_sel], criterion, groups[score_sel]))
            fold_pccs.append(quality_metrics(pred, rows.jf[score_sel])["pcc"])
            val.append((pred, sd, rows.jf[score_sel]))
        scores.append(float(np.mean(fold_scores)))
        pccs.append(float(np.mean(fold_pccs)))
        v_pred, v_sd, v_target = (np.concatenate(v) for v in zip(*val, strict=True))
        scales.append(uncertainty_scale(v_pred, v_sd, v_target))
        vals.append((v_pred, v_target))
    pick, scores = _pick(scores, pccs, criterion)
    log.info("inner choice (%s): scores %s, inner PCC %s -> candidate %d", criterion, scores, pccs, pick)
    return pick, scores, scales[pick], vals[pick]


def backend_mask(rows: FeatureRows, backend: str | None) -> np.ndarray:
    """Rows produced by the backend labelled ``backend`` (all rows for None; ConfigError if none)."""
    if backend is None:
        return np.ones(len(rows), bool)
    labels = np.array([backend_label(b) for b in np.unique(rows.backend)])
    keep = np.unique(rows.backend)[labels == backend]
    if not keep.size:
        raise ConfigError(f"no feature rows from backend {backend!r} (have {sorted(set(labels))})")
    return np.isin(rows.backend, keep)


def cross_validate(
    rows: FeatureRows,
    folds: Sequence[Sequence[str]],
    candidates: Sequence[Recipe],
    *,
    seed: int = 0,
    score_backend: str | None = "propagation",
    thresholds: Sequence[float] = (0.002, 0.005, 0.01, 0.02),
    inner_folds: int | None = 2,
    on_fold: Callable[[int, Model, StopRule, LevelCalibration], None] | None = None,
    criterion: str = "pcc",
    level_calibration: str = "none",
) -> dict[str, Any]:
    """Outer cross-validation; returns per-fold rows, pooled metrics and out-of-fold predictions
    (``oof_pred`` recalibrated when ``level_calibration`` is not ``none``, ``oof_raw`` before).

    ``inner_folds`` bounds how many training folds serve as validation in the recipe choice (CPU
    budget; None: all of them); ``criterion`` (:data:`CRITERIA`) scores the candidates there.
    ``on_fold(i, model, stop_rule, calibration)`` receives each outer fold's model (trained without
    fold i's videos) and its level map as soon as they are fitted, e.g. to save them.
    """
    if not candidates:
        raise ConfigError("cross_validate needs at least one candidate recipe")
    if criterion not in CRITERIA:
        raise ConfigError(f"recipe criterion must be one of {CRITERIA}, got {criterion!r}")
    pred = np.full(len(rows), np.nan, np.float32)
    raw = np.full(len(rows), np.nan, np.float32)
    sd = np.full(len(rows), np.nan, np.float32)
    per_fold, stop_rows, chosen = [], [], []
    for i, test in enumerate(folds):
        train_folds = [f for j, f in enumerate(folds) if j != i]
        check_disjoint([s for f in train_folds for s in f], test, f"quality CV fold {i}")
        pick, scores, scale, (val_pred, val_target) = choose_recipe(
            rows, train_folds, candidates, seed, score_backend, inner_folds, criterion
        )
        calib = fit_level_calibration(val_pred, val_target, level_calibration)
        chosen.append(
            {"fold": i, "recipe": pick, "inner_pcc": scores, "criterion": criterion, "sd_scale": scale,
             "level_calibration": calib.to_dict()}
        )
        train_sel = np.isin(rows.sequence, [s for f in train_folds for s in f])
        test_sel = np.isin(rows.sequence, test)
        model = fit_rows(rows, train_sel, candidates[pick], seed)
        model.sd_scale.fill_(scale)
        raw[test_sel], sd[test_sel] = model.predict_rows(rows.x[test_sel], rows.names)
        pred[test_sel] = calib.apply(raw[test_sel]) if calib.kind != "none" else raw[test_sel]
        # stop rule: fitted and evaluated on the scored backend's trajectories (gains are backend-specific),
        # on the estimates the fold's estimator gives (recalibrated when it is); original rows only
        on_backend = backend_mask(rows, score_backend) & rows.original
        fit_pred, _ = model.predict_rows(rows.x[train_sel & on_backend], rows.names)
        fit_pred = calib.apply(fit_pred) if calib.kind != "none" else fit_pred
        rule = fit_stop_rule(_worst(trajectories(rows.subset(train_sel & on_backend), fit_pred)))
        if on_fold is not None:
            on_fold(i, model, rule, calib)
        test_trajs = _worst(trajectories(rows.subset(test_sel & on_backend), pred[test_sel & on_backend]))
        stop_rows.append(
            {"fold": i, "rule": rule.to_dict(), "table": evaluate_stop(rule, test_trajs, thresholds)}
        )
        for b in np.unique(rows.backend[test_sel]):
            sel = test_sel & (rows.backend == b) & rows.original
            per_fold.append(
                {"fold": i, "backend": backend_label(str(b)), **quality_metrics(pred[sel], rows.jf[sel])}
            )
        log.info("fold %d: recipe %d, %s", i, pick, per_fold[-1])
    out = {
        "per_fold": per_fold,
        "pooled": _pooled(rows, pred, sd),
        "degraded": degraded_summary(rows, pred),
        "recipes": chosen,
        "stop": stop_rows,
        "oof_pred": pred,
        "oof_raw": raw,
        "oof_sd": sd,
    }
    if level_calibration != "none":
        out["pooled_raw"] = _pooled(rows, raw, sd)
    return out


def _worst(trajs: list[Any]) -> list[Any]:
    """Trajectories that follow the Worst rule (the stop signal is for a recommender's next choice)."""
    return [t for t in trajs if t.strategy == "worst"] or trajs


def degraded_summary(rows: FeatureRows, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Per degraded kind: rows, mean estimate, mean true J&F, MAE, and the worst video's mean estimate
    (what a model says about failed predictions it never saw the video of; {} without such rows)."""
    out = {}
    for kind in np.unique(rows.degraded[~rows.original]):
        sel = (rows.degraded == kind) & np.isfinite(pred)
        if not sel.any():
            continue
        per_video = [float(pred[sel & (rows.sequence == s)].mean()) for s in np.unique(rows.sequence[sel])]
        out[str(kind)] = {
            "n": int(sel.sum()),
            "videos": len(per_video),
            "mean_pred": float(pred[sel].mean()),
            "mean_true": float(rows.jf[sel].mean()),
            "mae": float(np.abs(pred[sel] - rows.jf[sel]).mean()),
            "max_video_pred": max(per_video),
        }
    return out


def _pooled(rows: FeatureRows, pred: np.ndarray, sd: np.ndarray) -> dict[str, Any]:
    """Out-of-fold metrics per backend pooled over folds (original rows), with calibration and
    per-video PCC."""
    out: dict[str, Any] = {}
    for b in np.unique(rows.backend):
        sel = (rows.backend == b) & np.isfinite(pred) & rows.original
        per_video = {
            str(s): quality_metrics(pred[sel & (rows.sequence == s)], rows.jf[sel & (rows.sequence == s)])[
                "pcc"
            ]
            for s in np.unique(rows.sequence[sel])
        }
        out[backend_label(str(b))] = {
            **quality_metrics(pred[sel], rows.jf[sel]),
            "reliability": reliability(pred[sel], rows.jf[sel]),
            "coverage80": coverage(pred[sel], sd[sel], rows.jf[sel], 0.8),
            "per_video_pcc": per_video,
        }
    return out
