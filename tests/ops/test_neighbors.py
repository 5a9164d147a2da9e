"""knn (exact, inverted file, faiss HNSW and Annoy) against brute-force numpy, and the symmetric kNN graph."""

import annoy
import numpy as np
import pytest
import torch

from deepclust_cli.ops.neighbors import knn, knn_graph


def brute_force(data, queries, k, metric="euclidean", exclude_self=False):
    if metric == "euclidean":
        dist = np.sqrt(((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1))
    else:
        unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        unit_x = data / np.linalg.norm(data, axis=1, keepdims=True)
        dist = 1 - unit_q @ unit_x.T
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


def assert_same_sets(a, b):
    np.testing.assert_array_equal(np.sort(np.asarray(a), axis=1), np.sort(np.asarray(b), axis=1))


@pytest.fixture
def points():
    return np.random.default_rng(0).standard_normal((200, 5))


# 37 float64 cells per block -> 6 queries × 6 data points, so k=9 needs a merge across data blocks.
TINY = 8 * 37


@pytest.mark.parametrize("max_bytes", [TINY, 8 * 1000, 256 * 2**20])
def test_exact_self_query_equals_brute_force(points, max_bytes):
    dist, idx = knn(points, 9, max_bytes=max_bytes)
    ref_d, ref_i = brute_force(points, points, 9, exclude_self=True)
    assert dist.dtype == torch.float32 and idx.dtype == torch.int64
    assert dist.shape == idx.shape == (200, 9)
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    assert (torch.diff(dist, dim=1) >= 0).all()


def test_exact_queries_differ_from_data(points):
    queries = np.random.default_rng(1).standard_normal((70, 5))
    queries[3] = points[17]
    dist, idx = knn(points, 9, queries=queries, max_bytes=TINY)
    ref_d, ref_i = brute_force(points, queries, 9)
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    # Without self-exclusion a query equal to a data point finds it at distance 0.
    assert idx[3, 0] == 17 and dist[3, 0] == 0


def test_exact_float32_torch_input(points):
    data = torch.from_numpy(points).float()
    dist, idx = knn(data, 5, max_bytes=4 * 50)
    ref_d, ref_i = brute_force(points, points, 5, exclude_self=True)
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-4, atol=1e-4)
    assert_same_sets(idx, ref_i)
    assert dist.device == data.device


