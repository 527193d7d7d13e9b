"""Throughput of FrameRecommendationEnv (env steps per second) with several backends.

Cases (training setting: N' = 25-frame subsequences, horizon 4, random actions):

* simulated backend, ``interaction=fast`` (one-point strokes; target >= 1000 steps/s is only met
  with the transition cache, see below), and with the DAVIS robot, on synthetic 120x200 videos;
* the same env replaying histories it has seen: transition-cache hits skip robot, backend and
  metrics (what repeated baseline runs and a converging epsilon-greedy policy mostly do);
* the real propagation backend with the robot at 240p on DAVIS data given by ``--root`` (e.g.
  the shared DAVIS-2016 train folder; target >= 10 live steps/s on one core): a first pass
  fills the flow cache (``--flow-cache-dir``, or the backend's in-memory cache), then the same
  episodes are timed live (robot + backend round + metrics; no transition cache). Every backend
  config of ``--backends`` (default: ``propagation_accurate``, the default backend, and
  ``propagation`` = version 2) runs the same episodes, one episode each in turn, so a shared machine's load
  hits them alike; each prints steps per wall and per CPU second and the CPU split of a step.

Run: `OMP_NUM_THREADS=1 python benchmarks/bench_env.py [--episodes N] [--root DAVIS --real-sequences K]`.
Prints one line per case with steps/s (wall, and per CPU second: the machine may be shared) and
the mean time per component.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _configs import backend_from_config

from ivos_rl.backends.simulated import SimulatedBackend
from ivos_rl.data.davis import DavisDataset
from ivos_rl.data.init_scribbles import write_initial_scribbles
from ivos_rl.data.synthetic import generate_dataset
from ivos_rl.envs import FrameRecommendationEnv
from ivos_rl.robot import ScribbleRobot


class _Tally:
    """Sums over the steps of some episodes: wall and CPU time, env components, backend parts."""

    def __init__(self) -> None:
        self.comp = {"robot": 0.0, "backend": 0.0, "metrics": 0.0, "quality": 0.0}
        self.parts: dict[str, float] = {}
        self.steps, self.step_time, self.step_cpu, self.reset_time, self.episodes = 0, 0.0, 0.0, 0.0, 0
        self.step_cpus: list[float] = []  # each step's CPU seconds (the median: robust to load bursts)

    def episode(self, env: FrameRecommendationEnv, seed: int, rng: np.random.Generator) -> None:
        """One random-action episode (``seed`` for the reset, ``rng`` for the actions)."""
        tic = time.perf_counter()
        obs, _ = env.reset(seed=seed)
        self.reset_time += time.perf_counter() - tic
        self.episodes += 1
        for _ in range(env.horizon):
            tic, cpu = time.perf_counter(), time.process_time()
            obs, _, terminated, _, _ = env.step(int(rng.integers(obs.shape[0])))
            self.step_time += time.perf_counter() - tic
            self.step_cpus.append(time.process_time() - cpu)
            self.step_cpu += self.step_cpus[-1]
            self.steps += 1
            for k, v in env.last_timings.as_dict().items():
                self.comp[k] = self.comp.get(k, 0.0) + v
            for k, v in getattr(env.backend, "last_timings", {}).items():
                self.parts[k] = self.parts.get(k, 0.0) + v
            if terminated:
                break

    def result(self) -> dict[str, Any]:
        """steps/s (steps only, resets excluded) and component means (wall ms; a backend with
        ``last_timings``, the propagation backend, adds its parts in CPU ms)."""
        steps = max(self.steps, 1)
        return {
            "steps_per_s": self.steps / self.step_time,
            "steps_per_cpu_s": self.steps / self.step_cpu,
            "resets_per_s": self.episodes / self.reset_time,
            "ms_per_step": {k: 1000 * v / steps for k, v in self.comp.items()},
            "backend_cpu_ms_per_step": {k: 1000 * v / steps for k, v in self.parts.items()},
            "cpu_ms_per_step": 1000 * self.step_cpu / steps,
            "median_cpu_ms_per_step": 1000 * float(np.median(self.step_cpus)) if self.step_cpus else 0.0,
        }


def run(
    env: FrameRecommendationEnv, episodes: int, seed: int = 0, repeat_seeds: bool = False
) -> dict[str, Any]:
    """Random-action episodes; see :meth:`_Tally.result`."""
    rng = np.random.default_rng(seed)
    tally = _Tally()
    for e in range(episodes):
        erng = np.random.default_rng([seed, e % 4]) if repeat_seeds else rng
        tally.episode(env, (e % 4) if repeat_seeds else seed + e, erng)
    return tally.result()


def run_alternating(envs: dict[str, FrameRecommendationEnv], episodes: int, seed: int = 0) -> dict[str, Any]:
    """The same random-action episodes on every env, one episode each in turn, the order reversed
    every other episode (the first of a turn measured ~10 ms more per step: load on a shared
    machine and the turn order hit them alike); per env the figures of :meth:`_Tally.result`."""
    tallies = {name: _Tally() for name in envs}
    for e in range(episodes):
        for name in list(envs) if e % 2 == 0 else list(envs)[::-1]:
            tallies[name].episode(envs[name], seed + e, np.random.default_rng([seed, e]))
    return {name: t.result() for name, t in tallies.items()}


def report(name: str, r: dict[str, Any]) -> None:
    parts = " ".join(f"{k}={v:.2f}ms" for k, v in r["ms_per_step"].items())
    print(f"{name:<46} {r['steps_per_s']:9.1f} steps/s ({r['steps_per_cpu_s']:.1f} per CPU s)  "
          f"{r['resets_per_s']:7.1f} resets/s  | wall {parts}")
    if r["backend_cpu_ms_per_step"]:
        split = " ".join(f"{k}={v:.1f}ms" for k, v in r["backend_cpu_ms_per_step"].items())
        rest = r["cpu_ms_per_step"] - sum(r["backend_cpu_ms_per_step"].values())
        median = r["median_cpu_ms_per_step"]
        print(f"{'':<46} CPU per step {r['cpu_ms_per_step']:.1f}ms (median {median:.1f}ms): "
              f"backend {split}, rest (robot, metrics, fusing, env) {rest:.1f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--root", type=Path, default=None,
                        help="DAVIS folder with 240p frames (e.g. ../shared/data/davis2016-train)")
    parser.add_argument("--real-sequences", type=int, default=3)
    parser.add_argument("--sequences", default=None,
                        help="comma-separated videos (default: the first --real-sequences of the set)")
    parser.add_argument("--real-episodes", type=int, default=None, help="default: episodes // 4, >= 4")
    parser.add_argument("--flow-cache-dir", default=None, help="flows on disk, e.g. cache/flows")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--backends", default="propagation_accurate,propagation",
                        help="configs/backend/ names of propagation backends, timed alternately (a "
                             "name may add Hydra overrides after colons: propagation_fast:+backend.prop.x=1)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_env_"))
    if not args.skip_synthetic:
        synthetic_cases(tmp, args.episodes)
    if args.root is None:
        print("(no --root: real-backend case skipped)")
    elif not args.root.is_dir():
        raise SystemExit(f"--root {args.root} is not a folder")
    elif args.real_sequences > 0:
        real_case(args, tmp)


def synthetic_cases(tmp: Path, episodes: int) -> None:
    root = generate_dataset(tmp / "synthetic", n_sequences=4, n_frames=30, size=(120, 200), max_objects=2)
    ds = DavisDataset(root, resolution="480p", image_set="2017/train")
    common = {"reward": {"use_goal": False}, "horizon": 4, "subsequence_length": 25}
    print(f"synthetic: 4 sequences x 30 frames x 120x200, N'=25, horizon 4, {episodes} episodes")
    fast = FrameRecommendationEnv(ds, SimulatedBackend(), interaction="fast", **common)
    report("simulated, fast strokes, no cache", run(fast, episodes))
    robot = FrameRecommendationEnv(ds, SimulatedBackend(), ScribbleRobot(), **common)
    report("simulated, DAVIS robot, no cache", run(robot, episodes))
    cached = FrameRecommendationEnv(
        ds, SimulatedBackend(), interaction="fast", transition_cache=100_000, **common
    )
    run(cached, 4, repeat_seeds=True)  # fill: 4 distinct episodes
    report("simulated, fast strokes, transition-cache hits", run(cached, episodes, repeat_seeds=True))


def real_case(args: argparse.Namespace, tmp: Path) -> None:
    """Live steps of the propagation backend at 240p, flows cached by a first pass."""
    root: Path = args.root
    seqs = (args.sequences.split(",") if args.sequences
            else (root / "ImageSets" / "2016" / "train.txt").read_text().split()[: args.real_sequences])
    scribbles = tmp / "scribbles"
    write_initial_scribbles(root, resolution="240p", n_variants=1, sequences=seqs, out_dir=scribbles)
    real = DavisDataset(root, resolution="240p", sequences=seqs, scribbles_root=scribbles)
    h, w = real.info(seqs[0]).height, real.info(seqs[0]).width
    episodes = args.real_episodes or max(4, args.episodes // 4)
    common = {"reward": {"use_goal": False}, "horizon": 4, "subsequence_length": 25}
    print(f"DAVIS 240p ({h}x{w}): {seqs}, N'=25 (centred on the initial scribble), horizon 4, "
          f"{episodes} episodes, random actions")
    envs = {}
    for name in args.backends.split(","):
        backend = backend_from_config(name, flow_cache_size=len(seqs), flow_cache_dir=args.flow_cache_dir)
        envs[name] = FrameRecommendationEnv(real, backend, ScribbleRobot(), **common)
        run(envs[name], min(episodes, 2 * len(seqs)))  # fills the flow cache (one subsequence per video)
    for name, r in run_alternating(envs, episodes).items():
        report(f"{name} (real, CPU), DAVIS robot, live", r)
    sim = FrameRecommendationEnv(real, SimulatedBackend(), interaction="fast", **common)
    report("simulated at 240p, fast strokes, no cache", run(sim, episodes))


if __name__ == "__main__":
    main()
