"""The one evaluation loop: dataset × backend × strategy × setting on the round engine.

Every backend and every strategy goes through :func:`evaluate`, which runs each (sequence, initial
scribble) sample on :class:`~ivos_rl.rounds.RoundEngine` -- the same rounds the Gymnasium env and
the quality-sample generator run -- and scores every round with :mod:`ivos_rl.scoring` (the report
rows of davisinteractive). Each round: the backend turns the interactions so far into masks, they
are scored, the strategy picks the next frame from what the setting lets it see (true J&F of those
masks in ``oracle``, the quality net's estimate in ``wild``), and the robot annotates that frame.

Outputs (``out_dir``): ``manifest.json`` first, before any compute (resolved config and the
fingerprint of everything that determines the numbers, :mod:`ivos_rl.provenance`), then one file
per finished sample (``samples/<sequence>__<idx>.json``, carrying the fingerprint), then the
summary. An interrupted evaluation resumes where it stopped -- only into a folder with the same
fingerprint -- and shards evaluated on different machines merge (:func:`merge_runs`) into a
normal run folder once their fingerprints agree and they cover the samples exactly once.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ivos_rl.backends.base import VOSBackend
from ivos_rl.errors import ConfigError, DatasetError, MissingDataError
from ivos_rl.interactions import Robot
from ivos_rl.mask_ap import mask_ap_per_round, presence
from ivos_rl.metrics import METRIC_KEYS
from ivos_rl.provenance import (
    ProvenanceError,
    check_fingerprint,
    describe_difference,
    read_manifest,
    write_manifest,
)
from ivos_rl.rounds import (
    SETTINGS,
    QualityPredictor,
    QualitySource,
    RoundEngine,
    SampleContext,
    Setting,
    estimate_quality,
    load_sample,
)
from ivos_rl.scoring import ROUND_TIMING_COLUMNS, report_rows
from ivos_rl.strategies.base import Strategy, sample_seed
from ivos_rl.summary import REPORT_COLUMNS, ivosw_summary, summarize_report
from ivos_rl.timing import RoundTimeModel
from ivos_rl.utils.io import atomic_write_json, atomic_write_text, ensure_writable_dir
from ivos_rl.utils.logging import get_logger

__all__ = [
    "SETTINGS",
    "EvaluationConfig",
    "EvaluationResult",
    "QualityPredictor",
    "SampleResult",
    "Setting",
    "evaluate",
    "load_sample_results",
    "merge_results",
    "merge_runs",
    "parse_shard",
    "run_evaluation",
    "summarize_samples",
    "write_outputs",
]

_log = get_logger(__name__)

#: Files an evaluation writes into its output folder (what ``overwrite`` may delete).
_OUTPUTS = ("manifest.json", "summary.json", "report.csv", "frames.json", "predictions.json")


@dataclass(frozen=True)
class EvaluationConfig:
    """What an evaluation does, validated once (built from the Hydra config by :meth:`from_cfg`).

    ``max_rounds`` counts DAVIS interactions, the initial one included. ``shard="i/n"`` evaluates
    every n-th sample starting at i. ``resume`` skips samples already in ``out_dir`` (same
    fingerprint only); ``overwrite`` first deletes a previous evaluation's files there instead
    (and wins over ``resume``). ``max_time`` (seconds per object) is DAVIS-Interactive's per-sample
    time budget, spent by the backend and the recommender; ``time_threshold`` is where
    ``jf_at_60s`` reads the time curve; ``mask_ap`` scores every round's masks with the quality
    estimator (when there is one) for Mask AP.
    """

    setting: Setting = "wild"
    max_rounds: int = 8
    metric: str = "J_AND_F"
    sequences: tuple[str, ...] | None = None
    scribbles: tuple[int, ...] | None = None
    max_samples: int | None = None
    shard: str | None = None
    initial_interaction: str = "dataset"
    click_radius: float = 3.0
    metric_threads: int = 1
    resume: bool = True
    overwrite: bool = False
    save_predictions: bool = False
    seed: int = 0
    progress: bool = True
    max_time: float | None = None
    time_threshold: float = 60.0
    mask_ap: bool = True

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ConfigError(f"setting must be one of {SETTINGS}, got {self.setting!r}")
        if isinstance(self.max_rounds, bool) or not isinstance(self.max_rounds, int) or self.max_rounds < 1:
            raise ConfigError(f"max_rounds must be an int >= 1, got {self.max_rounds!r}")
        if self.metric not in METRIC_KEYS:
            raise ConfigError(f"metric must be one of {METRIC_KEYS}, got {self.metric!r}")
        threads = self.metric_threads
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"metric_threads must be an int >= 1, got {self.metric_threads!r}")
        if self.initial_interaction not in ("dataset", "robot"):
            raise ConfigError(
                f"initial_interaction must be 'dataset'/'robot', not {self.initial_interaction!r}"
            )
        if self.max_samples is not None and (not isinstance(self.max_samples, int) or self.max_samples < 1):
            raise ConfigError(f"max_samples must be None or an int >= 1, got {self.max_samples!r}")
        parse_shard(self.shard)
        if self.max_time is not None and (
            isinstance(self.max_time, bool)
            or not isinstance(self.max_time, (int, float))
            or not self.max_time > 0
        ):
            raise ConfigError(f"max_time must be None or seconds > 0, got {self.max_time!r}")
        if isinstance(self.time_threshold, bool) or not isinstance(self.time_threshold, (int, float)):
            raise ConfigError(f"time_threshold must be seconds >= 0, got {self.time_threshold!r}")
        if not 0 <= self.time_threshold < float("inf"):
            raise ConfigError(f"time_threshold must be seconds >= 0, got {self.time_threshold!r}")

    @classmethod
    def from_cfg(cls, cfg: Any) -> EvaluationConfig:
        """Build the typed config from a Hydra/OmegaConf node (keys it does not know are ignored).

        ``cfg.setting`` may be the ``setting`` config group (a mapping with ``name``) or a string.
        """
        from omegaconf import OmegaConf

        node = cfg if isinstance(cfg, Mapping) else OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(node, Mapping)
        kw = {f.name: node[f.name] for f in fields(cls) if node.get(f.name) is not None}
        if isinstance(kw.get("setting"), Mapping):
            kw["setting"] = kw["setting"].get("name")
        for key, conv in (("sequences", str), ("scribbles", int)):
            if key in kw:
                if isinstance(kw[key], str):
                    raise ConfigError(f"{key} must be a list, got the string {kw[key]!r}")
                kw[key] = tuple(conv(v) for v in kw[key]) or None
        if "shard" in kw:
            kw["shard"] = str(kw["shard"])
        return cls(**kw)

    def shard_pair(self) -> tuple[int, int]:
        return parse_shard(self.shard)


@dataclass
class SampleResult:
    """Outcome of one (sequence, initial scribble) sample."""

    sequence: str
    scribble_idx: int
    n_objects: int
    annotated_frames: list[int]
    recommended_frames: list[int]
    rows: list[dict[str, Any]]
    seconds: float
    fingerprint: str | None = None
    gt_present: list[list[bool]] | None = None
    """(T, K): object k + 1 is in frame t of the ground truth (Mask AP; None without an estimator)."""
    quality_scores: list[list[list[float]]] = field(default_factory=list)
    """Per scored round, (T, K) quality estimates of the round's masks: Mask AP's confidences."""
    pred_present: list[list[list[bool]]] = field(default_factory=list)
    """Per scored round, (T, K): object k + 1 is in frame t of the round's prediction."""

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "scribble_idx": self.scribble_idx,
            "n_objects": self.n_objects,
            "annotated_frames": self.annotated_frames,
            "recommended_frames": self.recommended_frames,
            "seconds": self.seconds,
            "fingerprint": self.fingerprint,
            "gt_present": self.gt_present,
            "quality_scores": self.quality_scores,
            "pred_present": self.pred_present,
            "report": self.rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SampleResult:
        return cls(
            sequence=data["sequence"],
            scribble_idx=int(data["scribble_idx"]),
            n_objects=int(data["n_objects"]),
            annotated_frames=[int(f) for f in data["annotated_frames"]],
            recommended_frames=[int(f) for f in data["recommended_frames"]],
            rows=list(data["report"]),
            seconds=float(data["seconds"]),
            fingerprint=data.get("fingerprint"),
            gt_present=data.get("gt_present"),
            quality_scores=list(data.get("quality_scores", [])),
            pred_present=list(data.get("pred_present", [])),
        )


