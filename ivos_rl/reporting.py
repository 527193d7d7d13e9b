"""Tables and figures from evaluation results: Table-1-style AUC tables, held-out tables, Figure-3 curves.

Inputs are :class:`~ivos_rl.evaluation.EvaluationResult` objects (or folders written by
:func:`~ivos_rl.evaluation.evaluate`), so a table always shows the numbers of the saved reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.evaluation import EvaluationResult, SampleResult
from ivos_rl.sweeps import heldout_fold
from ivos_rl.utils.io import atomic_path, ensure_writable_dir


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
        diff = per_video_mean(diff)
    values = diff.to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    boots = values[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


def sample_videos(index: pd.Index) -> pd.Index:
    """The video (sequence) names of "sequence/idx" sample keys."""
    return index.str.rsplit("/", n=1).str[0]


def per_video_mean(auc: pd.Series) -> pd.Series:
    """Per-sample values ("sequence/idx" keys) averaged per sequence (the bootstrap's unit)."""
    return auc.groupby(sample_videos(auc.index)).mean()


def gap_markdown(table: pd.DataFrame) -> str:
    """Markdown of a :func:`gap_closed` table (two decimals, the video count as an integer)."""
    return to_markdown(table.astype({"videos": int}).astype({"videos": str}), ".2f")


def _interval(draws: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of bootstrap draws, ignoring undefined ones (NaN when all are)."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def gap_closed(
    per_sample: Mapping[str, pd.Series],
    floor: str,
    ceiling: str,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """How much of the Random-to-Lookahead room each strategy closes, with paired intervals.

    ``per_sample`` maps a label to its per-sample round-AUC (:func:`per_sample_auc`, averaged over
    seeds); ``floor`` (Random) and ``ceiling`` (Oracle-Lookahead) name two of them. Per label:
    gap closed = (AUC - floor) / (ceiling - floor), a ratio of means over the videos every label
    shares, and its 95% interval from a paired bootstrap that resamples videos (the same draw for
    the three terms). Rows: AUC x100, gap closed, interval, videos, and the AUC difference to the
    ceiling x100 with its interval.
    """
    for name in (floor, ceiling):
        if name not in per_sample:
            raise InputValidationError(f"gap closed needs a {name!r} result; have {sorted(per_sample)}")
    table = pd.concat({k: per_video_mean(v) for k, v in per_sample.items()}, axis=1).dropna()
    if table.empty:
        raise InputValidationError("gap closed: the results share no video")
    values = table.to_numpy(dtype=np.float64)  # (videos, labels)
    idx = np.random.default_rng(seed).integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    boots = values[idx].mean(axis=1)  # (n_boot, labels)
    mean = values.mean(axis=0)
    lo_col, hi_col = table.columns.get_loc(floor), table.columns.get_loc(ceiling)

    def ratio(m: np.ndarray) -> np.ndarray:
        room = m[..., hi_col] - m[..., lo_col]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (m - m[..., lo_col, None]) / room[..., None]

    point, boot_ratio = ratio(mean), ratio(boots)
    to_ceiling = boots - boots[:, hi_col, None]
    rows = {}
    for j, label in enumerate(table.columns):
        r_lo, r_hi = _interval(boot_ratio[:, j])
        c_lo, c_hi = _interval(to_ceiling[:, j])
        rows[label] = {
            "AUC x100": 100 * mean[j],
            "gap closed": point[j],
            "gap 95% lo": r_lo,
            "gap 95% hi": r_hi,
            "minus ceiling x100": 100 * (mean[j] - mean[hi_col]),
            "minus ceiling lo": 100 * c_lo,
            "minus ceiling hi": 100 * c_hi,
            "videos": int(values.shape[0]),
        }
    out = pd.DataFrame.from_dict(rows, orient="index").sort_values("AUC x100")
    out.index.name = "strategy"
    return out


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


def wrap_title(title: str, width: int = 64) -> str:
    """``title`` broken into lines of at most ``width`` characters (a long title is never clipped)."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width=width)) if title else ""


def curves_figure(results: Mapping[str, EvaluationResult], title: str = "") -> Any:
    """Figure-3-style matplotlib figure: J&F versus round per labelled result (title wrapped to fit)."""
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
        ax.set_title(wrap_title(title), fontsize=9)
    fig.tight_layout()
    return fig


def plot_curves(results: Mapping[str, EvaluationResult], path: str | Path, title: str = "") -> Path:
    """:func:`curves_figure` saved atomically as PNG."""
    import matplotlib.pyplot as plt

    fig = curves_figure(results, title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- multirun reports


def collect_runs(runs_dir: str | Path) -> list[tuple[dict[str, object], EvaluationResult]]:
    """Every evaluation folder under ``runs_dir`` (one with ``summary.json`` and ``samples/``)."""
    import json

    from ivos_rl.evaluation import load_sample_results, summarize_samples

    found = []
    for summary_path in sorted(Path(runs_dir).rglob("summary.json")):
        folder = summary_path.parent
        if not (folder / "samples").is_dir():
            continue
        meta = json.loads(summary_path.read_text())
        samples = load_sample_results(folder)
        _, summary = summarize_samples(
            samples,
            metric=str(meta.get("metric", "J_AND_F")),
            max_time=meta.get("max_time"),
            time_threshold=float(meta.get("time_threshold", 60.0)),
        )
        keep = ("strategy", "setting", "backend", "dataset", "robot", "robot_seed", "time_mode")
        summary.update({k: meta[k] for k in keep if k in meta})
        meta["run_folder"] = str(folder)  # where it was read (output_dir is where it was written)
        found.append((meta, EvaluationResult(report=pd.DataFrame(), summary=summary, samples=samples)))
    if not found:
        raise InputValidationError(f"no evaluation output (summary.json + samples/) under {runs_dir}")
    return found


def gap_closed_tables(
    runs: Sequence[tuple[dict[str, object], EvaluationResult]],
    floor: str = "random",
    ceiling: str = "oracle_lookahead",
    n_boot: int = 2000,
) -> dict[str, pd.DataFrame]:
    """:func:`gap_closed` per "backend/dataset" column holding both a ``floor`` and a ``ceiling`` run."""
    by_col: dict[str, dict[str, pd.Series]] = {}
    names: dict[str, dict[str, str]] = {}
    for (setting, strategy, col), results in sorted(group_runs(runs).items()):
        label = f"{setting} / {strategy}"
        by_col.setdefault(col, {})[label] = _mean_per_sample(results)
        names.setdefault(col, {}).setdefault(strategy, label)
    return {
        col: gap_closed(per, names[col][floor], names[col][ceiling], n_boot=n_boot)
        for col, per in by_col.items()
        if floor in names[col] and ceiling in names[col]
    }


def table1(runs: Sequence[tuple[dict[str, object], EvaluationResult]], n_boot: int = 2000) -> pd.DataFrame:
    """Table-1 layout: rows (setting, strategy), columns "backend/dataset", cells "AUC ± std (runs)".

    Agent rows get, per column, the paired bootstrap 95% interval of Agent minus every other
    strategy of the same setting (over sequences), as extra rows "agent - <strategy>".
    Strategies that never look at quality (runs whose summary says ``needs_quality: false``, e.g.
    Random, Linspace) behave the same in both settings: their rows read "any" and they are
    compared with the agent of each setting.
    """
    groups = group_runs(runs)
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for (setting, strategy, col), results in sorted(groups.items()):
        aucs = np.array([r.auc_rounds for r in results])
        std = f" ± {aucs.std(ddof=1) * 100:.2f}" if aucs.size > 1 else ""
        cells.setdefault((setting, strategy), {})[col] = f"{aucs.mean() * 100:.2f}{std} ({aucs.size})"
    for (setting, strategy, col), results in sorted(groups.items()):
        if strategy != "agent":
            continue
        agent_auc = _mean_per_sample(results)
        for (s2, other, c2), others in sorted(groups.items()):
            if s2 not in (setting, "any") or c2 != col or other == "agent":
                continue
            mean, lo, hi = paired_bootstrap(agent_auc, _mean_per_sample(others), n_boot=n_boot)
            key = (setting, f"agent - {other}")
            cells.setdefault(key, {})[col] = f"{mean * 100:+.2f} [{lo * 100:+.2f}, {hi * 100:+.2f}]"
    table = pd.DataFrame.from_dict(cells, orient="index").sort_index()
    table.index = [f"{s} / {r}" for s, r in table.index]
    table.index.name = "setting / strategy"
    return table.fillna("")


def _user_groups(
    runs: Sequence[tuple[dict[str, object], EvaluationResult]],
) -> dict[tuple[str, str, str, str], list[EvaluationResult]]:
    """:func:`group_runs`, split further by the kind of simulated user (robot / annotator class)."""
    by_user: dict[str, list[tuple[dict[str, object], EvaluationResult]]] = {}
    for meta, res in runs:
        by_user.setdefault(str(meta.get("robot", "?")), []).append((meta, res))
    return {
        (*key, user): results
        for user, subset in by_user.items()
        for key, results in group_runs(subset).items()
    }


def variance_table(runs: Sequence[tuple[dict[str, object], EvaluationResult]]) -> pd.DataFrame:
    """Table-1 companion: auc_time, jf_at_60s, auc_rounds as "mean ± std (n)" x100 over simulated users.

    Runs of one (setting, strategy, backend/dataset) that differ by robot seed or by annotator of a
    population (the ``robot`` kind is a column) are one row; the std is the spread due to the user
    (:func:`ivos_rl.summary.spread`). The recommender's and the backend's measured seconds per
    round are shown apart, as the time budget counts both.
    """
    from ivos_rl.summary import SPREAD_KEYS, spread

    rows = []
    for (setting, strategy, col, robot), results in sorted(_user_groups(runs).items()):
        stats = spread([r.summary for r in results])
        row: dict[str, object] = {
            "setting": setting,
            "strategy": strategy,
            "backend/dataset": col,
            "user": robot,
        }
        for key in SPREAD_KEYS:
            st = stats[key]
            row[key] = f"{st['mean'] * 100:.2f} ± {st['std'] * 100:.2f} ({st['n']})"
        for part in ("recommender", "backend"):
            values = [r.summary.get(f"{part}_seconds_per_round") for r in results]
            known = [float(v) for v in values if v is not None]
            row[f"{part} s/round"] = f"{np.mean(known):.3f}" if known else ""
        rows.append(row)
    return pd.DataFrame(rows)


def mask_ap_table(results: Mapping[str, EvaluationResult]) -> pd.DataFrame | None:
    """Per labelled result and round: Mask AP x100 beside J&F x100 (None when no run has Mask AP)."""
    rows = {}
    for label, r in results.items():
        ap = r.summary.get("mask_ap")
        if not ap:
            continue
        curve = r.curve_rounds[1:]
        row: dict[str, float] = {}
        for i, (jf, value) in enumerate(zip(curve, ap["AP"], strict=False), start=1):
            row[f"J&F {i}"] = jf * 100
            row[f"AP {i}"] = value * 100 if value >= 0 else float("nan")
        rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index") if rows else None


def _mean_per_sample(results: Sequence[EvaluationResult]) -> pd.Series:
    """Per-sample round-AUC averaged over runs (e.g. Random's seeds)."""
    return pd.concat([per_sample_auc(r.samples) for r in results], axis=1).mean(axis=1)


# --------------------------------------------------------------------------- per-round J&F, comparisons


def group_runs(
    runs: Sequence[tuple[dict[str, object], EvaluationResult]],
) -> dict[tuple[str, str, str], list[EvaluationResult]]:
    """Runs grouped by (setting, strategy, "backend/dataset"); quality-free strategies get setting "any"."""
    groups: dict[tuple[str, str, str], list[EvaluationResult]] = {}
    for meta, res in runs:
        col = f"{meta.get('backend', '?')}/{meta.get('dataset', '?')}"
        setting = "any" if meta.get("needs_quality") is False else str(meta.get("setting"))
        groups.setdefault((setting, str(meta.get("strategy")), col), []).append(res)
    return groups


def round_table(runs: Sequence[tuple[dict[str, object], EvaluationResult]]) -> pd.DataFrame:
    """Mean J&F after each round (columns 1..N) and round-AUC per (column, setting / strategy).

    Values are averaged over a group's runs (e.g. Random's seeds); ``runs`` counts them. Runs of
    different lengths leave the missing rounds empty rather than padding them.
    """
    rows = {}
    for (setting, strategy, col), results in sorted(group_runs(runs).items()):
        n = max(len(r.curve_rounds) for r in results) - 1
        curves = np.full((len(results), n), np.nan)
        for i, r in enumerate(results):
            curves[i, : len(r.curve_rounds) - 1] = r.curve_rounds[1:]
        row: dict[str, object] = {str(k + 1): float(np.nanmean(curves[:, k])) for k in range(n)}
        row.update({"AUC": float(np.mean([r.auc_rounds for r in results])), "runs": len(results)})
        rows[f"{col} | {setting} / {strategy}"] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "backend/dataset | setting / strategy"
    return table


def compare_to_reference(
    runs: Sequence[tuple[dict[str, object], EvaluationResult]],
    strategy: str,
    setting: str,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every (setting, strategy) against one reference run, across settings (e.g. Agent-Wild vs Worst-Oracle).

    Cells: mean round-AUC difference (x100, other minus reference) and its paired bootstrap 95%
    interval over videos (samples paired by sequence/scribble, a video's samples averaged first),
    with the number of shared videos. A reference strategy that never reads quality matches any
    setting. The reference must exist in every backend/dataset column that is reported.
    """
    groups = group_runs(runs)
    refs = {
        col: res for (s, strat, col), res in groups.items() if strat == strategy and s in (setting, "any")
    }
    if not refs:
        have = sorted({f"{strat} ({s})" for s, strat, _ in groups})
        raise InputValidationError(f"reference {strategy} ({setting}) is not among the runs: {have}")
    cells: dict[str, dict[str, str]] = {}
    for (s, strat, col), results in sorted(groups.items()):
        if col not in refs or results is refs[col]:
            continue
        mine, ref = _mean_per_sample(results), _mean_per_sample(refs[col])
        mean, lo, hi = paired_bootstrap(mine, ref, n_boot=n_boot, seed=seed)
        videos = len({k.rsplit("/", 1)[0] for k in mine.index.intersection(ref.index)})
        cells.setdefault(f"{s} / {strat}", {})[col] = (
            f"{mean * 100:+.2f} [{lo * 100:+.2f}, {hi * 100:+.2f}] ({videos} videos)"
        )
    table = pd.DataFrame.from_dict(cells, orient="index").sort_index().fillna("")
    table.index.name = f"minus {strategy} ({setting})"
    return table


def check_overlay_dataset(cfg: Any, runs: Sequence[tuple[dict[str, object], EvaluationResult]]) -> None:
    """Overlays redraw the run's frames: the report's ``dataset`` must be the runs' dataset, and exist.

    Fails before anything is generated (the synthetic dataset config would otherwise create
    ``data/synthetic`` and fail later on a shape mismatch) and when no run saved predictions.
    """
    from omegaconf import OmegaConf

    with_preds = [m for m, _ in runs if (Path(str(m.get("output_dir", ""))) / "predictions.json").is_file()]
    if not with_preds:
        raise ConfigError(
            "overlay_sequences needs runs evaluated with save_predictions=true (no predictions.json "
            "in any run folder)"
        )
    root = OmegaConf.select(cfg, "dataset.root", default=None)
    used = sorted({str(m.get("dataset")) for m in with_preds})
    if root is None or Path(str(root)).name not in used or not Path(str(root)).is_dir():
        raise ConfigError(
            f"overlays need the runs' dataset {used}, but the report's dataset is {root!r}"
            f"{'' if root is None or Path(str(root)).is_dir() else ' (missing)'}: pass the same dataset "
            "overrides as the evaluation, e.g. dataset=davis2016_train (and dataset.root=...)"
        )


def overlay_gif(
    frames: np.ndarray,
    masks: np.ndarray,
    recommended: Sequence[int],
    path: str | Path,
    fps: float = 8.0,
    alpha: float = 0.5,
) -> Path:
    """Figure-4/5-style animation: masks overlaid on frames, recommended frames marked in red.

    ``frames`` (T, H, W, 3) uint8, ``masks`` (T, H, W) labels; ``recommended`` lists the frames
    annotated in order (round r's frame gets a red border and its round number).
    """
    from PIL import Image, ImageDraw

    if frames.shape[:3] != masks.shape:
        raise InputValidationError(f"frames {frames.shape} and masks {masks.shape} do not match")
    palette = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                        [245, 130, 48], [145, 30, 180], [70, 240, 240]], dtype=np.float32)
    colours = palette[np.minimum(masks, len(palette) - 1)]
    fg = (masks > 0)[..., None]
    blended = np.where(fg, (1 - alpha) * frames + alpha * colours, frames).astype(np.uint8)
    rounds: dict[int, list[int]] = {}
    for r, f in enumerate(recommended, start=1):
        rounds.setdefault(int(f), []).append(r)
    images = []
    for t in range(blended.shape[0]):
        im = Image.fromarray(blended[t])
        draw = ImageDraw.Draw(im)
        draw.text((4, 4), f"frame {t}", fill=(255, 255, 255))
        if t in rounds:
            w, h = im.size
            draw.rectangle([0, 0, w - 1, h - 1], outline=(255, 0, 0), width=4)
            draw.text((4, 16), "annotated in round " + ",".join(map(str, rounds[t])), fill=(255, 0, 0))
        images.append(im)
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)
    return path


def run_report(cfg: object) -> dict[str, object]:
    """Hydra entry (``scripts/report.py``): Table 1, Figure-3 curves and overlays of a runs folder; with
    ``heldout.runs``, the labelled held-out table instead (:func:`run_heldout_report`)."""
    from omegaconf import DictConfig

    from ivos_rl.data.rle import PredictionArchive
    from ivos_rl.utils.io import atomic_write_text

    assert isinstance(cfg, DictConfig)
    heldout = cfg.get("heldout")
    if heldout is not None and (heldout.get("runs") or heldout.get("sweep")):
        return run_heldout_report(cfg)
    out = ensure_writable_dir(Path(str(cfg.output_dir)))
    runs = collect_runs(str(cfg.runs_dir))
    table = table1(runs, n_boot=int(cfg.n_boot))
    md = to_markdown(table)
    atomic_write_text(out / "table1.md", md + "\n")
    atomic_write_text(out / "table1.csv", table.to_csv())
    print(f"Round-AUC x100 (mean ± std over runs; agent rows: paired bootstrap 95% CI)\n{md}")
    _report_rounds_and_reference(cfg, runs, out)
    spread_md = to_markdown(variance_table(runs))
    atomic_write_text(out / "variance.md", spread_md + "\n")
    print(f"Spread over simulated users (robot seeds / annotators), x100\n{spread_md}")
    labelled = {
        f"{m.get('strategy')} ({m.get('setting')}, {m.get('robot')} {m.get('robot_seed')})": r
        for m, r in runs
    }
    ap_table = mask_ap_table(labelled)
    if ap_table is not None:
        ap_md = to_markdown(ap_table, floatfmt=".1f")
        atomic_write_text(out / "mask_ap.md", ap_md + "\n")
        print(f"Mask AP x100 per round (quality estimate as confidence) beside J&F x100\n{ap_md}")
    gaps = _report_gap_closed(runs, out, int(cfg.n_boot))
    by_column: dict[str, dict[str, EvaluationResult]] = {}
    for meta, res in runs:
        col = f"{meta.get('backend', '?')}_{meta.get('dataset', '?')}"
        label = f"{meta.get('strategy')} ({meta.get('setting')})"
        by_column.setdefault(col, {}).setdefault(label, res)  # first run of a strategy (seed 0)
    plots = [
        str(plot_curves(results, out / f"curves_{col}.png", title=col)) for col, results in by_column.items()
    ]
    gifs = []
    if cfg.get("overlay_sequences"):
        check_overlay_dataset(cfg, runs)
        dataset = None
        for meta, res in runs:
            pred_file = Path(str(meta.get("output_dir", ""))) / "predictions.json"
            if not pred_file.is_file():
                continue
            archive = PredictionArchive.load(pred_file)
            if dataset is None:
                from hydra.utils import instantiate

                dataset = instantiate(cfg.dataset)
            for s in res.samples:
                if s.sequence not in set(cfg.overlay_sequences):
                    continue
                key = f"{s.sequence}:{s.scribble_idx}"
                last = max(archive.rounds(key))
                name = f"{s.sequence}_{s.scribble_idx}_{meta.get('strategy')}_{meta.get('setting')}.gif"
                gifs.append(str(overlay_gif(dataset.load_frames(s.sequence), archive.get(key, last),
                                            s.annotated_frames, out / "overlays" / name)))
    return {"table": table.to_dict(), "plots": plots, "overlays": gifs,
            "gap_closed": {col: t.to_dict() for col, t in gaps.items()}}


def _report_gap_closed(
    runs: Sequence[tuple[dict[str, object], EvaluationResult]], out: Path, n_boot: int
) -> dict[str, pd.DataFrame]:
    """Gap-closed tables (when Random and Oracle-Lookahead runs exist); printed and saved."""
    from ivos_rl.utils.io import atomic_write_text

    gaps = gap_closed_tables(runs, n_boot=n_boot)
    if gaps:
        md = "\n\n".join(f"### {col}\n\n{gap_markdown(t)}" for col, t in gaps.items())
        atomic_write_text(out / "gap_closed.md", md + "\n")
        print(f"\nGap closed = (AUC - Random) / (Oracle-Lookahead - Random), paired 95% CI over videos\n{md}")
    return gaps


def _report_rounds_and_reference(
    cfg: Any, runs: Sequence[tuple[dict[str, object], EvaluationResult]], out: Path
) -> None:
    """Per-round J&F table, and with ``cfg.reference`` the cross-setting comparison; printed and saved."""
    from ivos_rl.utils.io import atomic_write_text

    rounds = round_table(runs)
    md = to_markdown(rounds)
    atomic_write_text(out / "rounds.md", md + "\n")
    atomic_write_text(out / "rounds.csv", rounds.to_csv())
    print(f"\nJ&F after each round (mean over runs) and round-AUC\n{md}")
    ref = cfg.get("reference")
    if not ref or (ref.get("strategy") is None and ref.get("setting") is None):
        return
    if not ref.get("strategy") or not ref.get("setting"):
        raise ConfigError(
            f"reference must give strategy and setting, e.g. {{strategy: worst, setting: oracle}}, got {ref}"
        )
    comp = compare_to_reference(runs, str(ref.strategy), str(ref.setting), n_boot=int(cfg.n_boot))
    md = to_markdown(comp)
    atomic_write_text(out / "comparison.md", md + "\n")
    atomic_write_text(out / "comparison.csv", comp.to_csv())
    print(f"\nRound-AUC x100 minus {ref.strategy} ({ref.setting}): paired bootstrap 95% CI over videos\n{md}")


# --------------------------------------------------------------------------- held-out tables
# Models are chosen per fold and each video is scored only by its fold's model, so a method's held-out
# result is several evaluation runs on disjoint videos (one per fold), and a Random row several such sets
# (one per seed). ``run_report``'s grouping by strategy name would merge two recipes of one strategy (two
# agent ensembles) and read a spread over folds as one over seeds; here the user names each method and the
# folders of its runs:
#   python scripts/report.py 'heldout.runs={recipe: ev/ens, farthest: ev/far, random: [ev/r0, ev/r1]}' \
#       'heldout.refs=[recipe]' heldout.floor=farthest heldout.ceiling=lookahead
# Per label, runs on disjoint samples (folds) are concatenated and runs on the same samples (seeds) averaged.

# Run metadata that must agree within one label (else the label mixes methods or setups by mistake).
_SAME_WITHIN_LABEL = ("strategy", "setting", "backend", "dataset")


LabelSpec = str | Sequence[str] | Mapping[str, str | Sequence[str]]


def _keyed_paths(spec: LabelSpec) -> list[tuple[str | None, str]]:
    """A label's folders as (run key or None, folder): a mapping names each folder's runs (e.g. by fold)."""
    if isinstance(spec, str):
        return [(None, spec)]
    if isinstance(spec, Mapping):
        return [(str(k), str(p)) for k, v in spec.items() for p in ([v] if isinstance(v, str) else v)]
    return [(None, str(p)) for p in spec]


def label_runs(
    folders: Mapping[str, LabelSpec], scribbles: Sequence[int] | None = None
) -> dict[str, list[tuple[str, pd.Series]]]:
    """Per label, each run under its folders as (its run key, its per-sample round-AUC with "sequence/idx"
    keys), keeping the ``scribbles`` initial-scribble indices only. The run key is the run's folder relative
    to the given one, prefixed by the key when the label maps keys to folders (``{fold0: [seed folders]}``);
    a training run's held-out evaluation given by plain folders is keyed by its fold (``fold3``), since
    sweeps over different folds reuse the same job numbers.

    A label whose runs disagree on strategy, setting, backend or dataset is refused, naming the folders;
    so is a label left with no sample.
    """
    keep = None if scribbles is None else {int(s) for s in scribbles}
    out: dict[str, list[tuple[str, pd.Series]]] = {}
    for label, spec in folders.items():
        paths = _keyed_paths(spec)
        if not paths:
            raise ConfigError(f"heldout.runs.{label}: no folder given")
        seen: dict[str, dict[str, str]] = {}
        runs = []
        for run_key, path in paths:
            for meta, result in collect_runs(path):
                folder = str(meta["run_folder"])
                for key in _SAME_WITHIN_LABEL:
                    # a strategy that never reads quality is the same method in both settings (group_runs)
                    quality_free = key == "setting" and meta.get("needs_quality") is False
                    value = "any" if quality_free else str(meta.get(key))
                    first = seen.setdefault(key, {"value": value, "folder": folder})
                    if first["value"] != value:
                        raise InputValidationError(
                            f"heldout.runs.{label}: its runs differ in {key} ({first['value']!r} in "
                            f"{first['folder']}, {value!r} in {folder}); give each method its own label"
                        )
                auc = per_sample_auc(result.samples)
                if keep is not None:
                    auc = auc[[int(k.rsplit("/", 1)[1]) in keep for k in auc.index]]
                rel = Path(folder).relative_to(Path(path)).as_posix()
                if run_key is not None:
                    rel = run_key if rel == "." else f"{run_key}/{rel}"
                else:
                    rel = heldout_fold(folder) or rel
                runs.append((rel, auc))
        if all(auc.empty for _, auc in runs):
            raise InputValidationError(f"heldout.runs.{label}: no sample left (scribbles={scribbles})")
        out[label] = runs
    return out


def collect_labelled(
    folders: Mapping[str, LabelSpec], scribbles: Sequence[int] | None = None
) -> dict[str, pd.Series]:
    """Per label, the pooled per-sample round-AUC of every run under its folders (:func:`label_runs`):
    runs on disjoint samples (folds) concatenated, runs on the same samples (seeds) averaged."""
    return {label: pool_runs(runs) for label, runs in label_runs(folders, scribbles).items()}


def pool_runs(runs: Sequence[tuple[str, pd.Series]]) -> pd.Series:
    """One label's runs pooled: each sample's round-AUC averaged over the runs that have it."""
    return pd.concat([auc for _, auc in runs], axis=1).mean(axis=1).dropna().sort_index()


def per_run_table(per_label_runs: Mapping[str, Sequence[tuple[str, pd.Series]]]) -> pd.DataFrame:
    """Round-AUC x100 per label (rows) and run folder relative to the label's folders (columns, e.g. fold0
    .. fold4); a label's runs with the same relative folder (its seeds) are pooled first."""
    rows: dict[str, dict[str, float]] = {}
    for label, runs in per_label_runs.items():
        by_key: dict[str, list[tuple[str, pd.Series]]] = {}
        for key, auc in runs:
            by_key.setdefault(key, []).append((key, auc))
        rows[label] = {key: 100 * float(pool_runs(group).mean()) for key, group in sorted(by_key.items())}
    columns = sorted({key for row in rows.values() for key in row})
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns, axis=1)
    table.index.name = "held out"
    return table


def heldout_table(
    per_label: Mapping[str, pd.Series], refs: Sequence[str] = (), n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """One row per label (best round-AUC first): AUC x100 over its samples, its sample and video counts,
    and per reference label "ref minus it" x100 with a paired 95% bootstrap interval over the videos
    both have, and the videos where the reference is higher ("wins / shared videos")."""
    for ref in refs:
        if ref not in per_label:
            raise ConfigError(f"heldout.refs: {ref!r} is not a label of heldout.runs ({sorted(per_label)})")
    rows: dict[str, dict[str, object]] = {}
    for label, auc in per_label.items():
        row: dict[str, object] = {
            "AUC x100": f"{100 * auc.mean():.2f}",
            "samples": str(auc.size),
            "videos": str(per_video_mean(auc).size),
        }
        for ref in refs:
            if ref == label:
                row[f"{ref} minus it [95% CI]"] = row[f"videos {ref} wins"] = ""
                continue
            mean, lo, hi = paired_bootstrap(per_label[ref], auc, n_boot=n_boot, seed=seed)
            common = per_label[ref].index.intersection(auc.index)
            diff = per_video_mean(per_label[ref][common] - auc[common])
            row[f"{ref} minus it [95% CI]"] = f"{100 * mean:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"
            row[f"videos {ref} wins"] = f"{int((diff > 0).sum())}/{diff.size}"
        rows[label] = row
    order = sorted(per_label, key=lambda k: -float(per_label[k].mean()))
    table = pd.DataFrame.from_dict(rows, orient="index").loc[order]
    table.index.name = "held out"
    return table


def common_samples(per_label: Mapping[str, pd.Series]) -> dict[str, pd.Series]:
    """Every label restricted to the samples all labels have (e.g. a ceiling run on one scribble only)."""
    keys = None
    for auc in per_label.values():
        keys = auc.index if keys is None else keys.intersection(auc.index)
    if keys is None or len(keys) == 0:
        raise InputValidationError(f"held-out labels share no sample: {sorted(per_label)}")
    return {label: auc[keys] for label, auc in per_label.items()}


def run_heldout_report(cfg: object) -> dict[str, object]:
    """``scripts/report.py heldout.runs=... [heldout.sweep=...]``: the held-out table (and gap closed),
    printed and saved. ``heldout.sweep`` adds the variants of a cross-validated training sweep
    (:func:`ivos_rl.sweeps.sweep_labels`), one column per fold."""
    from omegaconf import DictConfig, OmegaConf

    from ivos_rl.sweeps import sweep_labels
    from ivos_rl.utils.io import atomic_write_text

    assert isinstance(cfg, DictConfig)
    spec = cfg.heldout
    folders = OmegaConf.to_container(spec.runs, resolve=True) if spec.get("runs") else {}
    if not isinstance(folders, dict):
        raise ConfigError(f"heldout.runs must map labels to folders, got {spec.runs!r}")
    if spec.get("sweep"):
        sweep = spec.sweep if isinstance(spec.sweep, str) else list(spec.sweep)
        variants = sweep_labels(sweep)
        clash = sorted(set(variants) & set(folders))
        if clash:
            raise ConfigError(f"heldout.runs labels {clash} are also variants of heldout.sweep; rename them")
        folders = {**variants, **folders}
    floor, ceiling = spec.get("floor"), spec.get("ceiling")
    if (floor is None) != (ceiling is None):
        raise ConfigError("heldout.floor and heldout.ceiling go together (gap closed needs both)")
    out = ensure_writable_dir(Path(str(cfg.output_dir)))
    scribbles = None if spec.get("scribbles") is None else list(spec.scribbles)
    runs = label_runs({str(k): v for k, v in folders.items()}, scribbles)
    per_label = {label: pool_runs(r) for label, r in runs.items()}
    n_boot = int(cfg.n_boot)
    table = heldout_table(per_label, [str(r) for r in spec.get("refs") or []], n_boot=n_boot)
    md = to_markdown(table)
    atomic_write_text(out / "heldout.md", md + "\n")
    atomic_write_text(out / "heldout.csv", table.to_csv())
    print(f"Held-out round-AUC x100 (paired 95% bootstrap over videos, {n_boot} draws)\n{md}")
    folds = per_run_table(runs).loc[table.index]
    folds_md = to_markdown(folds, ".2f")
    atomic_write_text(out / "heldout_runs.md", folds_md + "\n")
    print(f"\nRound-AUC x100 per run folder (e.g. per fold; a label's seeds averaged)\n{folds_md}")
    result: dict[str, object] = {"heldout": table.to_dict(), "per_run": folds.to_dict()}
    if floor is not None:
        shared = common_samples(per_label)
        gaps = gap_closed(shared, str(floor), str(ceiling), n_boot=n_boot)
        gap_md = gap_markdown(gaps)
        atomic_write_text(out / "heldout_gap_closed.md", gap_md + "\n")
        n = len(next(iter(shared.values())))
        print(f"\nGap closed = (AUC - {floor}) / ({ceiling} - {floor}), on the {n} samples all labels have")
        print(gap_md)
        result["gap_closed"] = gaps.to_dict()
    return result
