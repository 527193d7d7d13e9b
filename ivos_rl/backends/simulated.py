"""A SIMULATOR of an interactive VOS backend, derived from the ground truth.

``SimulatedBackend`` does not segment anything: it degrades the ground-truth masks with a
parametric error model so that tests and fast RL experiments get a backend whose quality
behaves like a real one (good near annotated frames, worse far away and across appearance
changes) at a tiny fraction of the cost. It reads ``gt_masks`` (``uses_ground_truth = True``),
so numbers obtained with it are never reportable results and it is never a default backend.

Error model, per frame ``t`` and object ``k``. Every annotated frame ``a`` has an error level
``e_a = annotated_error * refine_factor ** (n_a - 1)`` (``n_a`` = times it was annotated); the
error grows with the *effective distance*
``D(t, a) = |t - a| + appearance_weight * |C_k(t) - C_k(a)|``, where ``C_k`` accumulates the
appearance change along the video (``1 - IoU`` of the object's ground truth between consecutive
frames plus the mean absolute frame difference), as ``e = 1 - (1 - e_a) exp(-D / temporal_scale)``;
the nearest annotated frame (smallest ``e``) wins. The level ``e`` then drives, in units of the
object's equivalent radius ``r``:

* boundary noise: a smooth random field (spatially smooth, AR(1) in time) of amplitude
  ``boundary_noise * e * r`` added to the ground truth's signed distance (local erosion/dilation,
  i.e. a wobbly boundary);
* drift: a shift of ``drift * e * r`` pixels along a per-object direction, opposite on the two
  sides of the annotated frame (first-order: ``sd(x - s v) ~ sd(x) - s v . grad sd``);
* a global erosion/dilation bias ``bias * b_k * e * r`` with ``b_k`` in [-1, 1];
* soft boundaries: the probability is ``sigmoid(z / (softness * (1 + 4 e)))``;
* object loss: with probability ``loss_rate`` per round, object ``k`` is lost (probability 0)
  on every frame whose error level exceeds ``loss_level_k``, drawn uniformly in
  ``[loss_onset, 1)``: occasional, and only far from the annotations.

Annotated frames respect every stroke drawn on them so far (later strokes win), like a real
backend must. Randomness: the noise fields come from ``(seed, sequence)``; the per-round draws
(which noise field each frame uses, ``b_k``, the losses) from ``(seed, sequence, annotated frames
so far)``, so identical interaction histories give identical outputs and different seeds differ.

Cost: ``reset`` precomputes signed distances, their directional derivative, the noise fields and
two work buffers (``(4 + noise_banks) * T*K*H*W`` float32: 4 MB for 25 frames of 64x96 with one
object, 230 MB for 80 frames at 240p); ``interact`` is a handful of in-place vectorised passes over
``(T, K, H, W)`` and a sigmoid lookup table (timings: ``benchmarks/bench_backends.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np

from ivos_rl.backends._distance import exact_distance
from ivos_rl.backends._prompts import stroke_label_map
from ivos_rl.backends.base import (
    BackendOutput,
    VOSBackend,
    labels_from_probs,
    lookup_uint8,
    validate_frames,
    validate_gt_masks,
    validate_interaction,
    validate_n_objects,
)
from ivos_rl.backends.registry import register_backend
from ivos_rl.errors import BackendError, ConfigError, InputValidationError

__all__ = ["SimulatedBackend"]

_FAR = 1.0e4  # signed distance used for an object absent from a frame (never reached by noise)
# 255 * sigmoid(x) as a 256-entry uint8 table over x in [-8, 8) by steps of 1/16, applied with
# cv2.LUT: an order of magnitude faster than exp or fancy indexing; the coarse step costs at most
# 2 grey levels (slope 255/4 per unit at x = 0) and is deterministic.
_LUT_STEPS = 16.0
_SIGMOID_LUT = np.rint(255.0 / (1.0 + np.exp(-(np.arange(256) - 128.0) / _LUT_STEPS))).astype(np.uint8)


def _positive_float(name: str, value: Any, allow_zero: bool = True) -> float:
    """Validate a non-negative (or positive) finite float parameter, naming it on failure."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"SimulatedBackend {name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"SimulatedBackend {name} must be {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


@register_backend("simulated")
class SimulatedBackend(VOSBackend):
    """SIMULATOR (reads the ground truth): a parametric stand-in for an interactive VOS backend.

    For tests and fast RL experiments only; see the module docstring for the error model.
    """

    wants_all_scribbles = False
    accepts_clicks = False
    uses_ground_truth = True

    def __init__(
        self,
        seed: int = 0,
        temporal_scale: float = 20.0,
        appearance_weight: float = 10.0,
        annotated_error: float = 0.15,
        refine_factor: float = 0.5,
        boundary_noise: float = 0.3,
        drift: float = 0.3,
        bias: float = 0.15,
        softness: float = 1.0,
        loss_rate: float = 0.2,
        loss_onset: float = 0.8,
        noise_banks: int = 3,
        noise_cell: float = 8.0,
        noise_correlation: float = 0.8,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"SimulatedBackend seed must be a non-negative integer, got {seed!r}")
        if isinstance(noise_banks, bool) or not isinstance(noise_banks, (int, np.integer)) or noise_banks < 1:
            raise ConfigError(f"SimulatedBackend noise_banks must be an integer >= 1, got {noise_banks!r}")
        self.seed = int(seed)
        self.temporal_scale = _positive_float("temporal_scale", temporal_scale, allow_zero=False)
        self.appearance_weight = _positive_float("appearance_weight", appearance_weight)
        self.annotated_error = _positive_float("annotated_error", annotated_error)
        self.refine_factor = _positive_float("refine_factor", refine_factor)
        self.boundary_noise = _positive_float("boundary_noise", boundary_noise)
        self.drift = _positive_float("drift", drift)
        self.bias = _positive_float("bias", bias)
        self.softness = _positive_float("softness", softness, allow_zero=False)
        self.loss_rate = _positive_float("loss_rate", loss_rate)
        self.loss_onset = _positive_float("loss_onset", loss_onset)
        self.noise_banks = int(noise_banks)
        self.noise_cell = _positive_float("noise_cell", noise_cell, allow_zero=False)
        self.noise_correlation = _positive_float("noise_correlation", noise_correlation)
        limits = {
            "annotated_error": (self.annotated_error, 1.0, False),
            "refine_factor": (self.refine_factor, 1.0, True),
            "noise_correlation": (self.noise_correlation, 1.0, False),
            "loss_rate": (self.loss_rate, 1.0, True),
            "loss_onset": (self.loss_onset, 1.0, False),
        }
        for name, (value, upper, inclusive) in limits.items():
            if value > upper or (value == upper and not inclusive):
                raise ConfigError(
                    f"SimulatedBackend {name} must be {'<=' if inclusive else '<'} {upper}, got {value}"
                )
        self._ready = False

    # ------------------------------------------------------------------ reset / precompute
    def reset(
        self,
        frames: np.ndarray,
        n_objects: int,
        *,
        sequence: str | None = None,
        gt_masks: np.ndarray | None = None,
    ) -> None:
        """Precompute the ground truth's signed distances, appearance change and noise fields."""
        self._ready = False
        frames = validate_frames(frames)
        k = validate_n_objects(n_objects)
        if gt_masks is None:
            raise InputValidationError(
                "SimulatedBackend.reset needs gt_masks: it is a simulator built from the ground truth"
            )
        gt = validate_gt_masks(gt_masks, frames, k)
        t, h, w = gt.shape
        self._shape = (t, k, h, w)
        self._n_objects = k

        if sequence is not None:
            seq_key = f"name:{sequence}".encode()
        else:
            content = hashlib.blake2b(np.ascontiguousarray(frames).data, digest_size=16).digest()
            seq_key = b"content:" + content
        self._seq_hash = int.from_bytes(hashlib.blake2b(seq_key, digest_size=8).digest(), "little")
        rng = np.random.default_rng([self.seed, self._seq_hash])

        obj = np.stack([gt == (i + 1) for i in range(k)], axis=1)  # (T, K, H, W) bool; void -> background
        self._sd = np.empty((t, k, h, w), np.float32)
        self._grad_dir = np.zeros((t, k, h, w), np.float32)
        self._radius = np.ones((t, k), np.float32)
        angles = rng.uniform(0.0, 2.0 * np.pi, size=k)
        for ti in range(t):
            for ki in range(k):
                m = obj[ti, ki]
                area = int(m.sum())
                if area == 0:
                    self._sd[ti, ki] = -_FAR
                    continue
                if area == h * w:
                    self._sd[ti, ki] = _FAR
                    continue
                m8 = m.astype(np.uint8)
                d_in = exact_distance(m8)
                d_out = exact_distance(1 - m8)
                sd = d_in - d_out
                self._sd[ti, ki] = sd
                gy, gx = np.gradient(sd)
                self._grad_dir[ti, ki] = np.cos(angles[ki]) * gx + np.sin(angles[ki]) * gy
                self._radius[ti, ki] = max(1.0, float(np.sqrt(area / np.pi)))

        # Cumulative appearance change C_k(t): object change (1 - IoU) plus mean frame difference.
        inter = np.logical_and(obj[1:], obj[:-1]).sum(axis=(2, 3)).astype(np.float64)
        union = np.logical_or(obj[1:], obj[:-1]).sum(axis=(2, 3)).astype(np.float64)
        iou = np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
        img_change = np.array(
            [cv2.norm(frames[i + 1], frames[i], cv2.NORM_L1) / frames[i].size for i in range(t - 1)],
            dtype=np.float64,
        ).reshape(-1)
        step = (1.0 - iou) + (img_change / 255.0)[:, None]
        cum = np.concatenate([np.zeros((1, k)), np.cumsum(step, axis=0)], axis=0)
        self._cum_change = cum.astype(np.float32)  # (T, K)

        self._bank = self._noise_bank(rng, t, k, h, w)
        self._z = np.empty((t, k, h, w), np.float32)  # work buffers of _render
        self._tmp = np.empty((t, k, h, w), np.float32)
        self._annot_count: dict[int, int] = {}
        self._history: list[int] = []
        self._strokes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._stroke_maps: dict[int, np.ndarray] = {}
        self._frame_idx = np.arange(t)
        self._ready = True

    def _noise_bank(self, rng: np.random.Generator, t: int, k: int, h: int, w: int) -> np.ndarray:
        """``noise_banks`` smooth unit-variance fields per (frame, object), correlated in time."""
        gh = max(2, int(np.ceil(h / self.noise_cell)) + 1)
        gw = max(2, int(np.ceil(w / self.noise_cell)) + 1)
        rho = self.noise_correlation
        bank = np.empty((self.noise_banks, t, k, h, w), np.float32)
        for b in range(self.noise_banks):
            grid = rng.standard_normal((k, gh, gw))
            for ti in range(t):
                if ti:
                    grid = rho * grid + np.sqrt(1.0 - rho**2) * rng.standard_normal((k, gh, gw))
                for ki in range(k):
                    bank[b, ti, ki] = cv2.resize(
                        grid[ki].astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
                    )
        std = float(bank[..., ::4, ::4].std())  # a strided sample: the full std costs seconds at 240p
        if std > 0:
            bank /= std
        return bank

    # ------------------------------------------------------------------ interaction
    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        """Record the annotation of ``frame_idx`` and return the simulated masks for every frame."""
        if not self._ready:
            raise BackendError("SimulatedBackend.interact called before reset")
        t, k, h, w = self._shape
        strokes = validate_interaction(frame_idx, interaction, t, k)
        frame_idx = int(frame_idx)
        labels = stroke_label_map(strokes, h, w)
        previous = self._stroke_maps.get(frame_idx)
        if previous is not None:
            labels = np.where(labels >= 0, labels, previous).astype(np.int16)
        ys, xs = np.nonzero(labels >= 0)

        # State changes only after every input check passed.
        self._stroke_maps[frame_idx] = labels
        self._strokes[frame_idx] = (ys, xs, labels[ys, xs].astype(np.int64))
        self._annot_count[frame_idx] = self._annot_count.get(frame_idx, 0) + 1
        self._history.append(frame_idx)
        return self._render()

    def error_levels(self) -> np.ndarray:
        """Error level (T, K) in [0, 1) of every frame and object for the current history.

        Exposed for analysis and tests: it is the knob every error component scales with.
        """
        if not self._ready or not self._history:
            raise BackendError("SimulatedBackend.error_levels needs a reset and at least one interaction")
        return self._error_state()[0]

    def _error_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Per (frame, object) error level in [0, 1) and the side (+1/-1) of the nearest annotation."""
        annotated = np.array(sorted(self._annot_count), dtype=np.int64)
        e_a = np.array(
            [self.annotated_error * self.refine_factor ** (self._annot_count[a] - 1) for a in annotated],
            dtype=np.float32,
        )
        tt = self._frame_idx[:, None]  # (T, 1)
        dist_t = np.abs(tt - annotated[None, :]).astype(np.float32)  # (T, A)
        cum = self._cum_change
        dist_app = np.abs(cum[:, :, None] - cum[annotated].T[None, :, :])  # (T, K, A)
        eff = dist_t[:, None, :] + self.appearance_weight * dist_app
        err = 1.0 - (1.0 - e_a)[None, None, :] * np.exp(-eff / self.temporal_scale)
        nearest = err.argmin(axis=2)  # (T, K)
        e = np.take_along_axis(err, nearest[..., None], axis=2)[..., 0]
        side = np.sign(tt - annotated[nearest]).astype(np.float32)
        return e.astype(np.float32), side

    def _render(self) -> BackendOutput:
        """Compose the error model for the current annotation history."""
        t, k = self._shape[:2]
        rng = np.random.default_rng([self.seed, self._seq_hash, len(self._history), *self._history])
        which = rng.integers(self.noise_banks, size=(t, k))
        b_k = rng.uniform(-1.0, 1.0, size=k).astype(np.float32)
        is_lost = rng.random(k) < self.loss_rate
        loss_level = rng.uniform(self.loss_onset, 1.0, size=k).astype(np.float32)

        e, side = self._error_state()
        r = self._radius
        shift = (self.drift * e * r * side)[..., None, None]
        amp = (self.boundary_noise * e * r)[..., None, None]
        offset = (self.bias * b_k[None, :] * e * r)[..., None, None]
        inv_soft = (1.0 / (self.softness * (1.0 + 4.0 * e)))[..., None, None]

        # z = (sd - shift * grad + amp * noise + offset) / softness, then a sigmoid through a lookup
        # table: a handful of in-place passes over preallocated (T, K, H, W) buffers.
        z, tmp = self._z, self._tmp
        flat = (which * (t * k) + self._frame_idx[:, None] * k + np.arange(k)[None, :]).ravel()
        np.take(self._bank.reshape(-1, *self._shape[2:]), flat, axis=0, out=z.reshape(-1, *self._shape[2:]))
        z *= amp
        z += self._sd
        np.multiply(self._grad_dir, shift, out=tmp)
        z -= tmp
        scale = inv_soft * _LUT_STEPS
        z *= scale
        z += offset * scale + 128.5  # + 0.5: the truncation below rounds to the nearest entry
        np.clip(z, 0.0, 255.0, out=z)
        index = z.astype(np.uint8)
        probs = lookup_uint8(_SIGMOID_LUT, index)
        lost = is_lost[None, :] & (e > loss_level[None, :])
        probs[lost] = 0

        for a, (ys, xs, lab) in self._strokes.items():
            probs[a][:, ys, xs] = 0
            fg = lab > 0
            probs[a][lab[fg] - 1, ys[fg], xs[fg]] = 255
        return BackendOutput(probs=probs, masks=labels_from_probs(probs))

    def close(self) -> None:
        """Drop the precomputed arrays (they scale with T*K*H*W)."""
        self._ready = False
        for name in ("_sd", "_grad_dir", "_bank", "_cum_change", "_z", "_tmp"):
            self.__dict__.pop(name, None)
