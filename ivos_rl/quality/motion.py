"""Motion signals of the quality features: optical flow between neighbouring frames (issue #15).

The base signals (:mod:`ivos_rl.quality.features`) see how sure the backend is and how the mask's
area changes, but not how hard the video is to propagate through: fast motion, occlusions and blur
break mask propagation while the backend's probabilities can stay confident. Flow computed from the
frames alone (no backend internals, so any backend and ``recommend`` on a user's masks get the same
columns) measures exactly that, per (frame, object):

* ``flow_fail_box``: fraction of the object's enlarged box where the forward-backward flow check
  fails towards the previous or the next frame (occlusion, unreliable motion);
* ``warp_err_box``: mean absolute grey-level error (/255) of the neighbouring frames warped onto
  this one inside the box (motion the flow cannot explain: blur, deformation, lighting);
* ``warp_iou_prev`` / ``warp_iou_next``: IoU of the mask with the neighbouring frame's mask warped
  onto this frame (the area/IoU columns without the motion: a mask that drifts off a moving object
  disagrees with its warped neighbour);
* ``flow_fail_anchor`` / ``warp_err_anchor``: the two box signals summed over the frames from the
  nearest annotated frame to this one (the chain a propagation crossed; 0 on annotated frames).

Flows are DIS (OpenCV, a fixed preset, deterministic; thin grids padded as the backend's flows are,
:func:`ivos_rl.backends._flow.dis_flow`) on grey frames of the features' subsampled grid
(:data:`ivos_rl.quality.features.WORK_ROWS` rows), so the cost does not grow with the resolution:
~3 ms per frame pair with the checks. They depend on the frames only: :class:`MotionCache` keeps the
last video's fields, so the rounds of one video compute them once.

Opt-in (a recipe's ``signal_groups: [motion]``): out of fold on the 30 shared videos they tie the
base signals (session 13, ``configs/experiment/quality_features_motion.yaml``), so no shipped model
uses them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from ivos_rl.backends._flow import dis_flow
from ivos_rl.quality._masked import mean_in

MOTION_NAMES: tuple[str, ...] = (
    "flow_fail_box",
    "warp_err_box",
    "warp_iou_prev",
    "warp_iou_next",
    "flow_fail_anchor",
    "warp_err_anchor",
)
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST
# forward-backward check (Sundaram et al. 2010): |f + b|^2 > FB_ALPHA (|f|^2 + |b|^2) + FB_BETA fails
FB_ALPHA = 0.01
FB_BETA = 0.5


@dataclass(frozen=True)
class MotionFields:
    """Per-frame motion fields of one video on the features' grid (T frames, h x w).

    ``prev_map`` / ``next_map`` (T, h, w, 2) float32: where each pixel of frame t lies on frame t-1 /
    t+1 (identity maps on the first / last frame, which have no such neighbour); ``fail`` (T, h, w)
    bool: the forward-backward check fails towards either neighbour; ``err`` (T, h, w) float32: mean
    absolute grey error of the neighbours warped onto frame t, in [0, 1].
    """

    prev_map: np.ndarray
    next_map: np.ndarray
    fail: np.ndarray
    err: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.fail.shape  # type: ignore[return-value]


def _remap(img: np.ndarray, where: np.ndarray, interpolation: int) -> np.ndarray:
    return cv2.remap(img, where, None, interpolation, borderMode=cv2.BORDER_REPLICATE)


def _fb_fails(flow: np.ndarray, back: np.ndarray) -> np.ndarray:
    """(h, w) bool: the forward-backward check fails for ``flow`` and the backward flow ``back``
    sampled where it lands."""
    f0, f1, b0, b1 = flow[..., 0], flow[..., 1], back[..., 0], back[..., 1]
    d = (f0 + b0) ** 2 + (f1 + b1) ** 2
    return d > FB_ALPHA * (f0 * f0 + f1 * f1 + b0 * b0 + b1 * b1) + FB_BETA


def motion_fields(small_frames: np.ndarray) -> MotionFields:
    """:class:`MotionFields` of frames already on the features' grid, (T, h, w, 3) uint8."""
    t, h, w = small_frames.shape[:3]
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in small_frames]
    ident = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    prev_map = np.empty((t, h, w, 2), np.float32)
    next_map = np.empty((t, h, w, 2), np.float32)
    prev_map[0] = ident
    next_map[t - 1] = ident
    fail = np.zeros((t, h, w), bool)
    err = np.zeros((t, h, w), np.float32)
    dis = cv2.DISOpticalFlow_create(DIS_PRESET)
    for i in range(t - 1):
        fwd = dis_flow(dis, grey[i], grey[i + 1])  # frame i -> i+1, on frame i's pixels
        bwd = dis_flow(dis, grey[i + 1], grey[i])  # frame i+1 -> i, on frame i+1's pixels
        np.add(ident, fwd, out=next_map[i])
        np.add(ident, bwd, out=prev_map[i + 1])
        pairs = ((i, i + 1, fwd, bwd, next_map[i]), (i + 1, i, bwd, fwd, prev_map[i + 1]))
        for src, dst, flow, other, where in pairs:
            fail[src] |= _fb_fails(flow, _remap(other, where, cv2.INTER_LINEAR))
            warped = _remap(grey[dst], where, cv2.INTER_LINEAR)
            err[src] += cv2.absdiff(warped, grey[src]).astype(np.float32)
    # sum over the neighbours -> mean, in grey levels / 255 (first and last frame have one neighbour)
    n_neighbours = np.full(t, 2.0, np.float32)
    n_neighbours[[0, t - 1]] = 1.0
    err /= (255.0 * n_neighbours)[:, None, None]
    return MotionFields(prev_map, next_map, fail, err)


