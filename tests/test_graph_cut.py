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


def test_a_reused_graph_gives_the_labels_of_fresh_cuts() -> None:
    # The same edges cut again with other unaries (a segmentation's iterations): the kept BK
    # graph, its terminal capacities changed (some down to below the flow already through them,
    # some unchanged), must give exactly the fresh cut's minimal source side, ties included.
    from ivos_rl.backends._interactive_seg import CutGraph

    rng = np.random.default_rng(1)
    for _ in range(150):
        n = int(rng.integers(1, 40))
        e = int(rng.integers(0, 4 * n + 1))
        p, q = rng.integers(0, n, e), rng.integers(0, n, e)
        w = rng.integers(0, 4, e) * 1.0
        reuse = CutGraph()
        previous: np.ndarray | None = None
        for _ in range(3):
            cost0 = rng.integers(0, 4, n) * rng.integers(0, 2, n) * 1.0
            cost1 = rng.integers(0, 4, n) * rng.integers(0, 2, n) * 1.0
            if previous is not None and rng.integers(0, 2):
                cost0[: n // 2] = previous[: n // 2]  # (with cost1 kept too, unchanged nodes are not marked)
            previous = cost0
            want = _min_cut(n, cost0, cost1, p, q, w, symmetric=True, solver="bk")
            got = _min_cut(n, cost0, cost1, p, q, w, symmetric=True, solver="bk", reuse=reuse)
            assert np.array_equal(got, want)
            assert reuse.holds(n, p, q, w, True)
        # other edge arrays (even equal ones): a fresh graph, never the kept one
        assert not reuse.holds(n, p.copy(), q, w, True) and not reuse.holds(n, p, q, w, False)


def test_a_reused_graph_serves_the_repeated_potts_cuts() -> None:
    # potts_graph_cut with reuse= on the same edges, unaries changing: the labels of fresh cuts.
    from ivos_rl.backends._interactive_seg import CutGraph

    rng = np.random.default_rng(2)
    idx = np.arange(20 * 30).reshape(20, 30)
    edges = [(np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()]),
              np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()]),
              rng.uniform(0.0, 2.0, 20 * 29 + 19 * 30))]
    reuse = CutGraph()
    for _ in range(4):
        unary = rng.uniform(0.0, 3.0, (2, 20, 30))
        assert np.array_equal(potts_graph_cut(unary, edges, reuse=reuse), potts_graph_cut(unary, edges))
