"""Summaries of a DAVIS-Interactive report: time-based AUC, J&F@60s and IVOS-W's round-based AUC.

Two different areas under two different curves are in use in the IVOS literature, and mixing
them up silently changes published numbers, so they carry distinct names everywhere:

* ``auc_time`` / ``jf_at_60s`` (davisinteractive's ``summarize_report``): the metric versus the
  cumulative mean *time* of the interactions, closed by a point at the global timeout that
  repeats the last value; the area is divided by the largest time.
* ``auc_rounds`` (IVOS-W): the metric versus the *interaction index*, curve ``[0, r1, ..., rN]``
  with ``r_i`` the mean after round ``i``, trapezoid over ``x = i / N``.

Both start from the same reconstruction: every expected (round, sample, object) gets a value;
a round missing for a sample (timeout) repeats the sample's previous round with timing 0, and a
sample never evaluated counts as 0. Means are over (sample, object) rows, as in the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ivos_rl.errors import InputValidationError
from ivos_rl.metrics import METRIC_KEYS

__all__ = [
    "METRIC_COLUMNS",
    "REPORT_COLUMNS",
    "SPREAD_KEYS",
    "auc_rounds",
    "ivosw_summary",
    "round_curve",
    "spread",
    "summarize_report",
]

REPORT_COLUMNS: tuple[str, ...] = (
    "session_id",
    "sequence",
    "scribble_idx",
    "interaction",
    "object_id",
    "frame",
    "jaccard",
    "contour",
    "j_and_f",
    "timing",
)
"""Columns of the report DataFrame, in davisinteractive's order."""

METRIC_COLUMNS: dict[str, str] = dict(zip(METRIC_KEYS, ("jaccard", "contour", "j_and_f"), strict=True))
"""``metric_to_optimize`` name -> report column."""

_VALUES = ("jaccard", "contour", "j_and_f", "timing")
_KEYS = ("interaction", "sequence", "scribble_idx", "object_id")

SampleSpec = tuple[str, int, int]
"""(sequence, scribble_idx, n_objects) of one expected sample."""


def _check_metric(metric: str) -> str:
    if metric not in METRIC_COLUMNS:
        raise InputValidationError(f"metric must be one of {sorted(METRIC_COLUMNS)}, got {metric!r}")
    return METRIC_COLUMNS[metric]


