"""Per-frame statistics over a mask, shared by the quality signals (base and motion columns)."""

from __future__ import annotations

import numpy as np


def mean_in(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Per-frame mean of ``values`` (T, h, w) over ``where`` (T, h, w) bool (0 where nothing is selected)."""
    n = where.sum(axis=(1, 2))
    return np.where(n > 0, (values * where).sum(axis=(1, 2)) / np.maximum(n, 1), 0.0)
