"""Side-by-side cross-validation report of quality models from their out-of-fold prediction files.

Each model is cross-validated over the shared video folds by its own trainer: the CNN / fusion nets
by ``scripts/train_quality.py data.val_sequences=[<fold>]`` (one run per fold, each writing
``held_out_predictions.npz`` of its final model, nothing selected on the fold), the feature model by
``scripts/train_quality_features.py`` (``<output>.oof.npz``). This module pools those files:
per-fold and pooled PCC / MAE / MSE per backend, reliability + ECE, 80 % interval coverage where
the model gives a standard deviation, per-video PCC, and the scale that makes the out-of-fold
standardised residuals unit-variance (the shipped model's ``sd_scale``). ``common_rows`` restricts
every model to the (sequence, strategy, init, round, frame, object) rows all of them scored, so the
figures compare like with like.

CLI: ``python -m ivos_rl.quality.cv_report NAME=FILE[,FILE...] ... --output report.json [--plot p.png]``.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ivos_rl.errors import ConfigError, CorruptFileError, DatasetError, MissingDataError
from ivos_rl.quality.assessment import quality_metrics
from ivos_rl.quality.calibration import coverage, reliability
from ivos_rl.quality.crossval import backend_label
from ivos_rl.quality.feature_model import uncertainty_scale
from ivos_rl.utils.io import atomic_path, atomic_write_json

KEYS = ("fingerprint", "sequence", "strategy", "init", "round", "frame", "object_id")
COLUMNS = (*KEYS, "pred", "sd", "jf")


@dataclass
class Predictions:
    """Out-of-fold rows of one model: keys, estimate, sd (NaN when none), target, backend, fold."""

    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.arrays["jf"].shape[0])

    def subset(self, index: np.ndarray) -> Predictions:
        return Predictions({k: v[index] for k, v in self.arrays.items()})

    def keys(self) -> list[tuple[Any, ...]]:
        cols = [self.arrays[k].tolist() for k in KEYS]
        return list(zip(*cols, strict=True))


def load_predictions(paths: Sequence[str | Path], folds: Sequence[int] | None = None) -> Predictions:
    """Rows of prediction files; file ``i`` is fold ``folds[i]`` (default ``i``) unless the file
    holds a ``fold`` column.

    A row scored twice (the same key, backend included, in two files) is an error: folds are
    disjoint by video.
    """
    if folds is not None and len(folds) != len(paths):
        raise ConfigError(f"{len(paths)} prediction files but {len(folds)} fold numbers")
    parts = []
    for i, path in enumerate(Path(p) for p in paths):
        if not path.is_file():
            raise MissingDataError("prediction file does not exist", path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {c: data[c] for c in COLUMNS}
                default = i if folds is None else int(folds[i])
                fold = data["fold"] if "fold" in data.files else np.full(len(arrays["jf"]), default)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise CorruptFileError(f"cannot read out-of-fold predictions ({exc})", path) from exc
        parts.append({**arrays, "fold": np.asarray(fold, np.int64)})
    if not parts:
        raise ConfigError("no prediction files given")
    preds = Predictions({c: np.concatenate([p[c] for p in parts]) for c in (*COLUMNS, "fold")})
    keys = preds.keys()
    if len(set(keys)) != len(keys):
        raise DatasetError(f"prediction files {list(map(str, paths))} score some rows twice")
    return preds


def common_rows(models: Mapping[str, Predictions]) -> dict[str, Predictions]:
    """Every model restricted to the rows (by key) that all models scored, in one order."""
    shared = set.intersection(*(set(p.keys()) for p in models.values()))
    if not shared:
        raise DatasetError(f"the models {sorted(models)} share no scored row")
    order = sorted(shared)
    out = {}
    for name, p in models.items():
        pos = {k: i for i, k in enumerate(p.keys())}
        out[name] = p.subset(np.array([pos[k] for k in order], np.int64))
    return out


def worst_pick(p: Predictions) -> dict[str, float]:
    """What the Worst rule gets from the estimates, per round of each trajectory (frame score = the
    objects' mean): ``regret`` the mean of (true J&F of the frame with the lowest estimate − the true
    lowest J&F), ``within_pcc`` / ``within_spearman`` the mean Pearson / Spearman correlation of
    estimate and truth across the round's frames (rounds with a constant truth or estimate skipped;
    Spearman is the order the Worst rule uses), ``rounds`` the number of rounds.

    A pooled PCC also rewards getting each video's level right; the Worst rule only needs the order
    of one round's frames, which these measure."""
    a = p.arrays
    group = np.unique(
        np.stack([a[k].astype(str) for k in ("fingerprint", "sequence", "strategy", "init", "round")], 1),
        axis=0, return_inverse=True,
    )[1].reshape(-1)
    regrets, pccs, rhos = [], [], []
    for g in np.unique(group):
        sel = group == g
        frames, inv = np.unique(a["frame"][sel], return_inverse=True)
        count = np.bincount(inv)
        est = np.bincount(inv, weights=a["pred"][sel]) / count
        true = np.bincount(inv, weights=a["jf"][sel]) / count
        regrets.append(float(true[np.argmin(est)] - true.min()))
        if frames.size > 2 and est.std() > 0 and true.std() > 0:
            pccs.append(float(np.corrcoef(est, true)[0, 1]))
            rhos.append(float(np.corrcoef(rankdata(est), rankdata(true))[0, 1]))
    return {
        "regret": float(np.mean(regrets)),
        "within_pcc": float(np.mean(pccs)) if pccs else float("nan"),
        "within_spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "rounds": len(regrets),
    }


