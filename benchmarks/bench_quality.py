"""Latency of QualityEstimator.predict on an 80-frame 480p video with 1 object (issue 5 target:
<= 0.7 s with the light backbone on 2 CPU cores), for each backbone, plus the cached re-call; and
of the feature-only estimator (``features``: appearance-free features + MLP ensemble, issue 15,
same target), split into the feature extraction and the model; and of the late-fusion nets
(``+signals``: crops + the same features, issue 15), whose ``predict`` includes the feature extraction.
``features+motion`` adds the optical-flow columns (:mod:`ivos_rl.quality.motion`): its cold figure is
a new estimator each call (the video's flows computed), "cached re-call" the same estimator again
(the flows kept, as in the rounds of one video).

``--video SEQ`` uses a real video instead of random frames: the shared 240p DAVIS-2016 frames and the
propagation backend's probabilities after initial scribble 1, resized to 480x854 (needs
../shared/data; flows of random noise are not what a user's video costs).

Run: ``OMP_NUM_THREADS=2 python benchmarks/bench_quality.py [--threads 2] [--repeats 3]``.
The models are untrained (latency does not depend on the weights). Besides wall-clock time the
script prints the process CPU time of a cold ``predict``: on a machine shared with other jobs the
wall time is inflated (and multi-threaded runs suffer most), while with ``--threads 1`` the CPU time
approximates what an idle core would take, an upper bound for the 2-core wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ivos_rl.quality.context import CONTEXT_NAMES
from ivos_rl.quality.crop import crop_inputs
from ivos_rl.quality.estimator import QualityEstimator
from ivos_rl.quality.feature_estimator import FeatureQualityEstimator
from ivos_rl.quality.feature_model import FeatureModelConfig, FeatureQualityModel
from ivos_rl.quality.features import feature_names, quality_features
from ivos_rl.quality.model import QualityNet

CONFIGS = {  # name: (backbone, input size, late fusion with the signals)
    "mobilenet_v3_small@128": ("mobilenet_v3_small", 128, False),
    "mobilenet_v3_small@160": ("mobilenet_v3_small", 160, False),
    "resnet18@128": ("resnet18", 128, False),
    "resnet50@256": ("resnet50", 256, False),
    "mobilenet_v3_small@128+signals": ("mobilenet_v3_small", 128, True),
    "resnet50@64+signals": ("resnet50", 64, True),
    "resnet50@96+signals": ("resnet50", 96, True),
}
FEATURES = "features"
FEATURES_CONTEXT = "features+context"  # the same with every video-context column (ivos_rl/quality/context.py)
FEATURES_MOTION = "features+motion"  # the same with the optical-flow columns (ivos_rl/quality/motion.py)


def make_video(t: int, h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random frames and one elliptical object moving across the frame (uint8 probabilities)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    probs = np.zeros((t, 1, h, w), np.uint8)
    for i in range(t):
        cy, cx = h * 0.5, w * (0.2 + 0.6 * i / max(t - 1, 1))
        inside = ((yy - cy) / (0.25 * h)) ** 2 + ((xx - cx) / (0.12 * w)) ** 2 <= 1.0
        probs[i, 0] = np.where(inside, 230, 10)
    return frames, probs


def timed(fn: object, repeats: int, clock: object = time.perf_counter) -> list[float]:
    """Durations of ``repeats`` calls of ``fn`` measured with ``clock`` (wall or process time)."""
    out = []
    for _ in range(repeats):
        t0 = clock()  # type: ignore[operator]
        fn()  # type: ignore[operator]
        out.append(clock() - t0)  # type: ignore[operator]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--size", default="480x854", help="HxW of the video")
    parser.add_argument(
        "--configs", nargs="*", default=list(CONFIGS),
        choices=[*CONFIGS, FEATURES, FEATURES_CONTEXT, FEATURES_MOTION],
    )
    parser.add_argument(
        "--video", default=None,
        help="a shared DAVIS-2016 video at 480x854 (see above); its length and size replace --frames, --size",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--feature-checkpoint",
        default=None,
        help="for `features`: time this feature checkpoint (e.g. a tree model, whose cost depends on its "
        "trees) instead of an untrained MLP ensemble",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.video:
        frames, probs = real_video(args.video)
        args.frames, h, w = frames.shape[:3]
    else:
        frames, probs = make_video(args.frames, h, w)
    print(
        f"video {args.frames}x{h}x{w}, 1 object, {args.threads} threads, device {args.device}, "
        f"torch {torch.__version__}"
    )

    crop_times = timed(lambda: crop_inputs(frames, probs, 128), args.repeats)
    print(
        f"crop op alone ({args.frames} boxes -> 128x128, incl. uint8->float): "
        f"median {statistics.median(crop_times):.3f} s"
    )
    print(
        f"{'config':24s} {'predict median':>15s} {'min':>8s} {'CPU time':>9s} {'cached re-call':>15s} "
        f"{'1 frame changed':>16s}"
    )
    for name in args.configs:
        if name in (FEATURES, FEATURES_CONTEXT, FEATURES_MOTION):
            checkpoint = args.feature_checkpoint if name == FEATURES else None
            bench_features(
                frames, probs, args.repeats, context=name == FEATURES_CONTEXT, checkpoint=checkpoint,
                motion=name == FEATURES_MOTION,
            )
            continue
        backbone, size, fused = CONFIGS[name]
        torch.manual_seed(0)
        model = QualityNet(backbone=backbone, input_size=size, features="all" if fused else ()).eval()
        est = QualityEstimator(model, device=args.device, batch_size=args.batch_size, cache=True)
        kw = {"history": [0, len(frames) // 2]} if fused else {}

        def cold(e: QualityEstimator = est, kw: dict = kw) -> None:
            e.reset_cache()
            e.predict(frames, probs, **kw)

        cold()  # warm-up (allocator, kernels)
        cold_times = timed(cold, args.repeats)
        cpu_times = timed(cold, args.repeats, time.process_time)
        est.predict(frames, probs, **kw)
        hit_times = timed(lambda e=est, kw=kw: e.predict(frames, probs, **kw), args.repeats)
        changed = probs.copy()

        def one_changed(e: QualityEstimator = est, p: np.ndarray = changed, kw: dict = kw) -> None:
            p[7, 0, 0, 0] ^= 1  # a different frame-7 map on every call
            e.predict(frames, p, **kw)

        one_times = timed(one_changed, args.repeats)
        print(
            f"{name:24s} {statistics.median(cold_times):13.3f} s {min(cold_times):6.3f} s "
            f"{min(cpu_times):7.3f} s {statistics.median(hit_times):13.3f} s "
            f"{statistics.median(one_times):14.3f} s"
        )
    return 0


def real_video(seq: str) -> tuple[np.ndarray, np.ndarray]:
    """Frames and the propagation backend's uint8 probabilities of shared video ``seq`` at 480x854."""
    from _realistic import DATA, SCRIBBLES
    from bench_recommend import backend_probs

    from ivos_rl.data import DavisDataset

    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA} (needs ../shared/data/davis2016-train)")
    dataset = DavisDataset(DATA, resolution="240p", image_set="2016/train", scribbles_root=SCRIBBLES)
    return backend_probs(dataset, seq)