def test_exact_is_deterministic(points):
    first, second = knn(points, 6, max_bytes=TINY), knn(points, 6, max_bytes=TINY)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_exact_cosine(points):
    dist, idx = knn(points, 7, metric="cosine", max_bytes=TINY)
    ref_d, ref_i = brute_force(points, points, 7, metric="cosine", exclude_self=True)
    np.testing.assert_allclose(dist.numpy(), ref_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(idx.numpy(), ref_i)
    # Cosine ignores scale.
    scaled = points * np.random.default_rng(2).uniform(0.1, 10, size=(200, 1))
    assert torch.equal(knn(scaled, 7, metric="cosine")[1], idx)


@pytest.mark.parametrize("backend", ["exact", "ivf", "hnsw", "annoy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_self_excluded_by_index_even_with_duplicates(points, backend, dtype):
    data = np.concatenate([points, points]).astype(dtype)
    dist, idx = knn(data, 4, backend=backend, max_bytes=8 * 37)
    own = torch.arange(400)[:, None]
    assert not (idx == own).any()
    # Each point's exact duplicate is its nearest neighbor.
    assert torch.equal(idx[:, 0], (torch.arange(400) + 200) % 400)
    assert (dist[:, 0] == 0).all()


@pytest.mark.parametrize("backend", ["exact", "ivf", "hnsw", "annoy"])
def test_all_identical_points(backend):
    data = np.ones((12, 3))
    _, idx = knn(data, 11, backend=backend, max_bytes=8 * 5)
    for i, row in enumerate(idx.tolist()):
        assert sorted(row) == [j for j in range(12) if j != i]


def test_exclude_self_false_keeps_self(points):
    dist, idx = knn(points, 3, exclude_self=False)
    assert torch.equal(idx[:, 0], torch.arange(200))
    assert (dist[:, 0] == 0).all()


def test_annoy_recall_against_exact():
    data = np.random.default_rng(0).standard_normal((2000, 10)).astype(np.float32)
    _, exact = knn(data, 10)
    dist, approx = knn(data, 10, backend="annoy", seed=3)
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist()))
    assert hits / exact.numel() >= 0.9
    assert not (approx == torch.arange(2000)[:, None]).any()
    # Reported distances are the true distances of the reported neighbors.
    true = np.linalg.norm(data[:, None, :] - data[approx.numpy()], axis=2)
    np.testing.assert_allclose(dist.numpy(), true, rtol=1e-4, atol=1e-4)
    assert (torch.diff(dist, dim=1) >= 0).all()


def clustered(n: int, dims: int, seed: int = 0) -> np.ndarray:
    """Points around 20 centers: structure like learned features, not isotropic noise."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, dims)) * 4
    return (centers[rng.integers(20, size=n)] + rng.standard_normal((n, dims))).astype(np.float32)


def found_like_exact(data: np.ndarray, k: int, minimum_recall: float, **kwargs) -> None:
    """An approximate self-query, checked: recall against exact, no point its own neighbor, the
    true distances of the neighbors reported, ascending, and the same answer twice."""
    _, exact = knn(data, k)
    dist, approx = knn(data, k, **kwargs)
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist()))
    assert hits / exact.numel() >= minimum_recall
    assert not (approx == torch.arange(len(data))[:, None]).any()
    true = np.linalg.norm(data[:, None, :] - data[approx.numpy()], axis=2)
    np.testing.assert_allclose(dist.numpy(), true, rtol=1e-5, atol=1e-5)
    assert (torch.diff(dist, dim=1) >= 0).all()
    again = knn(data, k, **kwargs)
    assert torch.equal(again[1], approx) and torch.equal(again[0], dist)


def test_ivf_recall_distances_and_determinism():
    data = clustered(4000, 12)
    found_like_exact(data, 15, 0.98, backend="ivf")
    few = [knn(data, 15, backend="ivf", ivf_probes=2, seed=seed)[1] for seed in (0, 0, 1)]
    assert torch.equal(few[0], few[1]) and not torch.equal(few[0], few[2])  # the seed picks the cells


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ivf_probing_every_cell_is_exact(metric):
    data, queries = clustered(500, 6), clustered(40, 6, seed=1)
    for kwargs in (dict(), dict(queries=queries)):
        exact = knn(data, 7, metric=metric, **kwargs)
        found = knn(data, 7, metric=metric, backend="ivf", ivf_cells=9, ivf_probes=9, **kwargs)
        assert torch.equal(found[1], exact[1])
        np.testing.assert_allclose(found[0].numpy(), exact[0].numpy(), atol=1e-6)


def test_ivf_cells_too_small_for_k_are_searched_exactly():
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.standard_normal((5, 3)), 100 + rng.standard_normal((100, 3))]).astype(np.float32)
    # Two cells, one probed: the 5 far points' own cell holds fewer than 8 + 1 candidates.
    found = knn(data, 8, backend="ivf", ivf_cells=2, ivf_probes=1)
    exact = knn(data, 8)
    assert torch.equal(found[1][:5], exact[1][:5]) and (found[1][:5] >= 5).any()


def test_hnsw_recall_distances_and_determinism():
    # isotropic noise, HNSW's hard case; a one-thread build gives the same graph every time
    found_like_exact(np.random.default_rng(0).standard_normal((3000, 12)).astype(np.float32), 15, 0.99, backend="hnsw")


def test_hnsw_cosine_with_queries(points):
    queries = np.random.default_rng(5).standard_normal((30, 5))
    dist, idx = knn(points, 5, queries=queries, backend="hnsw", metric="cosine")
    ref_d, ref_i = brute_force(points, queries, 5, metric="cosine")
    assert_same_sets(idx, ref_i)
    np.testing.assert_allclose(dist.numpy(), ref_d, atol=1e-5)


def test_auto_searches_exactly_up_to_its_size_then_with_the_inverted_file(points, monkeypatch):
    from deepclust_cli.ops import neighbors

    exact, ivf = knn(points, 5, backend="exact"), knn(points, 5, backend="ivf", ivf_probes=1)
    assert not torch.equal(exact[1], ivf[1])  # one probed cell misses some: the two answers can be told apart
    assert torch.equal(knn(points, 5, backend="auto", ivf_probes=1)[1], exact[1])
    monkeypatch.setattr(neighbors, "AUTO_EXACT_MAX_CPU", 100)
    assert torch.equal(knn(points, 5, backend="auto", ivf_probes=1)[1], ivf[1])


def test_annoy_cosine_with_queries(points):
    queries = np.random.default_rng(5).standard_normal((30, 5))
    dist, idx = knn(points, 5, queries=queries, backend="annoy", metric="cosine")
    ref_d, ref_i = brute_force(points, queries, 5, metric="cosine")
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    unit_x = points / np.linalg.norm(points, axis=1, keepdims=True)
    true = 1 - np.einsum("qd,qkd->qk", unit_q, unit_x[idx.numpy()])
    np.testing.assert_allclose(dist.numpy(), true, atol=1e-4)
    hits = sum(len(set(a) & set(e)) for a, e in zip(idx.tolist(), ref_i.tolist()))
    assert hits / ref_i.size >= 0.9


def test_annoy_is_seeded(points):
    first = knn(points, 5, backend="annoy", n_trees=3, seed=7)
    second = knn(points, 5, backend="annoy", n_trees=3, seed=7)
    assert torch.equal(first[1], second[1])


def test_annoy_short_rows_fall_back_to_exact():
    data = np.random.default_rng(0).standard_normal((300, 10)).astype(np.float32)
    k = 20
    # Confirm the setting really leaves Annoy short of k + 1 results for some items.
    index = annoy.AnnoyIndex(10, "euclidean")
    index.set_seed(0)
    for i, row in enumerate(data.tolist()):
        index.add_item(i, row)
    index.build(1, n_jobs=1)
    assert min(len(index.get_nns_by_item(i, k + 1, 1)) for i in range(300)) < k + 1

    dist, idx = knn(data, k, backend="annoy", n_trees=1, search_k=1)
    assert (idx >= 0).all() and torch.isfinite(dist).all()
    assert not (idx == torch.arange(300)[:, None]).any()
    assert all(len(set(row)) == k for row in idx.tolist())
    true = np.linalg.norm(data[:, None, :] - data[idx.numpy()], axis=2)
    np.testing.assert_allclose(dist.numpy(), true, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(k=0), "0 nearest neighbors asked of"),
        (dict(k=200), "200 nearest neighbors asked of 199 candidate points"),
        (dict(k=5, backend="faiss"), "choose one of auto, exact, ivf, hnsw, annoy"),
        (dict(k=5, backend="hnsw", hnsw_links=1), "hnsw_links must be >= 2"),
        (dict(k=5, backend="ivf", ivf_probes=0), "ivf_probes must be >= 1"),
        (dict(k=5, backend="ivf", ivf_cells=0), "ivf_cells must be >= 1"),
        (dict(k=5, metric="manhattan"), "choose one of euclidean, cosine"),
        (dict(k=5, queries=np.zeros((3, 4))), "dims"),
        (dict(k=5, queries=np.zeros((3, 5)), exclude_self=True), "exclude_self"),
    ],
)
def test_bad_arguments(points, kwargs, message):
    with pytest.raises(ValueError, match=message):
        knn(points, **kwargs)


def test_bad_data():
    with pytest.raises(ValueError, match="2-D"):
        knn(np.zeros(10), 2)
    with pytest.raises(ValueError, match="NaN"):
        knn(np.array([[0.0], [np.nan], [1.0]]), 1)
    # Without self-exclusion all n points are candidates.
    assert knn(np.zeros((4, 2)), 4, queries=np.zeros((1, 2)))[1].shape == (1, 4)
    with pytest.raises(ValueError, match="of 4 candidate points"):
        knn(np.zeros((4, 2)), 5, queries=np.zeros((1, 2)))


@pytest.mark.parametrize("backend", ["exact", "ivf", "hnsw", "annoy"])
def test_knn_graph_connectivity(points, backend):
    graph = knn_graph(points, 6, backend=backend)
    assert graph.shape == (200, 200) and graph.dtype == np.float64
    assert abs(graph - graph.T).max() == 0
    assert graph.diagonal().max() == 0 and graph.diagonal().min() == 0
    assert (np.diff(graph.indptr) >= 6).all()
    np.testing.assert_array_equal(graph.data, 1.0)
    # An edge exists exactly when either endpoint lists the other.
    _, idx = knn(points, 6, backend=backend)
    directed = np.zeros((200, 200), dtype=bool)
    directed[np.repeat(np.arange(200), 6), idx.numpy().ravel()] = True
    np.testing.assert_array_equal(graph.toarray() != 0, directed | directed.T)


def test_knn_graph_distance_weights_keep_duplicate_edges(points):
    data = np.concatenate([points[:50], points[:50]])
    graph = knn_graph(data, 3, weight="distance")
    assert (graph != graph.T).nnz == 0
    assert (np.diff(graph.indptr) >= 3).all()
    rows, cols = np.repeat(np.arange(100), np.diff(graph.indptr)), graph.indices
    np.testing.assert_allclose(graph.data, np.linalg.norm(data[rows] - data[cols], axis=1), atol=1e-5)
    # The duplicate edge at distance 0 is stored, not dropped.
    assert graph[0, 50] == 0 and 50 in graph.indices[graph.indptr[0] : graph.indptr[1]]


def test_knn_graph_bad_arguments(points):
    with pytest.raises(ValueError, match="connectivity, distance"):
        knn_graph(points, 3, weight="gaussian")
    with pytest.raises(ValueError, match="queries"):
        knn_graph(points, 3, queries=points)
