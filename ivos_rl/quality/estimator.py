"""Per-frame quality for the recommender in the Wild setting: the learned estimator.

``predict(frames, probs) -> (q (T,), q_k (T, K))`` with q^n the mean over objects of q^{n,k}
(IVOS-W Eq. 7). The Oracle setting's quality (true J&F of the scored masks) is
:func:`ivos_rl.scoring.oracle_quality`; :class:`ivos_rl.rounds.QualitySource` chooses between them.

Between interaction rounds only some masks change; :class:`QualityEstimator` keeps the last
inputs and scores and re-runs the network only for the (frame, object) pairs whose frame or
probability map differs, which is what makes per-round recommendation cheap on long videos.

A late-fusion net (``model.fused``) also needs the appearance-free signals, which depend on the
annotation history: its estimator declares ``needs_history`` (call sites pass ``history=``), caches
the pooled CNN features instead of the scores (the CNN runs only on changed crops, the small head
on every pair with the current signals) and leaves the per-frame standard deviation in
``last_uncertainty`` (T,) / ``last_uncertainty_k`` (T, K), as the feature-only estimator does
(``reports_uncertainty``; the agent's ``uncertainty`` state group refuses estimators without it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ivos_rl.backends.base import VOSBackend
from ivos_rl.data.splits import SPLIT_KEY, read_split_record
from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.checkpoint import BACKENDS_KEY, load_model, warn_other_backend
from ivos_rl.quality.crop import crop_inputs, validate_inputs
from ivos_rl.quality.features import feature_names, quality_features
from ivos_rl.quality.model import QualityNet


class QualityEstimator:
    """Batched inference of a :class:`QualityNet` over a whole video, with a change cache.

    ``batch_size`` bounds both the network batch and the number of frames converted to float at
    once (memory stays bounded for long, high-resolution videos). ``cache=False`` rescores
    everything on every call and keeps no copy of the video. ``channels_last`` runs the network
    on NHWC tensors, about 1.5x faster on CPU for these backbones (and the layout the crops of an
    (H, W, 3) frame come in).
    """

    def __init__(
        self,
        model: QualityNet,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        cache: bool = True,
        channels_last: bool = True,
        split: dict[str, Any] | None = None,
        checkpoint_path: Path | None = None,
        backends: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputValidationError(f"batch_size must be a positive int, got {batch_size!r}")
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        self.batch_size = batch_size
        self.cache = cache
        self.n_scored = 0  # (frame, object) crops sent through the network since construction
        # The videos the net was trained on (ivos_rl.data.splits.split_record), None if unrecorded:
        # an agent's held-out videos are checked against it (ivos_rl.envs.factory.agent_split).
        self.split = split
        self.checkpoint_path = checkpoint_path
        # fingerprints of the backends the net was trained on (None: not recorded, older files)
        self.backends = None if backends is None else tuple(backends)
        self.last_uncertainty: np.ndarray | None = None
        self.last_uncertainty_k: np.ndarray | None = None
        self._prev_frames: np.ndarray | None = None
        self._prev_probs: np.ndarray | None = None
        self._prev_qk: np.ndarray | None = None  # (T, K, D): scores (crop-only) or pooled features

    @property
    def needs_history(self) -> bool:
        """A fusion net's signals need the annotated frames (:func:`ivos_rl.rounds.estimate_quality`)."""
        return self.model.fused

    @property
    def reports_uncertainty(self) -> bool:
        """Only a fusion net's head predicts a variance: a crop-only net leaves ``last_uncertainty`` None."""
        return bool(self.model.fused)

    def check_backend(self, backend: VOSBackend | str) -> bool:
        """True when the net was trained on ``backend``; otherwise warn once naming both
        (:func:`~ivos_rl.quality.checkpoint.warn_other_backend`). Nets without a record: True."""
        if self.backends is None:
            return True
        return warn_other_backend(str(self.checkpoint_path or "quality net"), self.backends, backend)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        cache: bool = True,
        backbone: str | None = None,
        channels_last: bool = True,
        backend: VOSBackend | str | None = None,
    ) -> QualityEstimator:
        """Estimator from a saved checkpoint; a missing/corrupt file raises ``CheckpointError``.

        With ``backend`` (object or fingerprint) the training backends are checked at once."""
        model, payload = load_model(path, backbone=backbone, map_location="cpu")
        est = cls(
            model,
            device=device,
            batch_size=batch_size,
            cache=cache,
            channels_last=channels_last,
            split=read_split_record(payload.get(SPLIT_KEY), str(path)),
            checkpoint_path=Path(path),
            backends=payload.get(BACKENDS_KEY),
        )
        if backend is not None:
            est.check_backend(backend)
        return est

    def reset_cache(self) -> None:
        """Forget the previous video (call between videos to free its copy)."""
        self._prev_frames = self._prev_probs = self._prev_qk = None

    def _changed(self, frames: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """(T, K) bool: pairs whose frame or probability map differs from the cached call."""
        t, k = probs.shape[:2]
        prev_f, prev_p = self._prev_frames, self._prev_probs
        if (
            not self.cache
            or prev_f is None
            or prev_p is None
            or prev_f.shape != frames.shape
            or prev_p.shape != probs.shape
            or prev_p.dtype != probs.dtype
        ):
            return np.ones((t, k), dtype=bool)
        frame_changed = (prev_f != frames).reshape(t, -1).any(axis=1)
        prob_changed = (prev_p != probs).reshape(t, k, -1).any(axis=2)
        return prob_changed | frame_changed[:, None]

    def _signals(
        self,
        frames: np.ndarray,
        probs: np.ndarray,
        history: Sequence[int] | None,
        diagnostics: Mapping[str, np.ndarray] | None,
    ) -> torch.Tensor | None:
        """(T*K, F) signal rows in the fusion net's column order; None for a crop-only net."""
        if not self.model.fused:
            return None
        if history is None:
            raise InputValidationError("a fusion quality net needs history= (the annotated frames so far)")
        x = quality_features(frames, probs, history, diagnostics)
        names = feature_names(diagnostics or {})
        missing = [n for n in self.model.config.features if n not in names]
        if missing:
            raise ConfigError(
                f"the quality net needs signals {missing}: pass the backend diagnostics it was trained with"
            )
        cols = [names.index(n) for n in self.model.config.features]
        return torch.from_numpy(np.ascontiguousarray(x.reshape(-1, len(names))[:, cols]))

    @torch.inference_mode()
    def predict(
        self,
        frames: np.ndarray,
        probs: np.ndarray,
        *,
        history: Sequence[int] | None = None,
        diagnostics: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Estimated quality ``q (T,)`` and per-object ``q_k (T, K)``, float32 in [0, 1].

        ``frames`` (T, H, W, 3) uint8; ``probs`` (T, K, H, W) uint8 (value / 255) or float in [0, 1].
        A fusion net (``needs_history``) needs ``history`` and, if it was trained with them, the
        backend's ``diagnostics``; a crop-only net ignores both.
        """
        validate_inputs(frames, probs)
        x = self._signals(frames, probs, history, diagnostics)
        t, k = probs.shape[:2]
        need = self._changed(frames, probs)
        width = self.model.embed_dim if self.model.fused else 1  # cached per pair: features or score
        out = (
            self._prev_qk.copy()
            if self._prev_qk is not None and self._prev_qk.shape == (t, k, width)
            else np.zeros((t, k, width), np.float32)
        )
        net = self.model.embed if self.model.fused else self.model
        todo = np.flatnonzero(need.any(axis=1))
        cfg = self.model.config
        chunk = max(1, self.batch_size // k)
        for start in range(0, len(todo), chunk):
            ts = todo[start : start + chunk]
            rgb, prob, _ = crop_inputs(
                frames[ts],
                probs[ts],
                cfg.input_size,
                enlarge=cfg.enlarge,
                threshold=cfg.threshold,
                device=self.device,
            )
            sel = torch.from_numpy(need[ts]).to(self.device)
            rgb = rgb[sel].contiguous(memory_format=self.memory_format)  # (m, 3, S, S)
            prob = prob[sel].contiguous(memory_format=self.memory_format)  # (m, 1, S, S)
            scores = torch.cat(
                [
                    net(rgb[i : i + self.batch_size], prob[i : i + self.batch_size])
                    for i in range(0, rgb.shape[0], self.batch_size)
                ]
            )
            block = out[ts]
            block[need[ts]] = scores.float().cpu().numpy().reshape(-1, width)
            out[ts] = block
            self.n_scored += int(rgb.shape[0])
        if self.cache:
            self._prev_frames = frames.copy()
            self._prev_probs = probs.copy()
            self._prev_qk = out.copy()
        if x is None:
            qk = np.ascontiguousarray(out[..., 0])
        else:
            emb = torch.from_numpy(out.reshape(t * k, width)).to(self.device)
            mu, log_var = self.model.head_out(emb, x.to(self.device))
            qk = mu.float().cpu().numpy().reshape(t, k)
            assert log_var is not None
            sdk = self.model.uncertainty(log_var).float().cpu().numpy().reshape(t, k)
            self.last_uncertainty_k, self.last_uncertainty = sdk, sdk.mean(axis=1)
        return qk.mean(axis=1).astype(np.float32), qk.astype(np.float32)