@dataclass
class EvaluationResult:
    """Report, summary and per-sample frame choices of one evaluation run."""

    report: pd.DataFrame
    summary: dict[str, Any]
    samples: list[SampleResult]

    @property
    def auc_rounds(self) -> float:
        return float(self.summary["auc_rounds"])

    @property
    def curve_rounds(self) -> list[float]:
        metric = self.summary["metric"]
        return [float(v) for v in self.summary["curve_rounds"][metric]]


def _sample_file(out_dir: Path, sequence: str, idx: int) -> Path:
    return out_dir / "samples" / f"{sequence}__{idx:03d}.json"


def load_sample_results(out_dir: str | Path) -> list[SampleResult]:
    """Every per-sample result saved under ``out_dir/samples`` (sorted by sequence, scribble)."""
    folder = Path(out_dir) / "samples"
    results = []
    for path in sorted(folder.glob("*.json")):
        try:
            results.append(SampleResult.from_json(json.loads(path.read_text())))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"cannot read per-sample result ({err})", path) from err
    return results


def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int]:
    """``"i/n"`` (or ``(i, n)``) -> (i, n) with 0 <= i < n; None means the whole evaluation."""
    if shard is None:
        return 0, 1
    if isinstance(shard, str):
        try:
            i_str, n_str = shard.split("/")
            i, n = int(i_str), int(n_str)
        except ValueError as err:
            raise ConfigError(f"shard must look like 'i/n' (e.g. '0/2'), got {shard!r}") from err
    else:
        i, n = (int(v) for v in shard)
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n} is invalid: need 0 <= i < n")
    return i, n


