"""Is the optical flow what limits the propagation backend? Ground-truth masks warped by DIS variants.

The propagation backend carries labels from frame to frame by backward-warping them with DIS flow
(``flow_preset``, default ``fine``). If a finer or differently tuned flow kept real object masks
aligned for longer, the backend's rounds would improve for every strategy (issue 14). This script
measures that directly, without the backend: for each variant it computes the flows of real videos
as the backend does (``ivos_rl.backends._flow``: grey frames, float16 storage) and warps each
ground-truth mask 1 step and ``--steps`` steps along the backward flows (step by step, as the
backend propagates), then reports the IoU with the ground-truth mask there (every second start
frame), the flow's CPU seconds, and each variant minus the first with a 95% bootstrap interval over
videos.

A variant is a preset name (``ultrafast``, ``fast``, ``medium``, ``fine``) optionally followed by
``+Setter=value`` pairs of ``cv2.DISOpticalFlow`` (e.g. ``fine+PatchStride=2``,
``fine+VariationalRefinementIterations=10``), or ``farneback`` (OpenCV's Farneback with fixed,
documented parameters). Run on the shared DAVIS-2016 videos, e.g.
``OMP_NUM_THREADS=1 python benchmarks/bench_flow.py --sequences bear,soccerball
--variants fine,fine+PatchStride=2``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import pandas as pd
from _configs import davis_parser

from ivos_rl.backends._flow import Warper, _dis, as_float32, dis_flow
from ivos_rl.backends.propagation import _remap
from ivos_rl.data.davis import DavisDataset
from ivos_rl.errors import InputValidationError
from ivos_rl.reporting import paired_bootstrap

#: Farneback's parameters (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags).
FARNEBACK = (0.5, 4, 15, 5, 7, 1.5, 0)


def flow_function(variant: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The flow from grey frame ``a`` to ``b`` of one variant (see the module docstring)."""
    if variant == "farneback":
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, *FARNEBACK)
    preset, *settings = variant.split("+")
    dis = _dis(preset)
    for setting in settings:
        name, sep, value = setting.partition("=")
        getter = getattr(dis, f"get{name}", None)
        if not sep or getter is None:
            raise InputValidationError(
                f"variant {variant!r}: {setting!r} is not Setter=value of DISOpticalFlow"
            )
        current = getter()
        typed = bool(int(value)) if isinstance(current, bool) else type(current)(float(value))
        getattr(dis, f"set{name}")(typed)
    return lambda a, b: dis_flow(dis, a, b)


def warp_iou(masks: np.ndarray, bwd: np.ndarray, steps: int, warper: Warper) -> float:
    """Mean IoU of ``masks[t]`` warped ``steps`` frames forward (along ``bwd``) with ``masks[t + steps]``,
    with the backend's own grids and bilinear warp."""
    ious = []
    for t in range(0, len(masks) - steps, 2):
        cur = masks[t].astype(np.float32)
        for s in range(steps):
            flow = as_float32(bwd[t + s])  # maps frame t+s+1 to t+s
            cur = _remap(cur, warper.xs + flow[..., 0], warper.ys + flow[..., 1])
        pred, gt = cur > 0.5, masks[t + steps] > 0
        union = int((pred | gt).sum())
        ious.append(1.0 if union == 0 else int((pred & gt).sum()) / union)
    return float(np.mean(ious)) if ious else float("nan")


def main() -> None:
    parser = davis_parser(__doc__)
    parser.add_argument("--resolution", default="240p")
    parser.add_argument("--sequences", default=None, help="comma-separated videos (default: every video)")
    parser.add_argument("--variants", default="fine,fine+PatchStride=2,farneback")
    parser.add_argument("--steps", type=int, default=5, help="the longer warp, in frames")
    args = parser.parse_args()
    if args.steps < 2:
        raise SystemExit("--steps must be >= 2 (1 step is always reported)")
    seqs = None if args.sequences is None else args.sequences.split(",")
    data = DavisDataset(args.root, args.resolution, image_set=args.image_set, sequences=seqs)
    variants = args.variants.split(",")
    functions = {v: flow_function(v) for v in variants}
    rows = []
    for seq in data.sequences:
        grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in data.load_frames(seq)])
        masks = (data.load_masks(seq) > 0).astype(np.uint8)
        warper = Warper(*masks.shape[1:])
        for variant, flow in functions.items():
            t0 = time.process_time()
            # float16 as the backend stores its flows
            bwd = np.stack([flow(grey[t + 1], grey[t]) for t in range(len(grey) - 1)]).astype(np.float16)
            cpu = time.process_time() - t0
            rows.append({
                "sequence": seq, "variant": variant, "cpu_s": cpu, "iou_1": warp_iou(masks, bwd, 1, warper),
                f"iou_{args.steps}": warp_iou(masks, bwd, args.steps, warper),
            })
            print(f"{seq:20s} {variant:45s} IoU 1 step {rows[-1]['iou_1']:.3f}  {args.steps} steps "
                  f"{rows[-1][f'iou_{args.steps}']:.3f}  ({cpu:.1f} CPU s, one direction)", flush=True)
    df = pd.DataFrame(rows)
    ref = variants[0]
    print(f"\n{len(data.sequences)} videos ({args.resolution}); minus {ref}: mean [95% bootstrap over "
          "videos]")
    for variant in variants:
        sub = df[df.variant == variant].set_index("sequence")
        longer = sub[f"iou_{args.steps}"].mean()
        line = f"{variant:45s} IoU 1 step {sub.iou_1.mean():.4f}  {args.steps} steps {longer:.4f}"
        line += f"  {sub.cpu_s.sum():.0f} CPU s"
        if variant != ref:
            base = df[df.variant == ref].set_index("sequence")
            # one sample per video: keys "video/0" so the bootstrap's unit is the video
            a, b = (s[f"iou_{args.steps}"].rename(lambda q: f"{q}/0") for s in (sub, base))
            mean, lo, hi = paired_bootstrap(a, b)
            line += f"  {args.steps} steps minus {ref}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        print(line)


if __name__ == "__main__":
    main()
