"""What a correction round does to the frame the user annotated: errors fixed, broken, left, and where.

Round-AUC says how good a backend's rounds are; it does not say why an annotated frame stays poor after
the user corrected it. Per correction (rounds 2..R of the project's own round engine, the robot answering
on the current masks, frames picked by an Oracle strategy as in ``evaluate setting=oracle``), on the
annotated frame:

* J&F before and after the round (and how often the frame scored lower after it: the re-cut broke more
  than it fixed);
* error pixels before (label map != ground truth), and how many of them the round fixed, how many
  correct pixels it broke, how many errors remain;
* how far the remaining errors lie from the round's strokes (median px, share beyond ``--far`` px):
  errors far from every stroke are errors the user did not mark (the robot only draws on error regions
  that survive its opening, so thin ones get none) and that a local correction cannot reach;
* rounds where the robot drew nothing (the frame keeps its masks; the round is spent).

Run on the shared DAVIS-2016 videos (flows cached), e.g.
`OMP_NUM_THREADS=1 python benchmarks/bench_corrections.py --sequences bear,dog-agility,kite-walk`
(``--backends propagation_accurate,propagation`` compares configs on the same samples; a name may add
Hydra overrides after colons, as in bench_env). Prints one line per video and a pooled line per backend;
``--out`` also writes every correction as CSV.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _configs import CONFIGS, backend_from_config, davis_parser
from _corrections import correction_row, stroke_raster, summary

from ivos_rl.data.davis import DavisDataset
from ivos_rl.robot import ScribbleRobot
from ivos_rl.rounds import QualitySource, RoundEngine, load_sample
from ivos_rl.strategies.base import Strategy, sample_seed


def oracle_strategy(name: str) -> Strategy:
    """``strategy=<name>`` of the evaluate config, instantiated as the scripts do."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"strategy={name}"])
    strategy = instantiate(cfg.strategy)
    if getattr(strategy, "needs_lookahead", False):
        raise SystemExit(f"strategy {name!r} needs lookahead forks: not a strategy this benchmark times")
    return strategy


def run_sample(engine: RoundEngine, strategy: Strategy, sample: Any, rounds: int, far: float) -> list[dict]:
    """The sample's rounds as ``evaluate`` runs them; one row per correction round."""
    strategy.reset(seed=sample_seed(sample.sequence, sample.scribble_idx, 0))
    state = engine.start(sample)
    rows = []
    for rnd in range(1, rounds):
        jf_before = engine.score().per_frame()
        frame = engine.select(lambda r=rnd: strategy.select(engine.view(strategy, r, rounds)))
        assert state.output is not None
        before = state.output.masks[frame].copy()
        drew = engine.annotate(frame)
        engine.propagate()
        after = state.output.masks[frame]
        jf_after = engine.score().per_frame()
        strokes = stroke_raster(state.latest, frame, before.shape) if drew else np.zeros_like(before)
        row = {
            "sequence": sample.sequence,
            "scribble": sample.scribble_idx,
            "round": rnd + 1,
            "frame": frame,
            "drew": drew,
            "jf_before": float(jf_before[frame]),
            "jf_after": float(jf_after[frame]),
        }
        row.update(correction_row(before, after, sample.gt[frame], strokes, far))
        rows.append(row)
    return rows


def fmt(label: str, s: dict[str, float], far: float) -> str:
    return (
        f"{label:<40} n={s['corrections']:>4}  J&F {s['jf_before']:.3f} -> {s['jf_after']:.3f}"
        f" (after < .6: {s['after_below_0.6']:.0%}, lower than before: {s['frame_worse']:.1%})"
        f"  of the errors before: fixed {s['fixed']:.0%},"
        f" broken {s['broken']:.0%} more, remaining {s['remaining']:.0%};"
        f" errors after > {far:g} px from the strokes {s['far_share']:.0%};"
        f" robot drew nothing {s['nothing_drawn']:.0%}"
    )


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Temp file + rename: an interrupted run leaves no half-written table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".csv.tmp")
    os.close(fd)
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main() -> None:
    parser = davis_parser(__doc__)
    parser.add_argument(
        "--scribbles-root",
        default="data/scribbles/davis2016-train",
        help="initial scribbles (ivos-rl init-scribbles)",
    )
    parser.add_argument("--sequences", default=None, help="comma-separated videos (default: every video)")
    parser.add_argument("--scribbles", default="1", help="comma-separated initial scribble indices")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--strategy", default="worst", help="configs/strategy/ name, Oracle setting")
    parser.add_argument(
        "--backends",
        default="propagation_accurate",
        help="configs/backend/ names (Hydra overrides after colons), comma-separated",
    )
    parser.add_argument("--flow-cache-dir", default="cache/flows")
    parser.add_argument("--far", type=float, default=20.0, help="px from the strokes counted as far")
    parser.add_argument("--out", type=Path, default=None, help="also write every correction here (CSV)")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error(f"--rounds must be >= 2 (a correction is round 2 on), got {args.rounds}")

    dataset = DavisDataset(
        root=args.root, image_set=args.image_set, resolution="240p", scribbles_root=args.scribbles_root
    )
    sequences = args.sequences.split(",") if args.sequences else list(dataset.sequences)
    scribbles = [int(s) for s in args.scribbles.split(",")]
    strategy = oracle_strategy(args.strategy)
    robot = ScribbleRobot()
    frames: list[pd.DataFrame] = []
    for name in args.backends.split(","):
        backend = backend_from_config(name, flow_cache_dir=args.flow_cache_dir)
        engine = RoundEngine(backend, robot, QualitySource("oracle"))
        rows: list[dict] = []
        for seq in sequences:
            video = (dataset.load_frames(seq), dataset.load_masks(seq), int(dataset.info(seq).n_objects))
            seq_rows = []
            for idx in scribbles:
                sample = load_sample(
                    dataset, seq, idx, initial_interaction="dataset", robot=robot, video=video
                )
                seq_rows += run_sample(engine, strategy, sample, args.rounds, args.far)
            print(fmt(f"{name} {seq}", summary(pd.DataFrame(seq_rows)), args.far), flush=True)
            rows += seq_rows
        df = pd.DataFrame(rows).assign(backend=name)
        print(fmt(f"{name} ALL ({len(sequences)} videos)", summary(df), args.far), flush=True)
        frames.append(df)
    if args.out is not None:
        write_csv(pd.concat(frames, ignore_index=True), args.out)


if __name__ == "__main__":
    main()
