"""Accuracy of a quality net: Pearson correlation (PCC) and MSE against the true J&F (Table 3).

Samples carry the backend that produced them, so one call reports every backend separately:
training on one backend's masks and testing on another's shows how well the estimate transfers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ivos_rl.errors import ConfigError, InputValidationError
from ivos_rl.quality.checkpoint import load_model
from ivos_rl.quality.model import QualityNet
from ivos_rl.quality.samples import SampleSet, load_samples
from ivos_rl.utils.io import atomic_path, atomic_write_json


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    if p.shape != t.shape or p.size == 0:
        raise InputValidationError(
            f"pred and target must be non-empty and equally long, got {p.size} and {t.size}"
        )
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise InputValidationError("pred and target must be finite")
    return p, t


def pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (the correlation is undefined)."""
    p, t = _pair(pred, target)
    pc, tc = p - p.mean(), t - t.mean()
    denom = float(np.sqrt((pc * pc).sum() * (tc * tc).sum()))
    return float((pc * tc).sum() / denom) if denom > 0 else float("nan")


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error (IVOS-W Eq. 8 averaged over samples)."""
    p, t = _pair(pred, target)
    return float(np.mean((p - t) ** 2))


def quality_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PCC, MSE, MAE, sample count and the two means (a biased net shows in the means)."""
    p, t = _pair(pred, target)
    return {
        "pcc": pearson(p, t),
        "mse": mse(p, t),
        "mae": float(np.mean(np.abs(p - t))),
        "n": int(p.size),
        "target_mean": float(t.mean()),
        "pred_mean": float(p.mean()),
    }


def within_group_spearman(pred: np.ndarray, target: np.ndarray, groups: np.ndarray) -> float:
    """Mean over groups (e.g. the frames of one round) of the Spearman correlation of estimate and
    truth: the order the Worst rule uses. Groups with fewer than 3 rows or a constant side are
    skipped (NaN when none is left)."""
    from scipy.stats import rankdata

    p, t = _pair(pred, target)
    g = np.asarray(groups).reshape(-1)
    if g.shape != p.shape:
        raise InputValidationError(f"groups must have one entry per row, got {g.size} for {p.size}")
    order = np.argsort(g, kind="stable")
    bounds = np.flatnonzero(np.diff(g[order])) + 1
    rhos = []
    for idx in np.split(order, bounds):
        if idx.size > 2 and p[idx].std() > 0 and t[idx].std() > 0:
            rhos.append(pearson(rankdata(p[idx]), rankdata(t[idx])))
    return float(np.mean(rhos)) if rhos else float("nan")


def check_geometry(model: QualityNet, samples: SampleSet) -> None:
    """Refuse samples cropped with another enlargement/threshold than the model was built for."""
    cfg = model.config
    enlarge, threshold = samples.meta.get("enlarge"), samples.meta.get("threshold")
    if enlarge is None or threshold is None:
        return
    if abs(float(enlarge) - cfg.enlarge) > 1e-9 or abs(float(threshold) - cfg.threshold) > 1e-9:
        raise ConfigError(
            f"samples were cropped with enlarge={enlarge}, threshold={threshold} but the model expects "
            f"enlarge={cfg.enlarge}, threshold={cfg.threshold}; regenerate the samples or change the model"
        )


