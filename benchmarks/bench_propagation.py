"""Quality, speed and memory of the propagation backend on real DAVIS-2016 sequences.

Quality (default): the DAVIS-Interactive flow through :func:`ivos_rl.evaluation.evaluate` (the
project's one evaluation loop over :class:`~ivos_rl.session.InteractiveSession`), 240p, the
Oracle setting (strategies see the true per-frame J&F), initial scribbles drawn by the robot on
an empty prediction (variant 1 of :mod:`ivos_rl.data.init_scribbles`), then the robot corrects
the frame each strategy picks. Prints J&F per round and IVOS-W's round-AUC per strategy for the
tuning sequences, the held-out ones and all, and writes per-sequence rows to ``--csv``.

Tuning split: the backend's parameters were tuned on every third sequence of
``ImageSets/2016/train.txt`` starting with the first (10 sequences, :data:`TUNE`); the other
20 were never looked at while tuning.

    python benchmarks/bench_propagation.py --sequences all --rounds 8 \\
        --strategies worst,random,linspace --csv results.csv
    python benchmarks/bench_propagation.py --timing      # seconds per round, 80 frames at 240p,
                                                         # v2 and the v3 candidate alternately
    python benchmarks/bench_propagation.py --memory      # peak memory, 100 frames at 480p
    python benchmarks/bench_propagation.py --backend reference --ref '{"colour_weight": 0.2, "band": 3}' \\
        --sequences holdout                             # the issue's calibration recipe, same protocol
    python benchmarks/bench_propagation.py --compare-runs out/v2 out/fast --strategies worst,farthest
                                                        # two evaluate.py folders: paired round-AUC
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _configs import backend_from_config
from _reference_backend import ReferenceBackend

from ivos_rl.backends.base import BackendOutput, VOSBackend
from ivos_rl.backends.propagation import PropagationBackend
from ivos_rl.data import DavisDataset, write_initial_scribbles
from ivos_rl.data.splits import video_folds
from ivos_rl.evaluation import evaluate
from ivos_rl.metrics import batched_j_and_f
from ivos_rl.robot import ScribbleRobot
from ivos_rl.strategies import build_strategy
from ivos_rl.summary import auc_rounds

DEFAULT_ROOT = Path("/work/shared/data/davis2016-train")
IMAGE_SET = "2016/train"
DROP_TOL = 0.005  # a round "drops" when the video's mean J&F falls by more than this
SELECT_ON = ("worst", "farthest")  # strategies whose mean round-AUC selects a configuration


def tune_split(sequences: list[str]) -> list[str]:
    """The tuning sequences: every third of the image set, starting with the first."""
    return sequences[0::3]


class TimedBackend(VOSBackend):
    """Delegates to a backend and records how long ``reset`` and ``interact`` take."""

    def __init__(self, inner: VOSBackend) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.wants_all_scribbles = inner.wants_all_scribbles  # type: ignore[misc]
        self.accepts_clicks = inner.accepts_clicks  # type: ignore[misc]
        self.uses_ground_truth = inner.uses_ground_truth  # type: ignore[misc]
        self.reset_s: dict[str, float] = {}
        self.round_s: dict[str, list[float]] = {}
        self.round_cpu_s: list[float] = []
        self._seq = ""

    def reset(self, frames: np.ndarray, n_objects: int, *, sequence: str | None = None,
              gt_masks: np.ndarray | None = None) -> None:
        t0 = time.perf_counter()
        self.inner.reset(frames, n_objects, sequence=sequence, gt_masks=gt_masks)
        self._seq = sequence or ""
        self.reset_s.setdefault(self._seq, time.perf_counter() - t0)  # first reset computes the flows
        self.round_s.setdefault(self._seq, [])

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        t0, c0 = time.perf_counter(), time.process_time()
        out = self.inner.interact(frame_idx, interaction)
        self.round_s[self._seq].append(time.perf_counter() - t0)
        self.round_cpu_s.append(time.process_time() - c0)
        return out


def _curve_per_sequence(report: Any, rounds: int) -> dict[str, list[float]]:
    """Mean J&F per round for each sequence (one sample per sequence here)."""
    out: dict[str, list[float]] = {}
    for seq, df in report.groupby("sequence"):
        per_round = df.groupby("interaction")["j_and_f"].mean()
        out[str(seq)] = [float(per_round.get(i, np.nan)) for i in range(1, rounds + 1)]
    return out


def _select_sequences(spec: str, all_seqs: list[str]) -> list[str]:
    """``all`` | ``tune`` | ``holdout`` | ``fold0+fold3`` (CV folds, in fold order) | names."""
    folds = video_folds(all_seqs, 5, seed=0)
    if spec == "all":
        return [s for fold in folds for s in fold]  # fold by fold: a partial run covers whole folds
    if spec == "tune":
        return tune_split(all_seqs)
    if spec == "holdout":
        return [s for s in all_seqs if s not in tune_split(all_seqs)]
    if spec.startswith("fold"):
        return [s for part in spec.split("+") for s in folds[int(part.removeprefix("fold"))]]
    return spec.split(",")


def drop_count(curve: list[float], tol: float = DROP_TOL) -> int:
    """Rounds after the first whose mean J&F is lower than the previous round's by more than ``tol``."""
    return sum(b < a - tol for a, b in itertools.pairwise(curve))


