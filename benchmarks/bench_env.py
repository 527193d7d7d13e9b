"""Throughput of FrameRecommendationEnv (env steps per second) with several backends.

Cases (training setting: N' = 25-frame subsequences, horizon 4, random actions):

* simulated backend, ``interaction=fast`` (one-point strokes; target >= 1000 steps/s is only met
  with the transition cache, see below), and with the DAVIS robot, on synthetic 120x200 videos;
* the same env replaying histories it has seen: transition-cache hits skip robot, backend and
  metrics (what repeated baseline runs and a converging epsilon-greedy policy mostly do);
* the real propagation backend with the robot at 240p on the shared DAVIS-2016 train data
  (target >= 2 steps/s), when the data is there.

Run: `python benchmarks/bench_env.py [--episodes N] [--real-sequences K]`. Prints one line per case
with steps/s and the mean time per component.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ivos_rl.backends.propagation import PropagationBackend
from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data.davis import DavisDataset
from ivos_rl.data.init_scribbles import write_initial_scribbles
from ivos_rl.data.synthetic import generate_dataset
from ivos_rl.envs import FrameRecommendationEnv
from ivos_rl.robot import ScribbleRobot

SHARED_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016-train"


def run(
    env: FrameRecommendationEnv, episodes: int, seed: int = 0, repeat_seeds: bool = False
) -> dict[str, Any]:
    """Random-action episodes; returns steps/s (steps only, resets excluded) and component means."""
    rng = np.random.default_rng(seed)
    comp = {"robot": 0.0, "backend": 0.0, "metrics": 0.0, "quality": 0.0}
    steps, step_time, reset_time = 0, 0.0, 0.0
    for e in range(episodes):
        tic = time.perf_counter()
        obs, _ = env.reset(seed=(e % 4) if repeat_seeds else seed + e)
        reset_time += time.perf_counter() - tic
        erng = np.random.default_rng([seed, e % 4]) if repeat_seeds else rng
        for _ in range(env.horizon):
            tic = time.perf_counter()
            obs, _, terminated, _, _ = env.step(int(erng.integers(obs.shape[0])))
            step_time += time.perf_counter() - tic
            steps += 1
            for k, v in env.last_timings.as_dict().items():
                comp[k] = comp.get(k, 0.0) + v
            if terminated:
                break
    return {
        "steps_per_s": steps / step_time,
        "resets_per_s": episodes / reset_time,
        "ms_per_step": {k: 1000 * v / steps for k, v in comp.items()},
    }


def report(name: str, r: dict[str, Any]) -> None:
    parts = " ".join(f"{k}={v:.2f}ms" for k, v in r["ms_per_step"].items())
    print(f"{name:<46} {r['steps_per_s']:9.1f} steps/s  {r['resets_per_s']:7.1f} resets/s  | {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--real-sequences", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_env_"))

    root = generate_dataset(tmp / "synthetic", n_sequences=4, n_frames=30, size=(120, 200), max_objects=2)
    ds = DavisDataset(root, resolution="480p", image_set="2017/train")
    common = {"reward": {"use_goal": False}, "horizon": 4, "subsequence_length": 25}
    print(f"synthetic: 4 sequences x 30 frames x 120x200, N'=25, horizon 4, {args.episodes} episodes")
    fast = FrameRecommendationEnv(ds, SimulatedBackend(), interaction="fast", **common)
    report("simulated, fast strokes, no cache", run(fast, args.episodes))
    robot = FrameRecommendationEnv(ds, SimulatedBackend(), ScribbleRobot(), **common)
    report("simulated, DAVIS robot, no cache", run(robot, args.episodes))
    cached = FrameRecommendationEnv(
        ds, SimulatedBackend(), interaction="fast", transition_cache=100_000, **common
    )
    run(cached, 4, repeat_seeds=True)  # fill: 4 distinct episodes
    report("simulated, fast strokes, transition-cache hits", run(cached, args.episodes, repeat_seeds=True))

    if SHARED_DAVIS.is_dir() and args.real_sequences > 0:
        seqs = (SHARED_DAVIS / "ImageSets" / "2016" / "train.txt").read_text().split()[: args.real_sequences]
        scribbles = tmp / "scribbles"
        write_initial_scribbles(
            SHARED_DAVIS, resolution="240p", n_variants=1, sequences=seqs, out_dir=scribbles
        )
        real = DavisDataset(SHARED_DAVIS, resolution="240p", sequences=seqs, scribbles_root=scribbles)
        h, w = real.info(seqs[0]).height, real.info(seqs[0]).width
        print(f"DAVIS-2016 train 240p ({h}x{w}): {seqs}, N'=25, horizon 4")
        env = FrameRecommendationEnv(real, PropagationBackend(), ScribbleRobot(), **common)
        report("propagation (real, CPU), DAVIS robot", run(env, max(2, args.episodes // 10)))
        sim = FrameRecommendationEnv(real, SimulatedBackend(), interaction="fast", **common)
        report("simulated at 240p, fast strokes, no cache", run(sim, max(4, args.episodes // 4)))
    else:
        print(f"(shared DAVIS data not found at {SHARED_DAVIS}: real-backend case skipped)")


if __name__ == "__main__":
    main()
