"""A local DAVIS-Interactive evaluation session (no server, no davisinteractive import).

The flow is davisinteractive's, so existing IVOS evaluation loops port by changing the import::

    with InteractiveSession(dataset, max_nb_interactions=8) as sess:
        while sess.next():
            sequence, scribbles, new_sequence = sess.get_scribbles()
            pred_masks = model(sequence, scribbles)              # (T, H, W) labels 0..K
            sess.submit_masks(pred_masks, next_scribble_frame_candidates=[frame])
        report = sess.get_report()
        summary = sess.get_global_summary("summary.json")

A sample is (sequence, initial scribble index). Each submission is scored per frame and object
(J, F, J&F, and the time since ``get_scribbles``), then the robot answers on the worst frame
among the candidates not annotated yet. A sample ends after ``max_nb_interactions`` rounds or
when ``max_time × n_objects`` seconds have passed since it started; a submission past that
timeout is not scored. Summaries follow :mod:`ivos_rl.summary`.

The robot may return scribbles (:class:`~ivos_rl.robot.ScribbleRobot`) or clicks
(:class:`~ivos_rl.clicks.ClickRobot`); the session stores whatever dict it returns, so
:meth:`InteractiveSession.get_interaction` is the generic accessor and ``get_scribbles`` its
davisinteractive-compatible alias. Fused interactions carry a per-frame list under each kind
present (``"scribbles"`` and/or ``"clicks"``).

Differences from davisinteractive, all deliberate: bad input raises a typed error and leaves
the session unchanged (validation runs before any state change); ties between equally bad
frames go to the lowest index (stable sort); no 600 s / 16-interaction caps; the robot is not
run after the last allowed interaction (its answer could never be used); the running report
snapshot is written when a sample ends instead of after every submission.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import pandas as pd

from ivos_rl.data.layout import read_image_set
from ivos_rl.errors import (
    ConfigError,
    DatasetError,
    InputValidationError,
    MaskFormatError,
    MissingDataError,
    SessionError,
)
from ivos_rl.interactions import Robot, check_interaction, first_annotated_frame, fuse_interactions
from ivos_rl.rounds import check_ground_truth
from ivos_rl.scoring import ReportStore, report_rows, score_masks
from ivos_rl.summary import METRIC_COLUMNS, summarize_report
from ivos_rl.utils.io import atomic_path, atomic_write_json
from ivos_rl.utils.logging import get_logger

__all__ = [
    "InteractiveSession",
    "validate_pred_masks",
]

_log = get_logger(__name__)


def validate_pred_masks(pred_masks: Any, shape: tuple[int, ...], n_objects: int) -> np.ndarray:
    """Return predicted labels as uint8 (T, H, W) or raise :class:`InputValidationError`.

    Accepted: integer or bool arrays, and float arrays holding whole numbers (some models keep
    float label maps); refused: wrong shape, NaN/inf, fractional or negative values, ids > K.
    """
    a = np.asarray(pred_masks)
    if a.shape != tuple(shape):
        raise InputValidationError(f"pred_masks must have shape {tuple(shape)}, got {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        finite = np.isfinite(a)
        if not finite.all():
            raise InputValidationError(f"pred_masks contains {int(a.size - finite.sum())} NaN/inf values")
        frac = a != np.round(a)
        if frac.any():
            raise InputValidationError(
                f"pred_masks must hold whole object ids, found {a[frac].flat[0].item()!r}"
            )
    elif not np.issubdtype(a.dtype, np.integer):
        raise InputValidationError(f"pred_masks must have an integer dtype, got {a.dtype}")
    if a.size:
        lo, hi = a.min().item(), a.max().item()
        if lo < 0:
            raise InputValidationError(f"pred_masks has negative ids, e.g. {lo!r}")
        if hi > n_objects:
            n_bad = int(np.count_nonzero(a > n_objects))
            raise InputValidationError(
                f"pred_masks has ids up to {hi!r} but the sequence has {n_objects} objects "
                f"({n_bad} pixels above {n_objects})"
            )
    return a.astype(np.uint8)


def _as_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_session_args(
    max_nb_interactions: Any,
    max_time: Any,
    metric_to_optimize: str,
    initial_interaction: str,
    subset: str | None,
    sequences: Sequence[str] | None,
    time_threshold: float,
) -> int | None:
    """Typed errors for :class:`InteractiveSession`'s arguments; ``max_nb_interactions`` as an int."""
    if max_nb_interactions is not None:
        max_nb_interactions = _as_int(max_nb_interactions, "max_nb_interactions", 1)
    if max_time is not None and (
        isinstance(max_time, bool)
        or not isinstance(max_time, (int, float))
        or not math.isfinite(max_time)
        or max_time <= 0
    ):
        raise ConfigError(f"max_time must be a finite number of seconds > 0 or None, got {max_time!r}")
    if max_nb_interactions is None and max_time is None:
        raise ConfigError("max_nb_interactions and max_time cannot both be None (no end)")
    if metric_to_optimize not in METRIC_COLUMNS:
        raise ConfigError(
            f"metric_to_optimize must be one of {sorted(METRIC_COLUMNS)}, got {metric_to_optimize!r}"
        )
    if initial_interaction not in ("dataset", "robot"):
        raise ConfigError(f"initial_interaction must be 'dataset'/'robot', not {initial_interaction!r}")
    if subset is not None and sequences is not None:
        raise ConfigError("give either subset or sequences, not both")
    if not math.isfinite(time_threshold) or time_threshold < 0:
        raise ConfigError(f"time_threshold must be finite seconds >= 0, got {time_threshold!r}")
    return max_nb_interactions


