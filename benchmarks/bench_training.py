"""Effective training throughput of the DQN agent (issue #16: target >= 50 env steps/s at 240p, one core).

"Effective" is over a whole ``train(cfg)`` run, the real loop (warm-up, epsilon-greedy acting, one
double-DQN update per step, task decomposition), cache hits included: env steps divided by the wall
seconds of the loop, split into env (reset + step: robot, backend round, metrics, quality) and
learning updates. Each ``--caches`` value (``env.transition_cache`` entries; 0 = every step live)
and ``--snapshots`` value (``env.snapshots``: engine states kept, so that resets and misses after
hits restore the longest known history instead of replaying it) runs the same training from the
same seed, so the runs differ only in those; the random
baseline of the goal reward is built once before them and timed apart (it is reused across runs).
Validation is off (``train.eval_every=0``): it is not training throughput.

Real data (the project's own backend on real videos, the realistic case):
  OMP_NUM_THREADS=1 python benchmarks/bench_training.py --root ../shared/data/davis2016-train \\
      --scribbles-root data/scribbles/davis2016-train --sequences 6 --steps 2000 \\
      [--flow-cache-dir cache/flows] [--caches 0,200000] [--snapshots 0,256]
Without ``--root``: the generated tiny synthetic set with the simulated backend (seconds; the
numbers only show the script runs).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir

from ivos_rl.agents.train import train
from ivos_rl.data.davis import DavisDataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _real_overrides(args: argparse.Namespace) -> list[str]:
    """Dataset (the first ``--sequences`` videos of the image set) and backend overrides."""
    dataset = DavisDataset(args.root, resolution=args.resolution, image_set=args.image_set,
                           scribbles_root=args.scribbles_root)
    names = dataset.sequences[: args.sequences]
    out = [
        f"dataset.root={Path(args.root).resolve()}",
        f"dataset.resolution={args.resolution}",
        f"dataset.image_set={args.image_set}",
        f"dataset.scribbles_root={Path(args.scribbles_root).resolve()}",
        f"+dataset.sequences=[{','.join(names)}]",
        f"backend={args.backend}",
    ]
    if args.flow_cache_dir:
        out.append(f"backend.flow_cache_dir={Path(args.flow_cache_dir).resolve()}")
    return out


def _synthetic_overrides(work: Path) -> list[str]:
    """The smoke-run config (generated on first use; simulated backend, one-point strokes)."""
    return ["+debug=tiny", f"dataset.root={work / 'synthetic'}"]


def _compose(base: list[str], work: Path, args: argparse.Namespace, cache: int, snapshots: int) -> Any:
    overrides = [
        *base,
        f"train.total_steps={args.steps}",
        f"train.warmup_episodes={args.warmup_episodes}",
        "train.eval_every=0",
        "train.val_sequences=0",
        "train.progress=false",
        "train.overwrite=true",  # benchmark scratch folders: a rerun replaces them
        f"paths.output_dir={work / f'run-cache{cache}-snap{snapshots}'}",
        f"baseline.path={work / 'baseline.json'}",
        "baseline.progress=false",
        f"baseline.n_episodes={args.baseline_episodes}",
        f"env.transition_cache={cache}",
        f"env.snapshots={snapshots}",
        "~logger",
        *args.override,
    ]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train_agent", overrides=overrides)


def report(cache: int, snapshots: int, result: dict[str, Any]) -> None:
    """One line: steps per CPU second (the figure on a shared machine) and per wall second, the split,
    the cache's hits, the history entries restored from snapshots, and the process's peak memory."""
    steps, wall, cpu = result["global_step"], result["seconds"], result["cpu_seconds"]
    asked = result["cache_hits"] + result["cache_misses"]
    hit_rate = result["cache_hits"] / asked if asked else 0.0
    print(
        f"transition_cache={cache:>7} snapshots={snapshots:>4}: {steps} steps, "
        f"{steps / cpu:.1f} steps per CPU s "
        f"({steps / wall:.1f} per wall s; "
        f"env {result['seconds_env']:.1f} s = {1000 * result['seconds_env'] / steps:.0f} ms/step, "
        f"learn {result['seconds_learn']:.1f} s = {1000 * result['seconds_learn'] / steps:.1f} ms/step); "
        f"cache hits {result['cache_hits']}/{asked} ({100 * hit_rate:.0f}% of resets+steps); "
        f"rounds restored {result['rounds_restored']}; peak RSS so far {_peak_rss_gb():.2f} GB"
    )


def _peak_rss_gb() -> float:
    """This process's peak resident memory (Linux reports KiB); runs share the process, so it only grows."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", help="DAVIS-layout dataset (default: synthetic, simulated backend)")
    parser.add_argument("--scribbles-root", help="initial scribbles of --root (ivos-rl init-scribbles)")
    parser.add_argument("--resolution", default="240p")
    parser.add_argument("--image-set", default="2016/train")
    parser.add_argument("--sequences", type=int, default=6, help="the first N videos of the image set")
    parser.add_argument("--backend", default="propagation_accurate",
                        help="backend config name (default: the default backend since session 19)")
    parser.add_argument("--flow-cache-dir", help="on-disk flow cache of the propagation backend")
    parser.add_argument("--steps", type=int, default=2000, help="env steps per training run")
    parser.add_argument("--warmup-episodes", type=int, default=50, help="random-policy episodes first")
    parser.add_argument("--baseline-episodes", type=int, default=30,
                        help="random episodes per sample of the goal reward's baseline (paper: 30)")
    parser.add_argument("--caches", default="0,200000", help="comma-separated env.transition_cache values")
    parser.add_argument("--snapshots", default="0", help="comma-separated env.snapshots values (each run "
                        "is one (cache, snapshots) pair; put the largest last: peak memory only grows)")
    parser.add_argument("--override", action="append", default=[],
                        help="extra Hydra override of every run, e.g. agent.update_every=4 (repeatable)")
    parser.add_argument("--work-dir", help="keep run folders and the baseline here (default: a temp dir)")
    args = parser.parse_args()
    if args.root and not args.scribbles_root:
        parser.error("--root needs --scribbles-root")
    torch.set_num_threads(1)
    runs = [(int(c), int(n)) for c in args.caches.split(",") for n in args.snapshots.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        base = _real_overrides(args) if args.root else _synthetic_overrides(work)
        where = f"{args.sequences} videos of {args.root}" if args.root else "synthetic tiny set"
        print(f"{where}, backend={'simulated' if not args.root else args.backend}, {args.steps} steps, "
              f"{args.warmup_episodes} warm-up episodes, torch threads 1")
        for i, (cache, snapshots) in enumerate(runs):
            cfg = _compose(base, work, args, cache, snapshots)
            tic = time.perf_counter()
            result = train(cfg)
            if i == 0:  # the first run also built the random baseline (outside the timed loop)
                setup = time.perf_counter() - tic - result["seconds"]
                print(f"baseline + setup of the first run: {setup:.1f} s")
            report(cache, snapshots, result)


if __name__ == "__main__":
    main()
