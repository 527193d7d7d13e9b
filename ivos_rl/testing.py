"""Tiny synthetic inputs for tests: a moving-squares clip, hand-placed strokes, lookahead records.

Shared by the project's tests (no test module imports another one) and meant for third-party
backends too: ``check_backend(MyBackend(), *moving_clip(two_objects=True), 2, robot=ScribbleRobot())``
exercises the contract on a clip whose ground truth is known to the pixel. NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CLIP_SIZE", "lookahead_record", "moving_clip", "on_frame", "stroke", "texture"]

CLIP_SIZE = (48, 64)
"""(H, W) of :func:`moving_clip` and the default frame size of :func:`stroke`."""


def texture(rng: np.random.Generator, h: int, w: int, low: int, high: int) -> np.ndarray:
    """Blocky random texture, (h, w, 3) float: optical flow needs structure to lock onto, as on
    real objects (a flat square would be invisible to it)."""
    coarse = rng.integers(low, high, size=(h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    return np.kron(coarse, np.ones((4, 4, 1), np.float32))[:h, :w] + rng.normal(0, 4, size=(h, w, 3))


def moving_clip(t: int = 8, two_objects: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frames (t, 48, 64, 3) uint8, labels (t, 48, 64) uint8) of a textured 14x14 orange square
    (object 1, rows 8..21, columns 6 + 2i .. 19 + 2i in frame i: 2 px right per frame) on a darker,
    greenish texture, plus with ``two_objects`` a textured 12x12 blue square (object 2, rows
    20 + i .. 31 + i, columns 44..55: 1 px down per frame)."""
    h, w = CLIP_SIZE
    rng = np.random.default_rng(seed)
    base = texture(rng, h, w, 20, 90) * [0.5, 1.0, 0.8]
    red = texture(rng, 14, 14, 150, 220) * [1.0, 0.45, 0.3]
    blue = texture(rng, 12, 12, 150, 220) * [0.3, 0.45, 1.0]
    frames = np.repeat(base[None], t, axis=0).copy()
    gt = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        x = 6 + 2 * i
        gt[i, 8:22, x : x + 14] = 1
        frames[i, 8:22, x : x + 14] = red
        if two_objects:
            y = 20 + i
            gt[i, y : y + 12, 44:56] = 2
            frames[i, y : y + 12, 44:56] = blue
    return np.clip(frames, 0, 255).astype(np.uint8), gt


def stroke(
    obj: int, pts: list[tuple[float, float]], size: tuple[int, int] = CLIP_SIZE
) -> dict[str, Any]:
    """A DAVIS stroke of object ``obj`` (0 = background) through pixel (x, y) points of a frame of
    ``size`` = (H, W); DAVIS normalises by (W - 1, H - 1)."""
    h, w = size
    return {
        "path": [[x / (w - 1), y / (h - 1)] for x, y in pts],
        "object_id": obj,
        "start_time": 0.0,
        "end_time": 1.0,
    }


def on_frame(t: int, frame: int, strokes: list[dict[str, Any]], sequence: str = "clip") -> dict[str, Any]:
    """A scribble dict of a ``t``-frame video with ``strokes`` on ``frame`` and nothing elsewhere."""
    scribbles: list[list[dict[str, Any]]] = [[] for _ in range(t)]
    scribbles[frame] = list(strokes)
    return {"scribbles": scribbles, "sequence": sequence}


def lookahead_record(
    quality: np.ndarray, history: np.ndarray, values: np.ndarray, final: float, **extra: np.ndarray
) -> dict[str, np.ndarray]:
    """One video's lookahead record (:mod:`ivos_rl.lookahead_data`'s arrays) from hand-made parts.

    ``quality`` (R, N) is both the estimate and the oracle; ``values`` (R, N) the mean J&F after
    annotating each tried frame (NaN: not tried); the current J&F is 0.5 and the chosen frame 0 in
    every round; ``extra`` adds per-frame columns (e.g. ``entropy``)."""
    rounds = quality.shape[0]
    return {
        "quality": quality,
        "oracle": quality,
        **extra,
        "history": history,
        "values": values,
        "current": np.full(rounds, 0.5, np.float32),
        "chosen": np.zeros(rounds, np.int64),
        "final": np.asarray(final, np.float32),
    }
