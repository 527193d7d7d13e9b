"""Annotated-frame segmentation: strokes + colour + prior, solved with Potts graph cuts.

Max-flow runs on PyMaxflow (Boykov-Kolmogorov, compiled; 2-3x faster than scipy's Dinic on these
grid graphs) when it is installed, else on ``scipy.sparse.csgraph.maximum_flow``; both get the
same integer capacities (energies scaled by :data:`SCALE` and rounded) and both return the
*minimal* minimum cut (the pixels reachable from the source in the residual graph, unique for
every maximum flow), so the labels are identical (tested). Two labels are solved exactly with
one cut; more labels use alpha-expansion (Boykov, Veksler & Zabih 2001), which is exact up to
a factor 2 for Potts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

from ivos_rl.backends._colour_model import ColourModel
from ivos_rl.backends._flow import as_float32
from ivos_rl.errors import InputValidationError
from ivos_rl.scribbles import bresenham
from ivos_rl.utils.logging import get_logger

try:
    import maxflow as _bk
except ImportError:  # a declared dependency; without it the (identical, slower) scipy solver runs
    _bk = None

_log = get_logger(__name__)
_WARNED: list[bool] = []  # the missing-PyMaxflow warning is given once

SCALE = 64.0
HARD = 1e5  # energy that no soft term can outweigh (a forbidden label)
_CAP_LIMIT = np.iinfo(np.int32).max // 4  # int32 capacities with room for sums
_NEIGHBOURS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, 2**-0.5), (1, -1, 2**-0.5))


def contrast_weights(image: np.ndarray, strength: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Contrast-sensitive Potts weights ``strength * exp(-beta |dI|^2) / dist`` for 8 neighbours.

    ``image`` is (H, W, C) float32. Returns, per neighbour direction, flat indices of both
    endpoints and the weights, so one weight list serves every cut on this image.
    ``beta`` is set from the mean squared contrast as in GrabCut, making ``strength``
    comparable across images.
    """
    return ContrastEdges(image, strength).per_direction()