def summarize_samples(
    samples: Sequence[SampleResult],
    metric: str = "J_AND_F",
    max_rounds: int | None = None,
    max_time: float | None = None,
    time_threshold: float = 60.0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Report DataFrame and summary (``auc_rounds``, ``auc_time``, ``jf_at_60s``, curves, latencies).

    ``max_time`` (seconds per object) closes the time curve with davisinteractive's rule (see
    :func:`~ivos_rl.summary.summarize_report`). The summary also gives the measured seconds per
    round of the backend and of the recommender (quality estimate + strategy), apart, and Mask AP
    per round when the samples carry quality estimates (:mod:`ivos_rl.mask_ap`).
    """
    rows = [row for s in samples for row in s.rows]
    report = pd.DataFrame(rows, columns=[*REPORT_COLUMNS, *ROUND_TIMING_COLUMNS])
    if not samples:
        return report, _empty_summary(metric, max_rounds)
    specs = [(s.sequence, s.scribble_idx, s.n_objects) for s in samples]
    summary = summarize_report(
        report,
        metric=metric,
        max_nb_interactions=max_rounds,
        max_time=max_time,
        samples=specs,
        time_threshold=time_threshold,
    )
    per_round = report.groupby(["sequence", "scribble_idx", "interaction"])[
        list(ROUND_TIMING_COLUMNS)
    ].first()
    for col in ("backend_seconds", "recommender_seconds"):
        values = pd.to_numeric(per_round[col], errors="coerce").dropna()
        if col == "recommender_seconds":  # the last round recommends nothing
            values = values[values > 0]
        summary[f"{col}_per_round"] = float(values.mean()) if len(values) else None
    summary["max_time"] = max_time
    summary["mask_ap"] = mask_ap_per_round(samples)
    return report, summary


def _empty_summary(metric: str, max_rounds: int | None) -> dict[str, Any]:
    """The summary of a run with no sample (an empty shard): counts 0, no curve values."""
    n = int(max_rounds or 0)
    return {
        "metric": metric,
        "n_samples": 0,
        "auc_rounds": float("nan"),
        "curve_rounds": {metric: [0.0] + [float("nan")] * n},
        "empty": True,
    }


def write_outputs(result: EvaluationResult, out_dir: str | Path) -> None:
    """Report CSV, ``summary.json`` (IVOS-W keys + ours) and recommended frames, atomically."""
    out = Path(out_dir)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.csv", result.report.to_csv(index=False))
    summary = (
        result.summary if result.summary.get("empty") else {**ivosw_summary(result.summary), **result.summary}
    )
    atomic_write_json(out / "summary.json", _json_safe(summary))
    frames = {f"{s.sequence}/{s.scribble_idx}": s.annotated_frames for s in result.samples}
    atomic_write_json(out / "frames.json", frames)


def _json_safe(obj: Any) -> Any:
    """NaN -> None so that the summary of an empty shard is valid JSON."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------- samples


def select_samples(dataset: Any, config: EvaluationConfig) -> list[tuple[str, int]]:
    """Every (sequence, initial scribble) the evaluation covers, before sharding.

    Each selected sequence is opened (``dataset.info``), so a sequence whose frame folder is empty
    or broken raises a typed error naming the folder instead of silently dropping out.
    """
    available = list(dataset.sequences)
    wanted = list(config.sequences) if config.sequences is not None else available
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise DatasetError(f"sequences not in the dataset: {unknown}", getattr(dataset, "root", None))
    for seq in wanted:
        if int(dataset.info(seq).n_frames) < 1:
            raise MissingDataError(f"sequence {seq!r} has no frame", getattr(dataset, "root", None))
    keep = set(wanted)
    out = [
        (str(s), int(i))
        for s, i in dataset.samples()
        if s in keep and (config.scribbles is None or i in set(config.scribbles))
    ]
    if not out:
        scope = f"sequences {wanted[:5]}{'...' if len(wanted) > 5 else ''}"
        if config.scribbles is not None:
            scope += f", scribbles {list(config.scribbles)}"
        raise DatasetError(
            f"no (sequence, initial scribble) sample to evaluate for {scope}: the initial scribble files "
            "are missing; write them with `ivos-rl init-scribbles <dataset root> --out <folder>` and "
            "point the dataset's scribbles_root there (every setting starts from them)",
            getattr(dataset, "root", None),
        )
    return out[: config.max_samples] if config.max_samples is not None else out


