"""The plug point for interactive VOS algorithms.

A backend turns the user's interactions (scribbles or clicks on one frame per round) into masks
for the whole video. Everything above it (session, environment, strategies) only talks to this
interface, so adding a segmenter is one file plus one YAML under ``configs/backend/``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ivos_rl.errors import BackendError


@dataclass(frozen=True)
class BackendOutput:
    """Result of one interaction round for the whole video.

    ``probs`` holds per-object foreground probabilities as uint8 (value / 255 is the probability),
    shape (T, K, H, W); it bounds memory (a 100-frame 480p video with 2 objects is 82 MB).
    ``masks`` is the label map (T, H, W) uint8 with background 0 and objects 1..K.
    """

    probs: np.ndarray
    masks: np.ndarray

    def __post_init__(self) -> None:
        if self.probs.dtype != np.uint8 or self.probs.ndim != 4:
            raise BackendError(
                f"BackendOutput.probs must be uint8 (T, K, H, W), got {self.probs.dtype} {self.probs.shape}"
            )
        if self.masks.dtype != np.uint8 or self.masks.ndim != 3:
            raise BackendError(
                f"BackendOutput.masks must be uint8 (T, H, W), got {self.masks.dtype} {self.masks.shape}"
            )
        t, _, h, w = self.probs.shape
        if self.masks.shape != (t, h, w):
            raise BackendError(f"masks shape {self.masks.shape} does not match probs {self.probs.shape}")

    @property
    def n_frames(self) -> int:
        return int(self.probs.shape[0])

    @property
    def n_objects(self) -> int:
        return int(self.probs.shape[1])

    def probs_float(self) -> np.ndarray:
        """Probabilities as float32 in [0, 1], shape (T, K, H, W)."""
        return self.probs.astype(np.float32) / 255.0


def probs_to_uint8(probs: np.ndarray) -> np.ndarray:
    """Quantise float probabilities in [0, 1] to the uint8 storage of :class:`BackendOutput`."""
    return np.clip(np.rint(np.asarray(probs, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def labels_from_probs(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Label map from per-object probabilities: argmax object where its probability > threshold.

    ``probs`` is (T, K, H, W) uint8 or float in [0, 1]; returns (T, H, W) uint8 in 0..K.
    """
    p = probs.astype(np.float32) / 255.0 if probs.dtype == np.uint8 else np.asarray(probs, np.float32)
    best = p.argmax(axis=1)
    fg = p.max(axis=1) > threshold
    return np.where(fg, best + 1, 0).astype(np.uint8)


class VOSBackend(abc.ABC):
    """Interactive VOS algorithm: ``reset`` per sample, then one ``interact`` per round.

    Class attributes declare what the backend consumes:

    * ``wants_all_scribbles``: ``interact`` receives all interactions so far fused into one
      dict (True) or only this round's (False, the DAVIS-Interactive default).
    * ``accepts_clicks``: ``interact`` may receive a clicks dict; otherwise callers convert clicks
      to small disk scribbles (:func:`ivos_rl.clicks.clicks_to_scribbles`).
    * ``uses_ground_truth``: only simulators set this; their results are never reportable.
    """

    name: ClassVar[str] = "base"
    wants_all_scribbles: ClassVar[bool] = False
    accepts_clicks: ClassVar[bool] = False
    uses_ground_truth: ClassVar[bool] = False

    @abc.abstractmethod
    def reset(
        self,
        frames: np.ndarray,
        n_objects: int,
        *,
        sequence: str | None = None,
        gt_masks: np.ndarray | None = None,
    ) -> None:
        """Start a new sample on ``frames`` (T, H, W, 3) uint8 with ``n_objects`` objects.

        ``sequence`` names the video (for caches and logs); ``gt_masks`` is only read by
        simulators (``uses_ground_truth``) and must be ignored by real backends.
        """

    @abc.abstractmethod
    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        """Apply the user's interaction on ``frame_idx`` and return masks for every frame.

        ``interaction`` is a DAVIS scribble dict (``{"scribbles": [...per frame...],
        "sequence": ...}``) or, when ``accepts_clicks``, a clicks dict (see ``ivos_rl.clicks``).
        Must raise :class:`~ivos_rl.errors.BackendError` (or a subclass of ``IvosError``) on
        failure; never return stale masks.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (GPU memory, files)."""
