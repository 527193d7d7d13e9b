"""Choose a training-free strategy's knobs by cross-validation over videos; report held-out figures.

A rule with knobs (e.g. ``span_error``'s decay length) is evaluated once per knob setting on every
video. Per test fold k of :func:`ivos_rl.data.splits.video_folds` (the shared folds), the setting
with the best mean per-video round-AUC on the OTHER folds' videos is chosen, and the cross-validated
rule scores that setting's AUC on fold k's videos: no video's figure comes from a choice it took
part in. The result is compared with baseline runs by a paired bootstrap over videos
(:func:`ivos_rl.reporting.paired_bootstrap`).

Runs are evaluation folders (``scripts/evaluate.py`` outputs); a label may name several: folders
with disjoint samples (e.g. one per fold, each with its own fold's quality estimator) are joined,
folders sharing samples (e.g. Random's seeds) are averaged per sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ivos_rl.data.splits import video_folds
from ivos_rl.errors import InputValidationError
from ivos_rl.reporting import paired_bootstrap, per_sample_auc, per_video_mean, sample_videos, to_markdown

__all__ = ["cv_choice", "cv_table", "load_auc", "run_knob_cv"]


def load_auc(folders: Sequence[str | Path] | str | Path) -> pd.Series:
    """Per-sample round-AUC ("sequence/idx") of one label's evaluation folders (module docstring)."""
    from ivos_rl.evaluation import load_sample_results

    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)
    series = []
    for folder in folders:
        samples = load_sample_results(folder)
        if not samples:
            raise InputValidationError(f"no evaluated samples under {folder}/samples")
        series.append(per_sample_auc(samples))
    if not series:
        raise InputValidationError("a knob-CV label names no evaluation folder")
    return pd.concat(series, axis=1).mean(axis=1)


def cv_choice(
    candidates: Mapping[str, pd.Series], folds: Sequence[Sequence[str]]
) -> tuple[pd.Series, dict[int, str]]:
    """(held-out per-sample AUC of the cross-validated rule, {fold: chosen label}).

    Every candidate must cover every video of ``folds`` (a choice on unequal video sets would be
    biased); ties go to the first label in ``candidates``' order.
    """
    if not candidates:
        raise InputValidationError("knob CV needs at least one candidate run")
    videos = [v for fold in folds for v in fold]
    per_video = {k: per_video_mean(s) for k, s in candidates.items()}
    for label, pv in per_video.items():
        missing = sorted(set(videos) - set(pv.index))
        if missing:
            raise InputValidationError(f"knob-CV candidate {label!r} lacks videos {missing}")
    held_out, chosen = [], {}
    for k, test in enumerate(folds):
        train = [v for v in videos if v not in set(test)]
        means = [float(per_video[label][train].mean()) for label in candidates]
        label = list(candidates)[int(np.argmax(means))]
        chosen[k] = label
        s = candidates[label]
        held_out.append(s[sample_videos(s.index).isin(list(test))])
    return pd.concat(held_out).sort_index(), chosen


_TIE = 1e-9


def cv_table(
    rule: pd.Series, baselines: Mapping[str, pd.Series], n_boot: int = 2000, label: str = "cv rule"
) -> pd.DataFrame:
    """Rows: the rule and each baseline with its AUC x100 on the shared videos, rule minus it x100
    with the paired bootstrap 95% interval over videos, the videos the rule wins, and the count.
    A win is a per-video mean above the baseline's by more than ``_TIE`` (1e-9 AUC): the same run
    averaged in another order differs in the last bits, and that is a tie, not a win."""
    mine = per_video_mean(rule)
    rows = {label: {"AUC x100": 100 * float(mine.mean()), "videos": mine.size}}
    for name, base in baselines.items():
        other = per_video_mean(base)
        common = mine.index.intersection(other.index)
        if common.empty:
            raise InputValidationError(f"knob CV: the rule and baseline {name!r} share no video")
        mean, lo, hi = paired_bootstrap(rule, base, n_boot=n_boot)
        rows[name] = {
            "AUC x100": 100 * float(other[common].mean()),
            "rule minus it x100": 100 * mean,
            "95% lo": 100 * lo,
            "95% hi": 100 * hi,
            "rule wins": int((mine[common] - other[common] > _TIE).sum()),
            "videos": int(common.size),
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "strategy"
    return out


def _markdown(table: pd.DataFrame) -> str:
    """The table with counts as integers and the rule's own comparison cells empty."""
    shown = table.astype(object).where(table.notna(), "")
    for col in ("videos", "rule wins"):
        if col in shown:
            shown[col] = [v if v == "" else int(v) for v in shown[col]]
    return to_markdown(shown, ".2f")


def run_knob_cv(cfg: Any) -> dict[str, Any]:
    """Entry of ``scripts/knob_cv.py`` (``configs/knob_cv.yaml``): table and choices, printed and saved."""
    from omegaconf import OmegaConf

    from ivos_rl.utils.io import atomic_write_json, atomic_write_text, ensure_writable_dir

    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    candidates = {str(k): load_auc(v) for k, v in (plain.get("candidates") or {}).items()}
    baselines = {str(k): load_auc(v) for k, v in (plain.get("baselines") or {}).items()}
    videos = sorted({v for s in candidates.values() for v in per_video_mean(s).index})
    folds = video_folds(videos, int(plain["n_folds"]), seed=int(plain["fold_seed"]))
    rule, chosen = cv_choice(candidates, folds)
    table = cv_table(rule, baselines, n_boot=int(plain["n_boot"]), label=str(plain["label"]))
    out = ensure_writable_dir(Path(str(plain["output_dir"])))
    md = _markdown(table)
    choices = "\n".join(f"- fold {k} ({', '.join(folds[k])}): {label}" for k, label in chosen.items())
    atomic_write_text(out / "knob_cv.md", f"{md}\n\nChosen on the other folds' videos:\n{choices}\n")
    result = {"chosen": chosen, "folds": folds, "table": table.to_dict(orient="index"),
              "per_video": per_video_mean(rule).to_dict()}
    atomic_write_json(out / "knob_cv.json", result)
    print(f"Round-AUC x100, {plain['label']} cross-validated over {len(videos)} videos\n{md}\n{choices}")
    return result
