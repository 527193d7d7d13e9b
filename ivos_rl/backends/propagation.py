"""Classical CPU interactive VOS: graph-cut segmentation of annotated frames + flow propagation.

Pipeline per round (see ``docs/architecture.md``, backends):

1. The annotated frame is segmented from *all* its strokes so far (:mod:`._interactive_seg`):
   colour histograms + a spatial prior (its current prediction, loosened around new strokes)
   + contrast-sensitive Potts term, solved by graph cut; stroke pixels are hard constraints.
2. Every annotated frame's mask is carried outwards frame by frame with dense optical flow
   (DIS, computed once per sequence in :meth:`PropagationBackend.reset`), and corrected at each
   step by a colour model of every annotated frame; occluded pixels (forward-backward check)
   trust colour more than the warp.
3. Frames between two annotated frames fuse both propagations by temporal distance; stray
   fragments are removed; labels compete through a softmax over background + objects.

Everything runs at a configurable working height and is resized back to the input resolution.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import cv2
import numpy as np

from ivos_rl.backends._colour_model import ColourModel, quantise_colours
from ivos_rl.backends._flow import Warper, compute_flows
from ivos_rl.backends._interactive_seg import FrameSegmenter, SegParams, Stroke, rasterise
from ivos_rl.backends.base import BackendOutput, VOSBackend, probs_to_uint8
from ivos_rl.errors import BackendError, InputValidationError, ScribbleError
from ivos_rl.utils.logging import get_logger

_log = get_logger(__name__)
_COORD_TOLERANCE = 0.02  # normalised stroke coordinates may overshoot the frame by 2 % (clipped)


@dataclass(frozen=True)
class PropParams:
    """Propagation weights (log-space fusion of warped prior and colour likelihood)."""

    prior_weight: float = 1.0
    colour_weight: float = 0.5
    prior_floor: float = 0.02
    fb_sigma: float = 1.5
    occlusion_blur: float = 3.0
    smooth_sigma: float = 0.8
    min_fragment: float = 0.1
    stroke_weight: float = 20.0
    band: float = 0.0
    occluded_prior: float = 0.0
    local_mix: float = 0.0
    local_band: float = 20.0
    fill_holes: float = 0.0


@dataclass
class _FlowCache:
    fwd: np.ndarray
    bwd: np.ndarray


class PropagationBackend(VOSBackend):
    """Real CPU backend: graph cut on annotated frames, optical-flow propagation with colour
    correction. Receives one round of scribbles at a time and accumulates them itself.
    """

    name: ClassVar[str] = "propagation"
    wants_all_scribbles: ClassVar[bool] = False
    accepts_clicks: ClassVar[bool] = False
    uses_ground_truth: ClassVar[bool] = False

    def __init__(
        self,
        working_height: int | None = 240,
        flow_preset: str = "medium",
        colour_bins: int = 16,
        flow_cache_size: int = 2,
        seg: dict[str, float] | None = None,
        prop: dict[str, float] | None = None,
    ) -> None:
        if working_height is not None and (not isinstance(working_height, int) or working_height < 16):
            raise InputValidationError(f"working_height must be None or an int >= 16, got {working_height!r}")
        if not isinstance(flow_cache_size, int) or flow_cache_size < 0:
            raise InputValidationError(f"flow_cache_size must be an int >= 0, got {flow_cache_size!r}")
        self.working_height = working_height
        self.flow_preset = flow_preset
        self.colour_bins = colour_bins
        self.flow_cache_size = flow_cache_size
        self.seg_params = _override(SegParams(), seg, "seg")
        self.prop_params = _override(PropParams(), prop, "prop")
        self._flow_cache: OrderedDict[str, _FlowCache] = OrderedDict()
        self._ready = False

    # ------------------------------------------------------------------ reset

    def reset(
        self,
        frames: np.ndarray,
        n_objects: int,
        *,
        sequence: str | None = None,
        gt_masks: np.ndarray | None = None,
    ) -> None:
        """Validate the video, resize it to the working height, and compute (or reuse) the flows."""
        del gt_masks  # a real backend never reads ground truth
        frames = _validate_frames(frames)
        if isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or not 1 <= n_objects <= 254:
            raise InputValidationError(f"n_objects must be an int in [1, 254], got {n_objects!r}")
        self._ready = False
        t, h, w = frames.shape[:3]
        self._out_shape = (h, w)
        self.n_objects = int(n_objects)
        self.n_labels = self.n_objects + 1
        self.sequence = sequence
        if self.working_height is None or self.working_height >= h:
            wh, ww = h, w
            small = frames
        else:
            wh = self.working_height
            ww = max(round(w * wh / h), 2)
            small = np.stack([cv2.resize(f, (ww, wh), interpolation=cv2.INTER_AREA) for f in frames])
        self._shape = (wh, ww)
        self._frames = small
        self._bins = quantise_colours(small, self.colour_bins)
        self._warper = Warper(wh, ww)
        flows = self._flows_for(small)
        self._fwd, self._bwd = flows.fwd, flows.bwd
        self._n_frames = t
        self._strokes: dict[int, list[Stroke]] = {}
        self._out_strokes: dict[int, list[Stroke]] = {}
        self._segs: dict[int, np.ndarray] = {}
        self._pred: np.ndarray | None = None
        self._round = 0
        self._segmenter = FrameSegmenter(self.n_labels, self.colour_bins, self.seg_params)
        self._ready = True

    def _flows_for(self, small: np.ndarray) -> _FlowCache:
        """Flows for these frames, from the LRU cache when the same video comes back (RL episodes)."""
        digest = hashlib.blake2b(small.tobytes(), digest_size=16)
        digest.update(repr((small.shape, self.flow_preset)).encode())
        key = digest.hexdigest()
        if key in self._flow_cache:
            self._flow_cache.move_to_end(key)
            return self._flow_cache[key]
        gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in small])
        fwd, bwd = compute_flows(gray, self.flow_preset)
        entry = _FlowCache(fwd, bwd)
        if self.flow_cache_size > 0:
            self._flow_cache[key] = entry
            while len(self._flow_cache) > self.flow_cache_size:
                self._flow_cache.popitem(last=False)
        return entry

    # ------------------------------------------------------------------ interact

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        """Add this round's strokes on ``frame_idx``, re-segment it, and re-propagate."""
        if not self._ready:
            raise BackendError("PropagationBackend.interact called before reset()")
        if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
            raise InputValidationError(f"frame_idx must be an int, got {frame_idx!r}")
        frame_idx = int(frame_idx)
        if not 0 <= frame_idx < self._n_frames:
            raise InputValidationError(f"frame_idx {frame_idx} out of range [0, {self._n_frames})")
        new_work, new_out = self._parse(frame_idx, interaction)
        self._round += 1
        strokes = self._strokes.get(frame_idx, []) + new_work
        prior = None if self._pred is None else self._pred[frame_idx].astype(np.float32).transpose(2, 0, 1)
        labels = self._segmenter.segment(
            self._frames[frame_idx],
            self._bins[frame_idx],
            strokes,
            new_work,
            prior,
            self._global_model(exclude=frame_idx) if self._segs else None,
            self._motion(frame_idx),
        )
        self._strokes[frame_idx] = strokes
        self._out_strokes[frame_idx] = self._out_strokes.get(frame_idx, []) + new_out
        self._segs[frame_idx] = labels.astype(np.uint8)
        pred = self._propagate_all()
        self._pred = pred
        return self._output(pred)

    def _parse(self, frame_idx: int, interaction: dict[str, Any]) -> tuple[list[Stroke], list[Stroke]]:
        """Validate a DAVIS scribble dict; strokes in working and in output pixel coordinates."""
        if not isinstance(interaction, dict) or "scribbles" not in interaction:
            raise ScribbleError("interaction must be a DAVIS scribble dict with a 'scribbles' list")
        seq = interaction.get("sequence")
        if seq is not None and self.sequence is not None and seq != self.sequence:
            raise ScribbleError(f"interaction is for sequence {seq!r}, backend was reset on {self.sequence!r}")
        per_frame = interaction["scribbles"]
        if not isinstance(per_frame, list) or len(per_frame) != self._n_frames:
            n = len(per_frame) if isinstance(per_frame, list) else type(per_frame).__name__
            raise ScribbleError(f"'scribbles' must be a list with one entry per frame ({self._n_frames}), got {n}")
        others = [i for i, s in enumerate(per_frame) if s and i != frame_idx]
        if others:
            raise ScribbleError(f"interaction has strokes on frames {others[:5]} other than frame_idx={frame_idx}")
        items = per_frame[frame_idx]
        if not items:
            raise ScribbleError(f"interaction has no strokes on frame_idx={frame_idx} (empty scribbles)")
        (wh, ww), (oh, ow) = self._shape, self._out_shape
        work, out = [], []
        for j, item in enumerate(items):
            if not isinstance(item, dict) or "path" not in item or "object_id" not in item:
                raise ScribbleError(f"stroke {j} on frame {frame_idx} needs 'path' and 'object_id'")
            obj = item["object_id"]
            if isinstance(obj, bool) or not isinstance(obj, (int, np.integer)) or not 0 <= obj <= self.n_objects:
                raise ScribbleError(
                    f"stroke {j} on frame {frame_idx}: object_id {obj!r} not in [0, {self.n_objects}]"
                )
            try:
                path = np.asarray(item["path"], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ScribbleError(f"stroke {j} on frame {frame_idx}: path is not numeric ({exc})") from exc
            if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
                raise ScribbleError(f"stroke {j} on frame {frame_idx}: path must be (N>=1, 2), got {path.shape}")
            if not np.all(np.isfinite(path)):
                raise ScribbleError(f"stroke {j} on frame {frame_idx}: path has non-finite coordinates")
            lo, hi = float(path.min()), float(path.max())
            if lo < -_COORD_TOLERANCE or hi > 1 + _COORD_TOLERANCE:
                raise ScribbleError(
                    f"stroke {j} on frame {frame_idx}: coordinates must be normalised to [0, 1], "
                    f"got range [{lo:.3g}, {hi:.3g}]"
                )
            path = np.clip(path, 0.0, 1.0)
            work.append(Stroke(int(obj), path * [ww - 1, wh - 1], self._round + 1))
            out.append(Stroke(int(obj), path * [ow - 1, oh - 1], self._round + 1))
        return work, out

    def _motion(self, t: int) -> np.ndarray | None:
        """Flow from frame ``t`` to a neighbour (None for a one-frame video)."""
        if self._n_frames < 2:
            return None
        return self._fwd[t] if t + 1 < self._n_frames else -self._bwd[t - 1].astype(np.float32)

    # ------------------------------------------------------------------ colour models

    def _global_model(self, exclude: int | None = None) -> ColourModel:
        """Colour model of every annotated frame's segmentation and strokes."""
        model = ColourModel(self.n_labels, self.colour_bins)
        eye = np.eye(self.n_labels, dtype=np.float32)
        for f, labels in self._segs.items():
            if f == exclude:
                continue
            model.add(self._bins[f], eye[labels].reshape(-1, self.n_labels).T)
        for f, strokes in self._strokes.items():
            if f == exclude:
                continue
            thick = rasterise(strokes, self._shape, thickness=3).ravel()
            on = thick >= 0
            w = np.zeros((self.n_labels, thick.size), dtype=np.float32)
            w[thick[on], np.nonzero(on)[0]] = self.prop_params.stroke_weight
            model.add(self._bins[f], w)
        return model

    # ------------------------------------------------------------------ propagation

    def _propagate_all(self) -> np.ndarray:
        """Fused soft prediction (T, h, w, L) float16 at working resolution."""
        t_total = self._n_frames
        annotated = sorted(self._segs)
        model = self._global_model()
        tables = model.log_tables().T.copy()  # (bins^3, L)
        eye = np.eye(self.n_labels, dtype=np.float32)
        acc = np.zeros((t_total, *self._shape, self.n_labels), dtype=np.float32)
        wsum = np.zeros(t_total, dtype=np.float32)
        for i, a in enumerate(annotated):
            src = eye[self._segs[a]]
            acc[a] = src
            wsum[a] = 1.0
            prev_a = annotated[i - 1] if i > 0 else None
            next_a = annotated[i + 1] if i + 1 < len(annotated) else None
            for direction, stop in ((1, next_a), (-1, prev_a)):
                p = src
                t = a + direction
                end = (t_total if direction > 0 else -1) if stop is None else stop
                while t != end:
                    p = self._step(p, t - direction, t, tables)
                    if stop is None:
                        weight = 1.0
                    else:
                        weight = abs(stop - t) / abs(stop - a)
                    acc[t] += weight * p
                    wsum[t] += weight
                    t += direction
        fused = acc / np.maximum(wsum, 1e-6)[:, None, None, None]
        return fused.astype(np.float16)

    def _step(self, p: np.ndarray, t_src: int, t_dst: int, tables: np.ndarray) -> np.ndarray:
        """Carry soft labels (h, w, L) from ``t_src`` to the adjacent ``t_dst`` and colour-correct."""
        prm = self.prop_params
        if t_dst == t_src + 1:
            to_src, from_src = self._bwd[t_src], self._fwd[t_src]
        else:
            to_src, from_src = self._fwd[t_dst], self._bwd[t_dst]
        mx, my = self._warper.maps(to_src)
        warped = _remap_channels(self._warper, p, mx, my)
        err = self._warper.consistency(to_src, from_src, mx, my)
        conf = np.exp(-0.5 * (err / prm.fb_sigma) ** 2)[..., None]
        if prm.occluded_prior > 0:
            alt = np.full_like(warped, (1.0 - prm.occluded_prior) / max(warped.shape[-1] - 1, 1))
            alt[..., 0] = prm.occluded_prior
        else:
            alt = cv2.GaussianBlur(warped, (0, 0), prm.occlusion_blur)
            if alt.ndim == 2:
                alt = alt[..., None]
        warped = conf * warped + (1.0 - conf) * alt
        loglik = tables[self._bins[t_dst]]  # (h, w, L)
        if prm.local_mix > 0:
            loglik = self._mix_local(loglik, p, t_src, t_dst)
        if prm.band > 0:
            lab = warped.argmax(axis=-1)
            edge = np.zeros(lab.shape, dtype=np.uint8)
            edge[:, 1:] |= (lab[:, 1:] != lab[:, :-1]).astype(np.uint8)
            edge[1:, :] |= (lab[1:, :] != lab[:-1, :]).astype(np.uint8)
            dist = np.minimum(cv2.distanceTransform(1 - edge, cv2.DIST_L2, 3), 1e3)
            loglik = loglik * np.exp(-0.5 * (dist / prm.band) ** 2)[..., None]
        score = prm.prior_weight * np.log(np.clip(warped, prm.prior_floor, 1.0)) + prm.colour_weight * loglik
        score -= score.max(axis=-1, keepdims=True)
        q = np.exp(score)
        q /= q.sum(axis=-1, keepdims=True)
        if prm.smooth_sigma > 0:
            q = cv2.GaussianBlur(q, (0, 0), prm.smooth_sigma)
            if q.ndim == 2:
                q = q[..., None]
        q = _remove_fragments(q, prm.min_fragment)
        if prm.fill_holes > 0:
            q = _fill_holes(q, prm.fill_holes)
        return q

    def _mix_local(self, loglik: np.ndarray, p: np.ndarray, t_src: int, t_dst: int) -> np.ndarray:
        """Mix the global colour likelihood with one fitted on the source frame near its boundary.

        Appearance drifts (lighting, pose); the previous frame's own labels near the object
        boundary are the most relevant colour samples for the next frame's boundary.
        """
        prm = self.prop_params
        lab = p.argmax(axis=-1)
        edge = np.zeros(lab.shape, dtype=np.uint8)
        edge[:, 1:] |= (lab[:, 1:] != lab[:, :-1]).astype(np.uint8)
        edge[1:, :] |= (lab[1:, :] != lab[:-1, :]).astype(np.uint8)
        if not edge.any():
            return loglik
        near = cv2.distanceTransform(1 - edge, cv2.DIST_L2, 3) < prm.local_band
        model = ColourModel(self.n_labels, self.colour_bins)
        model.add(self._bins[t_src][near], p[near].T)
        local = model.log_tables().T[self._bins[t_dst]]
        a = prm.local_mix
        return np.logaddexp(np.log(1 - a) + loglik, np.log(a) + local)

    # ------------------------------------------------------------------ output

    def _output(self, pred: np.ndarray) -> BackendOutput:
        """Resize the working-resolution prediction to the input size and pin stroke pixels."""
        oh, ow = self._out_shape
        t_total, n_obj = self._n_frames, self.n_objects
        probs = np.empty((t_total, n_obj, oh, ow), dtype=np.uint8)
        masks = np.empty((t_total, oh, ow), dtype=np.uint8)
        for t in range(t_total):
            p = pred[t].astype(np.float32)
            if (oh, ow) != self._shape:
                p = cv2.resize(p, (ow, oh), interpolation=cv2.INTER_LINEAR)
                if p.ndim == 2:
                    p = p[..., None]
            lab = p.argmax(axis=-1).astype(np.uint8)
            pr = p[..., 1:].transpose(2, 0, 1)
            if t in self._out_strokes:
                seeds = rasterise(self._out_strokes[t], (oh, ow))
                on = seeds >= 0
                lab[on] = seeds[on]
                pr[:, on] = 0.0
                for k in range(1, self.n_labels):
                    pr[k - 1][seeds == k] = 1.0
            probs[t] = probs_to_uint8(pr)
            masks[t] = lab
        return BackendOutput(probs=probs, masks=masks)


def _remap_channels(warper: Warper, p: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """Warp an (h, w, L) stack; OpenCV remaps at most 4 channels at once."""
    n = p.shape[-1]
    if n <= 4:
        out = warper.warp(np.ascontiguousarray(p), mx, my)
        return out[..., None] if out.ndim == 2 else out
    return np.concatenate([_remap_channels(warper, p[..., i : i + 4], mx, my) for i in range(0, n, 4)], axis=-1)


def _remove_fragments(q: np.ndarray, min_fragment: float) -> np.ndarray:
    """Give the mass of small disconnected pieces of each object to the background.

    A piece smaller than ``min_fragment`` times the object's largest piece is almost always
    colour leakage, not the object (objects rarely split into tiny parts between two frames).
    """
    if min_fragment <= 0:
        return q
    labels = q.argmax(axis=-1)
    out = q
    for k in range(1, q.shape[-1]):
        mask = (labels == k).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 2:
            continue
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = np.nonzero(areas < min_fragment * areas.max())[0] + 1
        if small.size == 0:
            continue
        drop = np.isin(comp, small)
        if out is q:
            out = q.copy()
        out[drop, 0] += out[drop, k]
        out[drop, k] = 0.0
    return out


def _fill_holes(q: np.ndarray, max_fraction: float) -> np.ndarray:
    """Give enclosed background holes smaller than ``max_fraction`` of the objects to the object.

    Colour correction punches holes where the object's colours resemble the background; a true
    hole fully enclosed by one object is rare at this size.
    """
    labels = q.argmax(axis=-1)
    bg = (labels == 0).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
    if n <= 2:
        return q
    h, w = labels.shape
    fg_area = int((labels > 0).sum())
    out = q
    for c in range(1, n):
        x, y, cw, ch, area = stats[c]
        if x == 0 or y == 0 or x + cw == w or y + ch == h or area > max_fraction * fg_area:
            continue
        ring = cv2.dilate((comp[y : y + ch, x : x + cw] == c).astype(np.uint8), np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(ring)
        around = labels[ys + y, xs + x]
        around = around[around > 0]
        if around.size == 0:
            continue
        k = int(np.bincount(around).argmax())
        if out is q:
            out = q.copy()
        hole = comp == c
        out[hole, k] += out[hole, 0]
        out[hole, 0] = 0.0
    return out


def _validate_frames(frames: Any) -> np.ndarray:
    """(T, H, W, 3) uint8 frames; a list of arrays must share one size."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InputValidationError("frames is empty")
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:
            raise InputValidationError(f"frames have mixed sizes: {sorted(shapes)[:4]}")
        frames = np.stack([np.asarray(f) for f in frames])
    if not isinstance(frames, np.ndarray):
        raise InputValidationError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputValidationError(f"frames must be (T, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    if frames.shape[0] < 1 or frames.shape[1] < 2 or frames.shape[2] < 2:
        raise InputValidationError(f"frames must have T >= 1 and H, W >= 2, got {frames.shape}")
    return np.ascontiguousarray(frames)


def _override(base: Any, values: dict[str, float] | None, what: str) -> Any:
    """Dataclass ``base`` with ``values`` replaced; unknown names are a typed error."""
    if not values:
        return base
    names = {f.name for f in fields(base)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputValidationError(f"unknown {what} parameters {unknown}; valid: {sorted(names)}")
    for k, v in values.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise InputValidationError(f"{what}.{k} must be a finite number, got {v!r}")
    return replace(base, **values)