class InteractiveSession:
    """Context manager running the DAVIS-Interactive protocol locally on a :class:`DavisDataset`.

    ``dataset`` provides sequences, masks and initial scribbles; ``subset`` (an image-set name
    relative to ``ImageSets/``, e.g. ``"2016/train"``) or ``sequences`` restricts the sequences;
    ``samples`` gives (sequence, scribble_idx) pairs explicitly. ``seed`` drives ``shuffle`` and
    the session id. ``clock`` (seconds, monotonic) is injectable for tests. With
    ``initial_interaction="robot"`` the first interaction is the robot's answer to an empty
    prediction on the frame of the sample's initial scribble (for click robots), instead of the
    stored human scribble. Every argument is validated (:func:`_check_session_args`) before any
    state exists, so a bad argument never leaves a half-built session.
    """

    def __init__(
        self,
        dataset: Any,
        subset: str | None = None,
        sequences: Sequence[str] | None = None,
        max_nb_interactions: int | None = 8,
        max_time: float | None = None,
        metric_to_optimize: str = "J_AND_F",
        robot: Robot | None = None,
        report_save_dir: str | Path | None = None,
        seed: int = 0,
        shuffle: bool = False,
        samples: Sequence[tuple[str, int]] | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        time_threshold: float = 60.0,
        report_name: str | None = None,
        initial_interaction: Literal["dataset", "robot"] = "dataset",
    ) -> None:
        max_nb_interactions = _check_session_args(
            max_nb_interactions, max_time, metric_to_optimize, initial_interaction, subset, sequences,
            time_threshold,
        )
        seed = _as_int(seed, "seed", 0)

        self.dataset = dataset
        self.max_nb_interactions = max_nb_interactions
        self.max_time = None if max_time is None else float(max_time)
        self.metric_to_optimize = metric_to_optimize
        if robot is None:
            from ivos_rl.robot import ScribbleRobot  # imported here: click sessions do not need it

            robot = ScribbleRobot()
        self.robot: Robot = robot
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.time_threshold = float(time_threshold)
        self.initial_interaction = initial_interaction
        self._clock = clock
        self.report_save_dir = None if report_save_dir is None else Path(report_save_dir)
        self.report_name = report_name or datetime.now().strftime("result_%Y%m%d_%H%M%S")

        rng = np.random.default_rng(seed)
        self.session_id = rng.bytes(8).hex()
        chosen = self._resolve_sequences(subset, sequences)
        resolved = self._resolve_samples(chosen, samples)
        if self.shuffle:
            resolved = [resolved[i] for i in rng.permutation(len(resolved))]
        self.samples: list[tuple[str, int]] = resolved
        self._n_objects = {seq: self._objects_of(seq) for seq in dict.fromkeys(s for s, _ in resolved)}

        self._entered = False
        self._finished = False
        self._sample_idx = -1
        self._interaction_nb = -1
        self._sample_start: float | None = None
        self._interaction_start: float | None = None
        self._running_model = False
        self._all: dict[str, Any] | None = None
        self._last: dict[str, Any] | None = None
        self._gt: np.ndarray | None = None
        self._used_frames: list[int] = []
        self._last_frame: int | None = None
        self._report = ReportStore()

    # ------------------------------------------------------------------ setup
    def _resolve_sequences(self, subset: str | None, sequences: Sequence[str] | None) -> list[str]:
        available = list(self.dataset.sequences)
        if subset is not None:
            wanted = read_image_set(self.dataset.root, subset)
        elif sequences is not None:
            if isinstance(sequences, str):
                raise ConfigError(f"sequences must be a list of names, got the string {sequences!r}")
            wanted = list(sequences)
        else:
            return available
        unknown = [s for s in wanted if s not in available]
        if unknown:
            raise DatasetError(f"sequences not in the dataset: {unknown}", self.dataset.root)
        return wanted

    def _resolve_samples(
        self, chosen: list[str], samples: Sequence[tuple[str, int]] | None
    ) -> list[tuple[str, int]]:
        if samples is None:
            keep = set(chosen)
            out = [(str(s), int(i)) for s, i in self.dataset.samples() if s in keep]
            if not out:
                raise DatasetError(
                    f"no initial scribble files for sequences {chosen[:5]}{'...' if len(chosen) > 5 else ''}"
                    "; generate Scribbles/ first or pass samples=",
                    getattr(self.dataset, "root", None),
                )
            return out
        out = []
        for item in samples:
            if (
                not isinstance(item, (tuple, list))
                or len(item) != 2
                or not isinstance(item[0], str)
                or isinstance(item[1], bool)
                or not isinstance(item[1], (int, np.integer))
            ):
                raise ConfigError(f"samples must be (sequence, scribble_idx) pairs, got {item!r}")
            seq, idx = item[0], int(item[1])
            if seq not in chosen:
                raise DatasetError(f"sample sequence {seq!r} is not among the session's sequences")
            if idx not in self.dataset.scribble_indices(seq):
                raise MissingDataError(
                    f"sample ({seq!r}, {idx}) has no initial scribble file; "
                    f"available: {list(self.dataset.scribble_indices(seq))}"
                )
            out.append((seq, idx))
        if not out:
            raise ConfigError("samples is empty")
        if len(set(out)) != len(out):
            raise ConfigError("samples lists the same (sequence, scribble_idx) twice")
        return out

    def _objects_of(self, seq: str) -> int:
        n = int(self.dataset.info(seq).n_objects)
        if n < 1:
            raise MaskFormatError(f"sequence {seq!r} has an empty ground truth (no object)")
        return n

    # ------------------------------------------------------------ context
    def __enter__(self) -> InteractiveSession:
        self._entered = True
        self._sample_idx = -1
        self._interaction_nb = -1
        _log.info("started session %s with %d samples", self.session_id, len(self.samples))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._entered = False

    def _require_entered(self, what: str) -> None:
        if not self._entered:
            raise SessionError(f"{what} needs the session to be entered (use `with InteractiveSession(...)`)")

    # ------------------------------------------------------------- state
    @property
    def current_sample(self) -> tuple[str, int] | None:
        """(sequence, scribble_idx) being evaluated, or None before ``next`` / after the end."""
        if 0 <= self._sample_idx < len(self.samples):
            return self.samples[self._sample_idx]
        return None

    @property
    def interaction_number(self) -> int:
        """Interactions submitted for the current sample (0 right after a sample starts)."""
        return max(self._interaction_nb, 0)

    @property
    def last_annotated_frame(self) -> int | None:
        """Frame the robot annotated after the last scored submission of this sample."""
        return self._last_frame

    def _timeout(self) -> float | None:
        sample = self.current_sample
        if self.max_time is None or sample is None:
            return None
        return self.max_time * self._n_objects[sample[0]]

    def next(self) -> bool:
        """Move to the next interaction, or to the next sample when the current one is over.

        Returns False once every sample has been evaluated (and then writes the final report
        and summary when ``report_save_dir`` is set).
        """
        self._require_entered("next()")
        if self._running_model:
            raise SessionError("next() called between get_scribbles and submit_masks; submit the masks first")
        now = self._clock()
        change = self._sample_idx < 0
        if self.max_nb_interactions is not None and self._interaction_nb >= self.max_nb_interactions:
            change = True
            _log.debug("maximum number of interactions reached")
        timeout = self._timeout()
        if timeout is not None and self._sample_start is not None and now - self._sample_start > timeout:
            change = True
            _log.info("maximum time per sample reached (%.1f s)", timeout)
        if change and self._sample_idx < len(self.samples):
            if self._sample_idx >= 0:
                self._save_snapshot()
            self._sample_idx += 1
            self._interaction_nb = 0
            self._sample_start = self._clock()
            self._all = self._last = self._gt = None
            self._used_frames = []
            self._last_frame = None
        end = self._sample_idx >= len(self.samples)
        if end and not self._finished:
            self._finished = True
            self._save_final()
        elif change and not end:
            _log.debug("start evaluation of %s (scribble %d)", *self.samples[self._sample_idx])
        return not end

    def _load_initial(self, seq: str, idx: int, gt: np.ndarray) -> dict[str, Any]:
        scribbles = self.dataset.load_scribbles(seq, idx)
        check_interaction(scribbles, gt.shape[0], f"initial scribble {idx} of {seq!r}")
        if self.initial_interaction == "dataset":
            return copy.deepcopy(scribbles)
        frame = first_annotated_frame(scribbles, f"initial scribble {idx} of {seq!r}")
        first = self.robot.interact(seq, np.zeros_like(gt), gt, nb_objects=self._n_objects[seq], frame=frame)
        check_interaction(first, gt.shape[0], f"robot answer for {seq!r}")
        return first

    def get_interaction(self, only_last: bool = False) -> tuple[str, dict[str, Any], bool]:
        """(sequence, interactions, new_sequence) for the current round; starts the timer.

        By default all interactions of the sample so far, fused; ``only_last`` gives the latest
        one. The dict is a copy: modifying it does not affect the session.
        """
        self._require_entered("get_scribbles()")
        if self._running_model:
            raise SessionError("get_scribbles() called twice without submit_masks() in between")
        sample = self.current_sample
        if sample is None:
            raise SessionError(
                "no current sample: call next() first" if self._sample_idx < 0 else "the session has ended"
            )
        if self.max_nb_interactions is not None and self._interaction_nb >= self.max_nb_interactions:
            raise SessionError(
                f"interaction {self._interaction_nb + 1} exceeds max_nb_interactions="
                f"{self.max_nb_interactions}; call next()"
            )
        seq, idx = sample
        new_sequence = False
        if self._interaction_nb == 0 and self._all is None:
            gt = check_ground_truth(self.dataset.load_masks(seq), seq)
            first = self._load_initial(seq, idx, gt)
            self._gt, self._all, self._last = gt, first, first
            new_sequence = True
        self._interaction_start = self._clock()
        self._running_model = True
        chosen = self._last if only_last else self._all
        return seq, copy.deepcopy(chosen), new_sequence  # type: ignore[return-value]

    def get_scribbles(self, only_last: bool = False) -> tuple[str, dict[str, Any], bool]:
        """davisinteractive-compatible alias of :meth:`get_interaction`."""
        return self.get_interaction(only_last=only_last)

    def interactions_iterator(self, only_last: bool = False) -> Iterator[tuple[str, dict[str, Any], bool]]:
        """``while sess.next(): yield sess.get_interaction()`` (``scribbles_iterator`` alias)."""
        while self.next():
            yield self.get_interaction(only_last=only_last)

    scribbles_iterator = interactions_iterator

    def _check_candidates(self, candidates: Any, n_frames: int) -> set[int] | None:
        if candidates is None:
            return None
        if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
            raise InputValidationError(
                f"next_scribble_frame_candidates must be a list of frame indices, got {candidates!r}"
            )
        out: set[int] = set()
        for c in candidates:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n_frames:
                shown = c.item() if isinstance(c, np.generic) else c
                raise InputValidationError(
                    f"next_scribble_frame_candidates has {shown!r}, outside the frames [0, {n_frames})"
                )
            out.add(int(c))
        return out

    def _next_frame(self, metric: np.ndarray, candidates: set[int] | None) -> int:
        """The reference rule: worst frame among candidates minus used frames (or all candidates)."""
        n_frames = metric.shape[0]
        used = set(self._used_frames)
        if len(used) == n_frames:
            used = set()
        pool = candidates if candidates else set(range(n_frames))
        allowed = (pool - used) or pool
        for f in np.argsort(metric, kind="stable"):
            if int(f) in allowed:
                return int(f)
        raise SessionError(f"no frame left among candidates {sorted(pool)}")  # unreachable: pool is valid

    def submit_masks(
        self, pred_masks: Any, next_scribble_frame_candidates: Sequence[int] | None = None
    ) -> None:
        """Score ``pred_masks`` (T, H, W) for the current round and get the robot's next answer.

        ``next_scribble_frame_candidates`` restricts where the robot may annotate next (the
        worst-scoring of them not used before; all of them again once all were used; an empty
        list means every frame). Invalid input raises before anything changes, so the call can
        be repeated with corrected input and the same timer.
        """
        self._require_entered("submit_masks()")
        if not self._running_model:
            raise SessionError("submit_masks() called before get_scribbles()")
        time_end = self._clock()
        sample = self.current_sample
        assert sample is not None and self._gt is not None and self._interaction_start is not None
        seq, idx = sample
        gt = self._gt
        n_obj = self._n_objects[seq]
        pred = validate_pred_masks(pred_masks, gt.shape, n_obj)
        candidates = self._check_candidates(next_scribble_frame_candidates, gt.shape[0])
        interaction = self._interaction_nb + 1

        timeout = self._timeout()
        if timeout is not None and self._sample_start is not None and time_end - self._sample_start > timeout:
            _log.warning(
                "submission %d of %s came after the %.1f s timeout and is not evaluated",
                interaction,
                seq,
                timeout,
            )
            self._interaction_nb = interaction
            self._running_model = False
            self._interaction_start = None
            return

        timing = time_end - self._interaction_start
        scores = score_masks(gt, pred, n_obj)
        jac, con, jf = scores.j, scores.f, scores.jf
        n_frames = jac.shape[0]
        chunk = report_rows(
            scores,
            session_id=self.session_id,
            sequence=seq,
            scribble_idx=idx,
            interaction=interaction,
            timing=timing,
        )

        last_round = self.max_nb_interactions is not None and interaction >= self.max_nb_interactions
        answer: dict[str, Any] | None = None
        fused: dict[str, Any] | None = None
        next_frame: int | None = None
        if not last_round:
            metric = {"J": jac, "F": con, "J_AND_F": jf}[self.metric_to_optimize].mean(axis=1)
            next_frame = self._next_frame(metric, candidates)
            answer = self.robot.interact(seq, pred, gt, nb_objects=n_obj, frame=next_frame)
            check_interaction(answer, n_frames, f"robot answer for {seq!r}")
            assert self._all is not None
            fused = fuse_interactions(self._all, answer)

        # Commit: nothing above changed the session.
        self._report.add(chunk)
        self._interaction_nb = interaction
        self._running_model = False
        self._interaction_start = None
        if answer is not None and fused is not None and next_frame is not None:
            self._used_frames.append(next_frame)
            self._last_frame = next_frame
            self._last = answer
            self._all = fused
        _log.debug("%s/%d interaction %d scored in %.3f s", seq, idx, interaction, timing)

    # ------------------------------------------------------------ results
    def get_report(self) -> pd.DataFrame:
        """Every scored (sample, interaction, frame, object) row, davisinteractive's columns."""
        return self._report.frame()

    def get_global_summary(self, save_file: str | Path | None = None) -> dict[str, Any]:
        """:func:`ivos_rl.summary.summarize_report` of the report over all session samples.

        Samples not evaluated yet count as 0, like in davisinteractive. ``save_file`` receives
        the summary as JSON (atomically).
        """
        summary = summarize_report(
            self.get_report(),
            metric=self.metric_to_optimize,
            max_nb_interactions=self.max_nb_interactions,
            max_time=self.max_time,
            samples=[(s, i, self._n_objects[s]) for s, i in self.samples],
            time_threshold=self.time_threshold,
        )
        summary["session_id"] = self.session_id
        if save_file is not None:
            atomic_write_json(save_file, summary)
        return summary

    def _write_csv(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            self.get_report().to_csv(tmp, index=False)

    def _save_snapshot(self) -> None:
        if self.report_save_dir is not None:
            self._write_csv(self.report_save_dir / f"{self.report_name}.tmp.csv")

    def _save_final(self) -> None:
        if self.report_save_dir is None:
            return
        self._write_csv(self.report_save_dir / f"{self.report_name}.csv")
        self.get_global_summary(self.report_save_dir / f"{self.report_name}.summary.json")
        snapshot = self.report_save_dir / f"{self.report_name}.tmp.csv"
        if snapshot.exists():
            snapshot.unlink()
        _log.info("report saved to %s", self.report_save_dir)
