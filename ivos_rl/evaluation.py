"""The one evaluation loop: dataset × backend × strategy × setting through the DAVIS-Interactive session.

Every backend and every strategy goes through :func:`evaluate`, which drives
:class:`~ivos_rl.session.InteractiveSession`, so the interaction flow, the timing, the report
DataFrame and the summaries are the same code everywhere (the original code kept one copy of
this loop per backend).

Each round: the backend turns the interactions so far into masks; the strategy picks the next
frame from what the setting allows it to see (true J&F in ``oracle``, the quality net's estimate
in ``wild``); the session scores the masks and the robot annotates the chosen frame.

Results are written per sample (``samples/<sequence>__<idx>.json``) as soon as a sample ends, so
an interrupted evaluation resumes where it stopped, and so that shards evaluated on different
machines merge by concatenation (:func:`merge_results`).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ivos_rl.backends.base import VOSBackend
from ivos_rl.errors import ConfigError, DatasetError, InputValidationError
from ivos_rl.lookahead import count_marks, make_lookahead
from ivos_rl.quality.estimator import OracleQuality
from ivos_rl.session import InteractiveSession, interaction_to_scribbles
from ivos_rl.strategies.base import Strategy, StrategyState
from ivos_rl.summary import REPORT_COLUMNS, ivosw_summary, summarize_report
from ivos_rl.utils.io import atomic_write_json, atomic_write_text
from ivos_rl.utils.logging import get_logger

_log = get_logger(__name__)

Setting = Literal["oracle", "wild"]
SETTINGS: tuple[str, ...] = ("oracle", "wild")


class QualityPredictor(Protocol):
    """What the Wild setting needs: per-frame quality from frames and probabilities only."""

    def predict(self, frames: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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

    def to_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "scribble_idx": self.scribble_idx,
            "n_objects": self.n_objects,
            "annotated_frames": self.annotated_frames,
            "recommended_frames": self.recommended_frames,
            "seconds": self.seconds,
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
    samples: Sequence[SampleResult], metric: str = "J_AND_F", max_rounds: int | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Report DataFrame and summary (``auc_rounds``, ``auc_time``, ``jf_at_60s``, curves)."""
    rows = [row for s in samples for row in s.rows]
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    specs = [(s.sequence, s.scribble_idx, s.n_objects) for s in samples]
    summary = summarize_report(report, metric=metric, max_nb_interactions=max_rounds, samples=specs)
    return report, summary


def merge_results(out_dirs: Sequence[str | Path], metric: str = "J_AND_F") -> EvaluationResult:
    """Merge the per-sample results of shards (each shard's ``out_dir``) into one result."""
    seen: dict[tuple[str, int], SampleResult] = {}
    for d in out_dirs:
        for s in load_sample_results(d):
            key = (s.sequence, s.scribble_idx)
            if key in seen:
                raise DatasetError(f"sample {key} appears in more than one shard", d)
            seen[key] = s
    samples = [seen[k] for k in sorted(seen)]
    report, summary = summarize_samples(samples, metric=metric)
    return EvaluationResult(report=report, summary=summary, samples=samples)


def write_outputs(result: EvaluationResult, out_dir: str | Path) -> None:
    """Report CSV, ``summary.json`` (IVOS-W keys + ours) and recommended frames, atomically."""
    out = Path(out_dir)
    atomic_write_text(out / "report.csv", result.report.to_csv(index=False))
    summary = {**ivosw_summary(result.summary), **result.summary}
    atomic_write_json(out / "summary.json", summary)
    frames = {f"{s.sequence}/{s.scribble_idx}": s.annotated_frames for s in result.samples}
    atomic_write_json(out / "frames.json", frames)