def _shown(value: Any) -> Any:
    """Plain Python value for error messages (``3`` rather than ``np.int64(3)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_report(df: pd.DataFrame) -> None:
    """Refuse reports that would summarise to garbage: missing columns, NaN, bad indices."""
    if not isinstance(df, pd.DataFrame):
        raise InputValidationError(f"report must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in (*_KEYS, *_VALUES) if c not in df.columns]
    if missing:
        raise InputValidationError(f"report lacks columns {missing}; expected {list(REPORT_COLUMNS)}")
    if len(df) == 0:
        return
    for col in _VALUES:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputValidationError(
                f"report column {col!r} has {int(bad.sum())} NaN/inf or non-numeric values "
                f"(first at row {row}: {_shown(df[col].iloc[row])!r})"
            )
    for col in ("interaction", "scribble_idx", "object_id"):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values < 1) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            found = _shown(df[col].iloc[row])
            raise InputValidationError(
                f"report column {col!r} must hold integers >= 1, found {found!r} at row {row}"
            )
    timing = df["timing"].to_numpy(dtype=np.float64)
    if (timing < 0).any():
        raise InputValidationError(
            f"report column 'timing' has negative values, e.g. {float(timing.min())!r}"
        )


def _samples_from_report(df: pd.DataFrame) -> list[SampleSpec]:
    """Expected samples when the caller gives none: those in the report, K = max object id seen."""
    n_obj = df.groupby("sequence")["object_id"].max()
    pairs = df[["sequence", "scribble_idx"]].drop_duplicates().itertuples(index=False)
    return sorted((str(s), int(i), int(n_obj[s])) for s, i in pairs)


def _check_samples(samples: Sequence[SampleSpec]) -> list[SampleSpec]:
    out: list[SampleSpec] = []
    for s in samples:
        if len(s) != 3 or not isinstance(s[0], str) or int(s[1]) < 1 or int(s[2]) < 1:
            raise InputValidationError(
                f"samples must be (sequence, scribble_idx >= 1, n_objects >= 1) triples, got {s!r}"
            )
        out.append((s[0], int(s[1]), int(s[2])))
    if len(set((s, i) for s, i, _ in out)) != len(out):
        raise InputValidationError("samples lists the same (sequence, scribble_idx) more than once")
    return out


def _reconstruct(df: pd.DataFrame, samples: Sequence[SampleSpec], max_i: int) -> dict[SampleSpec, np.ndarray]:
    """Per sample an array (max_i, n_objects, 4) of jaccard, contour, j_and_f, timing.

    A round with any object missing repeats the previous round's values with timing 0; before
    the first evaluated round that means zeros, exactly like davisinteractive's reconstruction.
    """
    if len(df):
        grouped = df.groupby(list(_KEYS))[list(_VALUES)].mean()
        lookup = {
            (int(i), str(s), int(sc), int(o)): row
            for (i, s, sc, o), row in zip(grouped.index, grouped.to_numpy(dtype=np.float64), strict=True)
        }
    else:
        lookup = {}
    out: dict[SampleSpec, np.ndarray] = {}
    for seq, sidx, n_obj in samples:
        res = np.zeros((max_i, n_obj, len(_VALUES)), dtype=np.float64)
        prev = np.zeros((n_obj, len(_VALUES)), dtype=np.float64)
        for it in range(1, max_i + 1):
            rows = [lookup.get((it, seq, sidx, k)) for k in range(1, n_obj + 1)]
            if any(r is None for r in rows):
                prev = prev.copy()
                prev[:, -1] = 0.0
            else:
                prev = np.stack(rows)  # type: ignore[arg-type]
            res[it - 1] = prev
        out[(seq, sidx, n_obj)] = res
    return out


def _max_interactions(df: pd.DataFrame, max_nb_interactions: int | None) -> int:
    if max_nb_interactions:
        if int(max_nb_interactions) < 1:
            raise InputValidationError(f"max_nb_interactions must be >= 1, got {max_nb_interactions!r}")
        return int(max_nb_interactions)
    return int(df["interaction"].max()) if len(df) else 1


def _curves(
    df: pd.DataFrame, metric: str, max_nb_interactions: int | None, samples: Sequence[SampleSpec] | None
) -> tuple[np.ndarray, np.ndarray, int, list[SampleSpec]]:
    """(per-round metric (N,), per-round cumulative mean time (N,), N, samples) after reconstruction."""
    column = _check_metric(metric)
    _check_report(df)
    specs = _check_samples(samples) if samples is not None else _samples_from_report(df)
    if not specs:
        raise InputValidationError("cannot summarise a report without any sample")
    max_i = _max_interactions(df, max_nb_interactions)
    rec = _reconstruct(df, specs, max_i)
    stacked = np.concatenate([rec[s] for s in specs], axis=1)  # (max_i, sum of objects, 4)
    m = stacked[:, :, _VALUES.index(column)].mean(axis=1)
    per_sample_time = np.stack([rec[s][:, :, -1].mean(axis=1) for s in specs], axis=1)  # (max_i, S)
    cum_time = np.cumsum(per_sample_time.mean(axis=1))
    return m, cum_time, max_i, specs


def round_curve(
    df: pd.DataFrame,
    metric: str = "J_AND_F",
    max_nb_interactions: int | None = None,
    samples: Sequence[SampleSpec] | None = None,
) -> list[float]:
    """IVOS-W's curve ``[0, r1, ..., rN]``: the metric after each round, round 0 counting as 0.

    ``r_i`` is the mean over (sample, object) of the per-object frame-mean after interaction
    ``i``, with missing rounds reconstructed (module docstring). ``samples`` lists the expected
    (sequence, scribble_idx, n_objects); by default the samples present in the report. The
    result feeds :func:`auc_rounds` directly.
    """
    m, _, _, _ = _curves(df, metric, max_nb_interactions, samples)
    return [0.0, *(float(v) for v in m)]


def auc_rounds(curve: Sequence[float]) -> float:
    """IVOS-W's round-AUC of a curve ``[0, r1, ..., rN]``: trapezoid over ``x = i / N``.

    The leading 0 is the score before any interaction and must be included, so that
    ``auc_rounds(round_curve(df))`` is the paper's number; a curve without it (``[r1, ...]``)
    would be integrated over the wrong x and is refused.
    """
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise InputValidationError(f"curve must be a 1-D list [0, r1, ..., rN], N >= 1; got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise InputValidationError(f"curve contains NaN/inf: {c.tolist()}")
    if c[0] != 0.0:
        raise InputValidationError(
            f"curve must start with the round-0 score 0 (IVOS-W convention), got {c[0]!r}; "
            "prepend 0 to per-round values"
        )
    n = c.size - 1
    return float(np.trapezoid(c, x=np.arange(n + 1) / n))


def summarize_report(
    df: pd.DataFrame,
    metric: str = "J_AND_F",
    max_nb_interactions: int | None = None,
    max_time: float | None = None,
    samples: Sequence[SampleSpec] | None = None,
    time_threshold: float = 60.0,
) -> dict[str, Any]:
    """davisinteractive's ``summarize_report`` plus IVOS-W's round-AUC, under distinct names.

    Arguments mirror the reference evaluation service: ``max_nb_interactions`` fixes the number
    of rounds to reconstruct (default: the largest in the report); ``max_time`` (seconds per
    object) sets the global timeout ``mean objects per sequence × max_time`` closing the time
    curve, otherwise ``rounds × largest single timing``; ``samples`` lists the expected
    (sequence, scribble_idx, n_objects) so that samples never evaluated count as 0.

    Returns ``auc_time``, ``jf_at_60s`` (the metric interpolated at ``time_threshold`` seconds,
    named after the default metric and threshold), ``auc_rounds``, ``curve_time``
    (``{"time": [...], metric: [...]}`` with the appended timeout point), ``curve_rounds``
    (``{"round": [0..N], metric: [0, r1..rN]}``) and the parameters used.
    """
    if not np.isfinite(time_threshold) or time_threshold < 0:
        raise InputValidationError(f"time_threshold must be a finite value >= 0, got {time_threshold!r}")
    if max_time is not None and (not np.isfinite(max_time) or max_time < 0):
        raise InputValidationError(f"max_time must be a finite value >= 0 or None, got {max_time!r}")
    m, cum_time, max_i, specs = _curves(df, metric, max_nb_interactions, samples)

    if max_time:
        objects_per_sequence = {seq: n for seq, _, n in specs}
        global_timeout = float(np.mean(list(objects_per_sequence.values()))) * float(max_time)
    else:
        if len(df) == 0:
            raise InputValidationError(
                "cannot close the time curve of an empty report without max_time (no timing at all)"
            )
        global_timeout = max_i * float(df.groupby(list(_KEYS))["timing"].mean().max())

    time = np.concatenate(([0.0], cum_time, [global_timeout]))
    values = np.concatenate(([0.0], m, m[-1:]))
    at_threshold = float(np.interp(time_threshold, time, values))
    t_max = float(time.max())
    auc_time = 0.0 if t_max == 0.0 else float(np.trapezoid(values, x=time) / t_max)

    rounds = [0.0, *(float(v) for v in m)]
    return {
        "metric": metric,
        "auc_time": auc_time,
        "jf_at_60s": at_threshold,
        "auc_rounds": auc_rounds(rounds),
        "curve_time": {"time": time.tolist(), metric: values.tolist()},
        "curve_rounds": {"round": list(range(max_i + 1)), metric: rounds},
        "time_threshold": float(time_threshold),
        "global_timeout": global_timeout,
        "max_nb_interactions": max_i,
        "n_samples": len(specs),
    }


def ivosw_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The ``summary.json`` layout IVOS-W's scripts write: ``{"auc": ..., "curve": {metric: [...]}}``.

    Its ``auc`` is the round-AUC and its curve the per-round one including the leading 0.
    """
    metric = summary["metric"]
    return {"auc": summary["auc_rounds"], "curve": {metric: list(summary["curve_rounds"][metric])}}


