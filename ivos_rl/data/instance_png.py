"""Places/ADE-style instance PNGs: R channel = category id, G channel = instance id.

These annotations pack a semantic class and an instance number into one RGB image; decoding them
gives the instance label map and the instance -> category table that COCO-style RLE submissions
(``image_id, category_id, segmentation, score``) need. Instance id 0 means "no instance".
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ivos_rl.data.imageio import open_decoded
from ivos_rl.data.rle import encode_masks
from ivos_rl.errors import InputValidationError, MaskFormatError
from ivos_rl.utils.io import atomic_write_bytes


def _load_rgb(source: str | Path | np.ndarray) -> tuple[np.ndarray, str]:
    if isinstance(source, np.ndarray):
        where = "array"
        rgb = source
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputValidationError(f"instance array must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
        return rgb, where
    path = Path(source)
    img = open_decoded(path)
    if img.mode != "RGB":
        raise MaskFormatError(
            f"instance PNG must be RGB (R=category, G=instance), got mode {img.mode!r}", path
        )
    return np.asarray(img, dtype=np.uint8), str(path)


def decode_instance_png(source: str | Path | np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Decode an instance PNG (path or (H, W, 3) uint8 RGB array).

    Returns ``(instance_mask, categories)``: an (H, W) int32 map of instance ids (0 = none) and
    ``{instance_id: category_id}`` for every instance present. An instance whose pixels carry more
    than one category is malformed and raises MaskFormatError naming the file.
    """
    rgb, where = _load_rgb(source)
    category = rgb[..., 0].astype(np.int32)
    instance = rgb[..., 1].astype(np.int32)
    categories: dict[int, int] = {}
    fg = instance > 0
    if fg.any():
        pairs = np.unique(np.stack([instance[fg], category[fg]], axis=1), axis=0)
        for inst, cat in pairs.tolist():
            if inst in categories:
                raise MaskFormatError(
                    f"instance {inst} has several categories ({categories[inst]} and {cat}) in {where}",
                    None if isinstance(source, np.ndarray) else Path(source),
                )
            categories[int(inst)] = int(cat)
    return instance, categories


def instance_annotations(
    instance_mask: np.ndarray,
    categories: dict[int, int],
    image_id: int,
    scores: dict[int, float] | None = None,
) -> list[dict[str, Any]]:
    """COCO-style records ``{image_id, category_id, segmentation (RLE), score?, instance_id}``.

    Without ``scores`` the records are ground-truth annotations (no ``score`` key).
    """
    instance_mask = np.asarray(instance_mask)
    if instance_mask.ndim != 2:
        raise InputValidationError(f"instance_mask must be (H, W), got shape {instance_mask.shape}")
    ids = sorted(categories)
    missing = [i for i in ids if not (instance_mask == i).any()]
    if missing:
        raise InputValidationError(f"instances {missing} are in categories but not in instance_mask")
    rles = encode_masks(np.stack([instance_mask == i for i in ids])) if ids else []
    records = []
    for inst, rle in zip(ids, rles, strict=True):
        rec: dict[str, Any] = {
            "image_id": int(image_id),
            "category_id": int(categories[inst]),
            "segmentation": rle,
            "instance_id": int(inst),
        }
        if scores is not None:
            if inst not in scores:
                raise InputValidationError(f"scores has no entry for instance {inst}")
            rec["score"] = float(scores[inst])
        records.append(rec)
    return records


def encode_instance_png(instance_mask: np.ndarray, categories: dict[int, int]) -> np.ndarray:
    """Inverse of :func:`decode_instance_png`: the (H, W, 3) uint8 RGB image (B = 0)."""
    instance_mask = np.asarray(instance_mask)
    if instance_mask.ndim != 2 or instance_mask.min(initial=0) < 0 or instance_mask.max(initial=0) > 255:
        raise InputValidationError("instance_mask must be (H, W) with ids in 0..255")
    rgb = np.zeros((*instance_mask.shape, 3), dtype=np.uint8)
    for inst in np.unique(instance_mask).tolist():
        if inst == 0:
            continue
        if inst not in categories or not 0 <= categories[inst] <= 255:
            raise InputValidationError(
                f"instance {inst} needs a category id in 0..255, got {categories.get(inst)!r}"
            )
        sel = instance_mask == inst
        rgb[sel, 0] = categories[inst]
        rgb[sel, 1] = inst
    return rgb


def write_instance_png(path: str | Path, instance_mask: np.ndarray, categories: dict[int, int]) -> Path:
    """Atomically write an RGB instance PNG (R = category, G = instance)."""
    buf = io.BytesIO()
    Image.fromarray(encode_instance_png(instance_mask, categories)).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())
