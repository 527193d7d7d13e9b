"""Object-centred crops for the quality net (IVOS-W §3.2).

The quality of a mask is judged around the object, not on the whole frame: for every (frame n,
object k) we take the tight box of ``prob > threshold``, enlarge it by ``enlarge`` about its centre
and resample RGB and probability inside it to a fixed ``size`` x ``size``.

Geometry (pixel-edge coordinates: pixel ``i`` covers ``[i, i + 1)``):

* tight box of the mask pixels ``xmin..xmax``, ``ymin..ymax`` -> ``[xmin, xmax + 1) x [ymin, ymax + 1)``;
* width and height are multiplied by ``enlarge`` about the box centre;
* the enlarged box is **clipped** to the image ``[0, W] x [0, H]``. Clipping (rather than zero
  padding or shifting) keeps only real image content: padding would show the network black
  borders that never occur inside an image, shifting would move the object off-centre by an
  amount that depends on where it sits in the frame;
* an empty mask (no pixel above the threshold) uses the whole frame.

Resampling is one batched ``F.grid_sample`` call per modality (bilinear, affine grids), with all
K object boxes of a frame stacked along the output height so the frame is never duplicated.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ivos_rl.errors import InputValidationError


def mask_boxes(probs: torch.Tensor, threshold: float = 0.5, enlarge: float = 1.5) -> torch.Tensor:
    """Enlarged, clipped boxes ``(..., 4)`` as ``[x0, y0, x1, y1]`` in pixel-edge coordinates.

    ``probs`` is ``(..., H, W)``: float in [0, 1] or uint8 (value / 255). Fully vectorised: the first
    and last foreground row/column come from ``argmax`` over the row/column occupancy.
    """
    if probs.ndim < 2:
        raise InputValidationError(f"probs must be (..., H, W), got shape {tuple(probs.shape)}")
    if not enlarge > 0:
        raise InputValidationError(f"enlarge must be > 0, got {enlarge!r}")
    h, w = int(probs.shape[-2]), int(probs.shape[-1])
    # A row/column holds foreground iff its maximum is above the threshold; max-reductions avoid
    # materialising a full-size boolean mask. For uint8, v / 255 > t  <=>  v > floor(255 t).
    cut: float = math.floor(threshold * 255.0) if probs.dtype == torch.uint8 else threshold
    rows = probs.amax(dim=-1) > cut  # (..., H)
    cols = probs.amax(dim=-2) > cut  # (..., W)
    empty = ~rows.any(dim=-1)
    rows_u8 = rows.to(torch.uint8)
    cols_u8 = cols.to(torch.uint8)
    # argmax returns the first maximal index, so it finds the first occupied row/column.
    ymin = rows_u8.argmax(dim=-1).float()
    ymax = (h - 1 - rows_u8.flip(-1).argmax(dim=-1)).float()
    xmin = cols_u8.argmax(dim=-1).float()
    xmax = (w - 1 - cols_u8.flip(-1).argmax(dim=-1)).float()
    cx = (xmin + xmax + 1.0) / 2.0
    cy = (ymin + ymax + 1.0) / 2.0
    half_w = (xmax + 1.0 - xmin) * enlarge / 2.0
    half_h = (ymax + 1.0 - ymin) * enlarge / 2.0
    x0 = (cx - half_w).clamp(0.0, float(w))
    x1 = (cx + half_w).clamp(0.0, float(w))
    y0 = (cy - half_h).clamp(0.0, float(h))
    y1 = (cy + half_h).clamp(0.0, float(h))
    boxes = torch.stack([x0, y0, x1, y1], dim=-1)
    whole = torch.tensor([0.0, 0.0, float(w), float(h)], device=boxes.device)
    return torch.where(empty.unsqueeze(-1), whole, boxes)


def _affine_grids(boxes: torch.Tensor, height: int, width: int, size: tuple[int, int]) -> torch.Tensor:
    """Sampling grids ``(N, S_h, S_w, 2)`` putting output pixel centres evenly inside each box.

    Output pixel ``j`` samples ``x0 + (j + 0.5) (x1 - x0) / S_w``; with ``align_corners=False`` the
    normalised coordinate of pixel-edge position ``x`` is ``2 x / W - 1``. This is
    ``F.affine_grid`` for an axis-aligned affine map, built separably (cheaper than a batched
    matrix product over every output pixel).
    """
    sh, sw = size
    x0, y0, x1, y1 = boxes.float().unbind(-1)
    fx = (torch.arange(sw, dtype=torch.float32, device=boxes.device) + 0.5) / sw
    fy = (torch.arange(sh, dtype=torch.float32, device=boxes.device) + 0.5) / sh
    gx = (x0[:, None] + fx[None, :] * (x1 - x0)[:, None]) * (2.0 / width) - 1.0  # (N, S_w)
    gy = (y0[:, None] + fy[None, :] * (y1 - y0)[:, None]) * (2.0 / height) - 1.0  # (N, S_h)
    n = boxes.shape[0]
    return torch.stack([gx[:, None, :].expand(n, sh, sw), gy[:, :, None].expand(n, sh, sw)], dim=-1)


def crop_and_resize(
    frames: torch.Tensor, probs: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample every (frame, object) box to ``size``: RGB ``(T, K, 3, S, S)``, prob ``(T, K, 1, S, S)``.

    ``frames`` is float ``(T, 3, H, W)`` (any value range, it is interpolated as is), ``probs`` float
    ``(T, K, H, W)``, ``boxes`` ``(T, K, 4)`` from :func:`mask_boxes`. Bilinear, border-replicated.
    """
    sh, sw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if sh <= 0 or sw <= 0:
        raise InputValidationError(f"crop size must be positive, got {size!r}")
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputValidationError(f"frames must be (T, 3, H, W), got shape {tuple(frames.shape)}")
    if probs.ndim != 4:
        raise InputValidationError(f"probs must be (T, K, H, W), got shape {tuple(probs.shape)}")
    t, k, h, w = probs.shape
    if frames.shape[0] != t or tuple(frames.shape[2:]) != (h, w):
        raise InputValidationError(
            f"frames {tuple(frames.shape)} and probs {tuple(probs.shape)} differ in T, H or W"
        )
    if tuple(boxes.shape) != (t, k, 4):
        raise InputValidationError(f"boxes must be ({t}, {k}, 4), got {tuple(boxes.shape)}")
    grids = _affine_grids(boxes.reshape(t * k, 4).float(), h, w, (sh, sw))  # (T*K, S, S, 2)
    # Frames: the K grids of one frame stacked along the output height -> one call, no copies.
    rgb = F.grid_sample(
        frames.float(),
        grids.reshape(t, k * sh, sw, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )  # (T, 3, K*S, S)
    rgb = rgb.reshape(t, 3, k, sh, sw).permute(0, 2, 1, 3, 4)
    prob = F.grid_sample(
        probs.reshape(t * k, 1, h, w).float(),
        grids,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return rgb, prob.reshape(t, k, 1, sh, sw)


def crop_inputs(
    frames: np.ndarray | torch.Tensor,
    probs: np.ndarray | torch.Tensor,
    size: int | tuple[int, int],
    enlarge: float = 1.5,
    threshold: float = 0.5,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quality-net inputs from raw arrays: RGB in [0, 1] ``(T, K, 3, S, S)``, prob in [0, 1], boxes.

    ``frames`` are ``(T, H, W, 3)`` uint8, ``probs`` ``(T, K, H, W)`` uint8 (value / 255) or float in
    [0, 1]. Inputs are assumed validated (see :func:`validate_inputs`); uint8 stays uint8 until it is
    on ``device`` so a GPU does the conversion.
    """
    f = torch.as_tensor(frames).to(device)
    p = torch.as_tensor(probs).to(device)
    boxes = mask_boxes(p, threshold=threshold, enlarge=enlarge)
    # Bilinear resampling is linear, so uint8 -> [0, 1] scaling is applied to the small crops only.
    rgb, prob = crop_and_resize(f.permute(0, 3, 1, 2), p, boxes, size)
    if f.dtype == torch.uint8:
        rgb = rgb.mul_(1.0 / 255.0)
    if p.dtype == torch.uint8:
        prob = prob.mul_(1.0 / 255.0)
    return rgb, prob, boxes


def validate_inputs(frames: np.ndarray, probs: np.ndarray) -> None:
    """Raise :class:`InputValidationError` unless frames/probs follow the array conventions.

    frames ``(T, H, W, 3)`` uint8; probs ``(T, K, H, W)`` uint8 or float with values in [0, 1] and
    no NaN; T, H and W must agree.
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputValidationError(
            f"frames must be a (T, H, W, 3) uint8 array, got {type(frames).__name__} "
            f"shape {getattr(frames, 'shape', None)}"
        )
    if frames.dtype != np.uint8:
        raise InputValidationError(f"frames must be uint8, got dtype {frames.dtype}")
    if not isinstance(probs, np.ndarray) or probs.ndim != 4:
        raise InputValidationError(
            f"probs must be a (T, K, H, W) array, got {type(probs).__name__} "
            f"shape {getattr(probs, 'shape', None)}"
        )
    t, k, h, w = probs.shape
    if frames.shape[:3] != (t, h, w):
        raise InputValidationError(
            f"frames shape {frames.shape} and probs shape {probs.shape} differ: "
            f"expected frames ({t}, {h}, {w}, 3)"
        )
    if k == 0 or t == 0:
        raise InputValidationError(f"probs need at least one frame and one object, got shape {probs.shape}")
    if probs.dtype == np.uint8:
        return
    if not np.issubdtype(probs.dtype, np.floating):
        raise InputValidationError(f"probs must be uint8 or float, got dtype {probs.dtype}")
    n_nan = int(np.isnan(probs).sum())
    if n_nan:
        raise InputValidationError(f"probs contain {n_nan} NaN values")
    lo, hi = float(probs.min()), float(probs.max())
    if lo < 0.0 or hi > 1.0:
        raise InputValidationError(f"float probs must lie in [0, 1], got range [{lo}, {hi}]")
