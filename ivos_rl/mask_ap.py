"""Mask AP of an interactive run: COCO instance-segmentation AP with the quality estimate as confidence.

J&F scores masks; it ignores whether the system *knows* which masks are good. Mask AP (COCO's
``COCOeval`` with ``iouType="segm"``) ranks every predicted (frame, object) mask of a round by a
confidence score, here the quality net's per-object estimate, so one number rewards both good
masks and confidences that put the bad ones last.

Instances: each (sample, frame, object) is its own COCO image with one category. Its ground truth
is the object's mask when the object is present in that frame; its detection is the predicted
mask when non-empty (an empty prediction is "no detection"), scored by the estimate. With at
most one ground truth and one detection per image, COCO's matching reduces to "IoU >= threshold",
and the IoU of a (frame, object) is the report's Jaccard, so :func:`mask_ap_from_matches`
reproduces ``COCOeval.evaluate/accumulate/summarize`` (all areas, 100 detections) from
(IoU, score, presence) arrays without re-encoding masks; :func:`coco_mask_ap` runs pycocotools
itself on masks (the definition, used by the tests to check equality).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ivos_rl.errors import InputValidationError

__all__ = [
    "IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "coco_mask_ap",
    "mask_ap_from_matches",
    "mask_ap_per_round",
    "presence",
]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
"""COCO's IoU thresholds .50:.05:.95 (built exactly as ``pycocotools.cocoeval.Params``)."""
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
"""COCO's 101 recall points."""


def _ap_at(matched: np.ndarray, n_gt: int) -> float:
    """COCO's interpolated precision averaged over the 101 recall points, detections ranked."""
    tp = np.cumsum(matched, dtype=np.float64)
    fp = np.cumsum(~matched, dtype=np.float64)
    recall = tp / n_gt
    precision = (tp / (fp + tp + np.spacing(1))).tolist()
    for i in range(len(precision) - 1, 0, -1):  # make precision non-increasing, as COCO does
        if precision[i] > precision[i - 1]:
            precision[i - 1] = precision[i]
    q = np.zeros(RECALL_THRESHOLDS.size)
    for ri, pi in enumerate(np.searchsorted(recall, RECALL_THRESHOLDS, side="left")):
        if pi < len(precision):
            q[ri] = precision[pi]
    return float(q.mean())


