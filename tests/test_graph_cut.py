"""Graph-cut solvers of the annotated-frame segmentation: PyMaxflow (BK) and scipy give the same cut."""

from __future__ import annotations

import numpy as np
import pytest

from ivos_rl.backends._interactive_seg import _min_cut, potts_graph_cut

pytest.importorskip("maxflow")

SOLVERS = ("bk", "scipy")


@pytest.mark.parametrize("solver", SOLVERS)
def test_two_nodes_follow_their_costs_unless_the_edge_is_dearer(solver: str) -> None:
    # Node 0 prefers label 0 (cost0 = 0 < cost1 = 5), node 1 label 1; an edge of weight w is paid
    # when they differ. w = 1: each keeps its label (cost 1). w = 20: they agree (cost 5).
    cost0, cost1 = np.array([0.0, 5.0]), np.array([5.0, 0.0])
    p, q = np.array([0]), np.array([1])
    cut = _min_cut(2, cost0, cost1, p, q, np.array([1.0]), symmetric=True, solver=solver)
    assert cut.tolist() == [False, True]
    cut = _min_cut(2, cost0, cost1, p, q, np.array([20.0]), symmetric=True, solver=solver)
    assert cut.tolist() in ([False, False], [True, True])


@pytest.mark.parametrize("solver", SOLVERS)
def test_ties_go_to_label_zero_the_minimal_source_side(solver: str) -> None:
    # Node 0 costs the same under both labels and has no edge; node 1 too, tied to node 2 (which
    # wants label 1) by a zero-weight edge: every cut is minimal, the minimal source side is {2}.
    cost0, cost1 = np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.0, 0.0])
    cut = _min_cut(3, cost0, cost1, np.array([1]), np.array([2]), np.array([0.0]), symmetric=True,
                   solver=solver)
    assert cut.tolist() == [False, False, True]


def test_a_directed_edge_is_paid_only_one_way() -> None:
    # w is paid when p = 0 and q = 1. Node 0 slightly prefers 0, node 1 slightly prefers 1:
    # labels (0, 1) would pay w = 10, so the cheapest is (1, 1) or (0, 0) at cost 1.
    cost0, cost1 = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    for solver in SOLVERS:
        cut = _min_cut(2, cost0, cost1, np.array([0]), np.array([1]), np.array([10.0]), solver=solver)
        assert cut.tolist() != [False, True]
        # The reverse edge (p = 1, q = 0) is not paid by (0, 1): it stays the optimum.
        cut = _min_cut(2, cost0, cost1, np.array([1]), np.array([0]), np.array([10.0]), solver=solver)
        assert cut.tolist() == [False, True]


def test_bk_equals_scipy_on_random_graphs_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(400):
        n = int(rng.integers(1, 30))
        e = int(rng.integers(0, 3 * n + 1))
        cost0 = rng.integers(0, 3, n) * rng.integers(0, 2, n) * 1.0
        cost1 = rng.integers(0, 3, n) * rng.integers(0, 2, n) * 1.0
        p, q = rng.integers(0, n, e), rng.integers(0, n, e)
        w = rng.integers(0, 3, e) * 1.0
        sym = bool(rng.integers(0, 2))
        a = _min_cut(n, cost0, cost1, p, q, w, symmetric=sym, solver="scipy")
        b = _min_cut(n, cost0, cost1, p, q, w, symmetric=sym, solver="bk")
        assert np.array_equal(a, b)


def test_potts_cut_of_a_noisy_square_is_the_square(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 12 x 12 image: a 6 x 6 square prefers label 1 (unary 1 for the other label), three
    # pixels flipped by noise (two outside, one inside). Potts weight 0.5 per neighbour pair:
    # keeping a flipped pixel costs 4 x 0.5 = 2 > 1, erasing the square costs 36 > its border
    # 24 x 0.5 = 12, so the cut is exactly the square.
    want = np.zeros((12, 12), dtype=np.int64)
    want[3:9, 3:9] = 1
    noisy = want.copy()
    noisy[1, 1] = noisy[10, 2] = 1
    noisy[5, 5] = 0
    unary = np.stack([(noisy == 1) * 1.0, (noisy == 0) * 1.0])
    idx = np.arange(144).reshape(12, 12)
    edges = [(idx[:, :-1].ravel(), idx[:, 1:].ravel(), np.full(132, 0.5)),
             (idx[:-1, :].ravel(), idx[1:, :].ravel(), np.full(132, 0.5))]
    import ivos_rl.backends._interactive_seg as seg

    for solver in SOLVERS:
        monkeypatch.setattr(seg, "_bk", seg._bk if solver == "bk" else None)
        assert np.array_equal(potts_graph_cut(unary, edges), want)