def run_quality(args: argparse.Namespace) -> None:
    root = Path(args.root)
    all_seqs = (root / "ImageSets" / f"{IMAGE_SET}.txt").read_text().split()
    seqs = _select_sequences(args.sequences, all_seqs)
    strategies = args.strategies.split(",")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        scribbles = Path(tmp) / "Scribbles"
        if args.scribbles_root:  # the same files, written earlier by `ivos-rl init-scribbles`
            scribbles = Path(args.scribbles_root)
        else:
            t0 = time.perf_counter()
            write_initial_scribbles(root, "240p", n_variants=1, sequences=seqs, out_dir=scribbles)
            elapsed = time.perf_counter() - t0
            print(f"initial scribbles (robot, variant 1) for {len(seqs)} sequences: {elapsed:.1f} s")
        dataset = DavisDataset(root, "240p", sequences=seqs, scribbles_root=scribbles)
        backend = TimedBackend(_build_backend(args))
        built = {name: build_strategy(name, **({"seed": args.seed} if name == "random" else {}))
                 for name in strategies}
        t0 = time.perf_counter()
        for seq in seqs:  # sequence by sequence, so that each video's flows are computed once
            for name, strategy in built.items():
                res = evaluate(dataset, backend, strategy, setting="oracle", max_rounds=args.rounds,
                               sequences=[seq], scribbles=[1], seed=args.seed, progress=False)
                curve = _curve_per_sequence(res.report, args.rounds)[seq]
                frames = res.samples[0].annotated_frames
                times = backend.round_s[seq][-args.rounds:]
                rows.append({
                    "sequence": seq, "split": "tune" if seq in tune_split(all_seqs) else "holdout",
                    "strategy": name, **{f"r{i + 1}": round(v, 4) for i, v in enumerate(curve)},
                    "auc": round(auc_rounds([0.0, *curve]), 4), "drops": drop_count(curve),
                    "frames": " ".join(map(str, frames)), "flow_s": round(backend.reset_s[seq], 2),
                    "round_s": round(float(np.mean(times)), 3),
                    "round_cpu_s": round(float(np.mean(backend.round_cpu_s[-len(times):])), 3),
                })
                if args.csv:  # after every row, so that an interrupted run keeps what it measured
                    _write_csv(args.csv, rows)
                if args.verbose:
                    print(f"  {name:8s} {seq:18s} auc={rows[-1]['auc']:.3f} r1={curve[0]:.3f} "
                          f"r{args.rounds}={curve[-1]:.3f} drops={rows[-1]['drops']} frames={frames}",
                          flush=True)
        print(f"evaluation: {time.perf_counter() - t0:.0f} s", flush=True)
    summarise(rows, all_seqs)
    flows = [r["flow_s"] for r in rows]
    per_round = [t for s in seqs for t in backend.round_s[s]]
    print(f"\nflow precompute {np.mean(flows):.2f} s/sequence (max {np.max(flows):.2f}); "
          f"interact {np.mean(per_round):.3f} s/round wall (p90 {np.percentile(per_round, 90):.3f}, "
          f"max {np.max(per_round):.3f}), {np.mean(backend.round_cpu_s):.3f} s/round CPU")


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _read_csv(path: str) -> list[dict[str, Any]]:
    """Rows written by ``--csv`` with the numbers parsed back."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k not in ("sequence", "split", "strategy", "frames"):
                r[k] = float(v)
    return rows


def _strategy_line(rows: list[dict[str, Any]]) -> str:
    """Round-AUC of the mean curve, drop fraction and seconds per round of one strategy's rows."""
    rounds = sorted((k for k in rows[0] if k[0] == "r" and k[1:].isdigit()), key=lambda k: int(k[1:]))
    mean = np.mean([[float(r[k]) for k in rounds] for r in rows], axis=0)
    drops = sum(drop_count([float(r[k]) for k in rounds]) for r in rows)
    n_trans = len(rows) * (len(rounds) - 1)
    cpu = f" ({np.mean([float(r['round_cpu_s']) for r in rows]):.2f} CPU)" if "round_cpu_s" in rows[0] else ""
    return (f"AUC {auc_rounds([0.0, *mean.tolist()]):.3f}  drops {drops:3d}/{n_trans} "
            f"= {100 * drops / n_trans:4.1f}%  {np.mean([float(r['round_s']) for r in rows]):.2f} s/round"
            f"{cpu}  J&F " + " ".join(f"{v:.3f}" for v in mean))