def evaluate(
    dataset: Any,
    backend: VOSBackend,
    strategy: Strategy,
    *,
    setting: Setting = "wild",
    quality: QualityPredictor | None = None,
    robot: Any | None = None,
    max_rounds: int = 8,
    metric: str = "J_AND_F",
    sequences: Sequence[str] | None = None,
    scribbles: Sequence[int] | None = None,
    max_samples: int | None = None,
    shard: str | Sequence[int] | None = None,
    initial_interaction: Literal["dataset", "robot"] = "dataset",
    click_radius: float = 3.0,
    out_dir: str | Path | None = None,
    resume: bool = True,
    save_predictions: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> EvaluationResult:
    """Run ``strategy`` on every (sequence, initial scribble) sample and summarise.

    ``setting="oracle"`` feeds strategies the true per-frame J&F; ``"wild"`` feeds them
    ``quality.predict`` (the quality net) and never touches ground truth outside the session's
    scoring and the simulated user. ``shard="i/n"`` evaluates every n-th sample starting at i.
    ``sequences`` / ``scribbles`` restrict the samples to those sequences / initial-scribble
    indices (1-based, as the files). Clicks reach scribble-only backends as disks of
    ``click_radius`` pixels. With ``out_dir``, finished samples are skipped when ``resume`` is true.
    """
    if setting not in SETTINGS:
        raise ConfigError(f"setting must be one of {SETTINGS}, got {setting!r}")
    if setting == "wild" and strategy.needs_quality and quality is None:
        raise ConfigError(f"strategy {strategy.name!r} in the wild setting needs a quality estimator")
    if setting == "wild" and strategy.needs_lookahead:
        raise ConfigError(f"strategy {strategy.name!r} reads ground truth (an oracle): use setting=oracle")
    if max_rounds < 1:
        raise ConfigError(f"max_rounds must be >= 1, got {max_rounds}")
    out = None if out_dir is None else Path(out_dir)
    i_shard, n_shard = parse_shard(shard)

    all_samples = [
        s
        for s in dataset.samples()
        if (sequences is None or s[0] in set(sequences)) and (scribbles is None or s[1] in set(scribbles))
    ]
    if not all_samples:
        raise DatasetError(
            "no (sequence, scribble) sample to evaluate: generate initial scribbles with "
            "`ivos-rl init-scribbles` or use initial_interaction=robot",
            getattr(dataset, "root", None),
        )
    if max_samples is not None:
        all_samples = all_samples[:max_samples]
    mine = all_samples[i_shard::n_shard]
    done: list[SampleResult] = []
    if out is not None and resume:
        wanted = set(mine)
        done = [s for s in load_sample_results(out) if (s.sequence, s.scribble_idx) in wanted]
    finished = {(s.sequence, s.scribble_idx) for s in done}
    todo = [s for s in mine if s not in finished]
    if finished:
        _log.info("resuming: %d of %d samples already evaluated", len(finished), len(mine))

    archive = None
    if save_predictions:
        from ivos_rl.data.rle import PredictionArchive

        archive = PredictionArchive()

    oracle = OracleQuality()
    new_results: list[SampleResult] = []
    cache: dict[str, Any] = {}
    bar = tqdm(total=len(todo) * max_rounds, disable=not progress, desc=f"{strategy.name}/{setting}")
    with InteractiveSession(
        dataset,
        max_nb_interactions=max_rounds,
        metric_to_optimize=metric,
        robot=robot,
        samples=todo,
        seed=seed,
        initial_interaction=initial_interaction,
    ) as sess:
        current: dict[str, Any] = {}
        while sess.next():
            seq, interaction, new_sample = sess.get_interaction(only_last=not backend.wants_all_scribbles)
            if new_sample:
                if cache.get("sequence") != seq:
                    need_gt = setting == "oracle" or backend.uses_ground_truth
                    cache = {
                        "sequence": seq,
                        "frames": dataset.load_frames(seq),
                        "gt": dataset.load_masks(seq) if need_gt else None,
                        "n_objects": dataset.info(seq).n_objects,
                    }
                idx = sess.current_sample[1]  # type: ignore[index]
                backend.reset(
                    cache["frames"],
                    cache["n_objects"],
                    sequence=seq,
                    gt_masks=cache["gt"] if backend.uses_ground_truth else None,
                )
                strategy.reset(seed=zlib.crc32(f"{seq}/{idx}/{seed}".encode()))
                first = _annotated_frame(interaction, last=True)
                current = {
                    "idx": idx, "history": [first], "recommended": [], "t0": time.perf_counter(), "n_marks": 0
                }
                frame = first
            else:
                frame = sess.last_annotated_frame  # the robot annotated the frame we asked for
                assert frame is not None
            fused = interaction if backend.wants_all_scribbles else None
            if not backend.accepts_clicks and "clicks" in interaction:
                interaction = interaction_to_scribbles(interaction, click_radius, cache["frames"].shape[1:3])
            n_marks = count_marks(interaction)
            if new_sample or n_marks > current["n_marks"]:
                result_t = backend.interact(frame, interaction)
                current["output"] = result_t
            else:
                # The robot found nothing to correct on the chosen frame (it is already right),
                # so the user adds no stroke and the masks stay as they are: explicit, not a
                # backend fallback.
                result_t = current["output"]
            current["n_marks"] = n_marks if backend.wants_all_scribbles else 0
            if archive is not None:
                archive.add(
                    f"{seq}:{current['idx']}",
                    sess.interaction_number + 1,
                    result_t.masks,
                    n_objects=cache["n_objects"],
                )

            round_nb = sess.interaction_number + 1
            candidates = None
            if round_nb < max_rounds:
                q = _quality(setting, strategy, quality, oracle, cache, result_t)
                state = StrategyState(
                    round=round_nb,
                    n_frames=result_t.n_frames,
                    history=tuple(current["history"]),
                    quality=q,
                    probs=result_t.probs if strategy.needs_probs else None,
                    max_rounds=max_rounds,
                    extras=_lookahead_extras(strategy, backend, sess.robot, seq, cache, result_t, fused,
                                             click_radius),
                )
                choice = int(strategy.select(state))
                current["history"].append(choice)
                current["recommended"].append(choice)
                candidates = [choice]
            sess.submit_masks(result_t.masks, next_scribble_frame_candidates=candidates)
            bar.update(1)
            if round_nb == max_rounds:
                res = _finish_sample(sess, seq, current, cache["n_objects"])
                new_results.append(res)
                if out is not None:
                    atomic_write_json(_sample_file(out, seq, res.scribble_idx), res.to_json())
    bar.close()

    samples = sorted(done + new_results, key=lambda s: (s.sequence, s.scribble_idx))
    report, summary = summarize_samples(samples, metric=metric, max_rounds=max_rounds)
    summary.update(
        {
            "strategy": strategy.name,
            "setting": setting,
            "needs_quality": bool(strategy.needs_quality),
            "backend": getattr(backend, "name", type(backend).__name__),
            "dataset": Path(str(getattr(dataset, "root", "dataset"))).name,
            "output_dir": None if out is None else str(out.resolve()),
            "shard": f"{i_shard}/{n_shard}",
            "seconds_per_round": float(
                np.mean([s.seconds / max_rounds for s in samples]) if samples else 0.0
            ),
        }
    )
    result = EvaluationResult(report=report, summary=summary, samples=samples)
    if out is not None:
        write_outputs(result, out)
        if archive is not None:
            archive.save(out / "predictions.json")
    return result


def _annotated_frame(interaction: dict[str, Any], last: bool) -> int:
    """Frame holding the (last) non-empty stroke or click of an interaction dict."""
    for kind in ("scribbles", "clicks"):
        per_frame = interaction.get(kind)
        if per_frame:
            frames = [t for t, items in enumerate(per_frame) if items]
            if frames:
                return frames[-1] if last else frames[0]
    raise InputValidationError("interaction annotates no frame")


def _quality(
    setting: str,
    strategy: Strategy,
    quality: QualityPredictor | None,
    oracle: OracleQuality,
    cache: dict[str, Any],
    out: Any,
) -> np.ndarray | None:
    """Per-frame quality the strategy may see: true J&F (oracle) or the estimate (wild)."""
    if not strategy.needs_quality:
        return None
    if setting == "oracle":
        return oracle.predict(cache["frames"], out.probs, cache["gt"])[0]
    assert quality is not None
    q = quality.predict(cache["frames"], out.probs)[0]
    return np.asarray(q, dtype=np.float64)


def _lookahead_extras(
    strategy: Strategy,
    backend: VOSBackend,
    robot: Any,
    seq: str,
    cache: dict[str, Any],
    out: Any,
    fused: dict[str, Any] | None,
    click_radius: float,
) -> dict[str, object]:
    """``{"lookahead": frame -> J&F after annotating it}`` for strategies that need it, else empty."""
    if not strategy.needs_lookahead:
        return {}
    lookahead = make_lookahead(
        backend, robot, sequence=seq, gt=cache["gt"], n_objects=cache["n_objects"], masks=out.masks,
        fused=fused, click_radius=click_radius,
    )
    return {"lookahead": lookahead}


def _finish_sample(
    sess: InteractiveSession, seq: str, current: dict[str, Any], n_objects: int
) -> SampleResult:
    report = sess.get_report()
    rows = report[(report["sequence"] == seq) & (report["scribble_idx"] == current["idx"])]
    return SampleResult(
        sequence=seq,
        scribble_idx=int(current["idx"]),
        n_objects=int(n_objects),
        annotated_frames=[int(f) for f in current["history"]],
        recommended_frames=[int(f) for f in current["recommended"]],
        rows=rows.to_dict(orient="records"),
        seconds=time.perf_counter() - current["t0"],
    )


def run_evaluation(cfg: Any) -> dict[str, Any]:
    """Hydra entry (``scripts/evaluate.py``): build everything from ``cfg`` and :func:`evaluate`.

    ``cfg.merge`` (a list of shard output folders) merges finished shards instead of evaluating.
    """
    from hydra.utils import instantiate

    from ivos_rl.utils import seed_everything

    out_dir = Path(cfg.output_dir)
    if cfg.get("merge"):
        result = merge_results(list(cfg.merge), metric=str(cfg.metric))
        write_outputs(result, out_dir)
        print(f"merged {len(result.samples)} samples: auc_rounds={result.auc_rounds:.4f} -> {out_dir}")
        return {"auc_rounds": result.auc_rounds, "curve": result.curve_rounds}
    seed_everything(int(cfg.seed))
    strategy = instantiate(cfg.strategy)
    quality = None
    if cfg.setting == "wild" and strategy.needs_quality:
        if cfg.get("estimator") is None:
            raise ConfigError(
                f"strategy {strategy.name!r} in the wild setting needs `estimator` "
                "(e.g. estimator.path=checkpoints/quality/<name>.pt)"
            )
        quality = instantiate(cfg.estimator)
    result = evaluate(
        instantiate(cfg.dataset),
        instantiate(cfg.backend),
        strategy,
        setting=str(cfg.setting),  # type: ignore[arg-type]
        quality=quality,
        robot=instantiate(cfg.robot) if cfg.get("robot") is not None else None,
        max_rounds=int(cfg.max_rounds),
        metric=str(cfg.metric),
        sequences=list(cfg.sequences) if cfg.get("sequences") else None,
        scribbles=list(cfg.scribbles) if cfg.get("scribbles") else None,
        max_samples=cfg.get("max_samples"),
        shard=cfg.get("shard"),
        initial_interaction=str(cfg.initial_interaction),  # type: ignore[arg-type]
        click_radius=float(cfg.get("click_radius", 3.0)),
        out_dir=out_dir,
        resume=bool(cfg.resume),
        save_predictions=bool(cfg.save_predictions),
        seed=int(cfg.seed),
        progress=bool(cfg.progress),
    )
    curve = " ".join(f"{v:.3f}" for v in result.curve_rounds[1:])
    print(f"{strategy.name}/{cfg.setting}: auc_rounds={result.auc_rounds:.4f}  J&F per round: {curve}")
    return {"auc_rounds": result.auc_rounds, "curve": result.curve_rounds}
