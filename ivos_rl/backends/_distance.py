"""Exact Euclidean distance transform that gives the same bytes on every call.

OpenCV's exact transform (``cv2.distanceTransform(..., cv2.DIST_L2, cv2.DIST_MASK_PRECISE)``) is fast, but
on some masks it returns a value one float32 ulp off, and which calls are off varies from one call to the
next (seen with opencv-python-headless 4.14 and 5.0, one thread or several). The simulated backend's signed
distances and the propagation backend's reach test read it, so the same seed could give different outputs.
The true squared distance between pixel centres is an integer: rounding the square of OpenCV's value
recovers it whenever the error is below 0.5, and its square root is then correctly rounded and the same
every time (it equals ``scipy.ndimage.distance_transform_edt`` cast to float32: test).
"""

from __future__ import annotations

import cv2
import numpy as np

from ivos_rl.errors import InputValidationError

__all__ = ["exact_distance"]

# OpenCV's value d' = d (1 + e), |e| <= 2^-23 (one float32 ulp); d'^2 - d^2 ~ 2 e d^2 stays below 0.5 while
# d^2 < 2^21 (d < 1448 px). Larger images (a diagonal of 1448 px or more) use SciPy's exact transform.
_ROUNDABLE_SQUARED = 2**21


def exact_distance(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32: for each nonzero pixel of the 2-D ``mask``, the Euclidean distance to the nearest
    zero pixel (0 on zero pixels); deterministic and correctly rounded (see the module docstring)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputValidationError(f"exact_distance needs a 2-D mask, got shape {m.shape}")
    m8 = (m != 0).astype(np.uint8)
    h, w = m8.shape
    if h * h + w * w >= _ROUNDABLE_SQUARED:
        from scipy import ndimage

        return ndimage.distance_transform_edt(m8).astype(np.float32)
    d = cv2.distanceTransform(m8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float64)
    np.multiply(d, d, out=d)
    np.rint(d, out=d)
    np.sqrt(d, out=d)
    return d.astype(np.float32)
