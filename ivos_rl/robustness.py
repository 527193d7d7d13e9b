"""How much do strategy results depend on the simulated user? Strategies over M annotators.

RClicks showed that annotation cost varies by 3-79% across realistic groups of clickers, yet
frame recommenders are compared with one idealised robot. :func:`run_robustness` evaluates every
strategy once per annotator of a seeded population (:mod:`ivos_rl.annotators`) with the one
evaluation loop (:func:`ivos_rl.evaluation.evaluate`), then reports per strategy the mean, std
and 5-95% range of the round-AUC over annotators, and whether the *ranking* of the strategies
survives a change of annotator:

* Kendall's W (coefficient of concordance, tie-corrected): 1 = every annotator ranks the
  strategies identically, 0 = no agreement;
* the mean Spearman rho between the rankings of every pair of annotators;
* the fraction of annotators whose ranking is the majority (most frequent) ranking, and the
  fraction whose best strategy is the consensus best (lowest mean rank).

Each (annotator, strategy) run is written under ``annotators/<i>/<label>/`` by ``evaluate``, so
an interrupted robustness study resumes where it stopped.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from scipy.stats import rankdata

from ivos_rl.annotators import build_annotators
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.evaluation import EvaluationConfig, evaluate
from ivos_rl.reporting import gap_closed, gap_markdown, per_sample_auc, to_markdown
from ivos_rl.utils import seed_everything
from ivos_rl.utils.io import atomic_path, atomic_write_json, atomic_write_text
from ivos_rl.utils.logging import get_logger

__all__ = [
    "auc_statistics",
    "kendalls_w",
    "mean_spearman",
    "modal_ranking_fraction",
    "plot_auc_distributions",
    "rank_matrix",
    "rank_stability",
    "run_robustness",
    "top1_agreement",
]

_log = get_logger(__name__)


# ----------------------------------------------------------------------------- statistics


def _check_matrix(values: Any, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise InputValidationError(f"{name} must be (annotators, strategies) with both >= 1, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputValidationError(f"{name} contains NaN or inf")
    return a


def rank_matrix(auc: Any) -> np.ndarray:
    """Per annotator (row), the rank of each strategy (column): 1 = highest AUC, ties averaged."""
    a = _check_matrix(auc, "auc")
    return np.vstack([rankdata(-row, method="average") for row in a])


def kendalls_w(ranks: Any) -> float:
    """Kendall's coefficient of concordance W of (m raters, n items) ranks, with tie correction.

    W = 12 S / (m^2 (n^3 - n) - m sum_i T_i), S the squared deviations of the items' rank sums
    from their mean, T_i = sum over tie groups of rater i of (t^3 - t). NaN when undefined
    (fewer than 2 items, or every rater ties every item).
    """
    r = _check_matrix(ranks, "ranks")
    m, n = r.shape
    if n < 2:
        return float("nan")
    totals = r.sum(axis=0)
    s = float(((totals - totals.mean()) ** 2).sum())
    ties = 0.0
    for row in r:
        counts = np.array(list(Counter(row.tolist()).values()), dtype=np.float64)
        ties += float((counts**3 - counts).sum())
    denom = m**2 * (n**3 - n) - m * ties
    if denom <= 0:
        return float("nan")
    return 12.0 * s / denom


def mean_spearman(ranks: Any) -> float:
    """Mean Spearman rho over all pairs of raters (Pearson correlation of their rank vectors).

    Pairs where one rater ties every item have no correlation and are skipped; NaN when no pair
    remains (fewer than 2 raters or 2 items).
    """
    r = _check_matrix(ranks, "ranks")
    rhos = []
    for i, j in itertools.combinations(range(r.shape[0]), 2):
        a, b = r[i] - r[i].mean(), r[j] - r[j].mean()
        norm = float(np.sqrt((a**2).sum() * (b**2).sum()))
        if norm > 0:
            rhos.append(float((a * b).sum()) / norm)
    return float(np.mean(rhos)) if rhos else float("nan")


def modal_ranking_fraction(ranks: Any) -> tuple[float, tuple[float, ...]]:
    """Fraction of raters giving the most frequent ranking, and that ranking (first one on ties)."""
    r = _check_matrix(ranks, "ranks")
    keys = [tuple(float(v) for v in row) for row in r]
    counts = Counter(keys)
    best = max(counts.values())
    modal = next(k for k in keys if counts[k] == best)
    return best / len(keys), modal


def top1_agreement(ranks: Any) -> float:
    """Fraction of raters whose top strategy (rank 1, alone or tied) is the consensus best.

    The consensus best is the strategy with the lowest mean rank (the first on ties).
    """
    r = _check_matrix(ranks, "ranks")
    best = int(np.argmin(r.mean(axis=0)))
    return float(np.mean(r[:, best] == r.min(axis=1)))


def rank_stability(auc: Any) -> dict[str, Any]:
    """Every rank-agreement measure of an (annotators, strategies) AUC matrix."""
    ranks = rank_matrix(auc)
    frac, modal = modal_ranking_fraction(ranks)
    return {
        "kendalls_w": kendalls_w(ranks),
        "mean_spearman": mean_spearman(ranks),
        "modal_ranking_fraction": frac,
        "modal_ranking": list(modal),
        "top1_agreement": top1_agreement(ranks),
        "mean_rank": ranks.mean(axis=0).tolist(),
    }


def auc_statistics(auc: Any, labels: list[str]) -> pd.DataFrame:
    """Per strategy: mean, std (ddof 1; 0 for one annotator), 5th/95th percentile, min, max, mean rank."""
    a = _check_matrix(auc, "auc")
    if len(labels) != a.shape[1]:
        raise InputValidationError(f"{len(labels)} labels for {a.shape[1]} strategies")
    ranks = rank_matrix(a)
    df = pd.DataFrame(
        {
            "mean": a.mean(axis=0),
            "std": a.std(axis=0, ddof=1) if a.shape[0] > 1 else np.zeros(a.shape[1]),
            "p5": np.percentile(a, 5, axis=0),
            "p95": np.percentile(a, 95, axis=0),
            "min": a.min(axis=0),
            "max": a.max(axis=0),
            "mean_rank": ranks.mean(axis=0),
            "annotators": np.full(a.shape[1], a.shape[0]),
        },
        index=pd.Index(labels, name="strategy"),
    )
    return df


def plot_auc_distributions(auc: Any, labels: list[str], path: str | Path, title: str = "") -> Path:
    """Box plot of each strategy's round-AUC over annotators, every annotator as a dot (atomic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = _check_matrix(auc, "auc")
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(labels) + 2.0), 4), dpi=120)
    ax.boxplot([a[:, j] for j in range(a.shape[1])], whis=(5, 95), showfliers=False)
    offsets = np.random.default_rng(0).uniform(-0.12, 0.12, size=a.shape)  # fixed: same figure each run
    for j in range(a.shape[1]):
        ax.scatter(np.full(a.shape[0], j + 1) + offsets[:, j], a[:, j], s=14, alpha=0.7, zorder=3)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20, ha="right")
    ax.set_ylabel("round-AUC (J&F)")
    ax.set_title(title or f"round-AUC over {a.shape[0]} annotators (whiskers 5-95%)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the study


def _fmt(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3f}"


def robustness_markdown(stats: pd.DataFrame, stability: dict[str, Any], header: str) -> str:
    """The Markdown report: statistics table and rank-stability lines."""
    table = stats.drop(columns=["annotators"]).rename(
        columns={"mean": "AUC mean", "std": "AUC std", "p5": "AUC p5", "p95": "AUC p95",
                 "min": "AUC min", "max": "AUC max", "mean_rank": "mean rank"}
    )
    labels = list(stats.index)
    order = " > ".join(labels[i] for i in np.argsort(stability["modal_ranking"], kind="stable"))
    lines = [
        header,
        "",
        to_markdown(table),
        "",
        f"Rank stability over {int(stats['annotators'].iloc[0])} annotators: "
        f"Kendall's W = {_fmt(stability['kendalls_w'])}, "
        f"mean pairwise Spearman rho = {_fmt(stability['mean_spearman'])}, "
        f"majority ranking ({order}) given by {stability['modal_ranking_fraction']:.0%} of annotators, "
        f"consensus best strategy ranked first by {stability['top1_agreement']:.0%}.",
    ]
    return "\n".join(lines)


def run_robustness(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate every ``cfg.runs`` strategy with each of ``cfg.n_annotators`` annotators; report.

    Writes under ``cfg.output_dir``: ``robustness.csv`` / ``robustness.md`` (statistics per
    strategy), ``auc_per_annotator.csv`` (the M x S matrix), ``auc_distribution.png``,
    ``summary.json`` and ``config.yaml``. Returns ``{"strategies": {label: stats},
    "rank_stability": {...}, "auc": [[...]], "annotators": [repr...], "files": {...}}``.
    """
    seed = int(cfg.seed)
    seed_everything(seed)
    config = EvaluationConfig.from_cfg(cfg)  # rounds, samples, seed: shared by every run
    runs = {str(k): v for k, v in (cfg.get("runs") or {}).items() if v is not None}
    if not runs:
        raise ConfigError("robustness: cfg.runs is empty; give at least one {strategy, setting} entry")
    n_annotators = cfg.get("n_annotators")
    annotators = build_annotators(cfg.annotator, n_annotators, seed=seed)
    dataset = instantiate(cfg.dataset)
    estimator = instantiate(cfg.estimator) if cfg.get("estimator") is not None else None
    out_dir = Path(cfg.output_dir)
    labels = list(runs)
    settings, names = _run_settings(runs, estimator)

    auc = np.zeros((len(annotators), len(labels)), dtype=np.float64)
    per_sample: dict[str, list[pd.Series]] = {label: [] for label in labels}
    for i, robot in enumerate(annotators):
        for j, label in enumerate(labels):
            result = evaluate(
                dataset,
                instantiate(cfg.backend),  # fresh backend and strategy: no state shared between runs
                instantiate(runs[label].strategy),
                replace(config, setting=settings[label]),  # type: ignore[arg-type]
                quality=estimator,
                robot=robot,
                out_dir=out_dir / "annotators" / f"{i:03d}" / label,
            )
            auc[i, j] = result.auc_rounds
            per_sample[label].append(per_sample_auc(result.samples))
            _log.info("annotator %d/%d %s: round-AUC %.4f", i + 1, len(annotators), label, auc[i, j])

    stats = auc_statistics(auc, labels)
    stability = rank_stability(auc)
    header = (
        f"Round-AUC over {len(annotators)} simulated annotators "
        f"({OmegaConf.select(cfg, 'annotator._target_')}, {cfg.max_rounds} rounds)"
    )
    md = robustness_markdown(stats, stability, header)
    gaps = _gap_closed(per_sample, names)
    if gaps is not None:
        md += ("\n\nGap closed = (AUC - Random) / (Oracle-Lookahead - Random), per-sample AUC averaged over "
               f"annotators, paired bootstrap 95% over videos:\n\n{gap_markdown(gaps)}")
    print(f"\n{md}\n")
    summary, files = _write_report(cfg, out_dir, md, stats, stability, auc, settings, annotators, gaps)
    print(f"table: {files['markdown']}  plot: {files['plot']}")
    return {**summary, "files": {k: str(v) for k, v in files.items()}}


def _run_settings(runs: dict[str, Any], estimator: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Each run's setting (default ``wild``) and strategy name; a Wild run whose strategy reads
    quality needs the estimator."""
    settings, names = {}, {}
    for label, run in runs.items():
        setting = str(run.get("setting", "wild"))
        strategy = instantiate(run.strategy)
        names[label] = strategy.name
        if setting == "wild" and strategy.needs_quality and estimator is None:
            raise ConfigError(
                f"run {label!r}: strategy {strategy.name!r} in the wild setting needs cfg.estimator "
                "(a quality net); set it or use setting: oracle"
            )
        settings[label] = setting
    return settings, names


def _write_report(
    cfg: DictConfig,
    out_dir: Path,
    md: str,
    stats: pd.DataFrame,
    stability: dict[str, Any],
    auc: np.ndarray,
    settings: dict[str, str],
    annotators: list[Any],
    gaps: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write the report files (each atomically); return the summary and the files' paths."""
    labels = list(stats.index)
    files = {
        "csv": out_dir / "robustness.csv",
        "markdown": out_dir / "robustness.md",
        "per_annotator": out_dir / "auc_per_annotator.csv",
        "plot": out_dir / "auc_distribution.png",
        "summary": out_dir / "summary.json",
        "config": out_dir / "config.yaml",
    }
    atomic_write_text(files["csv"], stats.to_csv())
    atomic_write_text(files["markdown"], md + "\n")
    per = pd.DataFrame(auc, columns=labels, index=pd.Index(range(len(annotators)), name="annotator"))
    atomic_write_text(files["per_annotator"], per.to_csv())
    plot_auc_distributions(auc, labels, files["plot"])
    summary = {
        "strategies": {label: {k: float(v) for k, v in stats.loc[label].items()} for label in labels},
        "settings": settings,
        "rank_stability": stability,
        "auc": auc.tolist(),
        "annotators": [repr(a) for a in annotators],
        "gap_closed": None if gaps is None else gaps.to_dict(orient="index"),
    }
    atomic_write_json(files["summary"], {**summary, "rank_stability": _json_safe(stability)})
    atomic_write_text(files["config"], OmegaConf.to_yaml(cfg))
    return summary, files


def _gap_closed(per_sample: dict[str, list[pd.Series]], names: dict[str, str]) -> pd.DataFrame | None:
    """:func:`ivos_rl.reporting.gap_closed` over the runs, when a Random and a lookahead run exist."""
    floor = next((label for label, name in names.items() if name == "random"), None)
    ceiling = next((label for label, name in names.items() if name == "oracle_lookahead"), None)
    if floor is None or ceiling is None:
        return None
    mean = {label: pd.concat(series, axis=1).mean(axis=1) for label, series in per_sample.items()}
    return gap_closed(mean, floor, ceiling)


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    """NaN -> None so that summary.json is strict JSON."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}