def run_fields(
    dataset: Any,
    backend: VOSBackend,
    strategy: Strategy,
    robot: Robot,
    config: EvaluationConfig,
    samples: Sequence[tuple[str, int]],
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What determines an evaluation's numbers (the manifest's fingerprinted fields).

    The shard, output folder and progress bars are left out: shards of one run share the
    fingerprint. ``provenance`` adds what the objects cannot tell (checkpoint hashes).
    """
    from ivos_rl.backends.cached import backend_fingerprint
    from ivos_rl.provenance import fingerprint

    scribbles = {f"{s}/{i}": dataset.load_scribbles(s, i) for s, i in samples}
    return {
        "dataset": {
            "name": Path(str(getattr(dataset, "root", "dataset"))).name,
            "resolution": getattr(dataset, "resolution", None),
            "working_size": list(getattr(dataset, "working_size", None) or []) or None,
        },
        "samples": [[s, i] for s, i in samples],
        "scribbles": fingerprint(scribbles),
        "backend": backend_fingerprint(backend),
        "strategy": backend_fingerprint(strategy),  # class + public scalar parameters, as backends
        "robot": backend_fingerprint(robot),  # type: ignore[arg-type]
        "setting": config.setting,
        "max_rounds": config.max_rounds,
        "metric": config.metric,
        "seed": config.seed,
        "initial_interaction": config.initial_interaction,
        "click_radius": config.click_radius,
        **dict(provenance or {}),
    }


def _prepare_output(
    out: Path,
    fields_: Mapping[str, Any],
    config: EvaluationConfig,
    record: Mapping[str, Any] | None,
    labels: Mapping[str, Any],
) -> str:
    """Check the folder (writable; resumable only with the same fingerprint), write the manifest.

    Returns the fingerprint. Nothing of a previous evaluation is mixed in: a different
    fingerprint is a :class:`ProvenanceError`, ``overwrite`` deletes the previous outputs first.
    """
    from ivos_rl.provenance import fingerprint

    ensure_writable_dir(out)
    expected = fingerprint(fields_)
    found = read_manifest(out)
    previous = sorted((out / "samples").glob("*.json"))
    if found is not None or previous:
        if config.overwrite:
            for path in previous:
                path.unlink()
            for name in _OUTPUTS:
                (out / name).unlink(missing_ok=True)
        elif not config.resume:
            raise ConfigError(
                f"{out} already holds an evaluation; resume=true continues it (same setup only), "
                "overwrite=true replaces it, or choose a new output_dir"
            )
        elif found is None:
            raise ProvenanceError(
                f"{out} holds {len(previous)} sample files but no manifest.json, so what produced them is "
                "unknown; use a new output_dir or overwrite=true"
            )
        elif found["fingerprint"] != expected:
            diff = describe_difference(found.get("fields") or {}, fields_)
            raise ProvenanceError(
                f"cannot resume in {out}: its fingerprint is {found['fingerprint']!r} but this run's is "
                f"{expected!r} ({diff}); use a new output_dir or overwrite=true"
            )
    i, n = config.shard_pair()
    write_manifest(
        out, kind="evaluation", fields=fields_, config=record, extra={"shard": f"{i}/{n}", "labels": labels}
    )
    return expected


def _finished(out: Path, wanted: set[tuple[str, int]], expected: str) -> list[SampleResult]:
    """Samples of ``wanted`` already in ``out``; each must carry this run's fingerprint."""
    done = []
    for s in load_sample_results(out):
        if (s.sequence, s.scribble_idx) not in wanted:
            continue
        check_fingerprint(
            expected, s.fingerprint, where=_sample_file(out, s.sequence, s.scribble_idx), what="sample"
        )
        done.append(s)
    return done


# ---------------------------------------------------------------------------------- evaluate


