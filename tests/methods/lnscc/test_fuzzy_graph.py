"""The fuzzy kNN graph: local scales against a root finder, the fuzzy union against its dense
formula, pruning, weighted edge sampling and UMAP's (a, b) fit."""

import math

import numpy as np
import pytest
import scipy.sparse
import torch
from scipy.optimize import brentq

from deepclust_cli.methods.lnscc.fuzzy_graph import (
    Graph,
    fit_ab,
    fuzzy_knn_graph,
    fuzzy_union,
    local_scales,
    membership_strengths,
    prune,
    sample_edges,
)
from deepclust_cli.ops.neighbors import knn


def to_scipy(graph: Graph) -> scipy.sparse.csr_matrix:
    """The graph's ``n × n`` weight matrix."""
    coo = (graph.weights.numpy(), (graph.rows.numpy(), graph.cols.numpy()))
    return scipy.sparse.csr_matrix(coo, shape=(graph.n, graph.n))


def degree(graph: Graph) -> torch.Tensor:
    """Weighted degree ``Σ_j w_ij`` per node (0 for isolated nodes)."""
    return torch.zeros(graph.n, dtype=graph.weights.dtype).index_add_(0, graph.rows, graph.weights)

K = 15


@pytest.fixture
def neighbors():
    """kNN of 200 random points where points 1 and 2 duplicate point 0: their rows start with zeros."""
    points = np.random.default_rng(0).standard_normal((200, 5))
    points[1] = points[2] = points[0]
    return knn(points, K)


def edge_set(graph: Graph) -> dict:
    return {(int(r), int(c)): float(w) for r, c, w in zip(graph.rows, graph.cols, graph.weights)}


def test_rows_sum_to_log2_k_and_rho_is_first_positive_distance(neighbors):
    distances, _ = neighbors
    assert (distances[:3, :2] == 0).all()
    rho, sigma = local_scales(distances)
    first_positive = torch.stack([row[row > 0][0] for row in distances])
    torch.testing.assert_close(rho, first_positive, rtol=0, atol=0)
    assert (sigma > 0).all()
    weights = membership_strengths(distances, rho, sigma)
    assert weights.shape == distances.shape and weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(dim=1), torch.full((200,), math.log2(K)), rtol=0, atol=1e-4)
    # The duplicates and the nearest positive neighbor all have full membership.
    assert (weights[:3, :3] == 1).all() and (weights[3:, 0] == 1).all()


def test_bisection_matches_brentq(neighbors):
    distances, _ = neighbors
    rho, sigma = local_scales(distances)
    d = distances.double().numpy()
    for i in [0, 1, 5, 77, 199]:
        gap = np.maximum(d[i] - rho[i].item(), 0)
        reference = brentq(lambda s: np.exp(-gap / s).sum() - math.log2(K), 1e-9, 1e3, xtol=1e-12)
        assert sigma[i].item() == pytest.approx(reference, rel=1e-4)


def test_all_zero_row_takes_the_global_floor():
    distances = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, 1.0, 4.0]])
    rho, sigma = local_scales(distances)
    assert rho.tolist() == [0.0, 1.0, 0.5]
    # Every term is 1 whatever σ, so the bisection drives σ to 0 and the floor takes over.
    assert sigma[0].item() == pytest.approx(1e-3 * distances.mean().item())
    assert membership_strengths(distances, rho, sigma)[0].tolist() == [1.0, 1.0, 1.0]


def test_fuzzy_union_by_hand():
    indices = torch.tensor([[1, 2], [0, 3], [3, 1], [1, 2]])
    weights = torch.tensor([[0.5, 0.3], [0.4, 0.0], [1.0, 0.25], [0.6, 0.2]])
    graph = fuzzy_union(indices, weights, 4)
    expected = {(0, 1): 0.7, (0, 2): 0.3, (1, 3): 0.6, (2, 3): 1.0, (1, 2): 0.25}
    both_ways = {**expected, **{(j, i): w for (i, j), w in expected.items()}}
    got = edge_set(graph)
    assert got.keys() == both_ways.keys() and len(graph.rows) == 10
    for key, w in both_ways.items():
        assert got[key] == pytest.approx(w, abs=1e-6)
    assert graph.rows.dtype == graph.cols.dtype == torch.int64 and graph.weights.dtype == torch.float32
    assert graph.n == 4
    torch.testing.assert_close(degree(graph), torch.tensor([1.0, 1.55, 1.55, 1.6]))


def test_fuzzy_union_drops_self_loops_and_zeros():
    graph = fuzzy_union(torch.tensor([[0, 1], [0, 1]]), torch.tensor([[0.9, 0.0], [0.0, 0.8]]), 3)
    assert len(graph.rows) == 0 and degree(graph).tolist() == [0.0, 0.0, 0.0]


def test_fuzzy_union_equals_dense_formula():
    rng = np.random.default_rng(1)
    n, k = 30, 6
    indices = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    weights = rng.uniform(0.01, 1, (n, k)).astype(np.float32)
    dense = np.zeros((n, n))
    np.put_along_axis(dense, indices, weights, axis=1)
    expected = dense + dense.T - dense * dense.T

    graph = fuzzy_union(torch.from_numpy(indices), torch.from_numpy(weights), n)
    matrix = to_scipy(graph)
    assert matrix.shape == (n, n)
    np.testing.assert_allclose(matrix.toarray(), expected, atol=1e-6)
    assert (matrix != matrix.T).nnz == 0 and matrix.diagonal().sum() == 0
    assert matrix.nnz == len(graph.rows) == np.count_nonzero(expected)
    keys = graph.rows * n + graph.cols
    assert (keys[1:] > keys[:-1]).all()  # sorted and deduplicated
    np.testing.assert_allclose(degree(graph).numpy(), expected.sum(axis=1), rtol=1e-5)