def summarise(rows: list[dict[str, Any]], all_seqs: list[str]) -> None:
    """Per CV fold and over all videos: round-AUC, fraction of dropping rounds, s/round."""
    folds = video_folds(all_seqs, 5, seed=0)
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    measured = {r["sequence"] for r in rows}
    groups = [(f"fold{i}", [s for s in f if s in measured]) for i, f in enumerate(folds)]
    groups.append(("all", sorted(measured)))
    print(f"\nOracle, 240p, round-AUC / rounds whose mean J&F drops by > {DROP_TOL} / seconds per round")
    for label, members in groups:
        if not members:
            continue
        print(f"-- {label} ({len(members)} videos)")
        for name in strategies:
            sel = [r for r in rows if r["strategy"] == name and r["sequence"] in members]
            if sel:
                print(f"   {name:8s} {_strategy_line(sel)}")


def _drop_fraction(rows: list[dict[str, Any]]) -> float:
    """Fraction of round transitions that drop (rows carry their ``drops`` count)."""
    rounds = sum(1 for k in rows[0] if k[0] == "r" and k[1:].isdigit())
    return sum(float(r["drops"]) for r in rows) / (len(rows) * (rounds - 1))


def cross_validate(
    configs: dict[str, list[dict[str, Any]]], all_seqs: list[str], max_drops: float = 0.05
) -> None:
    """Nested selection: for each test fold, among the configurations whose rounds drop in at most
    ``max_drops`` of the transitions on the other four folds (every :data:`SELECT_ON` strategy;
    all of them when none qualifies), the one with the best mean round-AUC of :data:`SELECT_ON`
    there; prints the held-out figures of the chosen ones."""
    folds = video_folds(all_seqs, 5, seed=0)
    common = set.intersection(*({r["sequence"] for r in rows} for rows in configs.values()))
    held_out: list[dict[str, Any]] = []
    for i, fold in enumerate(folds):
        test = [s for s in fold if s in common]
        train = [s for j, f in enumerate(folds) if j != i for s in f if s in common]
        if not test or not train:
            continue
        fit = {n: [r for r in rows if r["sequence"] in train and r["strategy"] in SELECT_ON]
               for n, rows in configs.items()}
        scores = {n: float(np.mean([r["auc"] for r in rows])) for n, rows in fit.items()}
        drops = {n: max(_drop_fraction([r for r in rows if r["strategy"] == st])
                        for st in SELECT_ON if any(r["strategy"] == st for r in rows))
                 for n, rows in fit.items()}
        allowed = [n for n in configs if drops[n] <= max_drops] or list(configs)
        best = max(allowed, key=lambda n: (scores[n], n))
        print(f"fold{i}: chosen {best!r} (training folds: AUC / highest drop fraction "
              + ", ".join(f"{n} {scores[n]:.4f} / {drops[n]:.3f}" for n in sorted(configs)) + ")")
        held_out += [r for r in configs[best] if r["sequence"] in test]
    print("held-out folds, each with the configuration chosen on its training folds:")
    summarise(held_out, all_seqs)


