"""The issue's calibration reference for the propagation backend (benchmark only, not a product backend).

Issue #4 calibrates the propagation backend against "a simple classical reference": GrabCut on the
annotated frame, seeded by the scribbles and a tight prior around the first stroke; DIS optical
flow at its finest setting; soft masks warped from the nearest annotated frame on each side and
blended by temporal distance; a colour model of all annotated frames correcting the warped mask
near its boundary; small-fragment removal. Its published figures (real DAVIS-2016, 240p, Worst
robot) are round-AUC .584 / Random .571 / Linspace .560. This module rebuilds that recipe, with
no tuning, so that both backends can be compared on the *same* sequences, in particular on the
20 the propagation backend was never tuned on (``bench_propagation.py --backend reference``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from ivos_rl.backends._colour_model import ColourModel, quantise_colours
from ivos_rl.backends._flow import Warper, compute_flows
from ivos_rl.backends._interactive_seg import Stroke, rasterise
from ivos_rl.backends.base import (
    BackendOutput,
    VOSBackend,
    probs_to_uint8,
    validate_frames,
    validate_interaction,
    validate_n_objects,
)
from ivos_rl.errors import BackendError


class ReferenceBackend(VOSBackend):
    """GrabCut + DIS warping + boundary colour correction, recomputed in full every round.

    ``prior_margin`` grows the box of an object's first strokes (fraction of its size) into
    GrabCut's probable-foreground prior; on a later annotation the current mask is that prior and
    the boundary may move ``prior_band`` pixels; ``band`` is the half-width in pixels of the boundary band the
    colour model may correct, ``colour_weight`` its share there; components smaller than
    ``min_fragment`` of an object's largest one are dropped on propagated frames.
    """

    name: ClassVar[str] = "reference"
    wants_all_scribbles: ClassVar[bool] = False

    def __init__(self, grabcut_iters: int = 5, prior_margin: float = 0.25, prior_band: int = 15,
                 band: int = 7, colour_weight: float = 0.5, min_fragment: float = 0.1,
                 colour_bins: int = 16) -> None:
        self.grabcut_iters = grabcut_iters
        self.prior_margin = prior_margin
        self.prior_band = prior_band
        self.band = band
        self.colour_weight = colour_weight
        self.min_fragment = min_fragment
        self.colour_bins = colour_bins
        self._flow_key: tuple[str | None, tuple[int, ...]] | None = None

    def reset(self, frames: np.ndarray, n_objects: int, *, sequence: str | None = None,
              gt_masks: np.ndarray | None = None) -> None:
        del gt_masks
        frames = validate_frames(frames)
        self.n_objects = validate_n_objects(n_objects)
        self.n_labels = self.n_objects + 1
        self._frames = frames
        self._shape = frames.shape[1:3]
        self._bins = quantise_colours(frames, self.colour_bins)
        key = (sequence, frames.shape)
        if key != self._flow_key or sequence is None:  # the benchmark replays one video per strategy
            gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
            self._fwd, self._bwd = compute_flows(gray, "fine")
            self._flow_key = key
        self._warper = Warper(*self._shape)
        self._strokes: dict[int, list[Stroke]] = {}
        self._segs: dict[int, np.ndarray] = {}
        self._pred: np.ndarray | None = None
        self._round = 0

    # -- annotated frame ----------------------------------------------------------------------

    def _grabcut(self, t: int, label: int, strokes: np.ndarray) -> np.ndarray:
        """Foreground of object ``label`` on frame ``t`` (bool), strokes as hard constraints."""
        mine = strokes == label
        if not mine.any() and (self._pred is None or not (self._pred[t] == label).any()):
            return np.zeros(self._shape, bool)
        if self._pred is not None and (self._pred[t] == label).any():
            # refinement: the current mask is probable foreground; GrabCut may move the boundary
            # only within ``prior_band`` pixels of it and of the new strokes
            region = ((self._pred[t] == label) | mine).astype(np.uint8)
            size = 2 * self.prior_band + 1
            gc = np.where(cv2.dilate(region, np.ones((size, size), np.uint8)) > 0, cv2.GC_PR_BGD, cv2.GC_BGD)
            gc = gc.astype(np.uint8)
            gc[self._pred[t] == label] = cv2.GC_PR_FGD
        else:  # first annotation of this object: GrabCut's box, tight around its strokes
            gc = np.full(self._shape, cv2.GC_BGD, np.uint8)
            ys, xs = np.nonzero(mine)
            h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
            my, mx = int(self.prior_margin * h) + 2, int(self.prior_margin * w) + 2
            rows = slice(max(ys.min() - my, 0), ys.max() + my + 1)
            gc[rows, max(xs.min() - mx, 0):xs.max() + mx + 1] = cv2.GC_PR_FGD
        gc[(strokes >= 0) & ~mine] = cv2.GC_BGD
        gc[mine] = cv2.GC_FGD
        if np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD)).any() and np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
            bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
            cv2.grabCut(self._frames[t], gc, None, bgd, fgd, self.grabcut_iters, cv2.GC_INIT_WITH_MASK)
        return np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))

    def _segment(self, t: int) -> np.ndarray:
        strokes = rasterise(self._strokes[t], self._shape)
        labels = np.zeros(self._shape, np.uint8)
        for k in range(1, self.n_labels):
            labels[self._grabcut(t, k, strokes)] = k
        pinned = strokes >= 0
        labels[pinned] = strokes[pinned]
        return labels

    # -- propagation --------------------------------------------------------------------------

    def _correct(self, p: np.ndarray, t: int, tables: np.ndarray) -> np.ndarray:
        """Mix the colour posterior into ``p`` (L, H, W) within ``band`` pixels of its boundary."""
        hard = p.argmax(0).astype(np.uint8)
        kernel = np.ones((2 * self.band + 1, 2 * self.band + 1), np.uint8)
        near = cv2.dilate(hard, kernel) != cv2.erode(hard, kernel)
        if not near.any():
            return p
        loglik = tables[:, self._bins[t][near]]
        post = np.exp(loglik - loglik.max(0))
        post /= post.sum(0)
        p[:, near] = (1 - self.colour_weight) * p[:, near] + self.colour_weight * post
        return p

    def _run(self, a: int, stop: int, step: int, tables: np.ndarray) -> dict[int, np.ndarray]:
        """Soft masks carried from annotated frame ``a`` towards ``stop`` (exclusive)."""
        p = np.eye(self.n_labels, dtype=np.float32)[self._segs[a]].transpose(2, 0, 1).copy()
        out = {a: p}
        for t in range(a + step, stop, step):
            flow = self._bwd[t - 1] if step > 0 else self._fwd[t]  # maps frame t back to t - step
            mx = self._warper.xs + flow[..., 0].astype(np.float32)
            my = self._warper.ys + flow[..., 1].astype(np.float32)
            p = np.stack([cv2.remap(c, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for c in p])
            p = self._correct(p, t, tables)
            out[t] = p
        return out

    def _propagate(self) -> np.ndarray:
        model = ColourModel(self.n_labels, self.colour_bins)
        eye = np.eye(self.n_labels, dtype=np.float32)
        for t, labels in self._segs.items():
            model.add(self._bins[t], eye[labels].transpose(2, 0, 1))
        tables = model.log_tables()
        n = self._frames.shape[0]
        anchors = sorted(self._segs)
        probs = np.zeros((n, self.n_labels, *self._shape), np.float32)
        for i, a in enumerate(anchors):
            left = anchors[i - 1] if i > 0 else -1
            right = anchors[i + 1] if i + 1 < len(anchors) else n
            for direction, end, other in ((1, right, left), (-1, left, right)):
                for t, p in self._run(a, end, direction, tables).items():
                    if t == a:
                        probs[t] = p
                        continue
                    # weight by temporal distance to the annotated frame on the other side
                    far = other if 0 <= other < n else None
                    w = 1.0 if far is None else abs(far - t) / abs(far - a)
                    probs[t] += w * p
        return probs

    def _remove_fragments(self, labels: np.ndarray) -> np.ndarray:
        for k in range(1, self.n_labels):
            mask = (labels == k).astype(np.uint8)
            n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            if n <= 2:
                continue
            areas = stats[1:, cv2.CC_STAT_AREA]
            small = np.flatnonzero(areas < self.min_fragment * areas.max()) + 1
            labels[np.isin(comp, small)] = 0
        return labels

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        n = self._frames.shape[0]
        current = validate_interaction(frame_idx, interaction, n, self.n_objects)
        self._round += 1
        t = int(frame_idx)
        self._strokes.setdefault(t, []).extend(
            Stroke(int(s["object_id"]), np.asarray(s["path"], np.float64), self._round) for s in current)
        self._segs[t] = self._segment(t)
        probs = self._propagate()
        labels = probs.argmax(1).astype(np.uint8)
        for f in range(n):
            kept = self._segs[f] if f in self._segs else self._remove_fragments(labels[f].copy())
            forced = kept != labels[f]
            if f in self._segs or forced.any():  # probs agree with every label that was overruled
                onehot = np.eye(self.n_labels, dtype=np.float32)[kept].transpose(2, 0, 1)
                probs[f] = np.where(forced | (f in self._segs), onehot, probs[f])
            labels[f] = kept
        if labels.shape[1:] != self._shape:
            raise BackendError("reference backend produced masks of the wrong size")
        self._pred = labels
        return BackendOutput(probs=probs_to_uint8(probs[:, 1:]), masks=labels)