def model_report(p: Predictions) -> dict[str, Any]:
    """Per-fold and pooled metrics per backend of one model's out-of-fold rows."""
    a = p.arrays
    labels = np.array([backend_label(str(b)) for b in a["fingerprint"]])
    per_fold, pooled = [], {}
    for b in np.unique(labels):
        on = labels == b
        for f in np.unique(a["fold"][on]):
            sel = on & (a["fold"] == f)
            metrics = quality_metrics(a["pred"][sel], a["jf"][sel])
            wp = worst_pick(p.subset(sel))
            per_fold.append(
                {"fold": int(f), "backend": str(b), **metrics,
                 "ece": reliability(a["pred"][sel], a["jf"][sel])["ece"],
                 **{k: wp[k] for k in ("within_pcc", "within_spearman", "regret")}}
            )
        video = {str(s): on & (a["sequence"] == s) for s in np.unique(a["sequence"][on])}
        m: dict[str, Any] = {
            **quality_metrics(a["pred"][on], a["jf"][on]),
            "reliability": reliability(a["pred"][on], a["jf"][on]),
            "per_video_pcc": {s: quality_metrics(a["pred"][v], a["jf"][v])["pcc"] for s, v in video.items()},
            "worst_pick": worst_pick(p.subset(on)),
        }
        sd = a["sd"][on]
        if np.isfinite(sd).all() and (sd > 0).all():
            m["coverage80"] = coverage(a["pred"][on], sd, a["jf"][on], 0.8)
            m["sd_scale"] = uncertainty_scale(a["pred"][on], sd, a["jf"][on])
        pooled[str(b)] = m
    return {"n_rows": len(p), "per_fold": per_fold, "pooled": pooled}


def format_table(reports: Mapping[str, dict[str, Any]]) -> str:
    """Markdown: one line per (model, backend, fold) and pooled: PCC / MAE / MSE / ECE, the Worst
    rule's within-round PCC / Spearman / regret, n."""
    lines = [
        "| model | backend | fold | PCC | MAE | MSE | ECE | within-round PCC | within-round Spearman "
        "| Worst regret | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rep in reports.items():
        for r in rep["per_fold"]:
            lines.append(
                f"| {name} | {r['backend']} | {r['fold']} | {r['pcc']:.3f} | {r['mae']:.3f} | "
                f"{r['mse']:.4f} | {r['ece']:.3f} | {r['within_pcc']:.3f} | {r['within_spearman']:.3f} | "
                f"{r['regret']:.3f} | {r['n']} |"
            )
        for b, m in rep["pooled"].items():
            wp = m.get("worst_pick", {})
            lines.append(
                f"| {name} | {b} | pooled | **{m['pcc']:.3f}** | **{m['mae']:.3f}** | {m['mse']:.4f} | "
                f"{m['reliability']['ece']:.3f} | {wp.get('within_pcc', float('nan')):.3f} | "
                f"{wp.get('within_spearman', float('nan')):.3f} | {wp.get('regret', float('nan')):.3f} | "
                f"{m['n']} |"
            )
    return "\n".join(lines)


def plot_reliability(reports: Mapping[str, dict[str, Any]], backend: str, path: Path) -> None:
    """Reliability diagrams of every model on ``backend`` in one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, rep in reports.items():
        m = rep["pooled"].get(backend)
        if m is None:
            continue
        bins = m["reliability"]["bins"]
        ax.plot(
            [b["pred"] for b in bins], [b["true"] for b in bins], "o-",
            label=f"{name} (ECE {m['reliability']['ece']:.3f})",
        )
    ax.set(xlabel="estimated J&F", ylabel="true J&F", xlim=(0, 1), ylim=(0, 1),
           title=f"out-of-fold reliability, {backend}")
    ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivos_rl.quality.cv_report", description=__doc__)
    parser.add_argument(
        "models", nargs="+", help="NAME=FILE[,FILE...] (fold files in fold order; FOLD:FILE names the fold)"
    )
    parser.add_argument("--output", type=Path, required=True, help="JSON report")
    parser.add_argument("--plot", type=Path, default=None, help="reliability PNG (backend --plot-backend)")
    parser.add_argument("--plot-backend", default="propagation-v2")
    parser.add_argument("--common", action="store_true", help="restrict every model to the rows all scored")
    args = parser.parse_args(argv)
    try:
        models = {}
        for spec in args.models:
            name, _, files = spec.partition("=")
            if not name or not files:
                raise ConfigError(f"model argument must be NAME=FILE[,FILE...], got {spec!r}")
            specs = [
                f.partition(":") if f[:1].isdigit() and ":" in f else ("", "", f) for f in files.split(",")
            ]
            numbers = [int(n) for n, _, _ in specs] if all(n for n, _, _ in specs) else None
            models[name] = load_predictions([p for _, _, p in specs], numbers)
        if args.common:
            models = common_rows(models)
        reports = {name: model_report(p) for name, p in models.items()}
    except (ConfigError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(reports))
    atomic_write_json(args.output, {"common_rows": bool(args.common), "models": reports})
    if args.plot is not None:
        plot_reliability(reports, args.plot_backend, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
