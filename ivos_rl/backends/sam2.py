"""Adapter over SAM2's video predictor (optional extra: ``pip install ivos-rl[sam2]``).

SAM2 is prompted with points or masks, not scribbles. Each round the strokes drawn on the
annotated frame become prompts per object: ``prompt="points"`` samples positive points evenly
along the object's strokes and negative points along the background's and the other objects'
strokes (points accumulate on a frame re-annotated later, as clicks do in SAM2's own demo);
``prompt="mask"`` sends the object's current mask on that frame corrected by every stroke so
far. SAM2 then propagates from the earliest prompted frame forward to the end and backward to
the start. Objects that never received a positive stroke are not tracked (probability 0).
Stroke pixels of annotated frames are finally forced to their stroke's label, the guarantee
every backend gives (a correction is never silently undone).

The module imports without the ``sam2`` package; only building :class:`Sam2Backend` needs it.
The model is built from SAM2's own YAML (``model_cfg``: a name inside the package such as
``configs/sam2.1/sam2.1_hiera_t.yaml``, or a file path) with OmegaConf and Hydra's
``instantiate``, not SAM2's global Hydra ``compose``, so it also works inside an ivos-rl
``@hydra.main`` run. ``ckpt_path=None`` is an explicit choice of random weights (tests only).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ivos_rl.backends._prompts import mask_prompt, point_prompts, stroke_label_map
from ivos_rl.backends.base import (
    BackendOutput,
    VOSBackend,
    labels_from_probs,
    probs_to_uint8,
    validate_frames,
    validate_interaction,
    validate_n_objects,
)
from ivos_rl.backends.registry import register_backend
from ivos_rl.errors import BackendError, CheckpointError, ConfigError
from ivos_rl.utils.logging import get_logger

__all__ = ["Sam2Backend", "sam2_available"]

_LOG = get_logger(__name__)
_INSTALL_HINT = "install the optional extra with `pip install ivos-rl[sam2]`"


def sam2_available() -> bool:
    """Whether the optional ``sam2`` package can be imported."""
    return importlib.util.find_spec("sam2") is not None


def _import_sam2() -> Any:
    """Import the ``sam2`` package or raise :class:`BackendError` naming the extra to install.

    Importing ``sam2`` initialises Hydra's global state with SAM2's config module when nothing
    else has; this adapter never uses that state (it loads SAM2's YAML itself), so it is cleared
    again, otherwise a later ``hydra.initialize`` in the same process (tests, notebooks) fails.
    """
    from hydra.core.global_hydra import GlobalHydra

    was_initialized = GlobalHydra.instance().is_initialized()
    try:
        module = importlib.import_module("sam2.sam2_video_predictor")
    except ImportError as exc:
        raise BackendError(f"the sam2 backend needs the `sam2` package ({exc}); {_INSTALL_HINT}") from exc
    if not was_initialized and GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    return module


def _resolve_model_cfg(model_cfg: str) -> Path:
    """Find ``model_cfg`` as a file path or as a config shipped inside the ``sam2`` package."""
    direct = Path(model_cfg)
    if direct.is_file():
        return direct
    spec = importlib.util.find_spec("sam2")
    roots = [] if spec is None or spec.submodule_search_locations is None else spec.submodule_search_locations
    for root in roots:
        candidate = Path(root) / model_cfg
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"SAM2 model_cfg {model_cfg!r} is neither a file nor a config inside the sam2 package "
        "(e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml')"
    )


@register_backend("sam2")
class Sam2Backend(VOSBackend):
    """SAM2 video predictor driven by scribbles converted to point or mask prompts."""

    wants_all_scribbles = False
    accepts_clicks = False
    uses_ground_truth = False

    def __init__(
        self,
        ckpt_path: str | Path | None,
        model_cfg: str = "configs/sam2.1/sam2.1_hiera_t.yaml",
        device: str = "cpu",
        prompt: Literal["points", "mask"] = "points",
        n_positive: int = 8,
        n_negative: int = 8,
        mask_radius: int = 3,
        image_size: int | None = None,
        fill_hole_area: int = 0,
        seed: int = 0,
        autocast: bool = True,
    ) -> None:
        if prompt not in ("points", "mask"):
            raise ConfigError(f"Sam2Backend prompt must be 'points' or 'mask', got {prompt!r}")
        counts = (("n_positive", n_positive), ("n_negative", n_negative), ("mask_radius", mask_radius))
        for name, value in counts:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"Sam2Backend {name} must be a non-negative integer, got {value!r}")
        if n_positive < 1:
            raise ConfigError(f"Sam2Backend n_positive must be >= 1, got {n_positive}")
        if image_size is not None and (not isinstance(image_size, int) or image_size < 64 or image_size % 32):
            raise ConfigError(f"Sam2Backend image_size must be a multiple of 32 >= 64, got {image_size!r}")
        if ckpt_path is not None and not Path(ckpt_path).is_file():
            raise CheckpointError(
                f"SAM2 checkpoint not found: ckpt_path={str(ckpt_path)!r} (download it from the SAM2 "
                "release page; ckpt_path=None builds random weights, for tests only)"
            )
        self.ckpt_path = None if ckpt_path is None else str(ckpt_path)
        self.model_cfg = model_cfg
        self.device = device
        self.prompt = prompt
        self.n_positive = n_positive
        self.n_negative = n_negative
        self.mask_radius = mask_radius
        self.image_size = image_size
        self.fill_hole_area = fill_hole_area
        self.seed = seed
        # SAM2 stores its memory features in bfloat16 and expects to run under bf16 autocast
        # (its README does so); without it the memory attention mixes bf16 and float32.
        self.autocast = autocast
        self._predictor = self._build()
        self._state: dict[str, Any] | None = None

    # ------------------------------------------------------------------ model
    def _build(self) -> Any:
        """Instantiate SAM2's video predictor from its YAML and load the checkpoint."""
        _import_sam2()
        import torch
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(_resolve_model_cfg(self.model_cfg))
        if "model" not in cfg:
            raise ConfigError(f"SAM2 model_cfg {self.model_cfg!r} has no 'model' section")
        # The same settings as sam2.build_sam.build_sam2_video_predictor(apply_postprocessing=True).
        target = "sam2.sam2_video_predictor.SAM2VideoPredictor"
        OmegaConf.update(cfg, "model._target_", target, force_add=True)
        extra = {
            "dynamic_multimask_via_stability": True,
            "dynamic_multimask_stability_delta": 0.05,
            "dynamic_multimask_stability_thresh": 0.98,
        }
        for key, value in extra.items():
            OmegaConf.update(cfg, f"model.sam_mask_decoder_extra_args.{key}", value, force_add=True)
        OmegaConf.update(cfg, "model.binarize_mask_from_pts_for_mem_enc", True, force_add=True)
        # Hole filling needs SAM2's CUDA extension; 0 keeps CPU runs free of its fallback warning.
        OmegaConf.update(cfg, "model.fill_hole_area", int(self.fill_hole_area), force_add=True)
        if self.image_size is not None:
            OmegaConf.update(cfg, "model.image_size", int(self.image_size), force_add=True)
        OmegaConf.resolve(cfg)
        try:
            device = torch.device(self.device)
        except RuntimeError as exc:
            raise ConfigError(f"Sam2Backend device {self.device!r} is not a torch device: {exc}") from exc
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # random init (ckpt_path=None) is reproducible, globals untouched
            model = instantiate(cfg.model, _recursive_=True)
        if self.ckpt_path is None:
            _LOG.warning("Sam2Backend built with RANDOM weights (ckpt_path=None): for tests only")
        else:
            self._load_checkpoint(model, torch)
        return model.to(device).eval()

    def _load_checkpoint(self, model: Any, torch: Any) -> None:
        """Load SAM2 weights strictly; any mismatch is a :class:`CheckpointError` naming the file."""
        path = self.ckpt_path
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise CheckpointError(f"cannot read SAM2 checkpoint {path}: {exc}") from exc
        if not isinstance(blob, dict) or "model" not in blob:
            raise CheckpointError(f"SAM2 checkpoint {path} has no 'model' state dict")
        try:
            model.load_state_dict(blob["model"], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"SAM2 checkpoint {path} does not fit model_cfg {self.model_cfg!r}: {exc}"
            ) from exc

    def _autocast(self) -> Any:
        """bf16 autocast on the model's device (a no-op context when ``autocast`` is off)."""
        import torch

        device_type = torch.device(self.device).type
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=self.autocast)

    # ------------------------------------------------------------------ protocol
    def reset(
        self,
        frames: np.ndarray,
        n_objects: int,
        *,
        sequence: str | None = None,
        gt_masks: np.ndarray | None = None,
    ) -> None:
        """Load the video into a fresh SAM2 inference state (``gt_masks`` is ignored)."""
        from PIL import Image

        self._state = None
        frames = validate_frames(frames)
        k = validate_n_objects(n_objects)
        t, h, w = frames.shape[:3]
        # SAM2's public init_state reads a folder of JPEGs; quality 100 without chroma subsampling
        # keeps the round trip within a few grey levels.
        with tempfile.TemporaryDirectory(prefix="ivos_rl_sam2_") as tmp:
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(os.path.join(tmp, f"{i:05d}.jpg"), quality=100, subsampling=0)
            try:
                with self._autocast():
                    state = self._predictor.init_state(
                        video_path=tmp, offload_video_to_cpu=True, offload_state_to_cpu=self.device == "cpu"
                    )
            except (RuntimeError, ValueError) as exc:
                raise BackendError(f"SAM2 could not load sequence {sequence!r}: {exc}") from exc
        self._state = state
        self._shape = (t, k, h, w)
        self._stroke_maps: dict[int, np.ndarray] = {}
        self._registered: set[int] = set()
        self._last: BackendOutput | None = None

    def interact(self, frame_idx: int, interaction: dict[str, Any]) -> BackendOutput:
        """Prompt SAM2 on ``frame_idx`` from the round's strokes and propagate through the video."""
        if self._state is None:
            raise BackendError("Sam2Backend.interact called before reset (or after a failed round)")
        t, k, h, w = self._shape
        strokes = validate_interaction(frame_idx, interaction, t, k)
        frame_idx = int(frame_idx)
        new_labels = stroke_label_map(strokes, h, w)
        previous = self._stroke_maps.get(frame_idx)
        labels = new_labels if previous is None else np.where(new_labels >= 0, new_labels, previous)
        labels = labels.astype(np.int16)
        state, self._state = self._state, None  # a failure below leaves the backend unusable, not stale
        try:
            with self._autocast():
                self._add_prompts(state, frame_idx, strokes, labels)
                logits = self._propagate(state)
        except (RuntimeError, ValueError, AssertionError) as exc:
            raise BackendError(f"SAM2 failed on frame {frame_idx}: {exc}; call reset() again") from exc
        self._state = state
        self._stroke_maps[frame_idx] = labels

        probs = logits  # float32 (T, K, H, W)
        for a, lab in self._stroke_maps.items():
            ys, xs = np.nonzero(lab >= 0)
            ids = lab[ys, xs].astype(np.int64)
            probs[a][:, ys, xs] = 0.0
            fg = ids > 0
            probs[a][ids[fg] - 1, ys[fg], xs[fg]] = 1.0
        probs_u8 = probs_to_uint8(probs)
        self._last = BackendOutput(probs=probs_u8, masks=labels_from_probs(probs_u8))
        return self._last

    def _add_prompts(
        self, state: dict[str, Any], frame_idx: int, strokes: list[dict[str, Any]], labels: np.ndarray
    ) -> None:
        """Send this round's prompts for every object that has (or had) a positive stroke."""
        _, k, h, w = self._shape
        for obj in range(1, k + 1):
            has_positive = any(s["object_id"] == obj for s in strokes)
            if not has_positive and obj not in self._registered:
                continue
            if self.prompt == "points":
                pts, lbl = point_prompts(strokes, obj, h, w, self.n_positive, self.n_negative)
                self._predictor.add_new_points_or_box(
                    state, frame_idx=frame_idx, obj_id=obj, points=pts, labels=lbl,
                    clear_old_points=False, normalize_coords=True,
                )
            else:
                prev = None if self._last is None else self._last.masks[frame_idx] == obj
                mask = mask_prompt(labels, obj, prev, self.mask_radius)
                self._predictor.add_new_mask(state, frame_idx=frame_idx, obj_id=obj, mask=mask)
            self._registered.add(obj)

    def _propagate(self, state: dict[str, Any]) -> np.ndarray:
        """Forward then backward propagation; returns float32 probabilities (T, K, H, W)."""
        import torch

        t, k, h, w = self._shape
        probs = np.zeros((t, k, h, w), np.float32)
        if not self._registered:
            return probs  # only background strokes so far: nothing to track
        for reverse in (False, True):
            for f, obj_ids, logits in self._predictor.propagate_in_video(state, reverse=reverse):
                p = torch.sigmoid(logits[:, 0].float()).cpu().numpy()
                for row, obj in enumerate(obj_ids):
                    probs[f, int(obj) - 1] = p[row]
        return probs

    def close(self) -> None:
        """Drop the inference state (it holds every frame at the model's resolution)."""
        self._state = None
