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

The Worst proxy (:func:`worst_pick`'s ``share``, issue #15): per round, the true J&F of the frame with
the lowest estimate against the round's true minimum (oracle) and mean (random), pooled as the share
of the oracle's pick gain; ``--rows`` names the feature rows so annotated frames (which the Worst rule
never picks again) are left out, and ``--reference`` pairs every model's share with one model's, with
an interval over videos.

CLI: ``python -m ivos_rl.quality.cv_report NAME=FILE[,FILE...] ... --output report.json [--plot p.png]
[--rows DIR ...] [--reference NAME]``.
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
from ivos_rl.quality.feature_rows import FeatureRows, load_feature_rows
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


def with_annotated(p: Predictions, rows: FeatureRows) -> Predictions:
    """``p`` with an ``annotated`` column (the frame was annotated before the round) looked up in the
    original feature rows ``rows`` by key (prediction files do not carry it); DatasetError naming the
    first key without a row."""
    orig = rows.subset(rows.original)
    col = orig.x[:, orig.names.index("annotated")] > 0.5
    cols = (orig.backend, orig.sequence, orig.strategy, orig.init, orig.round, orig.frame, orig.object_id)
    lookup = dict(zip(zip(*(np.asarray(c).tolist() for c in cols), strict=True), col.tolist(), strict=True))
    out = np.empty(len(p), bool)
    for i, key in enumerate(p.keys()):
        flag = lookup.get(key)
        if flag is None:
            raise DatasetError(f"no feature row for the predicted row {key}")
        out[i] = flag
    return Predictions({**p.arrays, "annotated": out})


def round_picks(p: Predictions) -> dict[str, np.ndarray]:
    """Per round of each trajectory (frame score = the objects' mean), over the frames the Worst rule
    may pick (the non-annotated ones when ``p`` has an ``annotated`` column, else all): the true J&F of
    the frame with the lowest estimate (``picked``), the lowest (``oracle``) and the mean (``random``);
    ``sequence`` and ``fold`` of the round; the within-round PCC / Spearman over ALL the round's frames
    (as before the column existed; NaN with fewer than 3 frames or a constant side). Rounds with fewer
    than 2 candidate frames are left out."""
    a = p.arrays
    group = np.unique(
        np.stack([a[k].astype(str) for k in ("fingerprint", "sequence", "strategy", "init", "round")], 1),
        axis=0, return_inverse=True,
    )[1].reshape(-1)
    annotated = a.get("annotated", np.zeros(len(p), bool))
    out: dict[str, list[Any]] = {k: [] for k in ("picked", "oracle", "random", "pcc", "spearman", "sequence",
                                                 "fold")}
    for g in np.unique(group):
        sel = group == g
        frames, inv = np.unique(a["frame"][sel], return_inverse=True)
        count = np.bincount(inv)
        est = np.bincount(inv, weights=a["pred"][sel]) / count
        true = np.bincount(inv, weights=a["jf"][sel]) / count
        cand = np.bincount(inv, weights=annotated[sel]) == 0  # frames the Worst rule may pick
        if cand.sum() < 2:
            continue
        ok = frames.size > 2 and est.std() > 0 and true.std() > 0
        first = np.flatnonzero(sel)[0]
        pick = np.flatnonzero(cand)[np.argmin(est[cand])]
        for k, v in (("picked", true[pick]), ("oracle", true[cand].min()), ("random", true[cand].mean()),
                     ("pcc", np.corrcoef(est, true)[0, 1] if ok else np.nan),
                     ("spearman", np.corrcoef(rankdata(est), rankdata(true))[0, 1] if ok else np.nan),
                     ("sequence", a["sequence"][first]), ("fold", a["fold"][first])):
            out[k].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


def pick_share(picks: Mapping[str, np.ndarray]) -> float:
    """Share of the oracle's pick gain: sum(random - picked) / sum(random - oracle) over the rounds
    (1: the true worst frame every round, 0: no better than a random frame; NaN without a gain)."""
    oracle = float(np.sum(picks["random"] - picks["oracle"]))
    return float(np.sum(picks["random"] - picks["picked"]) / oracle) if oracle > 0 else float("nan")


def worst_pick(p: Predictions) -> dict[str, float]:
    """What the Worst rule gets from the estimates (:func:`round_picks`): ``regret`` the mean of (true
    J&F of the picked frame - the true lowest), ``share`` the share of the oracle's pick gain
    (:func:`pick_share`, the offline Worst proxy), ``within_pcc`` / ``within_spearman`` the mean
    correlation across a round's frames (Spearman is the order the Worst rule uses), ``rounds``.

    A pooled PCC also rewards getting each video's level right; the Worst rule only needs the order
    of one round's frames, which these measure."""
    picks = round_picks(p)
    pccs, rhos = picks["pcc"][np.isfinite(picks["pcc"])], picks["spearman"][np.isfinite(picks["spearman"])]
    return {
        "regret": float(np.mean(picks["picked"] - picks["oracle"])),
        "share": pick_share(picks),
        "within_pcc": float(np.mean(pccs)) if pccs.size else float("nan"),
        "within_spearman": float(np.mean(rhos)) if rhos.size else float("nan"),
        "rounds": len(picks["picked"]),
    }


