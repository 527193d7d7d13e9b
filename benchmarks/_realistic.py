"""Realistic inputs for the protocol benchmarks: real DAVIS masks and the project's own predictions.

Ground truth comes from ``../shared/data/davis2016-train`` (240p); predictions are what the
propagation backend makes after the first interaction (initial scribble 1), computed once per
video and cached under ``cache/bench/`` (git-ignored). Both are resized to 480x854 with nearest
neighbour, the resolution of the DAVIS-Interactive benchmark. ``noise`` relabels that share of the
prediction's pixels at random (seeded), the hard case for boundary matching.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ivos_rl.data import DavisDataset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "davis2016-train"
SCRIBBLES = ROOT / "data" / "scribbles" / "davis2016-train"
CACHE = ROOT / "cache" / "bench"
VIDEOS = (
    "bear", "boat", "breakdance-flare", "dog-agility", "hockey",
    "stroller", "car-turn", "horsejump-low", "mallard-water", "rollerblade",
)  # fmt: skip
"""Ten videos (folds 0 and 1 of ``video_folds``); the benchmarks never select anything on them."""


def _prediction(dataset: DavisDataset, seq: str) -> np.ndarray:
    """(T, H, W) uint8 labels of the propagation backend after initial scribble 1 (cached).

    The cache file is keyed by the backend's fingerprint and the scribbles, not the video's name
    alone: a new backend version or redrawn scribbles must not reuse old predictions."""
    from ivos_rl.backends.cached import backend_fingerprint
    from ivos_rl.backends.propagation import PropagationBackend
    from ivos_rl.provenance import fingerprint
    from ivos_rl.utils.io import atomic_path

    backend = PropagationBackend()
    scribbles = dataset.load_scribbles(seq, 1)
    key = fingerprint({"backend": backend_fingerprint(backend), "scribbles": scribbles})
    path = CACHE / f"{seq}_scribble1_propagation_{key}.npz"
    if path.is_file():
        with np.load(path) as f:
            return f["masks"]
    frames = dataset.load_frames(seq)
    backend.reset(frames, dataset.info(seq).n_objects, sequence=seq)
    first = next(t for t, s in enumerate(scribbles["scribbles"]) if s)
    masks = backend.interact(first, scribbles).masks
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, masks=masks)
    return masks


def _resize(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    return np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in masks])


def realistic_pairs(
    frames_per_video: int,
    videos: tuple[str, ...] = VIDEOS,
    size: tuple[int, int] = (480, 854),
    noise: float = 0.0,
    seed: int = 0,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per video (name, gt, pred), ``frames_per_video`` evenly spaced frames, uint8 at ``size``."""
    if not DATA.is_dir():
        raise SystemExit(
            f"real data not found at {DATA} (the benchmarks need ../shared/data/davis2016-train)"
        )
    dataset = DavisDataset(DATA, resolution="240p", image_set="2016/train", scribbles_root=SCRIBBLES)
    rng = np.random.default_rng(seed)
    out = []
    for seq in videos:
        gt_all, pred_all = dataset.load_masks(seq), _prediction(dataset, seq)
        idx = np.linspace(0, gt_all.shape[0] - 1, frames_per_video).round().astype(int)
        gt, pred = _resize(gt_all[idx], size), _resize(pred_all[idx], size)
        if noise > 0:
            n_obj = dataset.info(seq).n_objects
            flip = rng.random(pred.shape) < noise
            pred = pred.copy()
            pred[flip] = rng.integers(0, n_obj + 1, size=int(flip.sum()), dtype=np.uint8)
        out.append((seq, gt, pred))
    return out


def realistic_masks(
    n_frames: int, size: tuple[int, int] = (480, 854), noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(gt, pred) stacks of ``n_frames`` real frames drawn evenly from the ten videos, uint8."""
    per_video = -(-n_frames // len(VIDEOS))
    pairs = realistic_pairs(per_video, size=size, noise=noise, seed=seed)
    gt = np.concatenate([g for _, g, _ in pairs])[:n_frames]
    pred = np.concatenate([p for _, _, p in pairs])[:n_frames]
    return gt, pred