def bench_features(
    frames: np.ndarray,
    probs: np.ndarray,
    repeats: int,
    context: bool = False,
    checkpoint: str | None = None,
    motion: bool = False,
) -> None:
    """Feature extraction and the full feature-only predict (5-member ensemble, untrained weights, or
    the model of ``checkpoint``); ``context`` adds every video-context column (computed in predict),
    ``motion`` the optical-flow columns (for a model with them, cold = a new estimator, whose flows are
    not computed yet)."""
    if checkpoint is not None:
        est = FeatureQualityEstimator.from_checkpoint(checkpoint)
    else:
        groups = ("motion",) if motion else ()
        names = feature_names(groups=groups) + (CONTEXT_NAMES if context else ())
        model = FeatureQualityModel(names, FeatureModelConfig(context=context, signal_groups=groups))
        est = FeatureQualityEstimator(model)
    history = [0, len(frames) // 2]
    est.predict(frames, probs, history=history)  # warm-up

    keeps_flows = "motion" in est.signal_groups  # (also a --feature-checkpoint trained with them)

    def cold() -> None:
        (FeatureQualityEstimator(est.model) if keeps_flows else est).predict(frames, probs, history=history)

    feat = timed(lambda: quality_features(frames, probs, history), repeats)
    full = timed(cold, repeats)
    cpu = timed(cold, repeats, time.process_time)
    hit = timed(lambda: est.predict(frames, probs, history=history), repeats)
    name = FEATURES_CONTEXT if context else FEATURES_MOTION if motion else FEATURES
    if checkpoint:
        name += f" ({Path(checkpoint).name})"
    print(
        f"{name:24s} {statistics.median(full):13.3f} s "
        f"{min(full):6.3f} s {min(cpu):7.3f} s {statistics.median(hit):13.3f} s "
        f"(base features alone: median {statistics.median(feat):.3f} s)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
