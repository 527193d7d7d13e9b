"""Recommend the next frame to annotate for any segmenter's masks (no DAVIS harness needed).

IVOS-W's recommender only needs what every interactive VOS tool has: the video, the current
masks (label maps or per-object probabilities) and the frames the user annotated so far. The
quality net estimates each frame's J&F from (frame, mask) crops, and the agent's Q-network, which
is length-agnostic, scores every frame from the (quality, history) state; the frame with the
highest Q value is recommended; several policy files (a seed ensemble, as shipped) act with the
mean of their Q values (:mod:`ivos_rl.agents.ensemble`). Instead of an agent, a named training-free
strategy (e.g. ``worst`` on the estimated quality) can be asked for explicitly; nothing is chosen
silently.

Python::

    rec = Recommender.from_checkpoints(quality="checkpoints/quality.pt", agent="checkpoints/agent.pt")
    r = rec.recommend(frames, masks, history=[0, 17])   # r.frame, r.q_values, r.quality

Command line (``ivos-rl recommend``)::

    ivos-rl recommend --frames video/ --masks masks/ --history 0,17 \
        --quality checkpoints/quality.pt --agent checkpoints/agent.pt --out rec.json
    ivos-rl recommend --frames video/ --masks masks/ --history 0   # the shipped agent and its estimator
    ivos-rl recommend ... --agent seed0.pt seed1.pt seed2.pt     # an ensemble: argmax of the mean Q
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ivos_rl.agents.ensemble import AgentEnsembleStrategy
from ivos_rl.agents.strategy import AgentStrategy
from ivos_rl.backends.base import validate_frames
from ivos_rl.data.imageio import open_decoded, read_image
from ivos_rl.data.layout import natural_key
from ivos_rl.data.metadata import objects_of_first_annotated
from ivos_rl.errors import (
    CheckpointError,
    ConfigError,
    CorruptFileError,
    DatasetError,
    InputValidationError,
    IvosError,
    MaskFormatError,
    MissingDataError,
)
from ivos_rl.rounds import wild_quality, wild_uncertainty
from ivos_rl.strategies.base import Strategy, StrategyState, build_strategy
from ivos_rl.utils.io import atomic_write_json, ensure_writable_dir
from ivos_rl.utils.logging import setup_logging

__all__ = [
    "Recommendation",
    "Recommender",
    "as_probabilities",
    "main",
    "read_frame_folder",
    "read_mask_file",
    "read_mask_folder",
    "resolve_sequence_folder",
    "shipped_checkpoint",
    "shipped_checkpoints",
]

FRAME_EXTS = (".jpg", ".jpeg", ".png")
MASK_EXTS = (".png", ".npy")


@dataclass(frozen=True)
class Recommendation:
    """The frame to annotate next and the per-frame numbers it was chosen from.

    ``q_values`` (N,) is the agent's Q value per frame (None when a strategy chose); ``quality``
    (N,) the estimated J&F per frame (None only for a strategy that needs no quality and no
    quality net was given); ``source`` says what chose: ``"agent"`` or ``"strategy:<name>"``.
    ``uncertainty`` (N,) the estimate's standard deviation and ``expected_gain`` the expected mean-J&F
    gain of one more annotation, when the quality estimator offers them (the feature model does);
    ``stop`` is True when that gain is below the caller's ``stop_threshold`` (None: not asked).
    """

    frame: int
    q_values: np.ndarray | None
    quality: np.ndarray | None
    source: str
    n_frames: int
    history: tuple[int, ...] = ()
    uncertainty: np.ndarray | None = None
    expected_gain: float | None = None
    stop: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (lists of floats, ``null`` for absent arrays)."""
        return {
            "frame": int(self.frame),
            "source": self.source,
            "history": [int(f) for f in self.history],
            "n_frames": int(self.n_frames),
            "quality": None if self.quality is None else [float(v) for v in self.quality],
            "q_values": None if self.q_values is None else [float(v) for v in self.q_values],
            "uncertainty": None if self.uncertainty is None else [float(v) for v in self.uncertainty],
            "expected_gain": self.expected_gain,
            "stop": self.stop,
        }


# ----------------------------------------------------------------------------- inputs


