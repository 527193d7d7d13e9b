"""Speed of ivos_rl's ScribbleRobot and, when available, ratio and agreement with davisinteractive's.

Usage (2 cores shared: keep one thread)::

    OMP_NUM_THREADS=1 DAVISINTERACTIVE_PYTHON=/tmp/davref/bin/python \
        .venv/bin/python benchmarks/bench_robot.py [--frames 10 --height 480 --width 854 --objects 2]

Without ``DAVISINTERACTIVE_PYTHON`` (see ``_davisinteractive.py``) only ivos-rl's timings are
printed. Times are best-of-N process CPU times with OpenCV on one thread (both sides). Two
cases on the seeded synthetic masks of ``bench_metrics.py``: the first interaction (empty
prediction, given frame) and a correction round (imperfect prediction, worst frame).
Agreement is reported per stroke: identical object ids and the max |difference| of the
normalised coordinates, plus the share of ivos-rl's scribble pixels within 2 px of the
reference's (1.0 when the strokes coincide).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import cv2
import numpy as np
from _davisinteractive import MEDIAL_AXIS_SEED, call_reference, reference_python
from bench_metrics import best_time, make_masks
from scipy import ndimage

from ivos_rl.robot import ScribbleRobot
from ivos_rl.scribbles import scribbles2mask


def agreement(mine: dict[str, Any], ref: dict[str, Any], shape: tuple[int, int]) -> str:
    """One line comparing two scribble dicts stroke by stroke."""
    frames_m = [f for f, s in enumerate(mine["scribbles"]) if s]
    frames_r = [f for f, s in enumerate(ref["scribbles"]) if s]
    if frames_m != frames_r:
        return f"different frames: {frames_m} vs {frames_r}"
    strokes_m = [s for f in frames_m for s in mine["scribbles"][f]]
    strokes_r = [s for f in frames_r for s in ref["scribbles"][f]]
    ids_m = [s["object_id"] for s in strokes_m]
    ids_r = [s["object_id"] for s in strokes_r]
    diffs = [
        float(np.abs(np.asarray(a["path"]) - np.asarray(b["path"])).max())
        if len(a["path"]) == len(b["path"])
        else float("inf")
        for a, b in zip(strokes_m, strokes_r, strict=False)
    ]
    raster_m = scribbles2mask(mine, shape) >= 0
    raster_r = scribbles2mask(ref, shape) >= 0
    near = ndimage.binary_dilation(raster_r, structure=np.ones((1, 5, 5), bool))
    share = float((raster_m & near).sum() / max(raster_m.sum(), 1))
    same = sum(d == 0 for d in diffs)
    return (
        f"frame {frames_m}, strokes {len(strokes_m)} vs {len(strokes_r)}, ids equal {ids_m == ids_r}, "
        f"identical strokes {same}/{len(strokes_r)}, max |diff| {max(diffs, default=0):.3g}, "
        f"pixels within 2 px {share:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    gt, pred = make_masks(args.frames, args.height, args.width, args.objects, args.seed)
    robot = ScribbleRobot(seed=MEDIAL_AXIS_SEED, clock=lambda: 0.0)
    cases = {
        "first interaction (empty prediction, frame T/2)": (np.zeros_like(pred), args.frames // 2),
        "correction (imperfect prediction, worst frame)": (pred, None),
    }
    python = reference_python()
    print(f"data: {gt.shape} uint8, {args.objects} objects, best of {args.repeats}")
    for name, (p, frame) in cases.items():
        start = time.process_time()
        robot.interact("seq", p, gt, nb_objects=args.objects, frame=frame)
        first = time.process_time() - start
        mine, t = best_time(
            lambda p=p, frame=frame: robot.interact("seq", p, gt, nb_objects=args.objects, frame=frame),
            args.repeats,
        )
        print(f"{name}\n  ivos_rl          {t * 1e3:8.1f} ms  (first call {first * 1e3:.1f} ms)")
        if python is None:
            continue
        out = call_reference(
            "robot",
            {
                "gt": gt,
                "pred": p,
                "nb_objects": args.objects,
                "frame": -1 if frame is None else frame,
                "kernel_size": robot.kernel_size,
                "max_kernel_radius": robot.max_kernel_radius,
                "min_nb_nodes": robot.min_nb_nodes,
                "nb_points": robot.nb_points,
                "repeats": args.repeats,
            },
            python=python,
        )
        t_ref = float(out["time"])
        print(f"  davisinteractive {t_ref * 1e3:8.1f} ms  speed-up x{t_ref / t:.1f}")
        print("  " + agreement(mine, json.loads(str(out["scribbles_json"])), gt.shape[1:]))
    if python is None:
        print("davisinteractive not importable: set DAVISINTERACTIVE_PYTHON for ratios and agreement")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
