"""Training samples for the quality net: run the interactive loop, keep (crop, true J&F) pairs.

For every sequence, initial scribble and frame-choice rule (``random`` or ``worst``), the rounds
of :class:`~ivos_rl.rounds.RoundEngine` (the same as evaluation and the env)

    start (initial scribble) -> score: true J&F per (frame, object)
    -> next frame f (random / worst true J&F) -> annotate(f) -> propagate -> score -> ...

run for ``n_rounds`` rounds (a trajectory stops early when the robot finds nothing to correct).
Each round's output gives samples on ``frames_per_round`` random frames (all when None): one per
(frame, object), holding the object-centred crop of the frame and of the probability map and the
true J, F and J&F of that object's mask on that frame. Early rounds and Worst choices give
low-quality masks, later rounds high-quality ones, so targets span [0, 1].

Storage choice: samples keep the **crops** (RGB + probability, uint8, ``crop_size``², 4·S² bytes,
64 KiB at S=128 before compression) rather than the full-size probability map plus a pointer to
the frame. Training on CPU is compute-bound; re-decoding a JPEG and re-cropping a full frame per
sample would add a few ms per sample and tie the shards to the dataset's location. The cost is
that the crop geometry (size, enlargement, threshold) is fixed at generation time; it is recorded
in the manifest and training checks it against the model (crops are resized when only the size
differs). Shards are compressed ``.npz`` files written atomically; ``manifest.json`` is written
last, so a folder without one is an interrupted run and is refused.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tqdm import tqdm

from ivos_rl.backends.base import BackendOutput, VOSBackend, labels_from_probs
from ivos_rl.backends.cached import backend_fingerprint
from ivos_rl.data.init_scribbles import choose_frames
from ivos_rl.errors import ConfigError, CorruptFileError, DatasetError, InputValidationError, MissingDataError
from ivos_rl.interactions import count_marks
from ivos_rl.quality.crop import crop_inputs
from ivos_rl.quality.degraded import DegradeConfig, degrade, plan
from ivos_rl.quality.feature_rows import FILE as FEATURE_FILE
from ivos_rl.quality.feature_rows import FeatureRecorder, load_feature_rows, row_index
from ivos_rl.rounds import RoundEngine, SampleContext
from ivos_rl.scoring import score_masks
from ivos_rl.utils.io import atomic_path, atomic_write_json
from ivos_rl.utils.logging import get_logger

log = get_logger(__name__)

FORMAT = "ivos_rl.quality.samples"
VERSION = 1
STRATEGIES: tuple[str, ...] = ("random", "worst")
MANIFEST = "manifest.json"
_ARRAYS = (
    "rgb",
    "prob",
    "jf",
    "j",
    "f",
    "sequence",
    "frame",
    "object_id",
    "round",
    "strategy",
    "init",
    "box",
)
_OPTIONAL = ("fingerprint", "x")  # per-row arrays a SampleSet may lack (older folders)


@dataclass
class SampleSet:
    """Quality samples in memory (one row per (frame, object) crop).

    ``rgb`` (N, 3, S, S) uint8, ``prob`` (N, S, S) uint8, targets ``jf``/``j``/``f`` (N,) float32,
    provenance ``sequence``/``backend``/``strategy`` (N,) str, ``frame`` (0-based), ``object_id``
    (1-based), ``round`` (1-based), ``init`` (initial-scribble index), ``box`` (N, 4) crop box in
    pixels of the frame. ``fingerprint`` (N,) the backend fingerprint of each row
    (:func:`ivos_rl.backends.cached.backend_fingerprint`); ``x`` (N, F) the appearance-free
    signals of the same (round, frame, object) with column names ``feature_names`` (from the
    folder's ``features.npz``, written in the same generation pass; None when a folder has none).
    """

    rgb: np.ndarray
    prob: np.ndarray
    jf: np.ndarray
    j: np.ndarray
    f: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    object_id: np.ndarray
    round: np.ndarray
    strategy: np.ndarray
    init: np.ndarray
    box: np.ndarray
    backend: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    fingerprint: np.ndarray | None = None
    x: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.jf.shape[0])

    @property
    def crop_size(self) -> int:
        return int(self.rgb.shape[-1])

    def subset(self, index: np.ndarray) -> SampleSet:
        """Rows ``index`` (bool mask or integer indices) as a new set."""
        kw = {name: getattr(self, name)[index] for name in (*_ARRAYS, "backend")}
        opt = {n: None if getattr(self, n) is None else getattr(self, n)[index] for n in _OPTIONAL}
        return SampleSet(**kw, **opt, meta=dict(self.meta), feature_names=self.feature_names)

    def signals(self, index: np.ndarray | slice, names: tuple[str, ...]) -> torch.Tensor:
        """Signal rows ``(n, len(names))`` float32 of rows ``index``, columns in ``names`` order.

        :class:`ConfigError` when the set has no signals or lacks a named column (a fusion net
        needs the signals it was built for)."""
        if self.x is None:
            raise ConfigError(
                "these quality samples have no feature rows (features.npz): a fusion net needs them"
            )
        missing = [n for n in names if n not in self.feature_names]
        if missing:
            raise ConfigError(
                f"quality samples lack signal columns {missing} (have {list(self.feature_names)})"
            )
        cols = [self.feature_names.index(n) for n in names]
        return torch.from_numpy(np.ascontiguousarray(self.x[index][:, cols], dtype=np.float32))

    def tensors(
        self, index: np.ndarray | slice, input_size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model inputs for rows ``index``: RGB (n, 3, S, S) and prob (n, 1, S, S) in [0, 1], target (n,).

        When ``input_size`` differs from the stored crop size the crops are resized (bilinear,
        antialiased), which equals cropping at that size up to interpolation error.
        """
        rgb = torch.from_numpy(self.rgb[index]).float().div_(255.0)
        prob = torch.from_numpy(self.prob[index]).float().div_(255.0).unsqueeze(1)
        if input_size is not None and input_size != self.crop_size:
            size = (int(input_size), int(input_size))
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=True)
            prob = F.interpolate(prob, size=size, mode="bilinear", align_corners=False, antialias=True)
        return rgb, prob, torch.from_numpy(np.ascontiguousarray(self.jf[index], dtype=np.float32))

    @classmethod
    def concatenate(cls, sets: Sequence[SampleSet]) -> SampleSet:
        """Join sets generated with the same crop geometry (``DatasetError`` otherwise)."""
        if not sets:
            raise DatasetError("no quality samples to concatenate")
        geo = {(s.meta.get("crop_size"), s.meta.get("enlarge"), s.meta.get("threshold")) for s in sets}
        if len(geo) != 1:
            raise DatasetError(
                f"quality sample sets use different crop geometries (size, enlarge, threshold): {geo}"
            )
        kw = {name: np.concatenate([getattr(s, name) for s in sets]) for name in (*_ARRAYS, "backend")}
        opt: dict[str, Any] = {}
        for name in _OPTIONAL:
            parts = [getattr(s, name) for s in sets]
            opt[name] = None if any(p is None for p in parts) else np.concatenate(parts)
        names = {s.feature_names for s in sets}
        if opt["x"] is not None and len(names) != 1:
            raise DatasetError(f"quality sample sets carry different signal columns: {sorted(names)}")
        columns = names.pop() if opt["x"] is not None else ()
        return cls(**kw, **opt, meta=dict(sets[0].meta), feature_names=columns)


