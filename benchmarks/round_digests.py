"""Digests of a propagation backend's outputs on fixed real episodes: the reference that a speed
change must reproduce byte for byte (issue 14: every row, model and agent depends on those bytes).

Episodes: for each video and initial scribble, one env episode on the N' = 25 subsequence the
training env uses (horizon 4) and one on the whole video (horizon 3), with the DAVIS robot and
actions drawn from :func:`~ivos_rl.utils.seed.name_rng` of (video, scribble, length), so a subset
of videos gives the same rows. Per round: sha256 of the masks and of the uint8 probabilities, the
changed frames, the sha256 of the per-frame J and F (float64 bytes) and the mean J&F.

Run: `OMP_NUM_THREADS=1 python benchmarks/round_digests.py --root ../shared/data/davis2016-train
--flow-cache-dir DIR --out digests.json` (write a reference) or `--check digests.json` (compare;
exit status 1 on any difference, listing the first ones). Prints the CPU milliseconds of a live
step (robot + backend round + metrics), with ``--repeat R`` each step's fastest of R runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _configs import backend_from_config

from ivos_rl.data.davis import DavisDataset
from ivos_rl.envs import FrameRecommendationEnv
from ivos_rl.robot import ScribbleRobot
from ivos_rl.utils.io import atomic_write_json
from ivos_rl.utils.seed import name_rng

VIDEOS = "bear,bmx-bumps,boat,breakdance-flare,soccerball,dog-agility"


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def episode_rows(
    env: FrameRecommendationEnv, seq: str, idx: int, length: int | None, step_cpu: list[list[float]]
) -> list[dict[str, Any]]:
    """One fixed episode's rounds (the reset's included) as digest rows; the CPU seconds of its
    steps (robot, backend round, metrics: a live step) are appended to ``step_cpu`` with the
    backend's own split (cut, propagate: ``last_timings``)."""
    rng = name_rng("round_digests", seq, idx, length)
    _, info = env.reset(options={"sample": (seq, idx)})
    rows = [_row(env, info)]
    terminated = False
    while not terminated:
        cpu = time.process_time()
        _, _, terminated, _, info = env.step(int(rng.integers(env.n_frames)))
        parts = getattr(env.backend, "last_timings", {})
        step_cpu.append([time.process_time() - cpu, parts.get("cut", 0.0), parts.get("propagate", 0.0)])
        rows.append(_row(env, info))
    return rows


def _row(env: FrameRecommendationEnv, info: dict[str, Any]) -> dict[str, Any]:
    out = env.engine.state.output
    assert out is not None
    return {
        "annotated": [int(a) for a in info["annotated_frames"]],
        "masks": _sha(out.masks),
        "probs": _sha(out.probs),
        "changed": None if out.changed_frames is None else list(out.changed_frames),
        "jf_bytes": _sha(np.concatenate([info["j"].astype(np.float64), info["f"].astype(np.float64)])),
        "jf": float(np.mean(info["jf"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="DAVIS folder with 240p frames")
    parser.add_argument("--scribbles-root", type=Path, default=Path("data/scribbles/davis2016-train"))
    parser.add_argument("--sequences", default=VIDEOS, help="comma-separated videos")
    parser.add_argument("--scribbles", default="1,2,3", help="initial scribble indices")
    parser.add_argument("--lengths", default="25,all", help="subsequence lengths ('all': whole videos)")
    parser.add_argument("--backend", default="propagation", help="configs/backend/ name (see bench_env)")
    parser.add_argument("--flow-cache-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the digests here (JSON)")
    parser.add_argument("--check", type=Path, default=None, help="compare with these digests")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run everything this many times; the CPU figure then sums each step's "
                             "fastest run (robust to a shared machine's load: load only slows)")
    args = parser.parse_args()
    seqs = args.sequences.split(",")
    ds = DavisDataset(args.root, resolution="240p", sequences=seqs, scribbles_root=args.scribbles_root)
    backend = backend_from_config(args.backend, flow_cache_size=len(seqs), flow_cache_dir=args.flow_cache_dir)
    runs = [_run_all(ds, backend, seqs, args) for _ in range(max(args.repeat, 1))]
    result, _ = runs[0]
    if any(r != result for r, _ in runs[1:]):
        raise SystemExit("a repeated run gave other outputs")
    cpu = np.stack([c for _, c in runs])  # (runs, steps, 3)
    fastest = cpu[np.argmin(cpu[:, :, 0], axis=0), np.arange(cpu.shape[1])].mean(axis=0) * 1000
    rounds = sum(len(v) for v in result.values())
    median = float(np.median(cpu[:, :, 0].min(axis=0))) * 1000
    print(f"{len(result)} episodes, {rounds} rounds; {cpu.shape[1]} live steps, {fastest[0]:.1f} CPU ms per "
          f"step (each step's fastest of {len(runs)} runs; median {median:.1f}): "
          f"cut {fastest[1]:.1f}, propagate {fastest[2]:.1f}, rest (robot, metrics, env) "
          f"{fastest[0] - fastest[1] - fastest[2]:.1f}")
    if args.out is not None:
        atomic_write_json(args.out, result, indent=1)
    if args.check is not None:
        sys.exit(_compare(json.loads(args.check.read_text()), result))


def _run_all(
    ds: DavisDataset, backend: Any, seqs: list[str], args: argparse.Namespace
) -> tuple[dict[str, list[dict[str, Any]]], np.ndarray]:
    """Every episode's digest rows, and the CPU seconds of each live step in order (steps x
    (total, cut, propagate))."""
    result: dict[str, list[dict[str, Any]]] = {}
    step_cpu: list[list[float]] = []
    for spec in args.lengths.split(","):
        length = None if spec == "all" else int(spec)
        env = FrameRecommendationEnv(ds, backend, ScribbleRobot(), horizon=4 if length else 3,
                                     subsequence_length=length, reward={"use_goal": False})
        for seq in seqs:
            for idx in (int(i) for i in args.scribbles.split(",")):
                result[f"{seq}/{idx}/{spec}"] = episode_rows(env, seq, idx, length, step_cpu)
    return result, np.asarray(step_cpu)


def _compare(ref: dict[str, Any], got: dict[str, Any]) -> int:
    """0 when every episode run equals the reference's (a subset of its episodes may be run; an
    episode the reference lacks differs)."""
    bad = [k for k in got if ref.get(k) != got[k]]
    for k in bad[:10]:
        r, g = ref.get(k) or [], got[k]
        first = next((i for i, (a, b) in enumerate(zip(r, g, strict=False)) if a != b), min(len(r), len(g)))
        print(f"DIFFERS {k} from round {first + 1}")
    print(f"{len(got) - len(bad)} of {len(got)} episodes identical ({len(set(ref) - set(got))} of the "
          "reference's not run)")
    return 1 if bad else 0


if __name__ == "__main__":
    main()
