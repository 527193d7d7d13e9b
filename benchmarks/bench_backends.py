"""Speed of the SIMULATED backend and of the disk cache (the propagation backend has its own figures).

Usage (2 cores shared: keep one thread)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_backends.py [--episodes N] \
        [--davis-root DIR --resolution 240p --image-set 2016/train]

``--davis-root`` is any DAVIS-layout folder (e.g. ``../shared/data/davis2016-train``); without it
the 240p setting uses a synthetic clip.

Prints, per setting, the reset time, the time of one ``interact`` (a round of the interactive loop:
the whole video's probabilities and masks) as a median over rounds, the equivalent rounds per
second, and for ``CachedBackend`` around the simulator the miss and hit times and the entry size.
Settings: the RL clip size (25 frames of 64x96, 1 and 2 objects, seeded synthetic squares) and
80 frames at 240p (427x240), taken from a real sequence of ``--davis-root`` when given, otherwise
synthetic (the line says which).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.backends import CachedBackend, SimulatedBackend, VOSBackend


def synthetic_clip(t: int, h: int, w: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Moving rectangles on noise: frames (T, H, W, 3) uint8 and labels (T, H, W) uint8."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, size=(t, h, w, 3), dtype=np.uint8)
    gt = np.zeros((t, h, w), np.uint8)
    for obj in range(1, k + 1):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        vy, vx = rng.uniform(-0.3, 0.3), rng.uniform(-0.5, 0.5)
        for i in range(t):
            y, x = int(y0 + vy * i) % (h // 2), int(x0 + vx * i) % (w // 2)
            gt[i, y : y + h // 3, x : x + w // 3] = obj
    return frames, gt


def davis_clip(
    root: Path, t: int, resolution: str = "240p", image_set: str | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The first sequence of the DAVIS folder with at least ``t`` frames (first ``t`` frames)."""
    from ivos_rl.data.davis import DavisDataset

    ds = DavisDataset(root, resolution=resolution, image_set=image_set)
    for seq in ds.sequences:
        if ds.info(seq).n_frames >= t:
            idx = list(range(t))
            gt = ds.load_masks(seq, idx)
            gt[gt == 255] = 0
            return ds.load_frames(seq, idx), gt, seq
    raise SystemExit(f"no sequence with {t} frames under {root}")


def rounds_for(gt: np.ndarray, k: int, n_rounds: int) -> list[tuple[int, dict[str, Any]]]:
    """One stroke per object through its middle row, on frames 0, T-1, T/2, T/4, 3T/4..."""
    t, h, w = gt.shape
    order = [0, t - 1, t // 2, t // 4, 3 * t // 4, t // 8, 3 * t // 8, 5 * t // 8][:n_rounds]
    out = []
    for f in order:
        strokes = []
        for obj in range(1, k + 1):
            ys, xs = np.nonzero(gt[f] == obj)
            if len(ys) == 0:
                continue
            row = int(np.median(ys))
            cols = xs[ys == row]
            pts = [[cols.min() / (w - 1), row / (h - 1)], [cols.max() / (w - 1), row / (h - 1)]]
            strokes.append({"path": pts, "object_id": obj, "start_time": 0.0, "end_time": 1.0})
        strokes.append({"path": [[0.0, 0.0], [0.0, 0.1]], "object_id": 0, "start_time": 0.0, "end_time": 1.0})
        scribbles: list[list[dict[str, Any]]] = [[] for _ in range(t)]
        scribbles[f] = strokes
        out.append((f, {"scribbles": scribbles, "sequence": "bench"}))
    return out


def time_episode(backend: VOSBackend, frames: np.ndarray, gt: np.ndarray, k: int, rounds: list) -> tuple:
    """Reset time and per-round interact times of one episode."""
    start = time.perf_counter()
    backend.reset(frames, k, sequence="bench", gt_masks=gt)
    reset_s = time.perf_counter() - start
    per_round = []
    for f, inter in rounds:
        start = time.perf_counter()
        backend.interact(f, inter)
        per_round.append(time.perf_counter() - start)
    return reset_s, per_round


def bench(label: str, frames: np.ndarray, gt: np.ndarray, k: int, episodes: int) -> None:
    rounds = rounds_for(gt, k, 8)
    sim = SimulatedBackend(seed=0)
    resets, steps = [], []
    for _ in range(episodes):
        r, per = time_episode(sim, frames, gt, k, rounds)
        resets.append(r)
        steps.extend(per)
    step = statistics.median(steps)
    print(
        f"simulated  {label:<38} reset {1e3 * min(resets):8.2f} ms   interact {1e3 * step:7.3f} ms"
        f"   = {1 / step:8.0f} rounds/s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedBackend(SimulatedBackend(seed=0), tmp)
        _, miss = time_episode(cached, frames, gt, k, rounds)
        hits = []
        for _ in range(max(1, episodes // 2)):
            _, per = time_episode(cached, frames, gt, k, rounds)
            hits.extend(per)
        sizes = [p.stat().st_size for p in Path(tmp).rglob("*.ivc")]
        raw = frames.shape[0] * (k + 1) * frames.shape[1] * frames.shape[2]
        entry = statistics.mean(sizes)
        print(
            f"cached     {label:<38} miss {1e3 * statistics.median(miss):8.2f} ms   "
            f"hit {1e3 * statistics.median(hits):8.3f} ms   "
            f"entry {entry / 1024:7.1f} KiB ({raw / entry:.0f}x smaller than raw)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis-root", type=Path, default=None, help="DAVIS-layout folder (real clip)")
    parser.add_argument("--resolution", default="240p", help="resolution folder of --davis-root")
    parser.add_argument("--image-set", default=None, help="e.g. 2016/train (default: every sequence)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes of 8 rounds per small setting")
    args = parser.parse_args(argv)

    for k in (1, 2):
        frames, gt = synthetic_clip(25, 64, 96, k)
        bench(f"25 x 64x96, {k} object(s), synthetic", frames, gt, k, args.episodes)
    if args.davis_root is not None:
        if not args.davis_root.is_dir():
            parser.error(f"--davis-root {args.davis_root} is not a folder")
        frames, gt, seq = davis_clip(args.davis_root, 80, args.resolution, args.image_set)
        bench(f"80 x {frames.shape[2]}x{frames.shape[1]}, 1 object, DAVIS {seq}", frames, gt, 1, 2)
    else:
        frames, gt = synthetic_clip(80, 240, 427, 1)
        print("(no --davis-root: the 240p setting uses a synthetic clip)")
        bench("80 x 427x240, 1 object, synthetic", frames, gt, 1, 2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
