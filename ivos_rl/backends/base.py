"""The plug point for interactive VOS algorithms.

A backend turns the user's interactions (scribbles or clicks on one frame per round) into masks
for the whole video. Everything above it (session, environment, strategies) only talks to this
interface, so adding a segmenter is one file plus one YAML under ``configs/backend/``.
"""

from __future__ import annotations

import abc
import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ivos_rl.errors import BackendError, InputValidationError, ScribbleError
from ivos_rl.scribbles import validate_scribbles


@dataclass(frozen=True)
class BackendOutput:
    """Result of one interaction round for the whole video.

    ``probs`` holds per-object foreground probabilities as uint8 (value / 255 is the probability),
    shape (T, K, H, W); it bounds memory (a 100-frame 480p video with 2 objects is 82 MB).
    ``masks`` is the label map (T, H, W) uint8 with background 0 and objects 1..K.
    ``changed_frames`` (optional) lists, sorted, the frames whose probs or masks may differ from
    the previous round's output of the same sample; every other frame is byte-identical to it, so
    consumers (quality cache, environment, transition cache) can skip them. ``None`` means
    unknown: treat every frame as changed (third-party backends need not say).
    ``diagnostics`` (optional) maps a name to a (T, K) float32 array of per-(frame, object)
    signals the backend knows about its own output (e.g. how much two propagation runs that
    reach a frame agree); quality estimators trained with them read them as extra columns
    (:func:`ivos_rl.quality.features.quality_features`). ``None``: the backend offers none.
    """

    probs: np.ndarray
    masks: np.ndarray
    changed_frames: tuple[int, ...] | None = None
    diagnostics: Mapping[str, np.ndarray] | None = None

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
        if self.changed_frames is not None:
            c = self.changed_frames
            if not isinstance(c, tuple) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < t for i in c
            ):
                raise BackendError(
                    f"BackendOutput.changed_frames must be a tuple of frame indices in [0, {t}), got {c!r}"
                )
            if any(b <= a for a, b in itertools.pairwise(c)):
                raise BackendError(f"BackendOutput.changed_frames must be sorted without repeats, got {c!r}")
        if self.diagnostics is not None:
            for name, arr in self.diagnostics.items():
                if not isinstance(name, str) or not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
                    raise BackendError(
                        f"BackendOutput.diagnostics must map names to float32 arrays, got {name!r}: "
                        f"{type(arr).__name__} {getattr(arr, 'dtype', '')}"
                    )
                if arr.shape != (t, self.probs.shape[1]) or not np.isfinite(arr).all():
                    raise BackendError(
                        f"BackendOutput.diagnostics[{name!r}] must be finite (T, K) = "
                        f"{(t, self.probs.shape[1])}, got {arr.shape}"
                    )

    def changed_mask(self) -> np.ndarray:
        """(T,) bool: frames that may have changed since the previous round (all when unknown)."""
        if self.changed_frames is None:
            return np.ones(self.n_frames, dtype=bool)
        out = np.zeros(self.n_frames, dtype=bool)
        out[list(self.changed_frames)] = True
        return out

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
    """Quantise float probabilities in [0, 1] to the uint8 storage of :class:`BackendOutput`:
    ``x * 255`` in float32, rounded half to even, clipped to 0..255.

    Within [0, 2] (no NaN) OpenCV's ``convertScaleAbs`` gives those bytes in one pass (checked
    for every float32 in [0, 1]; above 1 both give 255; it differs for negative, huge or infinite
    values), ~2x faster with the range check than numpy's four passes.
    """
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim >= 1 and p.size and p.min() >= 0 and p.max() <= 2:
        import cv2  # a core dependency, imported where it computes (this module stays light)

        flat = np.ascontiguousarray(p).reshape(-1, p.shape[-1])
        return cv2.convertScaleAbs(flat, alpha=255.0).reshape(p.shape)  # type: ignore[no-any-return]
    scaled = p * 255.0  # a new array: rounded and clipped in place
    np.rint(scaled, out=scaled)
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def lookup_uint8(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``table[idx]`` for a 256-entry table and an index array of any shape: OpenCV's look-up when
    the indices are uint8 (the same values, 3-10x faster than numpy's gather), numpy's otherwise."""
    if idx.dtype != np.uint8 or idx.ndim == 0 or idx.size == 0:
        return table[idx]  # type: ignore[no-any-return]
    import cv2  # a core dependency, imported where it computes (this module stays light)

    flat = np.ascontiguousarray(idx).reshape(-1, idx.shape[-1])
    return cv2.LUT(flat, table).reshape(idx.shape)  # type: ignore[no-any-return]


def labels_from_probs(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Label map from per-object probabilities: argmax object where its probability > threshold.

    ``probs`` is (T, K, H, W) uint8 or float in [0, 1]; returns (T, H, W) uint8 in 0..K. uint8 (every
    backend's output) takes :func:`_labels_uint8`: the same labels without a float copy of the stack.
    """
    if probs.dtype == np.uint8 and probs.ndim == 4 and probs.size:
        return _labels_uint8(probs, threshold)
    p = probs.astype(np.float32) / 255.0 if probs.dtype == np.uint8 else np.asarray(probs, np.float32)
    best = p.argmax(axis=1)
    fg = p.max(axis=1) > threshold
    return np.where(fg, best + 1, 0).astype(np.uint8)


def _labels_uint8(probs: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`labels_from_probs` of a non-empty (T, K, H, W) uint8 stack. The float rule
    ``value / 255 > threshold`` (in float32, as there) becomes a 256-entry table of the uint8
    values (:func:`lookup_uint8`); the argmax is a running maximum over the objects in which ties
    keep the lower id, as ``argmax`` does. ~4-10x faster than converting the stack (it runs every
    agent step that reads the backend's labels)."""
    above = ((np.arange(256).astype(np.float32) / 255.0) > threshold).astype(np.uint8)
    if probs.shape[1] == 1:
        return lookup_uint8(above, probs[:, 0])
    best = probs[:, 0].copy()
    label = np.ones(best.shape, np.uint8)
    for obj in range(1, probs.shape[1]):  # a running max beats argmax over the strided K axis
        better = probs[:, obj] > best  # strict: ties keep the lower id
        np.copyto(best, probs[:, obj], where=better)
        label[better] = obj + 1
    label *= lookup_uint8(above, best)
    return label


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
    #: Bumped whenever the same inputs give different outputs, so that caches and checkpoints
    #: built on an older version are recognisably different (read by ``backend_fingerprint``).
    version: ClassVar[str | None] = None
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


def fork_backend(backend: VOSBackend) -> VOSBackend:
    """An independent copy of ``backend`` in its current state, for rounds that must not count.

    A backend may define ``fork() -> VOSBackend`` (cheaper than a deep copy: it may share what
    its rounds never write, e.g. the video's flows); otherwise :func:`copy.deepcopy`, correct for
    any backend whose state is Python objects and arrays. Used by lookahead candidates
    (:meth:`ivos_rl.rounds.RoundEngine.lookahead`) and the env's snapshots.
    """
    fork = getattr(backend, "fork", None)
    clone = fork() if callable(fork) else copy.deepcopy(backend)
    if clone is backend or not isinstance(clone, VOSBackend):
        raise BackendError(f"{type(backend).__name__}.fork() must return a new VOSBackend, got {clone!r}")
    return clone


# --- input validation shared by every backend -------------------------------------------------
# Backends must refuse the same bad inputs with the same typed errors, so the checks live next
# to the interface instead of being re-implemented (slightly differently) in each backend.


def validate_frames(frames: Any, name: str = "frames") -> np.ndarray:
    """Return ``frames`` as a (T, H, W, 3) uint8 array or raise naming the offending value.

    A list of per-frame arrays is accepted (videos are often loaded frame by frame), but every
    frame must have the same size: mixed sizes would silently misalign masks and frames.
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise InputValidationError(f"{name} is empty: a video needs at least one frame")
        sizes = {tuple(np.asarray(f).shape) for f in frames}
        if len(sizes) != 1:
            raise InputValidationError(f"{name} mixes frame sizes {sorted(sizes)}; resize them to one size")
        frames = np.stack([np.asarray(f) for f in frames])
    if not isinstance(frames, np.ndarray):
        raise InputValidationError(f"{name} must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise InputValidationError(f"{name} must have shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise InputValidationError(f"{name} must be uint8 RGB, got dtype {frames.dtype}")
    if frames.shape[1] < 1 or frames.shape[2] < 1:
        raise InputValidationError(f"{name} has an empty frame size {frames.shape[1:3]}")
    return frames


def validate_n_objects(n_objects: Any) -> int:
    """Return ``n_objects`` as an int >= 1 or raise (a video with no object has nothing to segment)."""
    if isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or n_objects < 1:
        raise InputValidationError(f"n_objects must be an integer >= 1, got {n_objects!r}")
    return int(n_objects)


def validate_gt_masks(gt_masks: Any, frames: np.ndarray, n_objects: int) -> np.ndarray:
    """Return ground-truth label masks (T, H, W) uint8 matching ``frames``, or raise.

    Values must be 0..``n_objects`` or 255 (void), the DAVIS convention.
    """
    if not isinstance(gt_masks, np.ndarray):
        raise InputValidationError(f"gt_masks must be a numpy array, got {type(gt_masks).__name__}")
    if gt_masks.shape != frames.shape[:3]:
        raise InputValidationError(
            f"gt_masks shape {gt_masks.shape} does not match frames {frames.shape[:3]}"
        )
    if gt_masks.dtype != np.uint8:
        raise InputValidationError(f"gt_masks must be uint8 label masks, got dtype {gt_masks.dtype}")
    values = np.unique(gt_masks)
    bad = values[(values > n_objects) & (values != 255)]
    if bad.size:
        raise InputValidationError(
            f"gt_masks holds object ids {bad.tolist()} above n_objects={n_objects} (255 = void is allowed)"
        )
    return gt_masks


def validate_interaction(
    frame_idx: Any, interaction: Any, n_frames: int, n_objects: int
) -> list[dict[str, Any]]:
    """Check a DAVIS scribble interaction for ``frame_idx``; return that frame's non-empty strokes.

    Raises :class:`InputValidationError` for an out-of-range ``frame_idx`` and
    :class:`ScribbleError` for a malformed dict (see :func:`ivos_rl.scribbles.validate_scribbles`:
    one list per frame, object ids in 0..``n_objects`` with 0 = background, points in [0, 1]) or
    for no non-empty stroke on ``frame_idx`` (an empty round would otherwise return the previous
    masks unchanged, which callers could mistake for a result).
    """
    if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
        raise InputValidationError(f"frame_idx must be an integer, got {frame_idx!r}")
    if not 0 <= int(frame_idx) < n_frames:
        raise InputValidationError(f"frame_idx={frame_idx} is out of range for a video of {n_frames} frames")
    validate_scribbles(
        interaction, n_frames=n_frames, n_objects=n_objects, require_sequence=False, name="interaction"
    )
    current = [s for s in interaction["scribbles"][int(frame_idx)] if len(s["path"]) > 0]
    if not current:
        raise ScribbleError(f"interaction has no non-empty scribble on frame_idx={frame_idx}")
    return current
