"""Dense optical flow between consecutive frames (DIS) and the pixel grids used to warp with it.

Flows are computed once per sequence (they do not depend on the interactions) and stored as
float16 to bound memory: a 100-frame video at 240x427 needs 2 x 99 x 240 x 427 x 2 x 2 B = 81 MB.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

from ivos_rl.errors import CorruptFileError, InputValidationError
from ivos_rl.utils.io import atomic_path

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,  # medium, refined down to full resolution
}


def _dis(preset: str) -> cv2.DISOpticalFlow:
    if preset not in DIS_PRESETS:
        raise InputValidationError(f"flow_preset must be one of {sorted(DIS_PRESETS)}, got {preset!r}")
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    if preset == "fine":
        dis.setFinestScale(0)
    return dis


#: Frames with a side under this many pixels are padded for DIS: OpenCV's DIS raises on some thin
#: images (both sides < 12 px) and crashes the process on others (e.g. 20x100 or 8x64 with
#: opencv-python-headless 5.0, every preset); from 32 px on every probed shape works.
DIS_MIN_SIDE = 32


def dis_flow(dis: cv2.DISOpticalFlow, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``dis.calc`` from grey ``a`` to ``b`` (h, w, 2) float32; a frame with a side under
    :data:`DIS_MIN_SIDE` is padded by replication to it and the flow cropped back (larger frames:
    exactly ``dis.calc``)."""
    h, w = a.shape
    if min(h, w) >= DIS_MIN_SIDE:
        return dis.calc(a, b, None)  # type: ignore[no-any-return]
    pad_h, pad_w = max(0, DIS_MIN_SIDE - h), max(0, DIS_MIN_SIDE - w)
    a, b = (cv2.copyMakeBorder(g, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE) for g in (a, b))
    return dis.calc(a, b, None)[:h, :w]  # type: ignore[no-any-return]


def compute_flows(gray: np.ndarray, preset: str = "medium") -> tuple[np.ndarray, np.ndarray]:
    """Forward and backward flows between consecutive grey frames (T, H, W) uint8.

    Returns ``fwd`` and ``bwd`` of shape (T-1, H, W, 2) float16 where ``fwd[t]`` maps frame t to
    t+1 (pixel x of frame t moves to x + fwd[t](x)) and ``bwd[t]`` maps frame t+1 to t.
    """
    dis = _dis(preset)
    n = max(gray.shape[0] - 1, 0)
    h, w = gray.shape[1:]
    fwd = np.empty((n, h, w, 2), dtype=np.float16)
    bwd = np.empty((n, h, w, 2), dtype=np.float16)
    for t in range(n):
        fwd[t] = dis_flow(dis, gray[t], gray[t + 1])
        bwd[t] = dis_flow(dis, gray[t + 1], gray[t])
    return fwd, bwd


def save_flows(path: str | Path, fwd: np.ndarray, bwd: np.ndarray) -> Path:
    """Write flows to an ``.npz`` file atomically (float16 as computed: reloading is lossless)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, fwd=fwd, bwd=bwd)
    return path


def load_flows(path: str | Path, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flows saved by :func:`save_flows` for ``shape`` = (T-1, H, W); CorruptFileError otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            fwd, bwd = data["fwd"], data["bwd"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(f"unreadable flow cache file ({exc})", path) from exc
    want = (*shape, 2)
    for name, a in (("fwd", fwd), ("bwd", bwd)):
        if a.shape != want or a.dtype != np.float16 or not np.all(np.isfinite(a)):
            raise CorruptFileError(f"flow cache {name} is {a.dtype}{a.shape} or not finite, expected "
                                   f"float16{want}", path)
    return fwd, bwd


def as_float32(flow: np.ndarray) -> np.ndarray:
    """A float16 flow (or box of one; up to 4 channels) as a new float32 array, exact.

    OpenCV's conversion, ~3x faster than numpy's ``astype`` (no F16C path there): the same
    bits for every finite float16 value, -0.0 included (x 1.0; checked on all 63,488 in a test).
    """
    return cv2.multiply(flow, 1.0, dtype=cv2.CV_32F)


class Warper:
    """Pixel-coordinate grids of one frame size, built once: backward warping samples the source
    frame at ``(xs + flow_x, ys + flow_y)`` for every target pixel."""

    def __init__(self, h: int, w: int) -> None:
        self.xs, self.ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