# ---------------------------------------------------------------------------------- histogram


def target_histogram(jf: np.ndarray, bins: int = 10) -> dict[str, list[float] | list[int]]:
    """Counts of the J&F targets in ``bins`` equal bins over [0, 1]."""
    counts, edges = np.histogram(np.asarray(jf, dtype=np.float64), bins=bins, range=(0.0, 1.0))
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def format_histogram(hist: dict[str, Any], width: int = 40) -> str:
    """Text bars, one line per bin, for logs and the terminal."""
    counts = hist["counts"]
    edges = hist["edges"]
    top = max(max(counts), 1)
    total = max(sum(counts), 1)
    lines = []
    for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True):
        bar = "#" * round(width * c / top)
        lines.append(f"[{lo:.1f}, {hi:.1f}{']' if hi >= 1.0 else ')'} {c:7d} {100 * c / total:5.1f}% {bar}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- writing


class SampleWriter:
    """Streams sample rows into ``shard_XXXXX.npz`` files, then writes ``manifest.json``.

    Rows are dicts of the arrays listed in :class:`SampleSet` (without ``backend``, which is
    per folder). Nothing counts as written until :meth:`finish` has written the manifest.
    """

    def __init__(
        self, out_dir: str | Path, *, crop_size: int, shard_size: int = 1024, overwrite: bool = False
    ) -> None:
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ConfigError(f"shard_size must be an int >= 1, got {shard_size!r}")
        self.out_dir = Path(out_dir)
        if (self.out_dir / MANIFEST).exists() and not overwrite:
            raise ConfigError(
                f"{self.out_dir} already holds quality samples; pass overwrite=True to replace them"
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.crop_size = crop_size
        self.shard_size = shard_size
        self.buffer: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
        self.n_buffered = 0
        self.shards: list[dict[str, Any]] = []
        self.jf: list[np.ndarray] = []

    def add(self, rows: dict[str, np.ndarray]) -> None:
        """Append rows; raise ``InputValidationError`` naming a missing/ragged/mis-sized array."""
        missing = [name for name in _ARRAYS if name not in rows]
        if missing:
            raise InputValidationError(f"sample rows lack arrays {missing}")
        n = len(rows["jf"])
        ragged = {name: len(rows[name]) for name in _ARRAYS if len(rows[name]) != n}
        if ragged:
            raise InputValidationError(f"sample rows have {n} targets but arrays of lengths {ragged}")
        s = self.crop_size
        if rows["rgb"].shape[1:] != (3, s, s) or rows["prob"].shape[1:] != (s, s):
            raise InputValidationError(
                f"sample crops must be rgb (N, 3, {s}, {s}) and prob (N, {s}, {s}), "
                f"got {rows['rgb'].shape} and {rows['prob'].shape}"
            )
        if rows["rgb"].dtype != np.uint8 or rows["prob"].dtype != np.uint8:
            raise InputValidationError(
                f"sample crops must be uint8, got {rows['rgb'].dtype}, {rows['prob'].dtype}"
            )
        jf = np.asarray(rows["jf"], dtype=np.float32)
        if n and (not np.isfinite(jf).all() or jf.min() < 0 or jf.max() > 1):
            raise InputValidationError("sample targets jf must be finite and within [0, 1]")
        for name in _ARRAYS:
            self.buffer[name].append(np.asarray(rows[name]))
        self.n_buffered += n
        self.jf.append(jf)
        while self.n_buffered >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        joined = {name: np.concatenate(parts) for name, parts in self.buffer.items()}
        name = f"shard_{len(self.shards):05d}.npz"
        with atomic_path(self.out_dir / name) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: v[:n] for k, v in joined.items()})
        self.shards.append({"file": name, "n": int(n)})
        self.buffer = {k: [v[n:]] for k, v in joined.items()}
        self.n_buffered -= n

    def finish(self, *, backend: str, enlarge: float, threshold: float, **fields: Any) -> dict[str, Any]:
        """Flush the last shard, write the manifest (with the target histogram) and return it."""
        if self.n_buffered:
            self._flush(self.n_buffered)
        jf_all = np.concatenate(self.jf) if self.jf else np.zeros(0, np.float32)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "backend": backend,
            "crop_size": self.crop_size,
            "enlarge": float(enlarge),
            "threshold": float(threshold),
            **fields,
            "n_samples": len(jf_all),
            "target_mean": float(jf_all.mean()) if len(jf_all) else None,
            "histogram": target_histogram(jf_all),
            "shards": self.shards,
        }
        atomic_write_json(self.out_dir / MANIFEST, manifest)
        keep = {sh["file"] for sh in self.shards}
        for stale in self.out_dir.glob("shard_*.npz"):
            if stale.name not in keep:
                stale.unlink()
        return manifest