def mask_ap_from_matches(
    iou: Sequence[float], score: Sequence[float], has_gt: Sequence[bool], has_det: Sequence[bool]
) -> dict[str, float]:
    """COCO Mask AP, AP50 and AP75 of instances given as (IoU, score, has ground truth, has detection).

    One entry per COCO image (a (frame, object)), in image order; ties in score keep that order,
    like COCOeval's stable sort. Returns -1.0 for every value when no image has ground truth
    (COCO's "undefined").
    """
    arrays = [np.asarray(v) for v in (iou, score, has_gt, has_det)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise InputValidationError(
            f"iou, score, has_gt, has_det must be 1-D of one length, got {[a.shape for a in arrays]}"
        )
    iou_a, score_a = arrays[0].astype(np.float64), arrays[1].astype(np.float64)
    gt_a, det_a = arrays[2].astype(bool), arrays[3].astype(bool)
    if not (np.isfinite(iou_a).all() and np.isfinite(score_a[det_a]).all()):
        raise InputValidationError("iou and the scores of detections must be finite")
    n_gt = int(gt_a.sum())
    if n_gt == 0:
        return {"AP": -1.0, "AP50": -1.0, "AP75": -1.0}
    det = np.flatnonzero(det_a)
    order = det[np.argsort(-score_a[det], kind="mergesort")]
    per_threshold = []
    for thr in IOU_THRESHOLDS:
        matched = gt_a[order] & (iou_a[order] >= min(thr, 1 - 1e-10))
        per_threshold.append(_ap_at(matched, n_gt) if order.size else 0.0)
    return {"AP": float(np.mean(per_threshold)), "AP50": per_threshold[0], "AP75": per_threshold[5]}


def coco_mask_ap(
    gt_masks: Sequence[np.ndarray], pred_masks: Sequence[np.ndarray], scores: Sequence[float]
) -> dict[str, float]:
    """pycocotools ``COCOeval`` (segm) with one image per instance: the definition of Mask AP.

    ``gt_masks[i]`` / ``pred_masks[i]`` are (H, W) masks of instance i (an empty ground truth: the
    object is absent; an empty prediction: no detection), ``scores[i]`` its confidence.
    """
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not len(gt_masks) == len(pred_masks) == len(scores):
        raise InputValidationError("gt_masks, pred_masks and scores must have the same length")
    images, annotations, detections = [], [], []
    for i, (g, p, s) in enumerate(zip(gt_masks, pred_masks, scores, strict=True), start=1):
        g, p = np.asarray(g, dtype=bool), np.asarray(p, dtype=bool)
        images.append({"id": i, "height": int(g.shape[0]), "width": int(g.shape[1])})
        if g.any():
            rle = mask_utils.encode(np.asfortranarray(g.astype(np.uint8)))
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i, "category_id": 1, "segmentation": rle,
                 "area": float(mask_utils.area(rle)), "bbox": list(mask_utils.toBbox(rle)), "iscrowd": 0}
            )  # fmt: skip
        if p.any():
            rle = mask_utils.encode(np.asfortranarray(p.astype(np.uint8)))
            detections.append({"image_id": i, "category_id": 1, "segmentation": rle, "score": float(s)})
    if not annotations:
        return {"AP": -1.0, "AP50": -1.0, "AP75": -1.0}
    if not detections:  # pycocotools refuses an empty result list; nothing detected: AP 0
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "object"}],
        }
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(detections), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}


def presence(labels: np.ndarray, n_objects: int) -> np.ndarray:
    """(T, K) bool: object k + 1 has at least one pixel in frame t of a (T, H, W) label map."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputValidationError(f"labels must be (T, H, W), got shape {labels.shape}")
    return np.stack([(labels == k).any(axis=(1, 2)) for k in range(1, n_objects + 1)], axis=1)


def mask_ap_per_round(samples: Sequence[Any]) -> dict[str, list[float]] | None:
    """Mask AP / AP50 / AP75 after each round over the samples of a run (None without scores).

    Each sample (an :class:`~ivos_rl.evaluation.SampleResult`) gives per round the quality
    estimate per (frame, object) (``quality_scores``), which objects the prediction contains
    (``pred_present``), which the ground truth contains (``gt_present``) and, in its report rows,
    the Jaccard (= mask IoU). A round a sample did not reach (timeout) leaves it out of that round
    (-1, COCO's "undefined", when no sample reached it).
    """
    scored = [s for s in samples if getattr(s, "quality_scores", None)]
    if not scored:
        return None
    n_rounds = max(len(s.quality_scores) for s in scored)
    out: dict[str, list[float]] = {"AP": [], "AP50": [], "AP75": []}
    for r in range(n_rounds):
        parts: list[list[np.ndarray]] = [[], [], [], []]
        for s in scored:
            if r >= len(s.quality_scores):
                continue
            rows = [row for row in s.rows if int(row["interaction"]) == r + 1]
            if not rows:  # the round came after the timeout and was not scored
                continue
            gt = np.asarray(s.gt_present, dtype=bool)
            iou = np.zeros(gt.shape)
            for row in rows:
                iou[int(row["frame"]), int(row["object_id"]) - 1] = float(row["jaccard"])
            for part, values in zip(parts, (iou, s.quality_scores[r], gt, s.pred_present[r]), strict=True):
                part.append(np.asarray(values).reshape(-1))
        if not parts[0]:  # no sample reached this round: undefined, as COCO writes it
            res = {"AP": -1.0, "AP50": -1.0, "AP75": -1.0}
        else:
            res = mask_ap_from_matches(*(np.concatenate(p) for p in parts))
        for key in out:
            out[key].append(res[key])
    return out