@torch.inference_mode()
def predict_with_uncertainty(
    model: QualityNet, samples: SampleSet, batch_size: int = 128, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Predicted quality (N,) for every stored crop (with its signal rows for a fusion net) and the
    standard deviation (N,) of a fusion net's estimate (None for a crop-only net), in eval mode."""
    check_geometry(model, samples)
    was_training = model.training
    model.eval().to(device)
    mus, sds = [], []
    size = model.config.input_size
    for start in range(0, len(samples), batch_size):
        index = slice(start, start + batch_size)
        rgb, prob, _ = samples.tensors(index, size)
        x = samples.signals(index, model.config.features).to(device) if model.fused else None
        fmt = torch.channels_last  # matches models trained/served in NHWC; values do not depend on it
        emb = model.embed(rgb.to(device, memory_format=fmt), prob.to(device, memory_format=fmt))
        mu, log_var = model.head_out(emb, x)
        mus.append(mu.float().cpu())
        if log_var is not None:
            sds.append(model.uncertainty(log_var).float().cpu())
    model.train(was_training)
    if not mus:
        return np.zeros(0, np.float32), (np.zeros(0, np.float32) if model.fused else None)
    return torch.cat(mus).numpy(), torch.cat(sds).numpy() if sds else None


def predict_samples(
    model: QualityNet, samples: SampleSet, batch_size: int = 128, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Predicted quality (N,) for every stored crop, in eval mode."""
    return predict_with_uncertainty(model, samples, batch_size, device)[0]


def save_predictions(
    path: str | Path, model: QualityNet, samples: SampleSet, device: str | torch.device = "cpu"
) -> Path:
    """Write the estimates (and standard deviations of a fusion net, else NaN) of every sample
    with its keys and target to ``path`` (.npz, atomic): the out-of-fold rows of a CV fold."""
    pred, sd = predict_with_uncertainty(model, samples, device=device)
    fingerprint = np.full(len(samples), "unknown") if samples.fingerprint is None else samples.fingerprint
    return write_predictions(path, samples, fingerprint, pred, sd)


def write_predictions(
    path: str | Path,
    rows: Any,
    fingerprint: np.ndarray,
    pred: np.ndarray,
    sd: np.ndarray | None,
    fold: np.ndarray | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Out-of-fold rows for :mod:`ivos_rl.quality.cv_report`: the keys (``rows.sequence``,
    ``strategy``, ``init``, ``round``, ``frame``, ``object_id``) and ``rows.jf`` of a sample set or
    feature rows, the backend ``fingerprint`` per row, estimate, sd (NaN when None), optional fold
    and ``extra`` per-row arrays (e.g. the ``degraded`` kind)."""
    names = ("sequence", "strategy", "init", "round", "frame", "object_id", "jf")
    arrays = {k: getattr(rows, k) for k in names}
    arrays.update(
        pred=np.asarray(pred, np.float32),
        sd=np.full(len(pred), np.nan, np.float32) if sd is None else np.asarray(sd, np.float32),
        fingerprint=np.asarray(fingerprint),
    )
    if fold is not None:
        arrays["fold"] = np.asarray(fold, np.int64)
    arrays.update(extra or {})
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def evaluate_samples(
    model: QualityNet, samples: SampleSet, batch_size: int = 128, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Metrics over all samples (``"all"``) and per backend (``"backend/<name>"``)."""
    pred = predict_samples(model, samples, batch_size=batch_size, device=device)
    result: dict[str, Any] = {"all": quality_metrics(pred, samples.jf)}
    for name in sorted(set(samples.backend.tolist())):
        sel = samples.backend == name
        result[f"backend/{name}"] = quality_metrics(pred[sel], samples.jf[sel])
    return result


def assess_quality(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """Entry point of ``scripts/eval_quality.py``.

    ``cfg.checkpoint``: quality checkpoint; ``cfg.samples``: sample folders (one per backend, any
    number); ``cfg.sequences``: optional list restricting the evaluation to these sequences (e.g.
    the held-out ones); ``cfg.output``: optional JSON file for the results.
    """
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    if not cfg.get("checkpoint"):
        raise ConfigError("eval_quality needs checkpoint=<path to a quality checkpoint>")
    folders = list(cfg.samples) if not isinstance(cfg.samples, str) else [cfg.samples]
    if not folders:
        raise ConfigError("eval_quality needs samples=[<sample folder>, ...]")
    model, payload = load_model(cfg.checkpoint)
    model = model.to(memory_format=torch.channels_last)
    samples = load_samples(folders)
    if cfg.get("sequences"):
        wanted = set(cfg.sequences)
        unknown = wanted - set(samples.sequence.tolist())
        if unknown:
            raise ConfigError(f"sequences {sorted(unknown)} are not in the samples {folders}")
        samples = samples.subset(np.isin(samples.sequence, sorted(wanted)))
    result = evaluate_samples(model, samples, batch_size=int(cfg.get("batch_size", 128)))
    result["checkpoint"] = str(cfg.checkpoint)
    result["model_config"] = payload["model_config"]
    result["samples"] = [str(f) for f in folders]
    for key, m in result.items():
        if isinstance(m, dict) and "pcc" in m:
            print(f"{key:28s} n={m['n']:6d}  PCC={m['pcc']:.3f}  MSE={m['mse']:.4f}  MAE={m['mae']:.3f}")
    if cfg.get("output"):
        atomic_write_json(Path(cfg.output), result)
    return result