def _run_curves(run_dir: Path) -> dict[str, list[float]]:
    """Mean J&F per round of every video of an evaluation folder (``report.csv`` of evaluate.py)."""
    import pandas as pd

    report = pd.read_csv(run_dir / "report.csv")
    per_round = report.groupby(["sequence", "interaction"])["j_and_f"].mean().unstack().sort_index(axis=1)
    return {str(seq): row.dropna().tolist() for seq, row in per_round.iterrows()}


def compare_runs(base: Path, other: Path, strategies: list[str], all_seqs: list[str]) -> None:
    """``other`` against ``base`` (evaluation folders holding one sub-folder per strategy, same
    videos): round-AUC, the fraction of rounds whose mean J&F drops by more than
    :data:`DROP_TOL`, and the paired difference of round-AUC over videos with its 95 % bootstrap
    interval (:func:`ivos_rl.reporting.paired_bootstrap`), over all videos and per CV fold."""
    import pandas as pd

    from ivos_rl.reporting import paired_bootstrap

    folds = video_folds(all_seqs, 5, seed=0)
    print(f"{other.name} - {base.name}: round-AUC, drops > {DROP_TOL}, paired difference [95% interval]")
    for name in strategies:
        curves = {"base": _run_curves(base / name), "other": _run_curves(other / name)}
        seqs = sorted(set(curves["base"]) & set(curves["other"]))
        auc = {k: pd.Series({f"{s}/1": auc_rounds([0.0, *c[s]]) for s in seqs}) for k, c in curves.items()}
        drops = {k: sum(drop_count(c[s]) for s in seqs) / sum(len(c[s]) - 1 for s in seqs)
                 for k, c in curves.items()}
        mean, lo, hi = paired_bootstrap(auc["other"], auc["base"])
        print(f"  {name:9s} {len(seqs)} videos: {base.name} AUC {auc['base'].mean():.4f} drops "
              f"{100 * drops['base']:.1f}% | {other.name} AUC {auc['other'].mean():.4f} drops "
              f"{100 * drops['other']:.1f}% | difference {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        diff = auc["other"] - auc["base"]
        per_fold = [diff[[f"{s}/1" for s in fold if s in seqs]].mean() for fold in folds]
        print("            per fold: " + "  ".join(f"fold{i} {d:+.4f}" for i, d in enumerate(per_fold)))


def _build_backend(args: argparse.Namespace) -> VOSBackend:
    """The backend under test (quality, timing and memory alike): the product's propagation
    backend or the issue's reference. One flow-cache slot: the flows the backend holds anyway."""
    if args.backend == "reference":
        return ReferenceBackend(**json.loads(args.ref or "{}"))
    return PropagationBackend(flow_cache_size=1, flow_cache_dir=args.flow_cache_dir, **_overrides(args))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Backend keyword overrides from ``--seg`` / ``--prop`` JSON objects."""
    out: dict[str, Any] = {}
    if args.seg:
        out["seg"] = json.loads(args.seg)
    if args.prop:
        out["prop"] = json.loads(args.prop)
    return out


def _load(root: Path, seq: str) -> tuple[np.ndarray, np.ndarray]:
    ds = DavisDataset(root, "240p", sequences=[seq])
    return ds.load_frames(seq), ds.load_masks(seq)


def run_timing(args: argparse.Namespace) -> None:
    """Seconds per round for an 80-frame 240p video, worst-frame robot, 8 rounds: every backend
    config of ``--configs`` (default v2 and the v3 candidate; ``--backend reference``: that one
    alone) on the same video, one round each in turn so that a shared machine's load hits them
    alike; per config wall and CPU seconds per round, rounds per CPU second, and the CPU split
    (cut / propagation) where the backend reports it."""
    frames, gt = _load(Path(args.root), args.timing_sequence)
    frames, gt = frames[:80], gt[:80]
    robot = ScribbleRobot()
    names = ["reference"] if args.backend == "reference" else args.configs.split(",")
    runs = {}
    for name in names:
        backend = (_build_backend(args) if name == "reference"
                   else backend_from_config(name, flow_cache_size=1, flow_cache_dir=args.flow_cache_dir))
        t0 = time.perf_counter()
        backend.reset(frames, 1, sequence=args.timing_sequence)
        runs[name] = {"backend": backend, "pred": np.zeros_like(gt), "wall": [], "cpu": [], "parts": {},
                      "precompute": time.perf_counter() - t0, "done": False, "support": []}
    for _ in range(args.rounds):
        for r in runs.values():
            if not r["done"]:
                _timed_round(r, robot, gt, args.timing_sequence)
                if len(r["support"]) < 2 and len(r["cpu"]) in (1, args.rounds):
                    r["support"].append(support_stats(r["probs"]))
    for name, r in runs.items():
        jf = float(batched_j_and_f(gt, r["pred"], nb_objects=1).mean())
        n = max(len(r["cpu"]), 1)
        split = " ".join(f"{k} {1000 * v / n:.0f} ms" for k, v in r["parts"].items())
        print(f"{name:18s} {args.timing_sequence} 80 frames {frames.shape[1]}x{frames.shape[2]}: "
              f"flow precompute "
              f"{r['precompute']:.2f} s; per round (wall) " + " ".join(f"{t:.2f}" for t in r["wall"])
              + f" s, mean {np.mean(r['wall']):.2f} s wall / {np.mean(r['cpu']):.2f} s CPU = "
              f"{1 / np.mean(r['wall']):.1f} rounds per wall s, {1 / np.mean(r['cpu']):.1f} per CPU s"
              + (f" (CPU per round: {split})" if split else "") + f"; final J&F {jf:.3f}")
        for when, (mean, top, box) in zip(("after round 1", "at the end"), r["support"], strict=False):
            print(f"{'':18s} {when}: pixels above the floor {100 * mean:.0f} % of a frame (max "
                  f"{100 * top:.0f} %), their box {100 * box:.0f} %")
    print(f"load average during the run: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          "(the machine is shared; CPU time is the figure an idle machine would show)")


def _timed_round(r: dict[str, Any], robot: ScribbleRobot, gt: np.ndarray, sequence: str) -> None:
    """One robot round (worst frame) of one timing run ``r``; marks it done when the robot draws nothing."""
    inter = robot.interact(sequence, r["pred"], gt, nb_objects=1)
    frame = next((i for i, s in enumerate(inter["scribbles"]) if s), None)
    if frame is None:
        r["done"] = True
        return
    t0, c0 = time.perf_counter(), time.process_time()
    out = r["backend"].interact(frame, inter)
    r["pred"], r["probs"] = out.masks, out.probs
    r["wall"].append(time.perf_counter() - t0)
    r["cpu"].append(time.process_time() - c0)
    for k, v in getattr(r["backend"], "last_timings", {}).items():
        r["parts"][k] = r["parts"].get(k, 0.0) + v


def support_stats(probs: np.ndarray) -> tuple[float, float, float]:
    """Where a propagation step works: the pixels where some object's probability is above the
    floor (> 5/255, i.e. background below the backend's 250/255 presence level) as a fraction of
    the frame (mean and max over frames), and their bounding box's area fraction (mean over
    frames). ``probs``: (T, N, H, W) uint8 of a backend output."""
    above = probs.max(axis=1) > 5
    frac = above.mean(axis=(1, 2))
    extent = [_extent(above.any(axis=a)) for a in (2, 1)]  # rows, then columns, per frame
    box = extent[0] * extent[1] / (above.shape[1] * above.shape[2])
    return float(frac.mean()), float(frac.max()), float(box.mean())


def _extent(on: np.ndarray) -> np.ndarray:
    """Per row of ``on`` (T, n) bool: last True index - first + 1 (0 when none)."""
    n = on.shape[1]
    return np.where(on.any(axis=1), n - np.argmax(on[:, ::-1], axis=1) - np.argmax(on, axis=1), 0)


def run_memory(args: argparse.Namespace) -> None:
    """Peak memory for a 100-frame 480p video (a 240p sequence upsampled, looped back and forth)."""
    frames, gt = _load(Path(args.root), args.timing_sequence)
    idx = np.concatenate([np.arange(len(frames)), np.arange(len(frames) - 2, 0, -1)])
    idx = np.resize(idx, 100)
    big = np.stack([cv2.resize(frames[i], (854, 480), interpolation=cv2.INTER_LINEAR) for i in idx])
    gt_big = np.stack([cv2.resize(gt[i], (854, 480), interpolation=cv2.INTER_NEAREST) for i in idx])
    robot = ScribbleRobot()
    input_mb = big.nbytes / 2**20
    tracemalloc.start()
    backend = _build_backend(args)
    t0 = time.perf_counter()
    backend.reset(big, 1, sequence="memory")
    precompute = time.perf_counter() - t0
    pred = np.zeros_like(gt_big)
    times = []
    for _ in range(4):
        inter = robot.interact("memory", pred, gt_big, nb_objects=1)
        frame = next(i for i, s in enumerate(inter["scribbles"]) if s)
        t0 = time.perf_counter()
        pred = backend.interact(frame, inter).masks
        times.append(time.perf_counter() - t0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"100 frames 480x854 (input {input_mb:.0f} MB): flow precompute {precompute:.1f} s, rounds "
          + " ".join(f"{t:.2f}" for t in times)
          + f" s; peak traced numpy/python memory {peak / 2**20:.0f} MB "
          f"(incl. input, outputs and robot), process max RSS {rss:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(DEFAULT_ROOT))
    p.add_argument("--sequences", default="all",
                   help="all (fold by fold) | tune | holdout | fold0+fold2 | comma-separated names")
    p.add_argument("--strategies", default="worst,farthest,random,linspace")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", default=None, help="per-sequence results file")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--timing", action="store_true", help="only the speed benchmark")
    p.add_argument("--memory", action="store_true", help="only the memory benchmark")
    p.add_argument("--timing-sequence", default="bear")
    p.add_argument("--configs", default="propagation,propagation_fast",
                   help="--timing: configs/backend/ names timed alternately (v2 and the v3 candidate)")
    p.add_argument("--backend", default="propagation", choices=["propagation", "reference"],
                   help="reference: the issue's GrabCut + DIS calibration recipe (_reference_backend.py)")
    p.add_argument("--ref", default=None, help='JSON kwargs of ReferenceBackend, e.g. \'{"band": 3}\'')
    p.add_argument("--seg", default=None, help='JSON overrides of SegParams, e.g. \'{"smoothness": 10}\'')
    p.add_argument("--prop", default=None, help="JSON overrides of PropParams")
    p.add_argument("--scribbles-root", default=None,
                   help="initial scribbles written before (variant 1 = 001.json is used); default: "
                        "generate them (robot on an empty prediction, variant 1) into a temp folder")
    p.add_argument("--flow-cache-dir", default=None, help="keep flows on disk here (e.g. cache/flows)")
    p.add_argument("--compare-runs", nargs=2, default=None, metavar=("BASE", "OTHER"),
                   help="evaluation folders (one sub-folder per --strategies name) to compare: "
                        "round-AUC, drops and the paired difference OTHER - BASE over videos")
    p.add_argument("--summary", nargs="+", default=None, metavar="CSV",
                   help="only summarise --csv files; several (one per configuration): cross-validate")
    args = p.parse_args(argv)
    if args.compare_runs:
        all_seqs = (Path(args.root) / "ImageSets" / f"{IMAGE_SET}.txt").read_text().split()
        base, other = (Path(d) for d in args.compare_runs)
        compare_runs(base, other, args.strategies.split(","), all_seqs)
    elif args.summary:
        all_seqs = (Path(args.root) / "ImageSets" / f"{IMAGE_SET}.txt").read_text().split()
        configs = {Path(c).stem: _read_csv(c) for c in args.summary}
        # Paired: only the (video, strategy) pairs that every configuration has measured.
        keys = [{(r["sequence"], r["strategy"]) for r in rows} for rows in configs.values()]
        pairs = set.intersection(*keys)
        configs = {n: [r for r in rows if (r["sequence"], r["strategy"]) in pairs]
                   for n, rows in configs.items()}
        for name, rows in configs.items():
            print(f"== {name}")
            summarise(rows, all_seqs)
        if len(configs) > 1:
            cross_validate(configs, all_seqs)
    elif args.timing:
        run_timing(args)
    elif args.memory:
        run_memory(args)
    else:
        run_quality(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