def evaluate(
    dataset: Any,
    backend: VOSBackend,
    strategy: Strategy,
    config: EvaluationConfig | None = None,
    *,
    quality: QualityPredictor | None = None,
    robot: Robot | None = None,
    out_dir: str | Path | None = None,
    clock: Callable[[], float] = time.perf_counter,
    provenance: Mapping[str, Any] | None = None,
    record: Mapping[str, Any] | None = None,
    time_model: RoundTimeModel | None = None,
    **options: Any,
) -> EvaluationResult:
    """Run ``strategy`` on every (sequence, initial scribble) sample and summarise.

    ``config`` (or its fields as keyword ``options``) says what to run (:class:`EvaluationConfig`).
    ``setting="oracle"`` feeds strategies the true per-frame J&F of the scored masks; ``"wild"``
    feeds them ``quality.predict`` (the quality net) and never shows them ground truth. With
    ``out_dir`` a manifest is written before any compute and finished samples are saved as they
    end (see the module docstring); ``provenance`` adds fingerprinted fields (checkpoint hashes),
    ``record`` the resolved config kept in the manifest. ``clock`` times every round component;
    the report's ``timing`` (and the ``max_time`` budget) is the measured backend + recommender
    seconds, or the declared ``time_model`` (:mod:`ivos_rl.timing`) for a reproducible ``auc_time``.
    """
    if config is None:
        config = EvaluationConfig(**_tuples(options))
    elif options:
        raise ConfigError(f"give either config or keyword options, not both ({sorted(options)})")
    source = _quality_source(config.setting, strategy, quality)
    if robot is None:
        from ivos_rl.robot import ScribbleRobot

        robot = ScribbleRobot()
    i_shard, n_shard = config.shard_pair()
    labels = _labels(dataset, backend, strategy, config)
    labels.update(
        robot=type(robot).__name__,
        robot_seed=getattr(robot, "seed", None),
        time_mode="wall" if time_model is None else "model",
        time_model=None if time_model is None else asdict(time_model),
    )
    out = None if out_dir is None else Path(out_dir)
    timing = {"time_model": labels["time_model"], "max_time": config.max_time}
    todo, done, fp = _plan(
        dataset, backend, strategy, robot, config, out, {**timing, **dict(provenance or {})}, record, labels
    )

    engine = RoundEngine(
        backend,
        robot,
        source,
        click_radius=config.click_radius,
        clock=clock,
        metric_threads=config.metric_threads,
    )
    runner = _SampleRunner(dataset, engine, strategy, config, robot, fp)
    runner.time_model = time_model
    runner.mask_ap_quality = quality if config.mask_ap else None
    bar = tqdm(
        total=len(todo) * config.max_rounds,
        disable=not config.progress,
        desc=f"{strategy.name}/{config.setting}",
    )
    new_results: list[SampleResult] = []
    for seq, idx in todo:
        res = runner.run(seq, idx, on_round=lambda: bar.update(1))
        new_results.append(res)
        if out is not None:
            atomic_write_json(_sample_file(out, seq, idx), res.to_json())
    bar.close()

    samples = sorted(done + new_results, key=lambda s: (s.sequence, s.scribble_idx))
    report, summary = summarize_samples(
        samples,
        metric=config.metric,
        max_rounds=config.max_rounds,
        max_time=config.max_time,
        time_threshold=config.time_threshold,
    )
    summary.update(labels)
    summary.update(
        trained_on_evaluated=_trained_on_evaluated(
            samples, agent=strategy, quality=quality if config.setting == "wild" else None
        ),
        output_dir=None if out is None else str(out.resolve()),
        shard=f"{i_shard}/{n_shard}",
        fingerprint=fp,
        seconds_per_round=float(
            np.mean([s.seconds / config.max_rounds for s in samples]) if samples else 0.0
        ),
    )
    result = EvaluationResult(report=report, summary=summary, samples=samples)
    if out is not None:
        write_outputs(result, out)
        if runner.archive is not None:
            runner.archive.save(out / "predictions.json")
    return result


def _trained_on_evaluated(
    samples: Sequence[SampleResult], **models: Any
) -> dict[str, list[str] | None]:
    """Per model (agent, quality net): the evaluated videos it was trained on (None: unrecorded).

    Results on those videos are not held-out results; the summary says so, and a warning is logged,
    instead of refusing (Table 1 on the training videos and the demo are legitimate runs).
    """
    evaluated = {s.sequence for s in samples}
    seen: dict[str, list[str] | None] = {}
    for role, model in models.items():
        split = getattr(model, "split", None)
        if model is None or split is None:
            continue
        seen[role] = sorted(evaluated & set(split["train"]))
        if seen[role]:
            _log.warning(
                "%d evaluated video(s) were used to train the %s (%s): not held-out results",
                len(seen[role]), role, ", ".join(seen[role][:5]) + (" ..." if len(seen[role]) > 5 else ""),
            )
    return seen


def _plan(
    dataset: Any,
    backend: VOSBackend,
    strategy: Strategy,
    robot: Robot,
    config: EvaluationConfig,
    out: Path | None,
    provenance: Mapping[str, Any] | None,
    record: Mapping[str, Any] | None,
    labels: Mapping[str, Any],
) -> tuple[list[tuple[str, int]], list[SampleResult], str | None]:
    """This shard's samples still to run, those already done (resume), and the run's fingerprint.

    With an output folder, the manifest is written here, before any compute.
    """
    all_samples = select_samples(dataset, config)
    i_shard, n_shard = config.shard_pair()
    mine = all_samples[i_shard::n_shard]
    fp: str | None = None
    done: list[SampleResult] = []
    if out is not None:
        fields_ = run_fields(dataset, backend, strategy, robot, config, all_samples, provenance)
        fp = _prepare_output(out, fields_, config, record, labels)
        (out / "samples").mkdir(exist_ok=True)
        if config.resume:
            done = _finished(out, set(mine), fp)
    finished = {(s.sequence, s.scribble_idx) for s in done}
    todo = [s for s in mine if s not in finished]
    if not todo:
        where = "" if out is None else f" in {out}"
        print(
            f"{labels['strategy']}/{config.setting}: nothing to do: all {len(mine)} samples of shard "
            f"{i_shard}/{n_shard} are evaluated{where}"
        )
    elif finished:
        _log.info("resuming: %d of %d samples already evaluated", len(finished), len(mine))
    return todo, done, fp