def _rng(seed: int, sequence: str, init: int, strategy: str) -> np.random.Generator:
    """Generator of one trajectory, independent of the order trajectories are run in."""
    return np.random.default_rng(
        [int(seed), zlib.crc32(sequence.encode()), int(init), STRATEGIES.index(strategy)]
    )


def _initial_interactions(
    dataset: Any,
    seq: str,
    gt: np.ndarray,
    n_objects: int,
    robot: Any,
    max_initial: int | None,
    seed: int,
    initial_indices: Sequence[int] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """(index, scribble dict) of the initial scribbles of ``seq`` (each marks at least one frame).

    Dataset scribble files are used when the sequence has them. Otherwise (e.g. DAVIS-2016 without
    scribbles) the robot draws them on an empty prediction, on the frames
    :func:`ivos_rl.data.choose_frames` picks (as ``ivos-rl`` does when writing scribble files).
    """
    out: list[tuple[int, dict[str, Any]]] = []
    indices = dataset.scribble_indices(seq)
    if indices:
        if initial_indices is not None:
            missing = sorted(set(initial_indices) - set(indices))
            if missing:
                raise DatasetError(f"sequence {seq!r} has no initial scribble {missing} (has {indices})")
            indices = sorted(set(initial_indices))
        for idx in indices[: max_initial or len(indices)]:
            scr = dataset.load_scribbles(seq, idx)
            if count_marks(scr) == 0:
                raise DatasetError(f"initial scribble {idx} of {seq!r} has no stroke")
            out.append((idx, scr))
        return out
    rng = np.random.default_rng([int(seed), zlib.crc32(seq.encode())])
    variants = (
        sorted(set(initial_indices))
        if initial_indices is not None
        else list(range(1, (max_initial or 1) + 1))
    )
    chosen = choose_frames(gt, n_objects, max(variants), rng)
    empty = np.zeros_like(gt)
    for i in variants:
        frame = chosen[i - 1]
        scr = robot.interact(seq, empty, gt, n_objects, frame=frame)
        if count_marks(scr) == 0:
            # The robot draws nothing where every object is too small for its error opening
            # (e.g. a distant ball); the caller records the skipped start in the manifest.
            log.warning(
                "robot drew no initial scribble for %s on frame %d; variant %d skipped", seq, frame, i
            )
            continue
        out.append((i, scr))
    return out


def generate_samples(
    dataset: Any,
    backend: VOSBackend,
    robot: Any,
    out_dir: str | Path,
    *,
    crop_size: int = 128,
    enlarge: float = 1.5,
    threshold: float = 0.5,
    strategies: Sequence[str] = STRATEGIES,
    n_rounds: int = 5,
    max_initial: int | None = None,
    initial_indices: Sequence[int] | None = None,
    frames_per_round: int | None = 8,
    shard_size: int = 1024,
    seed: int = 0,
    sequences: Iterable[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    backend_name: str | None = None,
    feature_rows: bool = True,
    degraded: dict[str, Any] | None = None,
    signal_groups: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the interactive loop and write sample shards + ``manifest.json`` to ``out_dir``.

    ``dataset`` is a :class:`~ivos_rl.data.DavisDataset`, ``robot`` a scribble robot
    (``interact(seq, pred, gt, K, frame=f)``). Returns the manifest (with the target histogram).
    ``backend_name`` is recorded in the manifest (default: the backend's registry name).
    ``initial_indices`` (1-based) picks which initial scribbles to start from (scribble files, or
    the robot-drawn variants), e.g. ``[2, 3]`` to add trajectories to a ``max_initial=1`` run.
    ``feature_rows`` also writes ``features.npz``: appearance-free features of every (round,
    frame, object) with the backend fingerprint (:mod:`ivos_rl.quality.feature_rows`).
    ``degraded`` (:class:`~ivos_rl.quality.degraded.DegradeConfig` fields; None: none) also records
    feature rows of degraded copies of a few rounds' outputs with their true J&F (marked in the
    rows' ``degraded`` column; no crops); the other rows and the crops do not change.
    ``signal_groups`` adds optional signal columns to the feature rows (``motion``:
    :data:`ivos_rl.quality.features.OPTIONAL_GROUPS`; a model uses them when its recipe's
    ``signal_groups`` names them).
    Deterministic for a fixed seed, backend and dataset.
    """
    _check_options(initial_indices, strategies, n_rounds, shard_size, crop_size, frames_per_round)
    spoil = None if degraded is None else DegradeConfig.from_dict(degraded)
    if spoil is not None and not feature_rows:
        raise ConfigError("samples.degraded adds feature rows: it needs feature_rows=true")
    if signal_groups and not feature_rows:
        raise ConfigError("samples.signal_groups adds feature columns: it needs feature_rows=true")
    writer = SampleWriter(out_dir, crop_size=crop_size, shard_size=shard_size, overwrite=overwrite)
    fingerprint = backend_fingerprint(backend)
    recorder = FeatureRecorder(fingerprint, signal_groups) if feature_rows else None
    seqs = list(dataset.sequences if sequences is None else sequences)
    stopped_early = 0
    skipped: list[list[Any]] = []  # [sequence, variant] of robot-drawn starts with no stroke
    engine = RoundEngine(backend, robot)
    jobs = [(seq, strat) for seq in seqs for strat in strategies]
    bar = tqdm(total=len(jobs), desc="quality samples", unit="traj", disable=not progress)
    for seq in seqs:
        info = dataset.info(seq)
        frames = dataset.load_frames(seq)
        gt = dataset.load_masks(seq)
        k = info.n_objects
        inits = _initial_interactions(dataset, seq, gt, k, robot, max_initial, seed, initial_indices)
        wanted = initial_indices if initial_indices is not None else range(1, (max_initial or 1) + 1)
        if not dataset.scribble_indices(seq):
            skipped += [[seq, int(i)] for i in sorted(set(wanted) - {init[0] for init in inits})]
        for strategy in strategies:
            for init_idx, first_scr in inits:
                sample = SampleContext(seq, init_idx, frames, gt, k, first_scr)
                stopped_early += _trajectory(
                    engine, sample, _rng(seed, seq, init_idx, strategy), strategy, n_rounds,
                    frames_per_round, writer, (crop_size, enlarge, threshold), recorder, spoil,
                )
            bar.update(1)
    bar.close()
    features_file = recorder.write(out_dir) if recorder is not None else None
    manifest = writer.finish(
        backend=backend_name or getattr(backend, "name", type(backend).__name__),
        enlarge=enlarge,
        threshold=threshold,
        backend_uses_ground_truth=bool(backend.uses_ground_truth),
        dataset={"root": str(dataset.root), "resolution": dataset.resolution, "sequences": seqs},
        strategies=list(strategies),
        n_rounds=n_rounds,
        max_initial=max_initial,
        initial_indices=None if initial_indices is None else sorted(set(initial_indices)),
        frames_per_round=frames_per_round,
        seed=seed,
        trajectories_stopped_early=stopped_early,
        initial_skipped=skipped,
        backend_fingerprint=fingerprint,
        feature_rows=None if features_file is None else features_file.name,
        **({} if spoil is None else {"degraded": spoil.to_dict()}),
        **({"signal_groups": list(recorder.signal_groups)} if recorder is not None and signal_groups else {}),
    )
    log.info("wrote %d quality samples to %s", manifest["n_samples"], out_dir)
    return manifest


def _check_options(
    initial_indices: Sequence[int] | None,
    strategies: Sequence[str],
    n_rounds: int,
    shard_size: int,
    crop_size: int,
    frames_per_round: int | None,
) -> None:
    """:class:`ConfigError` naming the first bad option of :func:`generate_samples`."""
    if initial_indices is not None and (
        not initial_indices
        or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in initial_indices)
    ):
        raise ConfigError(f"initial_indices must be a non-empty list of ints >= 1, got {initial_indices!r}")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ConfigError(f"strategies must be a non-empty subset of {STRATEGIES}, got {list(strategies)}")
    for name, value, low in (
        ("n_rounds", n_rounds, 1),
        ("shard_size", shard_size, 1),
        ("crop_size", crop_size, 8),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
    if frames_per_round is not None and (not isinstance(frames_per_round, int) or frames_per_round < 1):
        raise ConfigError(f"frames_per_round must be None or an int >= 1, got {frames_per_round!r}")


def _trajectory(
    engine: RoundEngine,
    sample: SampleContext,
    rng: np.random.Generator,
    strategy: str,
    n_rounds: int,
    frames_per_round: int | None,
    writer: SampleWriter,
    geometry: tuple[int, float, float],
    recorder: FeatureRecorder | None = None,
    spoil: DegradeConfig | None = None,
) -> int:
    """One trajectory on the round engine, writing each round's rows; 1 if it stopped early."""
    t = sample.n_frames
    engine.start(sample)
    spoilt = {} if spoil is None else plan(spoil, sample.sequence, sample.scribble_idx, n_rounds)
    for rnd in range(1, n_rounds + 1):
        scores = engine.score()
        out = engine.propagate()
        if recorder is not None:  # feature rows of every frame (ivos_rl.quality.feature_rows)
            key = (sample.sequence, strategy, sample.scribble_idx, rnd)
            recorder.add(sample.frames, out, engine.state.history, scores.j, scores.f, key)
            if spoil is not None:
                for kind in spoilt.get(rnd, []):
                    _degraded_rows(recorder, sample, out, engine.state.history, kind, spoil, key)
        n_pick = t if frames_per_round is None else min(frames_per_round, t)
        picked = np.sort(rng.choice(t, size=n_pick, replace=False))
        writer.add(
            _rows(sample.frames, out.probs, picked, scores.j, scores.f, scores.jf, sample.sequence, rnd,
                  strategy, sample.scribble_idx, *geometry)
        )
        if rnd == n_rounds:
            break
        nxt = int(rng.integers(t)) if strategy == "random" else int(np.argmin(scores.per_frame("J_AND_F")))
        if not engine.annotate(nxt):
            return 1  # the robot found nothing to correct: further rounds would repeat this output
        engine.propagate()
    return 0


def _degraded_rows(
    recorder: FeatureRecorder,
    sample: SampleContext,
    out: BackendOutput,
    history: Sequence[int],
    kind: str,
    spoil: DegradeConfig,
    key: tuple[str, str, int, int],
) -> None:
    """Feature rows of a degraded copy of ``out`` (:mod:`ivos_rl.quality.degraded`), scored against
    the ground truth like the round itself."""
    if getattr(out, "diagnostics", None):
        raise ConfigError("degraded rows are undefined for a backend with diagnostics (they describe it)")
    probs = degrade(out.probs, history, kind, spoil, (sample.sequence, sample.scribble_idx, key[3]))
    masks = labels_from_probs(probs)
    sc = score_masks(sample.gt, masks, sample.n_objects)
    recorder.add(sample.frames, BackendOutput(probs, masks), history, sc.j, sc.f, key, degraded=kind)


def _rows(
    frames: np.ndarray,
    probs: np.ndarray,
    picked: np.ndarray,
    jac: np.ndarray,
    fme: np.ndarray,
    jf: np.ndarray,
    seq: str,
    rnd: int,
    strategy: str,
    init_idx: int,
    crop_size: int,
    enlarge: float,
    threshold: float,
) -> dict[str, np.ndarray]:
    """Sample rows for the picked frames, all objects, with uint8 crops."""
    rgb, prob, boxes = crop_inputs(
        frames[picked], probs[picked], crop_size, enlarge=enlarge, threshold=threshold
    )
    n, k = rgb.shape[:2]
    return {
        "rgb": _to_u8(rgb.reshape(n * k, 3, crop_size, crop_size)),
        "prob": _to_u8(prob.reshape(n * k, crop_size, crop_size)),
        "jf": jf[picked].reshape(-1).astype(np.float32),
        "j": jac[picked].reshape(-1).astype(np.float32),
        "f": fme[picked].reshape(-1).astype(np.float32),
        "sequence": np.full(n * k, seq),
        "frame": np.repeat(picked, k).astype(np.int32),
        "object_id": np.tile(np.arange(1, k + 1), n).astype(np.int16),
        "round": np.full(n * k, rnd, np.int16),
        "strategy": np.full(n * k, strategy),
        "init": np.full(n * k, init_idx, np.int16),
        "box": boxes.reshape(n * k, 4).numpy().astype(np.float32),
    }


def _to_u8(x: torch.Tensor) -> np.ndarray:
    """[0, 1] float tensor -> uint8 array (round to nearest)."""
    return np.clip(np.rint(x.numpy() * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------- reading


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a sample folder; typed errors for a missing or invalid one."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise MissingDataError("no quality-sample manifest (missing folder or interrupted generation)", path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"quality-sample manifest is not valid JSON ({exc})", path) from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or manifest.get("version") != VERSION
    ):
        raise CorruptFileError("not a version-1 quality-sample manifest", path)
    return manifest


def load_samples(folders: str | Path | Sequence[str | Path]) -> SampleSet:
    """Load every shard listed in the manifests of ``folders`` into one :class:`SampleSet`."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    sets = []
    for folder in folders:
        folder = Path(folder)
        manifest = read_manifest(folder)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
        for shard in manifest["shards"]:
            path = folder / shard["file"]
            if not path.is_file():
                raise MissingDataError("quality-sample shard listed in the manifest is missing", path)
            try:
                with np.load(path, allow_pickle=False) as data:
                    arrays = {name: data[name] for name in _ARRAYS}
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
                raise CorruptFileError(f"cannot read quality-sample shard ({exc})", path) from exc
            n = {name: len(a) for name, a in arrays.items()}
            if set(n.values()) != {shard["n"]}:
                raise CorruptFileError(f"shard arrays have lengths {n}, manifest says {shard['n']}", path)
            for name in _ARRAYS:
                parts[name].append(arrays[name])
        if not manifest["shards"]:
            raise DatasetError("quality-sample folder holds no samples", folder)
        kw = {name: np.concatenate(p) for name, p in parts.items()}
        meta = {
            "crop_size": manifest["crop_size"],
            "enlarge": manifest["enlarge"],
            "threshold": manifest["threshold"],
        }
        backend = np.full(len(kw["jf"]), manifest["backend"])
        # one folder = one generation pass with one backend: every row carries its fingerprint
        fingerprint = np.full(len(kw["jf"]), str(manifest.get("backend_fingerprint", "unknown")))
        x, names = _signals(folder, kw)
        sets.append(
            SampleSet(**kw, backend=backend, meta=meta, fingerprint=fingerprint, x=x, feature_names=names)
        )
    return SampleSet.concatenate(sets)


def _signals(folder: Path, kw: dict[str, np.ndarray]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The feature rows of ``folder`` paired with its crop rows by (sequence, strategy, init, round,
    frame, object); (None, ()) when the folder has no ``features.npz``."""
    if not (folder / FEATURE_FILE).is_file():
        return None, ()
    rows = load_feature_rows(folder)
    idx = row_index(
        rows, kw["sequence"], kw["strategy"], kw["init"], kw["round"], kw["frame"], kw["object_id"],
        folder / FEATURE_FILE,
    )
    if not np.allclose(rows.jf[idx], kw["jf"], atol=1e-5):
        raise CorruptFileError(
            "feature rows and crop shards disagree on the J&F targets", folder / FEATURE_FILE
        )
    return rows.x[idx], rows.names


def generate(cfg: Any) -> dict[str, Any]:
    """Entry point of ``scripts/gen_quality_data.py``: build dataset/backend/robot from ``cfg``.

    ``cfg.dataset``, ``cfg.backend`` and ``cfg.robot`` are ``_target_`` configs; ``cfg.samples``
    holds the keyword arguments of :func:`generate_samples`; ``cfg.out_dir`` the folder.
    """
    dataset = instantiate(cfg.dataset)
    backend = instantiate(cfg.backend)
    robot = instantiate(cfg.robot)
    opts = OmegaConf.to_container(cfg.samples, resolve=True)
    if not isinstance(opts, dict):
        raise ConfigError(f"cfg.samples must be a mapping of generate_samples options, got {opts!r}")
    name = cfg.get("backend_name")
    manifest = generate_samples(dataset, backend, robot, cfg.out_dir, backend_name=name, **opts)
    print(f"{manifest['n_samples']} samples from backend {manifest['backend']} in {cfg.out_dir}")
    print("J&F target histogram:")
    print(format_histogram(manifest["histogram"]))
    atomic_write_json(Path(cfg.out_dir) / "histogram.json", manifest["histogram"])
    return manifest