def path_graph(weights: list[float]) -> Graph:
    """Edges i → i+1 with the given weights, one direction only, so the union keeps them exactly."""
    n = len(weights) + 1
    indices = torch.tensor([[i + 1, i] for i in range(n - 1)] + [[n - 2, n - 2]])
    w = torch.tensor([[wi, 0.0] for wi in weights] + [[0.0, 0.0]])
    return fuzzy_union(indices, w, n)


def test_prune_removes_exactly_the_edges_below_max_over_200():
    graph = path_graph([0.8, 0.8 / 200 * 1.01, 0.8 / 200 * 0.99, 0.3, 1e-4])
    pruned = prune(graph)
    assert set(edge_set(pruned)) == {(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3)}
    assert pruned.n == graph.n
    assert len(prune(graph, 0.0).rows) == len(graph.rows) == 10
    assert set(edge_set(prune(graph, 0.5))) == {(0, 1), (1, 0)}


def test_sample_edges_follow_weights():
    graph = path_graph([0.9, 0.05, 0.3, 0.6, 0.15])
    heads, tails = sample_edges(graph, 200_000, torch.Generator().manual_seed(0))
    assert heads.shape == tails.shape == (200_000,) and heads.dtype == torch.int64
    edges = edge_set(graph)
    drawn = set(zip(heads.tolist(), tails.tolist()))
    assert drawn == set(edges)  # only real edges, and with 200k draws every one of them
    keys = (heads * graph.n + tails).numpy()
    counts = np.array([np.count_nonzero(keys == r * graph.n + c) for r, c in edges])
    probabilities = np.array(list(edges.values())) / sum(edges.values())
    assert np.abs(counts / 200_000 - probabilities).max() < 0.005


def test_sample_edges_is_reproducible():
    graph = path_graph([0.9, 0.05, 0.3])
    first = sample_edges(graph, 1000, torch.Generator().manual_seed(3))
    again = sample_edges(graph, 1000, torch.Generator().manual_seed(3))
    other = sample_edges(graph, 1000, torch.Generator().manual_seed(4))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("min_dist, a, b", [(0.1, 1.577, 0.895), (0.5, 0.583, 1.334)])
def test_fit_ab_matches_umap(min_dist, a, b):
    fitted_a, fitted_b = fit_ab(min_dist)
    assert fitted_a == pytest.approx(a, abs=0.01) and fitted_b == pytest.approx(b, abs=0.01)


def test_fuzzy_knn_graph_end_to_end(neighbors):
    distances, indices = neighbors
    graph = fuzzy_knn_graph(distances, indices)
    matrix = to_scipy(graph)
    assert (matrix != matrix.T).nnz == 0 and matrix.diagonal().sum() == 0
    assert graph.weights.max() == 1 and (graph.weights >= 1 / 200).all()
    # Every point's nearest positive neighbor has membership 1, so no point loses all its edges.
    assert (degree(graph) >= 1).all()
    unpruned = fuzzy_knn_graph(distances, indices, prune_fraction=0.0)
    assert len(unpruned.rows) > len(graph.rows)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: local_scales(torch.ones(5)), "must be 2-D"),
        (lambda: local_scales(torch.ones(5, 1)), "k must be >= 2"),
        (lambda: local_scales(torch.ones(5, 3), n_iter=0), "n_iter must be >= 1"),
        (lambda: membership_strengths(torch.ones(5, 3), torch.ones(4), torch.ones(5)), "rho and sigma must have shape"),
        (lambda: fuzzy_union(torch.zeros(3, 2, dtype=torch.long), torch.ones(3, 3), 3), "same shape"),
        (lambda: fuzzy_union(torch.full((3, 2), 3), torch.ones(3, 2), 3), r"indices must lie in \[0, 3\)"),
        (lambda: fuzzy_union(torch.zeros(3, 2, dtype=torch.long), torch.full((3, 2), 1.5), 3), r"in \[0, 1\]"),
        (lambda: fuzzy_knn_graph(torch.ones(5, 3), torch.zeros(5, 2, dtype=torch.long)), "same shape"),
        (lambda: fuzzy_knn_graph(torch.ones(5, 3), torch.zeros(5, 3, dtype=torch.long), 1.0), "fraction"),
        (lambda: prune(path_graph([0.5]), 1.0), r"fraction must be in \[0, 1\)"),
        (lambda: prune(path_graph([0.5]), -0.1), r"fraction must be in \[0, 1\)"),
        (lambda: sample_edges(path_graph([0.5]), 0, torch.Generator()), "count must be >= 1"),
        (lambda: sample_edges(path_graph([0.0]), 5, torch.Generator()), "empty graph"),
        (lambda: fit_ab(-0.1), "min_dist must be >= 0"),
        (lambda: fit_ab(0.1, 0.0), "spread must be > 0"),
    ],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
