"""Is the estimate a calibrated J&F? Reliability diagram, expected calibration error, interval coverage.

For a regression target in [0, 1] the reliability diagram bins the estimates and compares each
bin's mean estimate with the mean true J&F of its rows; the expected calibration error (ECE) is
the row-weighted mean absolute gap. The uncertainty is checked separately: the fraction of rows
whose true J&F falls within ``estimate ± z·sd`` should match the nominal level of the interval.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from ivos_rl.errors import InputValidationError


def _arrays(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]
    if len({a.size for a in out}) != 1 or out[0].size == 0:
        raise InputValidationError(
            f"calibration inputs must be non-empty and equally long, got {[a.size for a in out]}"
        )
    if not all(np.isfinite(a).all() for a in out):
        raise InputValidationError("calibration inputs must be finite")
    return out


def reliability(pred: np.ndarray, target: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability diagram over ``bins`` equal bins of [0, 1] and the ECE.

    Returns ``{"ece", "bins": [{"lo", "hi", "n", "pred", "true"}, ...]}`` (empty bins omitted).
    """
    p, t = _arrays(pred, target)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise InputValidationError(f"bins must be an int >= 1, got {bins!r}")
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        if not n:
            continue
        mp, mt = float(p[sel].mean()), float(t[sel].mean())
        ece += n / p.size * abs(mp - mt)
        rows.append({"lo": b / bins, "hi": (b + 1) / bins, "n": n, "pred": mp, "true": mt})
    return {"ece": float(ece), "bins": rows}


def coverage(pred: np.ndarray, sd: np.ndarray, target: np.ndarray, level: float = 0.8) -> float:
    """Fraction of rows whose target lies within the central ``level`` Gaussian interval."""
    p, s, t = _arrays(pred, sd, target)
    if not 0 < level < 1:
        raise InputValidationError(f"level must be in (0, 1), got {level!r}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return float(np.mean(np.abs(t - p) <= z * s))


def format_reliability(rel: dict[str, Any], width: int = 30) -> str:
    """Text reliability diagram: per bin, mean estimate vs mean truth with a bar for the truth."""
    lines = [f"ECE {rel['ece']:.4f}", "bin           n    est   true"]
    for b in rel["bins"]:
        bar = "#" * round(width * b["true"])
        lines.append(f"[{b['lo']:.1f},{b['hi']:.1f}) {b['n']:7d} {b['pred']:.3f} {b['true']:.3f} {bar}")
    return "\n".join(lines)