SPREAD_KEYS: tuple[str, ...] = ("auc_time", "jf_at_60s", "auc_rounds")
"""Summary values reported with their spread over simulated users."""


def spread(
    summaries: Sequence[Mapping[str, Any]], keys: Sequence[str] = SPREAD_KEYS
) -> dict[str, dict[str, float]]:
    """Mean, std (ddof 1; 0 for one run) and count of ``keys`` over runs that differ only by the user.

    The runs are the same evaluation under different robot seeds (our robot is deterministic,
    so its tie-breaks are varied on purpose; the reference's vary run to run) or different
    annotators of a population (``configs/annotator/``): the std is the part of a number that
    is due to the simulated user, which a difference between methods must exceed.
    """
    if not summaries:
        raise InputValidationError("spread needs at least one summary")
    out: dict[str, dict[str, float]] = {}
    for key in keys:
        missing = [i for i, s in enumerate(summaries) if key not in s]
        if missing:
            raise InputValidationError(
                f"summary {missing[0]} has no {key!r}; keys: {sorted(summaries[missing[0]])}"
            )
        values = np.asarray([float(s[key]) for s in summaries], dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputValidationError(f"{key!r} has non-finite values: {values.tolist()}")
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out[key] = {"mean": float(values.mean()), "std": std, "n": int(values.size)}
    return out
