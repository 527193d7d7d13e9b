"""Speed of ivos_rl's ScribbleRobot and, when available, ratio and agreement with davisinteractive's.

Usage (2 cores shared: keep one thread)::

    OMP_NUM_THREADS=1 DAVISINTERACTIVE_PYTHON=/tmp/davref/bin/python \
        .venv/bin/python benchmarks/bench_robot.py [--frames 8 --repeats 3]

Without ``DAVISINTERACTIVE_PYTHON`` (see ``_davisinteractive.py``) only ivos-rl's timings are
printed. Times are best-of-N process CPU times with OpenCV on one thread (both sides), summed
over ten real videos (``_realistic.py``: DAVIS-2016 masks at 480x854, the propagation backend's
predictions): the first interaction (empty prediction, given frame) and a correction round
(the prediction as is, and with 2% of its pixels relabelled; worst frame).
Agreement is reported per stroke: identical object ids and the max |difference| of the
normalised coordinates, plus the share of ivos-rl's scribble pixels within 2 px of the
reference's (1.0 when the strokes coincide).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import cv2
import numpy as np
from _davisinteractive import MEDIAL_AXIS_SEED, call_reference, reference_python
from _realistic import VIDEOS, realistic_pairs
from bench_metrics import best_time
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


def _strokes(scribbles: dict[str, Any]) -> int:
    return sum(len(s) for s in scribbles["scribbles"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.02, help="share of relabelled pixels (noisy case)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    robot = ScribbleRobot(seed=MEDIAL_AXIS_SEED, clock=lambda: 0.0)
    python = reference_python()
    print(f"{len(VIDEOS)} real videos x {args.frames} frames at 480x854, 1 object, best of {args.repeats}")
    for label, noise in (("clean", 0.0), ("noisy", args.noise)):
        pairs = realistic_pairs(args.frames, noise=noise, seed=args.seed)
        cases = {
            "first interaction (empty prediction, middle frame)": lambda gt, pred: (
                np.zeros_like(pred),
                len(gt) // 2,
            ),
            "correction (propagation prediction, worst frame)": lambda gt, pred: (pred, None),
        }
        for name, make in cases.items():
            if label == "noisy" and name.startswith("first"):
                continue  # an empty prediction has no noise
            mine_t, ref_t, equal, lines = 0.0, 0.0, 0, []
            for seq, gt, pred in pairs:
                p, frame = make(gt, pred)
                mine, t = best_time(
                    lambda p=p, f=frame, gt=gt, seq=seq: robot.interact(seq, p, gt, nb_objects=1, frame=f),
                    args.repeats,
                )
                mine_t += t
                if python is None:
                    continue
                out = call_reference(
                    "robot",
                    {
                        "gt": gt,
                        "pred": p,
                        "nb_objects": 1,
                        "frame": -1 if frame is None else frame,
                        "kernel_size": robot.kernel_size,
                        "max_kernel_radius": robot.max_kernel_radius,
                        "min_nb_nodes": robot.min_nb_nodes,
                        "nb_points": robot.nb_points,
                        "repeats": args.repeats,
                    },
                    python=python,
                )
                ref_t += float(out["time"])
                ref = json.loads(str(out["scribbles_json"]))
                equal += _strokes(mine) == _strokes(ref)
                lines.append(f"    {seq:<16} " + agreement(mine, ref, gt.shape[1:]))
            print(f"{label}, {name}\n  ivos_rl          {mine_t * 1e3:8.1f} ms for {len(pairs)} frames")
            if python is not None:
                print(f"  davisinteractive {ref_t * 1e3:8.1f} ms   speed-up x{ref_t / mine_t:.1f}")
                print(f"  equal stroke counts on {equal}/{len(pairs)} frames")
                print("\n".join(lines), flush=True)
    if python is None:
        print("davisinteractive not importable: set DAVISINTERACTIVE_PYTHON for ratios and agreement")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