def paired_share(
    a: Predictions, b: Predictions, n_boot: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Share of the oracle's pick gain of ``a`` minus ``b`` on the same rows (:func:`common_rows`),
    with a 95 % bootstrap interval over videos (a video's rounds are resampled together)."""
    pa, pb = round_picks(a), round_picks(b)
    if not np.array_equal(pa["sequence"], pb["sequence"]) or not np.allclose(pa["oracle"], pb["oracle"]):
        raise DatasetError("paired_share needs the same rounds in both models (use common_rows)")
    videos, inv = np.unique(pa["sequence"], return_inverse=True)
    per = np.stack([np.bincount(inv, weights=w, minlength=len(videos)) for w in (
        pa["random"] - pa["picked"], pb["random"] - pb["picked"], pa["random"] - pa["oracle"])])
    idx = np.random.default_rng(seed).integers(0, len(videos), size=(n_boot, len(videos)))
    boot = per[:, idx].sum(axis=2)  # (3, n_boot)
    diffs = (boot[0] - boot[1]) / boot[2]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"diff": pick_share(pa) - pick_share(pb), "lo": float(lo), "hi": float(hi), "videos": len(videos)}


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
                 **{k: wp[k] for k in ("within_pcc", "within_spearman", "regret", "share")}}
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
        "| Worst regret | Worst share | n |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rep in reports.items():
        for r in rep["per_fold"]:
            lines.append(
                f"| {name} | {r['backend']} | {r['fold']} | {r['pcc']:.3f} | {r['mae']:.3f} | "
                f"{r['mse']:.4f} | {r['ece']:.3f} | {r['within_pcc']:.3f} | {r['within_spearman']:.3f} | "
                f"{r['regret']:.3f} | {r['share']:.3f} | {r['n']} |"
            )
        for b, m in rep["pooled"].items():
            wp = m.get("worst_pick", {})
            lines.append(
                f"| {name} | {b} | pooled | **{m['pcc']:.3f}** | **{m['mae']:.3f}** | {m['mse']:.4f} | "
                f"{m['reliability']['ece']:.3f} | {wp.get('within_pcc', float('nan')):.3f} | "
                f"{wp.get('within_spearman', float('nan')):.3f} | {wp.get('regret', float('nan')):.3f} | "
                f"{wp.get('share', float('nan')):.3f} | {m['n']} |"
            )
    return "\n".join(lines)


def compare_shares(models: Mapping[str, Predictions], reference: str, n_boot: int = 2000) -> dict[str, Any]:
    """Every model's Worst-proxy share minus ``reference``'s per backend, paired over videos
    (:func:`paired_share`; the models must hold the same rows: ``--common``)."""
    if reference not in models:
        raise ConfigError(f"--reference {reference!r} is not one of the models {sorted(models)}")
    ref = models[reference]
    labels = np.array([backend_label(str(b)) for b in ref.arrays["fingerprint"]])
    out: dict[str, Any] = {}
    for name, p in models.items():
        if name == reference:
            continue
        if not np.array_equal(p.arrays["fingerprint"], ref.arrays["fingerprint"]):
            raise DatasetError(f"model {name} and {reference} hold different rows (use --common)")
        out[name] = {str(b): paired_share(p.subset(labels == b), ref.subset(labels == b), n_boot)
                     for b in np.unique(labels)}
    return out


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
    parser.add_argument(
        "--rows", nargs="+", type=Path, default=None,
        help="feature-row folders of the scored rows: the Worst proxy then skips annotated frames",
    )
    parser.add_argument("--reference", default=None, help="model the Worst-proxy shares are paired against")
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
        if args.rows:
            rows = load_feature_rows(args.rows)
            models = {name: with_annotated(p, rows) for name, p in models.items()}
        reports = {name: model_report(p) for name, p in models.items()}
        shares = compare_shares(models, args.reference) if args.reference else {}
    except (ConfigError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(reports))
    for name, per_backend in shares.items():
        for b, d in per_backend.items():
            print(f"Worst share {name} - {args.reference} ({b}, {d['videos']} videos): "
                  f"{d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]")
    atomic_write_json(
        args.output,
        {"common_rows": bool(args.common), "annotated_from_rows": bool(args.rows), "models": reports,
         "share_vs_reference": {"reference": args.reference, **shares}},
    )
    if args.plot is not None:
        plot_reliability(reports, args.plot_backend, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