def _tuples(options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options as :class:`EvaluationConfig` fields (lists -> tuples)."""
    known = {f.name for f in fields(EvaluationConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown evaluation options {unknown}; known: {sorted(known)}")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}


def _quality_source(
    setting: str, strategy: Strategy, quality: QualityPredictor | None
) -> QualitySource | None:
    """The quality the strategy may see, or None when it needs none; refuse impossible pairings."""
    if getattr(strategy, "needs_lookahead", False) and setting != "oracle":
        raise ConfigError(
            f"strategy {strategy.name!r} looks ahead with the ground truth: it is an Oracle-only "
            f"reference and cannot run in the {setting!r} setting"
        )
    if not strategy.needs_quality:
        return None
    if setting == "wild" and quality is None:
        raise ConfigError(f"strategy {strategy.name!r} in the wild setting needs a quality estimator")
    return QualitySource(setting, quality if setting == "wild" else None)  # type: ignore[arg-type]


def _labels(
    dataset: Any, backend: VOSBackend, strategy: Strategy, config: EvaluationConfig
) -> dict[str, Any]:
    """Names shown in summaries and tables (not fingerprinted)."""
    return {
        "strategy": strategy.name,
        "setting": config.setting,
        "needs_quality": bool(strategy.needs_quality),
        "backend": getattr(backend, "name", type(backend).__name__),
        "dataset": Path(str(getattr(dataset, "root", "dataset"))).name,
        "metric": config.metric,
        "max_rounds": config.max_rounds,
        "max_time": config.max_time,
        "time_threshold": config.time_threshold,
    }


class _SampleRunner:
    """Runs one sample's rounds on the engine and turns them into a :class:`SampleResult`."""

    def __init__(
        self,
        dataset: Any,
        engine: RoundEngine,
        strategy: Strategy,
        config: EvaluationConfig,
        robot: Robot,
        fingerprint: str | None,
    ) -> None:
        self.dataset, self.engine, self.strategy, self.config = dataset, engine, strategy, config
        self.robot = robot
        self.fingerprint = fingerprint
        self.session_id = np.random.default_rng(config.seed).bytes(8).hex()
        self._video: tuple[str, tuple[np.ndarray, np.ndarray, int]] | None = None
        self.time_model: RoundTimeModel | None = None
        self.mask_ap_quality: QualityPredictor | None = None  # scores every round for Mask AP
        self.archive = None
        if config.save_predictions:
            from ivos_rl.data.rle import PredictionArchive

            self.archive = PredictionArchive()

    def _sample(self, seq: str, idx: int) -> SampleContext:
        if self._video is None or self._video[0] != seq:
            n_objects = int(self.dataset.info(seq).n_objects)
            self._video = (seq, (self.dataset.load_frames(seq), self.dataset.load_masks(seq), n_objects))
        return load_sample(
            self.dataset,
            seq,
            idx,
            initial_interaction=self.config.initial_interaction,  # type: ignore[arg-type]
            robot=self.robot,
            video=self._video[1],
        )

    def run(self, seq: str, idx: int, on_round: Callable[[], None] = lambda: None) -> SampleResult:
        """The sample's rounds; one past the ``max_time`` budget is not scored and ends the sample."""
        cfg, engine, strategy = self.config, self.engine, self.strategy
        t0 = engine.clock()
        sample = self._sample(seq, idx)
        strategy.reset(seed=sample_seed(seq, idx, cfg.seed))
        state = engine.start(sample)
        rows: list[dict[str, Any]] = []
        recommended: list[int] = []
        budget = None if cfg.max_time is None else cfg.max_time * sample.n_objects
        elapsed, sent = 0.0, 0
        ap = _MaskAPRecord(self.mask_ap_quality, sample)
        for rnd in range(1, cfg.max_rounds + 1):
            scores = engine.score()
            if self.archive is not None:
                assert state.output is not None
                self.archive.add(f"{seq}:{idx}", rnd, state.output.masks, n_objects=sample.n_objects)
            choice = None
            if rnd < cfg.max_rounds:
                view = engine.view(strategy, rnd, cfg.max_rounds)
                choice = engine.select(lambda v=view: strategy.select(v))
            t = state.timings
            ran, sent = len(state.sent) > sent, len(state.sent)
            seconds = (
                t.backend + t.recommender
                if self.time_model is None
                else self.time_model.round_seconds(ran, choice is not None, sample.n_frames)
            )
            elapsed += seconds
            if budget is not None and elapsed > budget:
                _log.info("%s/%d: round %d ends past the %.1f s budget: not scored", seq, idx, rnd, budget)
                break  # davisinteractive scores no submission after the timeout; the sample ends
            timing = {
                "robot_seconds": t.robot,
                "backend_seconds": t.backend,
                "recommender_seconds": t.recommender,
            }
            chunk = report_rows(
                scores,
                session_id=self.session_id,
                sequence=seq,
                scribble_idx=idx,
                interaction=rnd,
                timing=seconds,
                extra=timing,
            )
            rows.extend(chunk.to_dict(orient="records"))
            ap.add(state.output, state.history)
            on_round()
            if choice is not None:
                recommended.append(choice)
                engine.annotate(choice)
                engine.propagate()
        return SampleResult(
            sequence=seq,
            scribble_idx=idx,
            n_objects=sample.n_objects,
            annotated_frames=[int(f) for f in state.history],
            recommended_frames=recommended,
            rows=rows,
            seconds=float(engine.clock() - t0),
            fingerprint=self.fingerprint,
            gt_present=ap.gt_present,
            quality_scores=ap.scores,
            pred_present=ap.pred_present,
        )


class _MaskAPRecord:
    """Per scored round, the estimator's per-object quality and which objects the masks contain.

    The estimate is taken after the round's timings (it is a measurement, not the recommender's
    work); the estimator's change cache makes it free when the strategy already observed it.
    """

    def __init__(self, quality: QualityPredictor | None, sample: SampleContext) -> None:
        self.quality, self.frames, self.n_objects = quality, sample.frames, sample.n_objects
        self.gt_present = None if quality is None else presence(sample.gt, sample.n_objects).tolist()
        self.scores: list[list[list[float]]] = []
        self.pred_present: list[list[list[bool]]] = []

    def add(self, output: Any, history: Sequence[int]) -> None:
        if self.quality is None:
            return
        _, per_object = estimate_quality(self.quality, self.frames, output, history)
        self.scores.append(np.asarray(per_object, dtype=np.float64).tolist())
        self.pred_present.append(presence(output.masks, self.n_objects).tolist())


# ---------------------------------------------------------------------------------- merge


def merge_results(out_dirs: Sequence[str | Path]) -> tuple[EvaluationResult, dict[str, Any]]:
    """Check that shard folders belong together and cover their run exactly once; merge them.

    Every folder needs a manifest with the same fingerprint and a shard ``i/n`` of the same n,
    each i once; together their samples must be the run's samples (the manifest's list), none
    twice. Returns the merged result and the shared manifest.
    """
    if not out_dirs:
        raise ConfigError("merge needs at least one shard output folder")
    manifests = []
    for d in out_dirs:
        m = read_manifest(d)
        if m is None:
            raise ProvenanceError(
                f"{d} has no manifest.json: not an evaluation output folder (or a pre-manifest one)"
            )
        manifests.append((Path(d), m))
    first_dir, first = manifests[0]
    for d, m in manifests[1:]:
        if m["fingerprint"] != first["fingerprint"]:
            diff = describe_difference(first.get("fields") or {}, m.get("fields") or {})
            raise ProvenanceError(
                f"cannot merge {first_dir} (fingerprint {first['fingerprint']!r}) with {d} (fingerprint "
                f"{m['fingerprint']!r}): {diff}"
            )
    shards = [(d, parse_shard(m.get("shard", "0/1"))) for d, m in manifests]
    counts = {n for _, (_, n) in shards}
    if len(counts) != 1:
        raise ConfigError(f"shards split the run differently: {[f'{d}: {i}/{n}' for d, (i, n) in shards]}")
    n = counts.pop()
    got = sorted(i for _, (i, _) in shards)
    if got != list(range(n)):
        missing = sorted(set(range(n)) - set(got))
        twice = sorted({i for i in got if got.count(i) > 1})
        raise ConfigError(f"shards of {n} must each be given once: missing {missing}, given twice {twice}")
    seen: dict[tuple[str, int], SampleResult] = {}
    for d, m in manifests:
        for s in load_sample_results(d):
            key = (s.sequence, s.scribble_idx)
            check_fingerprint(m["fingerprint"], s.fingerprint, where=_sample_file(d, *key), what="sample")
            if key in seen:
                raise DatasetError(f"sample {key} appears in more than one shard", d)
            seen[key] = s
    expected = {(str(s), int(i)) for s, i in first["fields"]["samples"]}
    missing = sorted(expected - set(seen))
    if missing:
        raise DatasetError(
            f"{len(missing)} samples of the run are in no shard (unfinished?), e.g. {missing[:3]}"
        )
    labels = dict(first.get("labels") or {})
    samples = [seen[k] for k in sorted(seen)]
    report, summary = summarize_samples(
        samples,
        metric=str(labels.get("metric", "J_AND_F")),
        max_rounds=labels.get("max_rounds"),
        max_time=labels.get("max_time"),
        time_threshold=float(labels.get("time_threshold") or 60.0),
    )
    summary.update(labels, fingerprint=first["fingerprint"], shard="0/1")
    return EvaluationResult(report=report, summary=summary, samples=samples), first


def merge_runs(out_dirs: Sequence[str | Path], out_dir: str | Path) -> EvaluationResult:
    """:func:`merge_results` written as a normal run folder (samples/, summary, manifest) in ``out_dir``."""
    result, manifest = merge_results(out_dirs)
    out = ensure_writable_dir(out_dir)
    found = read_manifest(out)
    if found is not None and found["fingerprint"] != manifest["fingerprint"]:
        raise ProvenanceError(
            f"{out} holds another run (fingerprint {found['fingerprint']!r}, merging "
            f"{manifest['fingerprint']!r}); choose a new output folder"
        )
    (out / "samples").mkdir(exist_ok=True)
    for d in out_dirs:
        for path in sorted((Path(d) / "samples").glob("*.json")):
            if Path(d).resolve() != out.resolve():
                shutil.copyfile(path, out / "samples" / path.name)
    write_manifest(
        out,
        kind="evaluation",
        fields=manifest["fields"],
        config=manifest.get("config"),
        extra={"shard": "0/1", "labels": manifest.get("labels"), "merged_from": [str(d) for d in out_dirs]},
    )
    result.summary["output_dir"] = str(out.resolve())
    write_outputs(result, out)
    return result


# ---------------------------------------------------------------------------------- Hydra entry


def checkpoint_provenance(quality_path: Any = None, agent_path: Any = None) -> dict[str, Any]:
    """Hashes of the checkpoint files a run's numbers depend on, for its manifest's fingerprint.

    A config names a checkpoint by path only; the file behind it can change (a retrained quality
    net or agent), so the fingerprint must carry its content, not its name. ``agent_path`` may be a
    list (``strategy=agent_ensemble``): the list of its files' hashes."""
    from ivos_rl.provenance import file_sha256, files_sha256

    out: dict[str, Any] = {}
    if quality_path is not None:
        out["quality_checkpoint"] = file_sha256(quality_path)
    if agent_path is not None:
        out["agent_checkpoint"] = files_sha256(agent_path)
    return out


def run_evaluation(cfg: Any) -> dict[str, Any]:
    """Hydra entry (``scripts/evaluate.py``): build everything from ``cfg`` once and :func:`evaluate`.

    ``cfg.merge`` (a list of shard output folders) merges finished shards instead of evaluating.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ivos_rl.rounds import quality_source_from_cfg, wild_setting_with_quality
    from ivos_rl.utils import seed_everything

    out_dir = Path(cfg.output_dir)
    if cfg.get("merge"):
        result = merge_runs(list(cfg.merge), out_dir)
        print(f"merged {len(result.samples)} samples: auc_rounds={result.auc_rounds:.4f} -> {out_dir}")
        return {"auc_rounds": result.auc_rounds, "curve": result.curve_rounds}
    config = EvaluationConfig.from_cfg(cfg)
    ensure_writable_dir(out_dir)
    seed_everything(config.seed)
    strategy = instantiate(cfg.strategy)
    quality, quality_path = None, None
    # `quality=<name>` (configs/quality/) replaces the Wild setting's estimator
    setting = cfg.setting
    if cfg.get("quality") is not None:
        setting = OmegaConf.create(wild_setting_with_quality(cfg.setting, cfg.quality))
    if config.setting == "wild" and strategy.needs_quality:
        quality = quality_source_from_cfg(setting).estimator
        quality_path = OmegaConf.select(setting, "estimator.path")
    provenance = checkpoint_provenance(quality_path, OmegaConf.select(cfg, "strategy.path"))
    backend = instantiate(cfg.backend)
    if callable(getattr(quality, "check_backend", None)):
        quality.check_backend(backend)  # type: ignore[union-attr]  # warns once if trained on another backend
    result = evaluate(
        instantiate(cfg.dataset),
        backend,
        strategy,
        config,
        quality=quality,
        robot=instantiate(cfg.robot) if cfg.get("robot") is not None else None,
        out_dir=out_dir,
        provenance=provenance,
        record=_resolved(cfg),
        time_model=instantiate(cfg.time_model) if cfg.get("time_model") is not None else None,
    )
    if result.samples:
        curve = " ".join(f"{v:.3f}" for v in result.curve_rounds[1:])
        print(f"{strategy.name}/{config.setting}: auc_rounds={result.auc_rounds:.4f}  J&F per round: {curve}")
    return {"auc_rounds": result.auc_rounds, "curve": result.curve_rounds}


def _resolved(cfg: Any) -> dict[str, Any] | None:
    """The resolved config for the manifest (None outside a Hydra run, where it cannot resolve)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        node = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:
        node = OmegaConf.to_container(cfg, resolve=False)
    return node if isinstance(node, dict) else None