def as_probabilities(
    probs_or_masks: Any, frames_shape: tuple[int, ...], n_objects: int | None = None
) -> np.ndarray:
    """(T, K, H, W) probabilities (uint8 or float in [0, 1]) from label maps or probabilities.

    * (T, H, W) integer/bool label maps (0 background, 1..K objects) become one-hot uint8
      probabilities (255 inside the object); K is ``n_objects`` or, by default, the largest id of
      the first mask holding an object (DAVIS convention): a later frame with a larger id is
      refused rather than silently adding objects;
    * (T, K, H, W) uint8 (value / 255) or float in [0, 1] is validated and returned as is.

    A (T, H, W) float array is refused: it could be a label map or one object's probabilities.
    """
    t, h, w = (int(v) for v in frames_shape[:3])
    a = np.asarray(probs_or_masks)
    if a.ndim == 3:
        if a.shape != (t, h, w):
            raise InputValidationError(f"masks shape {a.shape} does not match frames ({t}, {h}, {w})")
        if a.dtype == bool:
            a = a.astype(np.uint8)
        if not np.issubdtype(a.dtype, np.integer):
            raise InputValidationError(
                f"(T, H, W) masks must be integer label maps, got dtype {a.dtype}; give one object's "
                "probabilities as (T, 1, H, W)"
            )
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0:
            raise InputValidationError(f"masks hold a negative label {lo}")
        if n_objects is None:
            if hi == 0:
                raise InputValidationError(
                    "masks contain no object (all 0): pass n_objects to score an empty segmentation"
                )
            n_objects, first = objects_of_first_annotated(a)
            if hi > n_objects:
                bad_t = int(np.argmax((a > n_objects).reshape(t, -1).any(axis=1)))
                raise InputValidationError(
                    f"mask of frame {bad_t} holds label {int(a[bad_t].max())} but the first mask with an "
                    f"object (frame {first}) has {n_objects} object(s): pass n_objects if objects enter later"
                )
        elif isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or n_objects < 1:
            raise InputValidationError(f"n_objects must be an integer >= 1, got {n_objects!r}")
        elif hi > n_objects:
            raise InputValidationError(f"masks hold label {hi} but n_objects={n_objects}")
        ids = np.arange(1, int(n_objects) + 1, dtype=a.dtype).reshape(1, -1, 1, 1)
        return (a[:, None] == ids).astype(np.uint8) * np.uint8(255)
    if a.ndim == 4:
        if (a.shape[0], a.shape[2], a.shape[3]) != (t, h, w) or a.shape[1] < 1:
            raise InputValidationError(
                f"probabilities shape {a.shape} does not match frames: expected ({t}, K>=1, {h}, {w})"
            )
        if n_objects is not None and a.shape[1] != n_objects:
            raise InputValidationError(f"probabilities have K={a.shape[1]} objects but n_objects={n_objects}")
        if a.dtype == np.uint8:
            return a
        if not np.issubdtype(a.dtype, np.floating):
            raise InputValidationError(f"probabilities must be uint8 or float in [0, 1], got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise InputValidationError("probabilities contain NaN or inf")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise InputValidationError(f"float probabilities must lie in [0, 1], got range [{lo}, {hi}]")
        return a.astype(np.float32, copy=False)
    raise InputValidationError(
        f"probs_or_masks must be (T, H, W) labels or (T, K, H, W) probabilities, got shape {a.shape}"
    )


def _check_history(history: Any, n_frames: int) -> tuple[int, ...]:
    if history is None:
        return ()
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence | np.ndarray):
        raise InputValidationError(f"history must be a list of frame indices, got {history!r}")
    out = []
    for f in list(history):
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, np.integer)):
            raise InputValidationError(f"history holds a non-integer frame index {f!r}")
        if not 0 <= int(f) < n_frames:
            raise InputValidationError(f"history frame {int(f)} is outside [0, {n_frames}) for this video")
        out.append(int(f))
    return tuple(out)


# ----------------------------------------------------------------------------- recommender


