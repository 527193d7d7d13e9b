"""Per-label colour models as smoothed 3-D histograms over quantised CIE-Lab colour.

Histograms instead of GMMs: fitting is one ``bincount`` and evaluating is one table lookup per
pixel, which is what makes a colour correction at every propagation step affordable on CPU.
The few hundred pixels of a stroke are enough once the histogram is smoothed in colour space.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy import ndimage as ndi

from ivos_rl.errors import InputValidationError


def quantise_colours(frames: np.ndarray, bins: int) -> np.ndarray:
    """Map RGB frames (T, H, W, 3) uint8 to Lab histogram-bin indices (T, H, W) uint16.

    Lab separates lightness from chroma, so shadows move a pixel along one axis only.
    """
    if bins < 2 or bins > 40:
        raise InputValidationError(f"colour bins must be in [2, 40], got {bins}")
    out = np.empty(frames.shape[:3], dtype=np.uint16)
    for t in range(frames.shape[0]):
        lab = cv2.cvtColor(frames[t], cv2.COLOR_RGB2LAB)
        q = (lab.astype(np.uint16) * bins) >> 8
        out[t] = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    return out


@functools.lru_cache(maxsize=8)
def _gaussian_weights(sigma: float) -> np.ndarray:
    """scipy's ``gaussian_filter1d`` taps for ``sigma`` (truncate 4), by its own operations."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    weights = (phi / phi.sum())[::-1]
    weights.flags.writeable = False
    return weights


def smooth_histograms(hists: np.ndarray, sigma: float) -> np.ndarray:
    """``ndi.gaussian_filter(hists, (0, sigma, ...), mode="nearest")`` of (L, bins, ...) float64:
    each label's histogram smoothed, none across labels.

    The same 1-D passes, in the same order and in place on one output (the same bits: tested), with
    the taps computed once: scipy rebuilds them and its checks on every call, which cost a quarter
    of a call on these small tables (a propagation step smooths one or two of them).
    """
    weights = _gaussian_weights(float(sigma))
    out = np.empty_like(hists, dtype=np.float64)
    src = hists
    for axis in range(1, hists.ndim):
        ndi.correlate1d(src, weights, axis, out, mode="nearest")
        src = out
    return out


class ColourModel:
    """One smoothed histogram per label (0 = background, 1..K = objects).

    ``add`` accumulates weighted pixel samples; ``log_likelihood`` returns log p(colour | label)
    for every pixel of a quantised frame. A small uniform floor keeps unseen colours from
    producing infinite costs.
    """

    def __init__(
        self, n_labels: int, bins: int, smoothing: float = 1.0, floor: float = 1e-3, dims: int = 3
    ) -> None:
        self.n_labels = n_labels
        self.bins = bins
        self.dims = dims
        self.smoothing = smoothing
        self.floor = floor
        self.counts = np.zeros((n_labels, bins**dims), dtype=np.float64)
        self._log_tables: np.ndarray | None = None

    def add(self, bin_idx: np.ndarray, weights: np.ndarray) -> None:
        """Add samples: ``bin_idx`` (N,) colour bins, ``weights`` (n_labels, N) soft memberships."""
        flat = bin_idx.ravel()
        for label in range(self.n_labels):
            w = weights[label].ravel()
            if w.any():
                self.counts[label] += np.bincount(flat, weights=w, minlength=self.bins**self.dims)
        self._log_tables = None

    def add_sparse(self, bin_idx: np.ndarray, weights: np.ndarray) -> None:
        """:meth:`add` for non-negative ``weights`` that are mostly zero (a stroke's samples in a
        box): only the samples with a weight are counted. The same sums: ``bincount`` adds the
        weights in order from +0.0, and adding +0.0 changes no sum."""
        flat = bin_idx.ravel()
        for label in range(self.n_labels):
            w = weights[label].ravel()
            on = np.flatnonzero(w)
            if on.size:
                self.counts[label] += np.bincount(flat[on], weights=w[on], minlength=self.bins**self.dims)
        self._log_tables = None

    def add_labels(self, bin_idx: np.ndarray, labels: np.ndarray) -> None:
        """Add hard-labelled samples: the counts of :meth:`add` with one-hot weights (sums of
        ones are exact in float64), without building the (n_labels, N) weights."""
        flat, lab = bin_idx.ravel(), labels.ravel()
        for label in range(self.n_labels):
            chosen = flat[lab == label]
            if chosen.size:
                self.counts[label] += np.bincount(chosen, minlength=self.bins**self.dims)
        self._log_tables = None

    def merge(self, other: ColourModel, weight: float = 1.0) -> None:
        """Add another model's (normalised) counts, scaled so it weighs ``weight`` samples per label."""
        totals = other.counts.sum(axis=1, keepdims=True)
        norm = np.divide(other.counts, totals, out=np.zeros_like(other.counts), where=totals > 0)
        self.counts += weight * norm
        self._log_tables = None

    def n_samples(self) -> np.ndarray:
        """Total weight per label, (n_labels,)."""
        return self.counts.sum(axis=1)

    def log_tables(self) -> np.ndarray:
        """(n_labels, bins**dims) float32 log densities (smoothed, floored, normalised)."""
        if self._log_tables is None:
            tables = np.empty_like(self.counts, dtype=np.float32)
            hists = self.counts.reshape((self.n_labels,) + (self.bins,) * self.dims)
            if self.smoothing > 0:
                hists = smooth_histograms(hists, self.smoothing)
            for label in range(self.n_labels):
                h = hists[label]
                total = h.sum()
                p = h / total if total > 0 else np.full_like(h, 1.0 / h.size)
                p = (1.0 - self.floor) * p + self.floor / h.size
                tables[label] = np.log(p.ravel()).astype(np.float32)
            self._log_tables = tables
        return self._log_tables

    def log_likelihood(self, bin_idx: np.ndarray) -> np.ndarray:
        """log p(colour | label) for each pixel: (n_labels, *bin_idx.shape) float32."""
        return np.take(self.log_tables(), bin_idx, axis=1)  # = tables[:, bin_idx], 2-3x faster