def _warped_iou(mask: np.ndarray, maps: np.ndarray, shift: int) -> np.ndarray:
    """IoU of each frame's mask with frame t+shift's mask warped onto frame t (1 where no neighbour
    exists, or where both are empty)."""
    t = mask.shape[0]
    out = np.ones(t)
    m8 = mask.astype(np.uint8)
    frames = range(1, t) if shift < 0 else range(t - 1)
    for i in frames:
        warped = _remap(m8[i + shift], maps[i], cv2.INTER_NEAREST).astype(bool)
        union = np.count_nonzero(warped | mask[i])
        if union:
            out[i] = np.count_nonzero(warped & mask[i]) / union
    return out


def _chain_sum(per_frame: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Sum of ``per_frame`` over the frames after ``anchor[t]`` up to t (or from t up to before it)."""
    c = np.concatenate([[0.0], np.cumsum(per_frame)])  # c[i] = sum of per_frame[:i]
    t = np.arange(per_frame.shape[0])
    return np.where(t >= anchor, c[t + 1] - c[anchor + 1], c[anchor] - c[t])


def motion_columns(fields: MotionFields, mask: np.ndarray, box: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """(T, 6) :data:`MOTION_NAMES` columns of one object: ``mask``/``box`` (T, h, w) bool on the grid
    of ``fields``, ``anchor`` (T,) the nearest annotated frame of each frame."""
    fail_box = mean_in(fields.fail, box)
    err_box = mean_in(fields.err, box)
    cols = [
        fail_box,
        err_box,
        _warped_iou(mask, fields.prev_map, -1),
        _warped_iou(mask, fields.next_map, 1),
        _chain_sum(fail_box, anchor),
        _chain_sum(err_box, anchor),
    ]
    return np.stack([np.asarray(c, np.float32) for c in cols], axis=1)


class MotionCache:
    """The last video's :class:`MotionFields`, keyed by a digest of its grid frames (the rounds of
    one video ask for the same fields; another video replaces them). It holds ~21 bytes per grid
    pixel and frame: ~0.5 MB per frame on the ~120 x 214 grid of a 16:9 video, ~40 MB for 80 frames."""

    def __init__(self) -> None:
        self._key: tuple[tuple[int, ...], bytes] | None = None
        self._fields: MotionFields | None = None

    def get(self, small_frames: np.ndarray) -> MotionFields:
        data = np.ascontiguousarray(small_frames)
        key = (data.shape, hashlib.blake2b(data.tobytes(), digest_size=16).digest())
        if self._fields is None or key != self._key:
            self._fields = motion_fields(data)
            self._key = key
        return self._fields
