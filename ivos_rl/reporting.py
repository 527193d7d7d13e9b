"""Tables and figures from evaluation results: Table-1-style AUC tables, Figure-3 curves.

Inputs are :class:`~ivos_rl.evaluation.EvaluationResult` objects (or folders written by
:func:`~ivos_rl.evaluation.evaluate`), so a table always shows the numbers of the saved reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ivos_rl.errors import InputValidationError
from ivos_rl.evaluation import EvaluationResult, SampleResult
from ivos_rl.utils.io import atomic_path


def per_sample_auc(samples: Sequence[SampleResult], metric_col: str = "j_and_f") -> pd.Series:
    """Round-AUC of each (sequence, scribble) sample, indexed by "sequence/idx".

    Same definition as the global round-AUC (curve [0, r1..rN], trapezoid over i/N), with r_i the
    mean over objects of the per-object frame mean, so paired comparisons use the same quantity.
    """
    out = {}
    for s in samples:
        df = pd.DataFrame(s.rows)
        per_round = df.groupby(["interaction", "object_id"])[metric_col].mean().groupby(level=0).mean()
        curve = np.concatenate(([0.0], per_round.sort_index().to_numpy()))
        n = curve.size - 1
        out[f"{s.sequence}/{s.scribble_idx}"] = float(np.trapezoid(curve, x=np.arange(n + 1) / n))
    return pd.Series(out, dtype=np.float64)


def paired_bootstrap(
    a: pd.Series, b: pd.Series, n_boot: int = 2000, seed: int = 0, by_sequence: bool = True
) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its 95% bootstrap interval over sequences (paired by sample key).

    With ``by_sequence`` the resampling unit is the sequence (its samples' differences are
    averaged first), since samples of one video are not independent.
    """
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise InputValidationError("paired bootstrap: the two results share no sample")
    diff = (a[common] - b[common]).astype(np.float64)
    if by_sequence:
        diff = diff.groupby(diff.index.str.rsplit("/", n=1).str[0]).mean()
    values = diff.to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    boots = values[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


def auc_table(results: Mapping[tuple[str, str], Sequence[EvaluationResult]]) -> pd.DataFrame:
    """Rows (setting, strategy): round-AUC mean, std over runs/seeds, runs, and the final J&F.

    ``results`` maps (setting, strategy) to one result per seed/run (e.g. Random's 5 runs).
    """
    rows = []
    for (setting, strategy), runs in results.items():
        aucs = np.array([r.auc_rounds for r in runs], dtype=np.float64)
        finals = np.array([r.curve_rounds[-1] for r in runs], dtype=np.float64)
        rows.append(
            {
                "setting": setting,
                "strategy": strategy,
                "auc_rounds": float(aucs.mean()),
                "auc_std": float(aucs.std(ddof=1)) if aucs.size > 1 else 0.0,
                "runs": int(aucs.size),
                "jf_final": float(finals.mean()),
            }
        )
    return pd.DataFrame(rows)


def curves_table(results: Mapping[str, EvaluationResult]) -> pd.DataFrame:
    """J&F after each round (columns 1..N) per labelled result, plus the round-AUC."""
    rows = {}
    for label, r in results.items():
        curve = r.curve_rounds[1:]
        rows[label] = {**{str(i + 1): v for i, v in enumerate(curve)}, "AUC": r.auc_rounds}
    return pd.DataFrame.from_dict(rows, orient="index")


def to_markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-flavoured Markdown table (no optional `tabulate` dependency)."""
    cols = [str(c) for c in df.columns]
    index_name = df.index.name or ""
    show_index = not isinstance(df.index, pd.RangeIndex)
    header = ([index_name] if show_index else []) + cols
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for idx, row in df.iterrows():
        cells = [str(idx)] if show_index else []
        for v in row.tolist():
            cells.append(format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(results: Mapping[str, EvaluationResult], path: str | Path, title: str = "") -> Path:
    """Figure-3-style plot: J&F versus round for each labelled result, saved atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, r in results.items():
        curve = r.curve_rounds
        ax.plot(range(1, len(curve)), curve[1:], marker="o", label=f"{label} (AUC {r.auc_rounds:.3f})")
    ax.set_xlabel("round")
    ax.set_ylabel("J&F")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
