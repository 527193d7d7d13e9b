"""Scoring one round and storing the report rows (the DAVIS-Interactive scorer and report store).

:func:`score_masks` computes J and F per (frame, object) of the masks a round produced; the same
:class:`Scores` give the report rows (:class:`ReportStore`) and the Oracle quality
(:func:`oracle_quality`: the per-frame J&F of exactly the masks that are scored), so the quality an
Oracle agent sees at test time is the quality it was trained on and the number the report shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ivos_rl.metrics import GroundTruth, batched_jaccard_and_f_measure
from ivos_rl.summary import REPORT_COLUMNS

__all__ = [
    "ROUND_TIMING_COLUMNS",
    "ReportStore",
    "Scores",
    "empty_report",
    "oracle_quality",
    "report_rows",
    "score_masks",
    "update_scores",
]

ROUND_TIMING_COLUMNS: tuple[str, ...] = ("robot_seconds", "backend_seconds", "recommender_seconds")
"""Per-round seconds beside davisinteractive's ``timing`` (= backend + recommender of that round)."""


@dataclass(frozen=True)
class Scores:
    """J and F of one round's masks, (T, K) float64 each (K objects, ids 1..K)."""

    j: np.ndarray
    f: np.ndarray

    @property
    def jf(self) -> np.ndarray:
        """(J + F) / 2 per (frame, object)."""
        return 0.5 * self.j + 0.5 * self.f

    def per_frame(self, metric: str = "J_AND_F") -> np.ndarray:
        """(T,) mean over objects of ``metric`` (``J``, ``F`` or ``J_AND_F``)."""
        values = {"J": self.j, "F": self.f, "J_AND_F": self.jf}[metric]
        return values.mean(axis=1)

    @property
    def mean_jf(self) -> float:
        """Mean J&F over frames and objects (the value a round contributes to the curve)."""
        return float(self.jf.mean())


def score_masks(
    gt: np.ndarray, masks: np.ndarray, n_objects: int, threads: int = 1, truth: GroundTruth | None = None
) -> Scores:
    """J and F of label masks ``masks`` (T, H, W) against ``gt`` for objects 1..``n_objects``.

    ``threads`` spreads frames over a thread pool (:mod:`ivos_rl.metrics`); the figures do not
    depend on it, only the wall time does (worth it at 480p: ``metric_threads`` of evaluation).
    ``truth``: ``gt``'s :class:`~ivos_rl.metrics.GroundTruth` (the same figures, less work).
    """
    j, f = batched_jaccard_and_f_measure(gt, masks, nb_objects=n_objects, threads=threads, truth=truth)
    return Scores(np.asarray(j, dtype=np.float64), np.asarray(f, dtype=np.float64))


def update_scores(
    previous: Scores,
    gt: np.ndarray,
    masks: np.ndarray,
    n_objects: int,
    changed: Iterable[int],
    threads: int = 1,
    truth: GroundTruth | None = None,
) -> Scores:
    """:func:`score_masks` of ``masks`` that differ from the masks ``previous`` scored only on the
    ``changed`` frames (a backend's ``BackendOutput.changed_frames``): J and F are per frame, so
    only those frames are scored again and the others' values are copied."""
    j, f = previous.j.copy(), previous.f.copy()
    idx = np.asarray(sorted({int(t) for t in changed}), dtype=np.int64)
    if idx.size:  # those rows of the whole stacks (no copies of the frames; ``truth`` covers the whole)
        j[idx], f[idx] = batched_jaccard_and_f_measure(
            gt, masks, nb_objects=n_objects, threads=threads, truth=truth, frames=idx
        )
    return Scores(j, f)


def oracle_quality(scores: Scores) -> np.ndarray:
    """The Oracle setting's quality: per-frame mean J&F over objects of the scored masks, (T,)."""
    return scores.per_frame("J_AND_F")


def report_rows(
    scores: Scores,
    *,
    session_id: str,
    sequence: str,
    scribble_idx: int,
    interaction: int,
    timing: float,
    extra: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """davisinteractive's report rows of one scored round (one row per frame and object).

    ``extra`` adds constant columns (e.g. :data:`ROUND_TIMING_COLUMNS`) after the standard ones.
    """
    n_frames, n_obj = scores.j.shape
    data: dict[str, Any] = {
        "session_id": session_id,
        "sequence": sequence,
        "scribble_idx": int(scribble_idx),
        "interaction": int(interaction),
        "object_id": np.tile(np.arange(1, n_obj + 1), n_frames),
        "frame": np.repeat(np.arange(n_frames), n_obj),
        "jaccard": scores.j.ravel(),
        "contour": scores.f.ravel(),
        "j_and_f": scores.jf.ravel(),
        "timing": float(timing),
    }
    columns = list(REPORT_COLUMNS)
    for key, value in (extra or {}).items():
        data[key] = float(value)
        columns.append(key)
    return pd.DataFrame(data, columns=columns)


def empty_report(extra_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A report with the standard columns (plus ``extra_columns``) and no row, typed as a full one."""
    text = ("session_id", "sequence")
    cols = (*REPORT_COLUMNS, *extra_columns)
    return pd.DataFrame({c: pd.Series(dtype=object if c in text else float) for c in cols})


class ReportStore:
    """Scored rounds, in order; :meth:`frame` concatenates them once and caches the result."""

    def __init__(self) -> None:
        self._chunks: list[pd.DataFrame] = []
        self._cache: pd.DataFrame | None = None

    def add(self, chunk: pd.DataFrame) -> None:
        self._chunks.append(chunk)
        self._cache = None

    def __len__(self) -> int:
        return len(self._chunks)

    def frame(self) -> pd.DataFrame:
        """Every stored row (a copy: callers may modify it)."""
        if self._cache is None:
            self._cache = pd.concat(self._chunks, ignore_index=True) if self._chunks else empty_report()
        return self._cache.copy()