class ContrastEdges:
    """The edges of :func:`contrast_weights` on one image, kept per direction with their squared
    contrasts, so that a cut restricted to a band (``potts_graph_cut(free=...)``) gets the edges
    touching its free pixels only (:meth:`touching`), their weights computed for those alone.

    The band cut of a coarse-to-fine segmentation uses a thin ring of a box's edges; selecting it
    from the whole list cost more than the cut's own set-up. The weights of an edge are the same
    numbers either way (one exp per edge), and the edges keep their order.
    """

    def __init__(self, image: np.ndarray, strength: float) -> None:
        h, w = image.shape[:2]
        self.shape = (h, w)
        self.strength = strength
        #: per direction: (dy, ys, ye, xs, xe, xs2, xe2, dist, flat squared contrasts)
        self._dirs: list[tuple[int, int, int, int, int, int, int, float, np.ndarray]] = []
        for dy, dx, dist in _NEIGHBOURS:
            ys, ye = 0, h - dy
            if dx >= 0:
                xs, xe, xs2, xe2 = 0, w - dx, dx, w
            else:
                xs, xe, xs2, xe2 = -dx, w, 0, w + dx
            d = image[ys:ye, xs:xe] - image[ys + dy : ye + dy, xs2:xe2]
            d *= d
            # Channel by channel, in the order np.sum(axis=-1) adds them (same bits, ~8x faster).
            d2 = d[..., 0] + d[..., 1] + d[..., 2] if d.shape[-1] == 3 else np.sum(d, axis=-1)
            self._dirs.append((dy, ys, ye, xs, xe, xs2, xe2, dist, d2.ravel()))
        mean_d2 = float(np.mean(np.concatenate([d[-1] for d in self._dirs]))) if self._dirs else 0.0
        self.beta = 1.0 / (2.0 * mean_d2) if mean_d2 > 0 else 0.0

    def _weights(self, dist: float, d2: np.ndarray) -> np.ndarray:
        return (self.strength / dist) * np.exp(-self.beta * d2)

    def per_direction(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every edge: per direction (p, q, w) (:func:`contrast_weights`)."""
        idx = np.arange(self.shape[0] * self.shape[1]).reshape(self.shape)
        return [
            (idx[ys:ye, xs:xe].ravel(), idx[ys + dy : ye + dy, xs2:xe2].ravel(), self._weights(dist, d2))
            for dy, ys, ye, xs, xe, xs2, xe2, dist, d2 in self._dirs
        ]

    def joined(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every edge as one (p, q, w), directions in order (:func:`_joined`)."""
        return _joined(self.per_direction())

    def touching(self, free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The edges of :meth:`joined` with at least one end in ``free`` (H, W bool), in the same
        order: the only ones ``potts_graph_cut(..., free=free)`` uses (the others join two fixed
        pixels), so its labels are the same."""
        width = self.shape[1]
        parts = []
        for dy, ys, ye, xs, xe, xs2, xe2, dist, d2 in self._dirs:
            sel = np.flatnonzero(free[ys:ye, xs:xe] | free[ys + dy : ye + dy, xs2:xe2])
            row, col = np.divmod(sel, max(xe - xs, 1))
            p = (ys + row) * width + (xs + col)
            q = (ys + dy + row) * width + (xs2 + col)
            parts.append((p, q, self._weights(dist, d2[sel])))
        return _joined(parts)


def _min_cut(
    n: int,
    cost0: np.ndarray,
    cost1: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    symmetric: bool = False,
    solver: str | None = None,
    reuse: CutGraph | None = None,
) -> np.ndarray:
    """Binary labels minimising sum cost_{x_i} + sum_{edges p->q} w [x_p = 0 and x_q = 1].

    Nodes on the source side take label 1 (the minimal source side: the nodes reachable from
    the source in the residual graph). ``w`` is the capacity of the directed edge q -> p (paid
    when q is labelled 1 and p is labelled 0); ``symmetric`` adds the edge p -> q with the same
    capacity (a Potts edge). ``solver``: "bk" (PyMaxflow), "scipy", or None (bk if installed).
    ``reuse``: a :class:`CutGraph` that keeps the BK graph for a later cut on the same edges
    (the same labels; ignored by the scipy solver).
    """
    m = np.minimum(cost0, cost1)
    c_src = np.minimum(np.rint((cost0 - m) * SCALE), _CAP_LIMIT).astype(np.int32)
    c_snk = np.minimum(np.rint((cost1 - m) * SCALE), _CAP_LIMIT).astype(np.int32)
    if reuse is not None and solver != "scipy" and _bk is not None and reuse.holds(n, p, q, w, symmetric):
        return reuse.solve_again(c_src, c_snk)
    key = (p, q, w)
    cw = np.minimum(np.rint(w * SCALE), _CAP_LIMIT).astype(np.int32)
    keep = cw > 0
    p, q, cw = p[keep], q[keep], cw[keep]
    if solver is None:
        solver = "scipy" if _bk is None else "bk"
        if _bk is None and not _WARNED:
            _WARNED.append(True)
            _log.warning("PyMaxflow is not installed: graph cuts use scipy's max-flow (same labels, "
                         "2-3x slower); `pip install PyMaxflow`")
    if solver == "bk":
        if reuse is not None:
            return reuse.solve(n, c_src, c_snk, p, q, cw, symmetric, key)
        return _min_cut_bk(n, c_src, c_snk, p, q, cw, symmetric)
    if solver != "scipy":
        raise ValueError(f"_min_cut: solver must be 'bk', 'scipy' or None, got {solver!r}")
    if symmetric:
        p, q, cw = np.concatenate([p, q]), np.concatenate([q, p]), np.concatenate([cw, cw])
    s, t = n, n + 1
    nodes = np.arange(n)
    rows = np.concatenate([np.full(n, s), nodes, q])
    cols = np.concatenate([nodes, np.full(n, t), p])
    caps = np.concatenate([c_src, c_snk, cw])
    graph = sp.csr_array((caps, (rows, cols)), shape=(n + 2, n + 2))
    graph.sum_duplicates()
    flow = maximum_flow(graph, s, t, method="dinic").flow
    residual = (graph - flow).tocsr()
    residual.data[residual.data < 0] = 0
    residual.eliminate_zeros()
    reach = breadth_first_order(residual, s, directed=True, return_predecessors=False)
    labels = np.zeros(n + 2, dtype=bool)
    labels[reach] = True
    return labels[:n]


def _min_cut_bk(
    n: int, c_src: np.ndarray, c_snk: np.ndarray, p: np.ndarray, q: np.ndarray, cw: np.ndarray,
    symmetric: bool,
) -> np.ndarray:
    """:func:`_min_cut` on integer capacities with Boykov-Kolmogorov (PyMaxflow).

    BK labels a node that is in neither search tree at the end (no residual path from the
    source nor to the sink) as source, which is not the minimal cut. So the reversed problem
    is solved (source and sink swapped, every edge reversed): there the sink tree is exactly
    the set of nodes reachable from the original source, which is what label 1 means.
    """
    g, nodes = _bk_graph(n, c_src, c_snk, p, q, cw, symmetric)
    return g.get_grid_segments(nodes)  # type: ignore[no-any-return]


def _bk_graph(
    n: int, c_src: np.ndarray, c_snk: np.ndarray, p: np.ndarray, q: np.ndarray, cw: np.ndarray,
    symmetric: bool,
) -> tuple[Any, np.ndarray]:
    """The reversed BK graph of :func:`_min_cut_bk` after its max-flow, and its node ids."""
    if _bk is None:
        raise ImportError("PyMaxflow is not installed (pip install PyMaxflow)")
    g = _bk.GraphInt(n, len(p))
    nodes = g.add_nodes(n)
    g.add_grid_tedges(nodes, c_snk, c_src)
    g.add_edges(p, q, cw, cw if symmetric else np.zeros_like(cw))
    g.maxflow()
    return g, nodes


class CutGraph:
    """A BK max-flow graph kept for the next cut on the same edges with other unaries.

    A segmentation refits its models and cuts the same coarse grid again (``SegParams.
    iterations``): only the terminal capacities change. The second cut changes them on the
    solved graph and lets BK continue from its flow and search trees (``maxflow(reuse_trees=
    True)``, Kohli & Torr 2005; the changed nodes are marked) instead of building and solving a
    new graph, about half the time of a fresh cut. A terminal change may undercut the flow that
    already runs through a node; BK keeps only the difference of the two terminal capacities, so
    that is the same problem up to a constant, and any maximum flow leaves the same minimal cut
    (what :func:`_min_cut` returns), so the labels are those of a fresh cut (tested).

    One instance serves one caller's sequence of cuts: :func:`_min_cut` uses it while ``n``, the
    edge arrays (the same objects, never written) and ``symmetric`` are those it was built on.
    """

    def __init__(self) -> None:
        self._graph: Any = None
        self._nodes: np.ndarray | None = None
        self._key: tuple[int, np.ndarray, np.ndarray, np.ndarray, bool] | None = None
        self._caps: tuple[np.ndarray, np.ndarray] | None = None  # (BK source, BK sink) capacities

    def holds(self, n: int, p: np.ndarray, q: np.ndarray, w: np.ndarray, symmetric: bool) -> bool:
        """Whether the kept graph was built on exactly these nodes and edge arrays."""
        key = self._key
        return key is not None and key[0] == n and key[1] is p and key[2] is q and key[3] is w \
            and key[4] == symmetric

    def solve(
        self, n: int, c_src: np.ndarray, c_snk: np.ndarray, p: np.ndarray, q: np.ndarray, cw: np.ndarray,
        symmetric: bool, key: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """A fresh cut (:func:`_min_cut_bk`), keeping its graph for :meth:`solve_again` on the
        edge arrays ``key`` (the caller's p, q, w before filtering)."""
        self._graph, self._nodes = _bk_graph(n, c_src, c_snk, p, q, cw, symmetric)
        self._key = (n, *key, symmetric)
        self._caps = (c_snk, c_src)
        return self._graph.get_grid_segments(self._nodes)  # type: ignore[no-any-return]

    def solve_again(self, c_src: np.ndarray, c_snk: np.ndarray) -> np.ndarray:
        """The cut with new terminal capacities on the kept graph (same edges)."""
        assert self._caps is not None and self._nodes is not None
        d_src = c_snk.astype(np.int64) - self._caps[0]  # reversed problem: BK's source is our sink
        d_snk = c_src.astype(np.int64) - self._caps[1]
        changed = np.flatnonzero(d_src | d_snk)
        if changed.size:
            ids = self._nodes[changed]
            # |difference| < 2**30: capacities lie in [0, _CAP_LIMIT]
            self._graph.add_grid_tedges(ids, d_src[changed].astype(np.int32), d_snk[changed].astype(np.int32))
            self._graph.mark_grid_nodes(ids)
        self._graph.maxflow(reuse_trees=True)
        self._caps = (c_snk, c_src)
        return self._graph.get_grid_segments(self._nodes)  # type: ignore[no-any-return]


def potts_graph_cut(
    unary: np.ndarray,
    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    init: np.ndarray | None = None,
    sweeps: int = 2,
    free: np.ndarray | None = None,
    reuse: CutGraph | None = None,
) -> np.ndarray:
    """Minimise ``sum unary[l_p, p] + sum w_pq [l_p != l_q]``; returns labels (H, W) int64.

    ``unary`` is (L, H, W) float; forbidden labels carry :data:`HARD`. Two labels: one exact
    cut. More labels: alpha-expansion starting from ``init`` (default: unary argmin).
    ``free`` (H, W) bool restricts the optimisation to those pixels, the others keeping their
    ``init`` label: a narrow band around a boundary is a much smaller graph than the frame.
    ``reuse``: a :class:`CutGraph` for repeated two-label cuts on the same ``edges`` (whole
    grid, no ``free``): the same labels, the later cuts faster.
    """
    n_labels, h, w = unary.shape
    n = h * w
    u = unary.reshape(n_labels, n)
    if len(edges) == 1:  # already one list (see FrameSegmenter.segment): no copy per cut
        p, q, wt = edges[0]
    else:
        p = np.concatenate([e[0] for e in edges]) if edges else np.zeros(0, np.int64)
        q = np.concatenate([e[1] for e in edges]) if edges else np.zeros(0, np.int64)
        wt = np.concatenate([e[2] for e in edges]) if edges else np.zeros(0)
    start = None if init is None else init.reshape(n).astype(np.int64)
    if free is None:
        return _solve(u, p, q, wt, start, sweeps, reuse).reshape(h, w)
    if start is None:
        raise ValueError("potts_graph_cut: 'free' needs 'init' labels for the fixed pixels")
    fr = free.reshape(n)
    fidx = np.flatnonzero(fr)
    out = start.copy()
    if fidx.size == 0:
        return out.reshape(h, w)
    remap = np.full(n, -1, dtype=np.int64)
    remap[fidx] = np.arange(fidx.size)
    uf = u[:, fidx].astype(np.float64)
    fp, fq = fr[p], fr[q]
    both = fp & fq
    for a, b, sel in ((p, q, fp & ~fq), (q, p, fq & ~fp)):
        # Edge to a fixed neighbour: a unary cost for every label other than the neighbour's.
        na, wb, lb = remap[a[sel]], wt[sel], start[b[sel]]
        for label in range(n_labels):
            np.add.at(uf[label], na, wb * (lb != label))
    out[fidx] = _solve(uf, remap[p[both]], remap[q[both]], wt[both], start[fidx], sweeps)
    return out.reshape(h, w)


def _solve(
    u: np.ndarray, p: np.ndarray, q: np.ndarray, wt: np.ndarray, init: np.ndarray | None, sweeps: int,
    reuse: CutGraph | None = None,
) -> np.ndarray:
    """Potts minimisation on flat nodes: one cut for two labels (``reuse``: see
    :class:`CutGraph`), else alpha-expansion."""
    n_labels, n = u.shape
    if n_labels == 1:
        return np.zeros(n, dtype=np.int64)
    if n_labels == 2:
        return _min_cut(n, u[0], u[1], p, q, wt, symmetric=True, reuse=reuse).astype(np.int64)
    labels = u.argmin(axis=0) if init is None else init.copy()
    for _ in range(sweeps):
        changed = False
        for alpha in range(n_labels):
            # x = 1 takes alpha, x = 0 keeps the current label (Kolmogorov-Zabih construction).
            cost0 = u[labels, np.arange(n)].astype(np.float64)
            cost1 = u[alpha].astype(np.float64).copy()
            lp, lq = labels[p], labels[q]
            a_ = wt * (lp != lq)
            b_ = wt * (lp != alpha)
            c_ = wt * (alpha != lq)
            np.add.at(cost1, p, c_ - a_)
            np.add.at(cost1, q, -c_)
            pair = b_ + c_ - a_
            # Pay ``pair`` when x_p = 0 and x_q = 1: directed edge q -> p.
            x = _min_cut(n, cost0, cost1, p, q, pair)
            new = np.where(x, alpha, labels)
            if not np.array_equal(new, labels):
                changed = True
                labels = new
        if not changed:
            break
    return labels


# --------------------------------------------------------------------------------------------
# Annotated-frame segmentation from strokes
# --------------------------------------------------------------------------------------------


def quantise_motion(flow: np.ndarray, bins: int) -> np.ndarray:
    """Bin a flow field (H, W, 2) relative to its median (the dominant, usually camera, motion).

    The bin width adapts to the spread of motion in the frame so that both slow and fast scenes
    use the whole histogram. Returns (H, W) int64 indices in [0, bins**2).

    A float16 flow (the backend's) takes a faster road to the same indices: its median counted
    from its 65,536 codes (:func:`_median_float16`), the subtraction and binning in place.
    """
    if flow.dtype != np.float16 or flow.size == 0:
        f = flow.astype(np.float32)
        rel = f - np.median(f.reshape(-1, 2), axis=0)
    else:
        med = (_median_float16(flow[..., 0]), _median_float16(flow[..., 1]))
        rel = cv2.subtract(as_float32(flow), (med[0], med[1], 0.0, 0.0))  # float32 - float32, per channel
    mag = np.hypot(rel[..., 0], rel[..., 1])
    step = max(float(np.percentile(mag, 95)) * 2.0 / bins, 0.25)
    # clip(floor(rel / step) + bins // 2, 0, bins - 1), in place: the same float32 operations
    np.divide(rel, np.float32(step), out=rel)
    np.floor(rel, out=rel)
    rel += bins // 2
    np.clip(rel, 0, bins - 1, out=rel)
    q = rel.astype(np.int64)
    return q[..., 0] * bins + q[..., 1]


def _codes_by_value() -> np.ndarray:
    """The 65,536 float16 codes in value order: negatives from -NaN/-inf (0xFFFF) up to -0.0
    (0x8000), then +0.0 (0x0000) up to +NaN (0x7FFF): the inverse of the key that maps a code to
    its rank (``~code`` for a negative, ``code | 0x8000`` for a positive)."""
    rank = np.arange(65536, dtype=np.uint32)
    codes = np.where(rank >= 0x8000, rank & 0x7FFF, ~rank & 0xFFFF).astype(np.intp)
    codes.flags.writeable = False
    return codes


_FLOAT16_CODES_BY_VALUE = _codes_by_value()


def _median_float16(x: np.ndarray) -> float:
    """``np.median`` of a finite float16 array's values, as the float32 numpy returns (widened).

    By counting the codes (65,536 bins, in value order) instead of partitioning: the middle
    values are found exactly, and their mean is numpy's float32 ``(a + b) / 2``. The sign of a
    zero median may differ from numpy's choice, which no caller can see (``x - 0.0`` and
    ``x + 0.0`` bin alike).
    """
    bits = np.ascontiguousarray(x).view(np.uint16).ravel()
    # The codes counted as they are, then the 65,536 counts put in value order (not each value
    # mapped to its rank: that pass over the frame cost as much as the counting).
    counts = np.bincount(bits, minlength=65536)
    if counts[0x7C01:0x8000].any() or counts[0xFC01:].any():  # NaN codes: numpy's median would be NaN
        raise InputValidationError("_median_float16 needs finite values; the flow holds NaN")
    cum = np.cumsum(counts[_FLOAT16_CODES_BY_VALUE])

    def value(rank: int) -> np.float32:
        code = int(_FLOAT16_CODES_BY_VALUE[int(np.searchsorted(cum, rank, side="right"))])
        return np.array([code], np.uint16).view(np.float16).astype(np.float32)[0]  # type: ignore[no-any-return]

    n = bits.size
    if n % 2:
        return float(value(n // 2))
    return float(np.float32(value(n // 2 - 1) + value(n // 2)) / np.float32(2))


@dataclass(frozen=True)
class Stroke:
    """One stroke: its label (0 = background), normalised (x, y) path, and the round it came in.

    Its pixels and length on a frame size are computed once (:meth:`pixels`, :meth:`length`): a
    round rasterises the annotated frame's strokes several times, and the same strokes again in
    every later round on that frame. So the path is the stroke's own read-only float64 copy (a
    caller's array, writable or a view of one, could change under the memo).
    """

    label: int
    path: np.ndarray
    round: int
    #: (what, H, W) -> pixels or length; not an argument, so ``dataclasses.replace`` starts it afresh
    _memo: dict[tuple[str, int, int], Any] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        path = np.array(self.path, dtype=np.float64)
        path.flags.writeable = False
        object.__setattr__(self, "path", path)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path.tolist(), "object_id": self.label}

    def length(self, shape: tuple[int, int]) -> float:
        """Polyline length in pixels of a (H, W) frame (at least 1, so it can scale distances)."""
        key = ("length", int(shape[0]), int(shape[1]))
        if key not in self._memo:
            pts = self.path * [shape[1] - 1, shape[0] - 1]
            steps = np.hypot(*np.diff(pts, axis=0).T) if len(pts) >= 2 else None
            self._memo[key] = 1.0 if steps is None else max(float(np.sum(steps)), 1.0)
        return float(self._memo[key])

    def pixels(self, shape: tuple[int, int]) -> np.ndarray:
        """(M, 2) int64 (x, y) pixels of the stroke on a (H, W) frame (read-only; none for an
        empty path): its points at ``int(x (W - 1)), int(y (H - 1))`` joined by Bresenham lines."""
        key = ("pixels", int(shape[0]), int(shape[1]))
        if key not in self._memo:
            scale = np.asarray([shape[1] - 1, shape[0] - 1], dtype=np.float64)
            path = self.path.reshape(-1, 2)
            pix = bresenham((path * scale).astype(np.int64)) if len(path) else np.zeros((0, 2), np.int64)
            pix.flags.writeable = False
            self._memo[key] = pix
        return self._memo[key]  # type: ignore[no-any-return]


def rasterise(strokes: list[Stroke], shape: tuple[int, int]) -> np.ndarray:
    """Label map (H, W) int16 of the strokes (later strokes win), -1 where no stroke passes.

    The pixels of :func:`ivos_rl.scribbles.scribbles2mask` (so that the pixels this backend pins
    are exactly the ones :func:`ivos_rl.backends.check.check_backend` verifies), without its
    validation and dict round trip: strokes were validated on arrival, and a round rasterises
    them a dozen times (each stroke's pixels are kept: :meth:`Stroke.pixels`).
    """
    out = np.full(shape, -1, dtype=np.int16)
    for s in strokes:
        if len(s.path):
            pix = s.pixels(shape)
            out[pix[:, 1], pix[:, 0]] = s.label
    return out


def stroke_distance(stroke: Stroke, shape: tuple[int, int]) -> np.ndarray:
    """Euclidean distance (H, W) float32 from every pixel to the stroke."""
    return _distance_to(rasterise([stroke], shape) >= 0)


def _distance_to(on: np.ndarray) -> np.ndarray:
    """Euclidean distance (H, W) float32 from every pixel to the pixels of mask ``on``."""
    layer = np.full(on.shape, 255, dtype=np.uint8)
    layer[on] = 0
    return cv2.distanceTransform(layer, cv2.DIST_L2, 5)


@dataclass(frozen=True)
class _Window:
    """The box of a frame that a segmentation works in (the whole frame unless
    ``SegParams.crop_margin`` is on). Strokes are rasterised and measured at the frame's size and
    then cropped, so a pixel of the window sees exactly what it sees in the whole frame."""

    frame_shape: tuple[int, int]
    box: tuple[slice, slice] | None = None  # None: the whole frame

    @property
    def shape(self) -> tuple[int, int]:
        if self.box is None:
            return self.frame_shape
        return (self.box[0].stop - self.box[0].start, self.box[1].stop - self.box[1].start)

    def crop(self, a: np.ndarray, lead: int = 0) -> np.ndarray:
        """``a`` (``lead`` leading axes, then H, W, ...) inside the window."""
        return a if self.box is None else a[(slice(None),) * lead + self.box]

    def raster(self, strokes: list[Stroke]) -> np.ndarray:
        """:func:`rasterise` at the frame's size, inside the window."""
        return self.crop(rasterise(strokes, self.frame_shape))

    def distance(self, stroke: Stroke) -> np.ndarray:
        """:func:`stroke_distance` inside the window (exact where the window holds the stroke)."""
        return _distance_to(self.raster([stroke]) >= 0)

    def length(self, stroke: Stroke) -> float:
        return stroke.length(self.frame_shape)


def argmax0(p: np.ndarray) -> np.ndarray:
    """Argmax over the first axis of (L, H, W) as uint8, plane by plane (ties: lowest label).

    ``np.argmax(p, axis=0)`` for NaN-free ``p`` (soft labels, energies), as a new uint8 array;
    numpy reduces a leading axis pixel by pixel, ~80x slower on a two-label 240p frame.
    """
    if p.shape[0] == 2:  # one object: where it beats the background
        return np.greater(p[1], p[0]).view(np.uint8)
    labels = np.zeros(p.shape[1:], dtype=np.uint8)
    best = p[0].copy()
    for k in range(1, p.shape[0]):
        better = p[k] > best
        labels[better] = k
        np.maximum(best, p[k], out=best)
    return labels


def bbox(mask: np.ndarray, margin: float, shape: tuple[int, int]) -> tuple[slice, slice] | None:
    """Bounding box of ``mask`` grown by ``margin`` pixels and clipped to ``shape``."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    m = int(np.ceil(margin))
    return (
        slice(max(ys[0] - m, 0), min(ys[-1] + 1 + m, shape[0])),
        slice(max(xs[0] - m, 0), min(xs[-1] + 1 + m, shape[1])),
    )


@dataclass(frozen=True)
class SegParams:
    """Weights of the annotated-frame energy (in nats); see :class:`FrameSegmenter`.

    Defaults were tuned on the tuning split of ``benchmarks/bench_propagation.py``.
    ``first_*``: the stroke-distance prior before any prediction exists (``first_sigma`` x
    stroke length is its Gaussian width). ``correction_*``: how far (x stroke length) a new
    stroke loosens the current prediction, and how much (``correction_uniform`` = 1: towards
    "unknown", so colour and edges decide the extent). ``core_fraction``: a disk of this
    fraction of the stroke length (at most ``core_max`` px) around a new stroke is taken as
    mostly its label. ``coarse_pixels``: crops larger than this are cut coarse-to-fine.
    ``change_radius`` (x stroke length, at least 3 px; 0 = off): on a frame that already has a
    prediction, the cut may only change labels within this distance of a new stroke; elsewhere
    the frame keeps its prediction. Strokes mark the errors to fix; a re-cut of the whole frame
    also breaks what was right (thin parts, similar colours), and the damage then propagates
    to the neighbouring frames (on dog-agility, 5 of 7 annotated frames got worse without it).
    ``crop_margin`` (px; 0 = off, the default; needs ``change_radius`` > 0): on a frame that
    already has a prediction, the colour models and the cut only see the box of the pixels
    ``change_radius`` allows to change, grown by this margin, and the box's border pixels keep
    their current labels (the rest of the frame could not change anyway): a much smaller graph
    than the object's whole box, at the price of colour models fitted on that box only and a
    cut that cannot move the boundary beyond it (changes the outputs: an opt-in speed knob).
    ``change_connected`` (needs ``change_radius`` > 0; off by default): a connected region of
    changed pixels (8-neighbours) that comes within that reach of a new stroke is kept whole,
    not only its pixels within the reach. The robot draws on the medial axis of an error
    region, so the region a stroke marks is connected to it, and a fixed reach cuts a large
    region's fix off part-way; changes that no new stroke comes near are still refused. Off
    because whole regions also carry the cut's collateral changes: on the 30 shared videos
    it lifts Worst-Oracle but not Farthest, and more rounds drop (benchmarks/RESULTS.md, #14, session 27).
    """

    colour_weight: float = 1.0
    motion_weight: float = 0.75
    motion_bins: int = 16
    prior_weight: float = 1.0
    smoothness: float = 15.0
    first_sigma: float = 0.18
    first_bg: float = 0.5
    first_cap: float = 20.0
    first_bg_radius: float = 2.0
    correction_sigma: float = 0.3
    correction_strength: float = 0.8
    correction_uniform: float = 1.0
    core_fraction: float = 0.1
    core_max: float = 16.0
    core_strength: float = 0.9
    prior_floor: float = 0.02
    stroke_weight: float = 20.0
    global_weight: float = 3000.0
    iterations: int = 2
    roi_margin: float = 12.0
    coarse_pixels: int = 20000
    evidence_cap: float = 5.0
    support_rate: float = 5.0
    support_margin: float = 0.2
    change_radius: float = 1.0
    crop_margin: float = 0.0
    change_connected: bool = False


class FrameSegmenter:
    """Segments one annotated frame from all of its strokes, GrabCut-style.

    The energy per label is colour (a histogram model fitted to the strokes, the prior and the
    other annotated frames) + motion (the frame's optical flow, binned the same way: objects
    move differently from their background) + a spatial prior: the frame's current soft
    prediction loosened around new strokes that contradict it (robot strokes lie on error
    regions), or, before any prediction exists, a Gaussian of the distance to each object's
    strokes scaled by the stroke length. Stroke pixels are hard constraints; a
    contrast-sensitive Potts term aligns the cut with image edges. The models are refitted from
    the cut ``iterations`` times. Work is confined to a box around the strokes and the prior.
    """

    def __init__(self, n_labels: int, bins: int, params: SegParams) -> None:
        self.n_labels = n_labels
        self.bins = bins
        self.params = params

    def _log_prior(
        self,
        win: _Window,
        new_strokes: list[Stroke],
        prior: np.ndarray | None,
        dists: list[np.ndarray | None],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log prior (L, H, W), initial colour memberships (L, H, W), and the region that matters.

        ``dists`` are :func:`stroke_distance` maps of ``new_strokes`` (None where not needed: a
        background stroke before any prediction).
        """
        prm = self.params
        n_labels = self.n_labels
        shape = win.shape
        if prior is None:
            logp = np.full((n_labels, *shape), -prm.first_cap, dtype=np.float32)
            logp[0] = np.log(prm.first_bg)
            near = np.zeros(shape, dtype=bool)
            reach = np.zeros(shape, dtype=bool)
            for s, d in zip(new_strokes, dists, strict=True):
                if s.label == 0 or d is None:
                    continue
                sigma = prm.first_sigma * win.length(s)
                logp[s.label] = np.maximum(logp[s.label], np.maximum(-0.5 * (d / sigma) ** 2, -prm.first_cap))
                near |= d < prm.first_bg_radius * sigma
                reach |= d < 4.0 * sigma
            member = np.zeros((n_labels, *shape), dtype=np.float32)
            member[0] = ~near
            return logp, member, reach
        out = prior.astype(np.float32)  # a copy
        reach = out[0] < 1.0 - prm.prior_floor
        for s, d in zip(new_strokes, dists, strict=True):
            if d is None:
                d = win.distance(s)
            sigma = prm.correction_sigma * win.length(s)
            g = d / sigma  # correction_strength x exp(-0.5 (d / sigma)^2), in place: the same bits
            g *= g
            g *= -0.5
            np.exp(g, out=g)
            g *= prm.correction_strength
            # Where g is 0 (exp underflows some 4 stroke lengths away) the updates change nothing
            # (x 1, + 0 on non-negative values), so they run on the box of g > 0: the same bits.
            box = bbox(g > 0, 0, shape)
            if box is not None:
                g_box, out_box = g[box], out[(slice(None), *box)]
                out_box *= 1.0 - g_box
                out_box += g_box * (prm.correction_uniform / n_labels)
                if prm.correction_uniform != 1.0:
                    out_box[s.label] += g_box * (1.0 - prm.correction_uniform)
            if prm.core_fraction > 0:
                # The robot draws on the medial axis of the error region opened by a disk, so a
                # disk around every stroke point lies inside the region to correct (its box only,
                # as above: the same bits).
                radius = float(np.clip(prm.core_fraction * win.length(s), 1.5, prm.core_max))
                on = d <= radius
                box = bbox(on, 0, shape)
                if box is not None:
                    core = on[box].astype(np.float32) * prm.core_strength
                    out_box = out[(slice(None), *box)]
                    out_box *= 1.0 - core
                    out_box[s.label] += core
            reach |= d < 3.0 * sigma
        logp = np.log(np.clip(out, prm.prior_floor, 1.0, out=out), out=out)
        if prm.support_rate > 0:
            # Objects are contiguous: far from an object's current extent and its new strokes,
            # the prior against it grows linearly, so appearance cannot create distant blobs.
            current = argmax0(prior)
            for k in range(1, n_labels):
                support = current == k
                for st in new_strokes:
                    if st.label == k:
                        support |= win.raster([st]) >= 0
                area = int(support.sum())
                if area == 0:
                    continue
                dist = cv2.distanceTransform((~support).astype(np.uint8), cv2.DIST_L2, 3)
                logp[k] -= prm.support_rate * np.maximum(dist / np.sqrt(area) - prm.support_margin, 0.0)
        return logp, prior.astype(np.float32), reach

    def segment(
        self,
        rgb: np.ndarray,
        bins: np.ndarray,
        strokes: list[Stroke],
        new_strokes: list[Stroke],
        prior: np.ndarray | None,
        global_model: ColourModel | None,
        motion: np.ndarray | None = None,
        motion_bins: np.ndarray | None = None,
    ) -> np.ndarray:
        """Hard labels (H, W) uint8 for the frame; every stroke pixel keeps its stroke's label.

        ``strokes`` are all strokes on the frame so far (hard constraints), ``new_strokes`` this
        round's (they shape the prior). ``prior`` is the frame's current soft prediction
        (L, H, W) or None before the first round; ``motion`` its optical flow (H, W, 2), or
        ``motion_bins`` that flow already binned by :func:`quantise_motion` (a caller's cache).
        With ``crop_margin`` on, all of it happens inside :meth:`_window` (see :class:`SegParams`).
        """
        prm = self.params
        frame_shape = bins.shape
        win = _Window(frame_shape, None if prior is None else self._window(new_strokes, frame_shape))
        if prm.motion_weight > 0 and motion_bins is None and motion is not None:
            motion_bins = quantise_motion(motion, prm.motion_bins)
        if prm.motion_weight <= 0:
            motion_bins = None
        rgb, bins = win.crop(rgb), win.crop(bins)
        prior_w = None if prior is None else win.crop(prior, 1)
        mbins_w = None if motion_bins is None else win.crop(motion_bins)
        shape = win.shape
        full_seeds = rasterise(strokes, frame_shape)  # at the frame's size: pinned again outside a window
        seeds = win.crop(full_seeds)
        # Each new stroke's distance map, computed once for the prior and the change limit.
        dists = [None if prior is None and s.label == 0 else win.distance(s) for s in new_strokes]
        log_pi, membership, reach = self._log_prior(win, new_strokes, prior_w, dists)
        reach |= seeds >= 0
        box = bbox(reach, prm.roi_margin, shape)
        out = np.zeros(shape, dtype=np.uint8)
        if box is not None:  # None: only background strokes and no prior object, nothing to cut
            cbox = (slice(None), *box)
            clamp = None if win.box is None or prior_w is None else _border_labels(prior_w, win)[box]
            out[box] = self._cut(
                rgb[box], bins[box], seeds[box], log_pi[cbox], membership[cbox],
                None if mbins_w is None else mbins_w[box], global_model, clamp,
            )
            if prior_w is not None and prm.change_radius > 0:
                out = _local_changes(
                    out, prior_w, new_strokes, prm.change_radius, dists, win, connected=prm.change_connected
                )
        out[seeds >= 0] = seeds[seeds >= 0]
        if win.box is None or prior is None:
            return out
        # Outside the window nothing may change: the prior's labels, every stroke pinned.
        full = argmax0(prior)
        full[win.box] = out
        full[full_seeds >= 0] = full_seeds[full_seeds >= 0]
        return full

    def _window(self, new_strokes: list[Stroke], shape: tuple[int, int]) -> tuple[slice, slice] | None:
        """The box where this round's cut may change labels (``change_radius`` x stroke length
        around each new stroke, at least 3 px) grown by ``crop_margin``; None: the whole frame
        (the knob off, or a window as large as the frame)."""
        prm = self.params
        if prm.crop_margin <= 0 or prm.change_radius <= 0:
            return None
        boxes = []
        for s in new_strokes:
            reach = max(prm.change_radius * s.length(shape), 3.0) + prm.crop_margin
            b = bbox(rasterise([s], shape) >= 0, reach, shape)
            if b is not None:
                boxes.append(b)
        if not boxes:
            return None
        box = (slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes)),
               slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes)))
        if box[0].stop - box[0].start == shape[0] and box[1].stop - box[1].start == shape[1]:
            return None
        return box

    def _cut(
        self,
        rgb: np.ndarray,
        bins: np.ndarray,
        seeds: np.ndarray,
        log_pi: np.ndarray,
        membership: np.ndarray,
        mbins: np.ndarray | None,
        global_model: ColourModel | None,
        clamp: np.ndarray | None,
    ) -> np.ndarray:
        """Labels (h, w) of a box: colour/motion models refitted from the cut ``iterations`` times.

        ``seeds`` (h, w) are stroke labels (-1: none) and ``clamp`` (None or (h, w), -1: free) more
        hard labels that give no colour samples (a crop's border); ``log_pi``/``membership``
        (L, h, w) the prior and the initial colour memberships.
        """
        prm = self.params
        n_labels = self.n_labels
        h, w = bins.shape
        lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)
        # Each weight list joined once here, not in every cut of every iteration.
        fine = ContrastEdges(lab, prm.smoothness)
        coarse_edges = None
        if prm.coarse_pixels > 0 and h * w > prm.coarse_pixels:
            small = cv2.resize(lab, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
            coarse_edges = [ContrastEdges(small, prm.smoothness).joined()]
        edges = [fine.joined()] if coarse_edges is None else []  # coarse-to-fine: band edges per cut
        # Every iteration cuts the same (coarse) grid, only the unaries change: one graph, reused.
        repeat_graph = CutGraph()
        seeded = seeds >= 0
        fixed = seeds if clamp is None else np.where(seeded, seeds, clamp)
        pinned = fixed >= 0
        ys, xs = np.nonzero(pinned)
        hard = np.zeros((n_labels, h, w), dtype=np.float32)
        hard[:, pinned] = HARD
        hard[fixed[pinned], ys, xs] = 0.0
        thick = np.zeros((n_labels, h, w), dtype=np.float32)
        for label in np.unique(seeds[seeded]):
            layer = cv2.dilate((seeds == label).astype(np.uint8), np.ones((3, 3), np.uint8))
            thick[label] = prm.stroke_weight * layer
        thick = thick.reshape(n_labels, -1)
        # The strokes' samples are the same in every iteration: binned once, then added as before
        # (a label without stroke pixels adds zeros: the same sums).
        thick_colour = ColourModel(n_labels, self.bins)
        thick_colour.add_sparse(bins, thick)
        thick_motion = ColourModel(n_labels, prm.motion_bins, dims=2)
        if mbins is not None:
            thick_motion.add_sparse(mbins, thick)
        labels = argmax0(log_pi - hard).astype(np.int64)  # np.argmax(axis=0)'s labels and dtype
        soft: np.ndarray | None = membership.reshape(n_labels, -1)  # after the first cut: one-hot
        for _ in range(max(prm.iterations, 1)):
            model = ColourModel(n_labels, self.bins)
            _add_members(model, bins, soft, labels)
            model.counts += thick_colour.counts
            if global_model is not None:
                model.merge(global_model, prm.global_weight)
            loglik = prm.colour_weight * model.log_likelihood(bins)
            if mbins is not None:
                mmodel = ColourModel(n_labels, prm.motion_bins, dims=2)
                _add_members(mmodel, mbins, soft, labels)
                mmodel.counts += thick_motion.counts
                loglik = loglik + prm.motion_weight * mmodel.log_likelihood(mbins)
            if prm.evidence_cap > 0:
                # Appearance alone may not overrule a confident prior: a label's colour and
                # motion evidence is bounded to ``evidence_cap`` nats below the best label's.
                # (the label-wise maximum as plane-wise np.maximum: exact, so the same bits, faster)
                best = functools.reduce(np.maximum, loglik)
                loglik = np.maximum(loglik - best, -prm.evidence_cap)
            unary = -(loglik + prm.prior_weight * log_pi) + hard
            unary -= unary.min(axis=0, keepdims=True)
            if coarse_edges is not None:
                labels = _coarse_to_fine(unary, fine, coarse_edges, labels, repeat_graph)
            else:
                labels = potts_graph_cut(unary, edges, init=labels, reuse=repeat_graph)
            soft = None  # the next fit's memberships: the cut's labels, one-hot
        labels[seeded] = seeds[seeded]
        return labels


def _add_members(model: ColourModel, idx: np.ndarray, soft: np.ndarray | None, labels: np.ndarray) -> None:
    """Add the box's samples to ``model``: soft memberships (L, n), or (None) the hard ``labels``
    (``ColourModel.add_labels``: the counts one-hot weights give, exact sums of ones)."""
    if soft is not None:
        model.add(idx, soft)
    else:
        model.add_labels(idx, labels)


def _border_labels(prior: np.ndarray, win: _Window) -> np.ndarray:
    """(h, w) int16: the prior's labels on the window's border rows/columns that are not the
    frame's border (the surroundings the cut must join), -1 elsewhere."""
    before = argmax0(prior).astype(np.int16)
    clamp = np.full(before.shape, -1, dtype=np.int16)
    assert win.box is not None
    (y, x), (fh, fw) = win.box, win.frame_shape
    if y.start > 0:
        clamp[0] = before[0]
    if y.stop < fh:
        clamp[-1] = before[-1]
    if x.start > 0:
        clamp[:, 0] = before[:, 0]
    if x.stop < fw:
        clamp[:, -1] = before[:, -1]
    return clamp


def _joined(
    edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-direction edge lists of :func:`contrast_weights` as one (p, q, w), in order."""
    return tuple(np.concatenate([e[i] for e in edges]) for i in range(3))  # type: ignore[return-value]


def _local_changes(
    labels: np.ndarray,
    prior: np.ndarray,
    new_strokes: list[Stroke],
    radius: float,
    dists: list[np.ndarray | None] | None = None,
    win: _Window | None = None,
    connected: bool = False,
) -> np.ndarray:
    """``labels`` where they differ from the prior's argmax only within ``radius`` x stroke
    length px (at least 3) of a new stroke, the prior's labels elsewhere; with ``connected``, in
    every connected region of changed pixels (8-neighbours) that comes within that reach, whole.
    ``dists``: the strokes' :func:`stroke_distance` maps when already computed; ``win``: the
    window of the frame that ``labels`` and ``prior`` cover (default: the whole frame)."""
    win = _Window(labels.shape) if win is None else win
    before = argmax0(prior)
    changed = labels != before
    if not changed.any():
        return labels
    near = np.zeros(labels.shape, dtype=bool)
    for i, s in enumerate(new_strokes):
        d = dists[i] if dists is not None else None
        if d is None:
            d = win.distance(s)
        near |= d <= max(radius * win.length(s), 3.0)
    keep = changed & near
    if connected and keep.any():
        _, regions = cv2.connectedComponents(changed.astype(np.uint8), connectivity=8)
        keep = np.isin(regions, np.unique(regions[keep]))  # the kept pixels' regions (all changed)
    return np.where(keep, labels, before).astype(np.uint8)


def _coarse_to_fine(
    unary: np.ndarray,
    fine: ContrastEdges,
    coarse_edges: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    init: np.ndarray,
    coarse_graph: CutGraph | None = None,
) -> np.ndarray:
    """Cut at half resolution, then re-cut only a 2-pixel band around that boundary at full size.

    Max-flow time grows faster than the pixel count; the half-size graph has 4x fewer nodes and
    the band is a thin ring, so this is several times faster than one full-size cut while the
    boundary still snaps to full-resolution edges. Coarse unaries are area means x 2 (a coarse
    pixel stands for 4 pixels, a coarse edge for 2 edges, so only the ratio matters).
    ``coarse_graph``: the :class:`CutGraph` of the caller's repeated coarse cuts (same edges).
    """
    h, w = unary.shape[1:]
    hs, ws = (h + 1) // 2, (w + 1) // 2
    coarse = np.stack([cv2.resize(u, (ws, hs), interpolation=cv2.INTER_AREA) for u in unary]) * 2.0
    coarse_init = cv2.resize(init.astype(np.uint8), (ws, hs), interpolation=cv2.INTER_NEAREST)
    labels = potts_graph_cut(coarse, coarse_edges, init=coarse_init, reuse=coarse_graph)
    up = cv2.resize(labels.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(np.int64)
    # Forbidden labels must stay forbidden (stroke pixels).
    # (each label's forbidden pixels where it was chosen: take_along_axis's pixels, without its gather)
    forbidden = functools.reduce(np.logical_or, [(up == k) & (u >= HARD / 2) for k, u in enumerate(unary)])
    if forbidden.any():  # the unary's best label there (argmin of those pixels only: the same labels)
        ys, xs = np.nonzero(forbidden)
        up[ys, xs] = unary[:, ys, xs].argmin(axis=0)
    edge = np.zeros((h, w), dtype=np.uint8)
    edge[:, 1:] |= (up[:, 1:] != up[:, :-1]).astype(np.uint8)
    edge[1:, :] |= (up[1:, :] != up[:-1, :]).astype(np.uint8)
    free = cv2.dilate(edge, np.ones((5, 5), np.uint8)) > 0
    return potts_graph_cut(unary, [fine.touching(free)], init=up, free=free)