class Recommender:
    """Next-frame recommendation from (frames, masks, history) with an agent or a named strategy.

    ``quality`` is any object with ``predict(frames, probs) -> (q (T,), q_k (T, K))`` (usually a
    :class:`~ivos_rl.quality.QualityEstimator`); ``agent`` a Q-network (e.g.
    :class:`~ivos_rl.agents.QNetwork`) with the ``state_mode``, ``state_features`` and ``horizon`` it
    was trained on, run through
    :class:`~ivos_rl.agents.strategy.AgentStrategy` exactly as in the evaluation; ``strategy`` any
    other :class:`Strategy`. Exactly one of ``agent`` and ``strategy`` must be given.
    """

    def __init__(
        self,
        quality: Any | None = None,
        agent: torch.nn.Module | None = None,
        strategy: Strategy | None = None,
        *,
        state_mode: str = "both",
        device: str | torch.device = "cpu",
        seed: int = 0,
        state_features: Sequence[str] | None = None,
        horizon: int = 7,
    ) -> None:
        if (agent is None) == (strategy is None):
            raise ConfigError(
                "Recommender needs exactly one of an agent checkpoint or an explicit strategy "
                f"(got agent={'set' if agent is not None else None}, strategy={strategy!r})"
            )
        if quality is not None and not callable(getattr(quality, "predict", None)):
            raise ConfigError(
                f"quality must have a predict(frames, probs) method, got {type(quality).__name__}"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        if agent is not None:
            strategy = AgentStrategy(
                agent,  # type: ignore[arg-type]
                state_mode=state_mode,
                device=device,
                state_features=state_features,
                horizon=horizon,
            )
        assert strategy is not None
        if strategy.needs_quality and quality is None:
            who = "the agent" if isinstance(strategy, AgentStrategy) else f"strategy {strategy.name!r}"
            raise ConfigError(f"{who} needs per-frame quality: give a quality checkpoint too")
        self.quality = quality
        self.strategy = strategy
        self.seed = int(seed)

    @classmethod
    def from_checkpoints(
        cls,
        quality: str | Path | None = None,
        agent: str | Path | Sequence[str | Path] | None = None,
        strategy: str | Strategy | None = None,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        batch_size: int = 32,
    ) -> Recommender:
        """Load the quality net and the agent policy; ``strategy`` is a registry name or object.

        ``agent`` is one policy file or a list of them, loaded alike: the argmax of the members'
        mean Q (:class:`~ivos_rl.agents.ensemble.AgentEnsembleStrategy`; one file is that policy, bit
        for bit, with the state mode, features and horizon it was trained with). Missing or foreign
        checkpoints raise :class:`~ivos_rl.errors.CheckpointError`, members trained on different
        observations too; an empty list raises :class:`~ivos_rl.errors.ConfigError`.
        """
        if (agent is None) == (strategy is None):
            raise ConfigError(
                "Recommender needs exactly one of an agent checkpoint or an explicit strategy "
                f"(got agent={agent}, strategy={strategy!r})"
            )
        if strategy in ("agent", "agent_ensemble"):
            raise ConfigError(
                f"strategy {strategy!r} needs policy files: pass agent=PATH (a list of paths for an ensemble)"
            )
        estimator = None
        if quality is not None:
            from ivos_rl.quality.estimator import QualityEstimator
            from ivos_rl.quality.feature_estimator import FeatureQualityEstimator

            if str(quality).endswith(".features.pt"):  # the feature-only model (issue 15)
                estimator = FeatureQualityEstimator.from_checkpoint(quality)
            else:
                estimator = QualityEstimator.from_checkpoint(quality, device=device, batch_size=batch_size)
        if agent is not None:  # the mean Q of the policy files (one file: that agent, bit for bit; the
            # state mode, features and horizon as trained; members of another observation are refused)
            members = AgentEnsembleStrategy.from_checkpoints(agent, device=str(device))
            return cls(estimator, strategy=members, device=device, seed=seed)
        strat = build_strategy(strategy) if isinstance(strategy, str) else strategy
        return cls(estimator, strategy=strat, device=device, seed=seed)

    @property
    def source(self) -> str:
        """``"agent"`` or ``"strategy:<name>"``: what chooses the frame."""
        return "agent" if isinstance(self.strategy, AgentStrategy) else f"strategy:{self.strategy.name}"

    @property
    def state_mode(self) -> str | None:
        """The agent's state mode (``both``, ``q_only``, ``h_only``); None for other strategies."""
        return self.strategy.state_mode.value if isinstance(self.strategy, AgentStrategy) else None

    def recommend(
        self,
        frames: np.ndarray,
        probs_or_masks: np.ndarray,
        history: Sequence[int] | None = None,
        *,
        n_objects: int | None = None,
        stop_threshold: float | None = None,
    ) -> Recommendation:
        """The frame to annotate next given the current masks and the frames annotated so far.

        ``frames`` (T, H, W, 3) uint8; ``probs_or_masks`` (T, H, W) label maps or (T, K, H, W)
        probabilities (see :func:`as_probabilities`); ``history`` annotated frames in order (may
        be empty: then every frame has h = 0). ``stop_threshold`` (mean J&F) asks whether to stop:
        ``stop`` is True when the estimator's expected gain of one more annotation is below it.
        """
        frames = validate_frames(frames)
        probs = as_probabilities(probs_or_masks, frames.shape, n_objects)
        n = int(frames.shape[0])
        hist = _check_history(history, n)
        quality = None
        extra: dict[str, Any] = {}
        if self.quality is not None:
            q, extra = _estimate(self.quality, frames, probs, hist, stop_threshold)
            quality = np.asarray(q, dtype=np.float64)
            if quality.shape != (n,) or not np.all(np.isfinite(quality)):
                raise InputValidationError(
                    f"quality estimator returned shape {quality.shape} or non-finite values, "
                    f"expected ({n},) finite values"
                )
        # a fresh, history-derived seed: random strategies give the same answer to the same question
        seed = np.random.SeedSequence([self.seed, len(hist), *hist]).generate_state(1)[0]
        self.strategy.reset(seed=int(seed))
        state = StrategyState(
            round=len(hist),
            n_frames=n,
            history=hist,
            quality=quality if self.strategy.needs_quality else None,
            probs=_as_uint8(probs) if self.strategy.needs_probs else None,
            uncertainty=extra.get("uncertainty") if self.strategy.needs_quality else None,
        )
        if isinstance(self.strategy, AgentStrategy):
            q_values = self.strategy.q_values(state)
            return Recommendation(int(np.argmax(q_values)), q_values, quality, self.source, n, hist, **extra)
        frame = int(self.strategy.select(state))
        return Recommendation(frame, None, quality, self.source, n, hist, **extra)


def _estimate(
    quality: Any, frames: np.ndarray, probs: np.ndarray, hist: tuple[int, ...], stop_threshold: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-frame estimate, plus uncertainty / expected gain / stop from estimators that offer them."""
    if getattr(quality, "needs_history", False) and not hist:
        raise InputValidationError(
            f"{type(quality).__name__} reads the annotated frames: pass history= (ivos-rl recommend: "
            "--history, at least the initially annotated frame, e.g. --history 0)"
        )
    q = wild_quality(quality, frames, probs, hist)
    extra: dict[str, Any] = {"uncertainty": wild_uncertainty(quality, int(frames.shape[0]))}
    if callable(getattr(quality, "expected_gain", None)):
        extra["expected_gain"] = float(quality.expected_gain(q))
        if stop_threshold is not None:
            extra["stop"] = extra["expected_gain"] < float(stop_threshold)
    elif stop_threshold is not None:
        raise ConfigError(f"{type(quality).__name__} offers no expected gain: it cannot answer stop")
    return q, extra


def _as_uint8(probs: np.ndarray) -> np.ndarray:
    if probs.dtype == np.uint8:
        return probs
    return np.clip(np.rint(probs * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- folders


def _list_files(folder: Path, exts: tuple[str, ...], what: str) -> list[Path]:
    if not folder.is_dir():
        raise MissingDataError(f"{what} folder does not exist", folder)
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts
    ]
    if not files:
        raise DatasetError(f"{what} folder holds no {'/'.join(exts)} file", folder)
    stems = [p.stem for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise DatasetError(f"{what} folder has several files per frame name, e.g. {dupes[:3]}", folder)
    return sorted(files, key=lambda p: natural_key(p.stem))


def resolve_sequence_folder(
    path: str | Path, kind: str, sequence: str | None = None, resolution: str | None = None
) -> Path:
    """The folder of frames (``kind="JPEGImages"``) or masks (``"Annotations"``) to read.

    ``path`` is either that folder itself (plain layout) or a DAVIS root holding
    ``<kind>/<resolution>/<sequence>``; ``resolution`` may be omitted when only one exists.
    """
    path = Path(path)
    if not (path / kind).is_dir():
        return path
    if sequence is None:
        raise ConfigError(f"{path} is a DAVIS root: name the video with --sequence")
    base = path / kind
    if resolution is None:
        found = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(found) != 1:
            raise ConfigError(f"{base} holds resolutions {found}: choose one with --resolution")
        resolution = found[0]
    folder = base / resolution / sequence
    if not folder.is_dir():
        raise MissingDataError(f"no folder for sequence {sequence!r} at resolution {resolution!r}", folder)
    return folder


def read_frame_folder(folder: str | Path) -> tuple[np.ndarray, list[str]]:
    """All frames of a folder (JPEG/PNG, natural order) as (T, H, W, 3) uint8, and their stems."""
    files = _list_files(Path(folder), FRAME_EXTS, "frames")
    frames = [read_image(p) for p in files]
    sizes = {f.shape for f in frames}
    if len(sizes) != 1:
        raise DatasetError(f"frames have different sizes {sorted(sizes)}", folder)
    return np.stack(frames), [p.stem for p in files]


def read_mask_file(path: Path) -> np.ndarray:
    """One mask file: label PNG (palette ids, grayscale ids, 0/255 binary) or ``.npy``.

    ``.npy`` holds an (H, W) integer label map or (K, H, W) probabilities (uint8 or float in
    [0, 1]). RGB PNGs are refused: colours cannot be mapped to ids without a palette.
    """
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CorruptFileError(f"cannot read .npy mask ({exc})", path) from exc
        if arr.ndim not in (2, 3):
            raise MaskFormatError(
                f".npy mask must be (H, W) labels or (K, H, W) probabilities, got shape {arr.shape}", path
            )
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)):
                n_bad = int((~np.isfinite(arr)).sum())
                raise MaskFormatError(f".npy probabilities contain {n_bad} NaN/inf value(s)", path)
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            if lo < 0.0 or hi > 1.0:
                raise MaskFormatError(f".npy float probabilities must lie in [0, 1], got [{lo}, {hi}]", path)
        return arr
    img: Image.Image = open_decoded(path)
    if img.mode == "P":
        return np.asarray(img, dtype=np.uint8)
    if img.mode == "1":
        return np.asarray(img, dtype=bool).astype(np.uint8)
    if img.mode in ("L", "I;16", "I"):
        arr = np.asarray(img)
        values = np.unique(arr)
        if values.size <= 2 and set(values.tolist()) <= {0, 255} and 255 in values:
            return (arr == 255).astype(np.uint8)  # binary 0/255 mask (DAVIS-2016 style): object 1
        if arr.max(initial=0) > 255:
            raise MaskFormatError(f"grayscale label ids above 255 (max {int(arr.max())})", path)
        return arr.astype(np.uint8)
    raise MaskFormatError(
        f"mask mode {img.mode!r} is not a label map: use palette, grayscale or 1-bit PNGs, or .npy", path
    )


def read_mask_folder(
    folder: str | Path, frame_names: Sequence[str] | None = None, n_objects: int | None = None
) -> np.ndarray:
    """Masks of a folder as (T, H, W) labels or (T, K, H, W) probabilities.

    With ``frame_names`` the mask names must equal the frame names (same stems): pairing files by
    position alone would silently shift masks when one file is missing. Label maps are checked
    against ``n_objects`` (default: the first mask with an object, DAVIS convention); a label above
    it raises :class:`MaskFormatError` naming the file.
    """
    files = _list_files(Path(folder), MASK_EXTS, "masks")
    stems = [p.stem for p in files]
    if frame_names is not None and stems != list(frame_names):
        only_f = sorted(set(frame_names) - set(stems), key=natural_key)[:5]
        only_m = sorted(set(stems) - set(frame_names), key=natural_key)[:5]
        raise DatasetError(
            f"{len(frame_names)} frames but {len(stems)} masks, or different names; frames without "
            f"mask: {only_f}, masks without frame: {only_m}",
            folder,
        )
    masks = [read_mask_file(p) for p in files]
    shapes = {m.shape for m in masks}
    if len(shapes) != 1:
        raise DatasetError(f"mask files have different shapes {sorted(shapes)}", folder)
    kinds = {m.dtype.kind for m in masks}
    if len(kinds) != 1:
        raise DatasetError(f"mask files mix dtypes {sorted(m.dtype.name for m in masks[:3])}", folder)
    if masks[0].ndim == 2 and np.issubdtype(masks[0].dtype, np.integer):
        _check_label_files(masks, files, n_objects)
    return np.stack(masks)


def _check_label_files(masks: list[np.ndarray], files: list[Path], n_objects: int | None) -> None:
    """Refuse a label above the object count, naming the file (count: given or from the first mask)."""
    first: int | None = None
    if n_objects is None:
        n_objects, first = objects_of_first_annotated(masks)
        if first is None:
            return  # all empty: as_probabilities says so (or uses an explicit n_objects)
    for mask, path in zip(masks, files, strict=True):
        top = int(mask.max(initial=0))
        if top > n_objects:
            origin = "--n-objects" if first is None else f"the first mask with an object, {files[first].name}"
            raise MaskFormatError(f"label {top} but {n_objects} object(s) (from {origin})", path)


def _parse_history(text: str) -> list[int]:
    if not text.strip():
        return []
    try:
        return [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--history must be comma-separated frame indices, got {text!r}"
        ) from exc


#: the shipped checkpoints (model cards in checkpoints/*/README.md), relative to a checkpoints folder:
#: the agent is a 3-seed ensemble (its members' mean Q); ``quality`` is the default Wild estimator
#: (the feature model v2.4, as ``configs/setting/wild.yaml``), the one the agent's training rows used.
SHIPPED_CHECKPOINTS: dict[str, tuple[Path, ...]] = {
    "quality": (Path("quality/features-davis2016-propagation_accurate-v2.4.features.pt"),),
    "agent": tuple(Path(f"agent/dagger2_seed{s}.pt") for s in range(3)),
}


def checkpoint_dirs() -> list[Path]:
    """Where shipped checkpoints are looked for, in order: ``$IVOS_RL_ROOT/checkpoints`` (as the Hydra
    ``paths`` config), the repository this package was installed from (source checkout or editable
    install), and ``./checkpoints``. Never the network."""
    dirs = []
    env = os.environ.get("IVOS_RL_ROOT")
    if env:
        dirs.append(Path(env) / "checkpoints")
    dirs.append(Path(__file__).resolve().parents[1] / "checkpoints")
    dirs.append(Path.cwd() / "checkpoints")
    return list(dict.fromkeys(p.resolve() for p in dirs))


def shipped_checkpoints(kind: str) -> list[Path]:
    """Paths of the shipped checkpoint files of ``kind`` (``"quality"``, ``"agent"``: its ensemble
    members), all from the first folder of :func:`checkpoint_dirs` that holds
    every one of them (members are never mixed across folders); CheckpointError saying where it looked."""
    if kind not in SHIPPED_CHECKPOINTS:
        raise ConfigError(f"no shipped checkpoint of kind {kind!r}; kinds: {sorted(SHIPPED_CHECKPOINTS)}")
    files = SHIPPED_CHECKPOINTS[kind]
    for folder in checkpoint_dirs():
        paths = [folder / f for f in files]
        if all(p.is_file() for p in paths):
            return paths
    looked = ", ".join(str(d / f) for d in checkpoint_dirs() for f in files)
    raise CheckpointError(
        f"the shipped {kind} checkpoint was not found (looked at {looked}); pass --{kind} PATH "
        "or set IVOS_RL_ROOT to the ivos-rl repository"
    )


def shipped_checkpoint(kind: str) -> Path:
    """Path of a one-file shipped checkpoint (``"quality"``); see
    :func:`shipped_checkpoints`, which the ensemble ``"agent"`` needs."""
    paths = shipped_checkpoints(kind)
    if len(paths) != 1:
        raise ConfigError(f"the shipped {kind} checkpoint is {len(paths)} files: use shipped_checkpoints")
    return paths[0]


def _models(
    args: argparse.Namespace,
) -> tuple[Path | None, Path | list[Path] | None, Strategy | None, list[str]]:
    """(quality, agent, strategy, notes): explicit flags win; otherwise the shipped agent (a seed
    ensemble), and the shipped quality estimator (the one the agent's rows used) whenever the agent
    or another chooser needs per-frame quality. ``agent`` is one path, or a list for several files. ``notes``
    say which were used."""
    if args.strategy in ("agent", "agent_ensemble"):
        raise ConfigError(
            f"--strategy {args.strategy} needs policies: pass --agent PATH [PATH ...], "
            "or no flag (the shipped agent)"
        )
    strategy = None if args.strategy is None else build_strategy(args.strategy)
    agent: Path | list[Path] | None = None
    notes = []
    shipped_agent = args.agent is None and strategy is None
    if shipped_agent:
        agent = shipped_checkpoints("agent")
    elif args.agent is not None:
        agent = args.agent[0] if len(args.agent) == 1 else list(args.agent)
    if agent is not None:
        files = [agent] if isinstance(agent, Path) else agent
        what = f"{len(files)}-member ensemble " if len(files) > 1 else ""
        origin = " (shipped default)" if shipped_agent else ""
        notes.append(f"agent: {what}{', '.join(map(str, files))}{origin}")
    quality = args.quality
    needs_quality = agent is not None or (strategy is not None and strategy.needs_quality)
    if quality is None and needs_quality:
        quality = shipped_checkpoint("quality")
        notes.append(f"quality net: {quality} (shipped default)")
    elif quality is not None:
        notes.append(f"quality net: {quality}")
    return quality, agent, strategy, notes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivos-rl recommend",
        description="Recommend the next frame to annotate from a video and any segmenter's masks. "
        "Without --agent/--strategy/--quality the shipped agent (a 3-seed ensemble) and the feature quality "
        "model it was trained with are used (it needs --history: at least the initially annotated frame).",
    )
    parser.add_argument("--frames", type=Path, required=True, help="frame folder (JPEG/PNG) or DAVIS root")
    parser.add_argument(
        "--masks", type=Path, required=True,
        help="mask folder (palette/grayscale/0-255 PNGs, or .npy labels/probabilities) or DAVIS root",
    )
    parser.add_argument("--sequence", default=None, help="video name when --frames/--masks are DAVIS roots")
    parser.add_argument("--resolution", default=None, help="DAVIS resolution folder (e.g. 480p)")
    parser.add_argument("--history", type=_parse_history, default=[], help="annotated frames, e.g. 0,17")
    parser.add_argument(
        "--n-objects", type=_positive_int, default=None,
        help="number of objects (default: from the first mask holding an object; larger labels are refused)",
    )
    parser.add_argument(
        "--quality", type=Path, default=None, help="quality-net checkpoint (default: shipped)"
    )
    parser.add_argument(
        "--stop-threshold", type=float, default=None,
        help="answer stop when one more annotation is expected to gain less mean J&F (needs a *.features.pt)",
    )
    choose = parser.add_mutually_exclusive_group()
    choose.add_argument(
        "--agent", type=Path, nargs="+", default=None, metavar="CKPT",
        help="agent policy checkpoint, or several (an ensemble: argmax of their mean Q); default: shipped",
    )
    choose.add_argument("--strategy", default=None, help="strategy name instead of an agent, e.g. worst")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0, help="seed of random strategies")
    parser.add_argument("--out", type=Path, default=Path("recommendation.json"), help="JSON output file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``ivos-rl recommend --frames DIR --masks DIR [--history 0,17] [--n-objects K] [--quality CKPT]
    [--agent CKPT [CKPT ...] | --strategy NAME] [--out rec.json]``. The JSON's ``agent_checkpoint``
    is the policy file, or the list of files of an ensemble (as an evaluation manifest hashes them)."""
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        ensure_writable_dir(args.out.resolve().parent)  # before reading, loading or computing anything
        frames_dir = resolve_sequence_folder(args.frames, "JPEGImages", args.sequence, args.resolution)
        masks_dir = resolve_sequence_folder(args.masks, "Annotations", args.sequence, args.resolution)
        frames, names = read_frame_folder(frames_dir)
        masks = read_mask_folder(masks_dir, names, n_objects=args.n_objects)
        quality, agent, strategy, notes = _models(args)
        rec = Recommender.from_checkpoints(
            quality=quality, agent=agent, strategy=strategy, device=args.device, seed=args.seed
        ).recommend(frames, masks, args.history, n_objects=args.n_objects, stop_threshold=args.stop_threshold)
    except IvosError as exc:
        print(f"ivos-rl recommend: error: {exc}", file=sys.stderr)
        return 1
    payload = {
        **rec.to_json(),
        "frame_name": names[rec.frame],
        "frame_names": names,
        "frames_dir": str(frames_dir),
        "masks_dir": str(masks_dir),
        "quality_checkpoint": None if quality is None else str(quality),
        "agent_checkpoint": None if agent is None else (
            str(agent) if isinstance(agent, Path) else [str(a) for a in agent]
        ),
    }
    atomic_write_json(args.out, payload)
    for note in notes:
        print(f"using {note}")
    print(f"next frame to annotate: {rec.frame} ({names[rec.frame]}), chosen by {rec.source}")
    if rec.stop:
        print(f"stop: one more annotation is expected to gain {rec.expected_gain:.4f} mean J&F")
    print(f"details: {args.out}")
    return 0
