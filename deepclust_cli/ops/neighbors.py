"""k-nearest neighbors behind one interface: an exact torch back end, an inverted-file back end
(torch, exact distances within probed k-means cells), a faiss HNSW back end, an Annoy back end,
and ``"auto"``, which searches exactly while that is cheap and with the inverted file above.

``knn`` answers "which ``k`` rows of ``data`` are closest to each query" as
``(distances float32 [M × k], indices int64 [M × k])`` sorted ascending, on a torch device;
``knn_graph`` turns the self-query into a symmetric sparse affinity graph.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Union

import numpy as np
import scipy.sparse
import torch

from deepclust_cli.engine.progress import Progress
from deepclust_cli.errors import DataError
from deepclust_cli.ops import KNN_BACKENDS

ArrayLike = Union[np.ndarray, torch.Tensor]
Device = Union[str, torch.device, None]

BACKENDS = KNN_BACKENDS
# "auto" searches exactly up to this many points on the CPU and with the inverted file above
# (scripts/bench_knn.py times both; README "Results"). A GPU searches exactly at any size.
AUTO_EXACT_MAX_CPU = 20_000
IVF_TRAIN_PER_CELL, IVF_ITERATIONS = 16, 6  # k-means on a seeded 16 rows per cell, 6 Lloyd steps
METRICS = ("euclidean", "cosine")
WEIGHTS = ("connectivity", "distance")
_ANNOY_METRIC = {"euclidean": "euclidean", "cosine": "angular"}


def _matrix(x: ArrayLike, name: str) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (points × dims), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _choice(value: str, choices: tuple, name: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def knn(
    data: ArrayLike,
    k: int,
    *,
    queries: Optional[ArrayLike] = None,
    backend: str = "exact",
    metric: str = "euclidean",
    device: Device = None,
    exclude_self: Optional[bool] = None,
    max_bytes: int = 256 * 2**20,
    n_trees: int = 50,
    search_k: int = -1,
    ivf_cells: Optional[int] = None,
    ivf_probes: int = 16,
    hnsw_links: int = 32,
    hnsw_ef_search: int = 32,
    seed: int = 0,
    progress: Optional[str] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``data`` to each query: ``(distances, indices)``, ascending by distance.

    Distances: ``metric="euclidean"`` is ``||q - x||`` (not squared); ``metric="cosine"`` is
    ``1 - <q, x> / (||q|| ||x||)``. Results are float32 / int64 tensors ``[n_queries × k]`` on
    ``device`` (default: ``data``'s device, CPU for numpy input).

    ``queries=None`` queries ``data`` against itself, and then ``exclude_self`` (default True)
    removes each point's own index from its row — by index, so an exact duplicate elsewhere is
    still a valid neighbor at distance 0. ``exclude_self`` needs ``queries=None``.

    Back ends:

    * ``"exact"``: torch on ``device``, deterministic; blocks of ``q × x`` scores
      ``2<q, x> - ||x||² = ||q||² - ||q - x||²`` (the expanded squared distance without the row
      constant ``||q||²``; ``<q, x>`` on unit rows for cosine) are reduced by a running top-k
      merge, chunked over queries and data so no block exceeds ``max_bytes``; the chosen ``k``
      distances are then computed from differences ``||q - x||`` (so duplicates are at exactly 0)
      and each row re-sorted.
    * ``"ivf"``: an inverted file (Jégou, Douze & Schmid, 2011) searched exactly within the cells
      it probes. Seeded k-means (``IVF_ITERATIONS`` Lloyd steps on ``IVF_TRAIN_PER_CELL`` rows
      per cell) splits the data into ``ivf_cells`` cells (default ``4·√n``); every point and
      query probes its ``ivf_probes`` nearest centroids. The queries are searched cell by cell:
      those whose nearest centroid is cell ``c`` are scored, in one block as in ``"exact"``,
      against every point of every cell any of them probes — a few per cent of the data, so
      the search is matrix products on the chosen device, deterministic, with recall 0.994 at 15
      neighbors on MNIST (scripts/bench_knn.py). Rows with fewer than ``k`` candidates are
      searched exactly.
    * ``"hnsw"``: a faiss ``IndexHNSWFlat`` graph (Malkov & Yashunin, 2018) with ``hnsw_links``
      links per point, searched with a candidate list of ``hnsw_ef_search`` (at least the number
      of neighbors asked). Approximate (recall 0.997 at 15 neighbors on MNIST); built in one
      thread so that the graph, and the answer, do not depend on thread timing; searched on
      every core. The chosen neighbors' distances are recomputed as for ``"exact"``.
    * ``"auto"``: ``"exact"`` on a GPU or for at most ``AUTO_EXACT_MAX_CPU`` points, else ``"ivf"``.
    * ``"annoy"``: an ``annoy.AnnoyIndex`` forest of ``n_trees`` trees seeded with ``seed``,
      searched with ``search_k`` (``-1``: Annoy's default ``n_trees * k``). Approximate; rows
      where Annoy finds fewer than ``k`` neighbors are recomputed exactly.

    ``progress``: a label under which the exact search reports its progress over query chunks
    (a bar on a terminal, plain lines otherwise); None keeps it quiet.

    Raises ValueError for ``k < 1``, ``k`` above the number of candidate points (``n``, or
    ``n - 1`` when excluding self), non-2-D or non-finite input, or an unknown backend or metric.
    """
    _choice(backend, BACKENDS, "backend")
    _choice(metric, METRICS, "metric")
    x = _matrix(data, "data")
    q = x if queries is None else _matrix(queries, "queries")
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dims but data has {x.shape[1]}")
    if exclude_self is None:
        exclude_self = queries is None
    if exclude_self and queries is not None:
        raise ValueError("exclude_self needs queries=None (self is defined only when data queries itself)")
    candidates = len(x) - 1 if exclude_self else len(x)
    if not 1 <= k <= candidates:
        raise DataError(
            f"{k} nearest neighbors asked of {candidates} candidate points; "
            "lower the neighbor count (e.g. method.n_neighbors) or use more samples"
        )
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
    device = torch.device(device) if device is not None else x.device

    if backend == "auto":
        backend = "exact" if device.type != "cpu" or len(x) <= AUTO_EXACT_MAX_CPU else "ivf"
    if backend == "exact":
        self_index = torch.arange(len(q), device=device) if exclude_self else None
        return _exact(x, q, k, metric, device, self_index, max_bytes, progress)
    if backend == "ivf":
        return _ivf(x, q if queries is not None else None, k, metric, device, exclude_self, max_bytes, ivf_cells, ivf_probes, seed, progress)
    if backend == "hnsw":
        return _hnsw(x, q if queries is not None else None, k, metric, device, exclude_self, max_bytes, hnsw_links, hnsw_ef_search)
    return _annoy(x, q if queries is not None else None, k, metric, device, exclude_self, max_bytes, n_trees, search_k, seed)


def _prepare(x: torch.Tensor, metric: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = x.to(device=device, dtype=dtype)
    return torch.nn.functional.normalize(x, dim=1) if metric == "cosine" else x


def _scores(queries: torch.Tensor, points: torch.Tensor, neg_sq: Optional[torch.Tensor]) -> torch.Tensor:
    """A block of scores that grow as distance shrinks: ``2<q, x> − ||x||²`` given ``neg_sq = −||x||²``
    (Euclidean), else ``<q, x>`` (cosine, on unit rows); one fused ``addmm``/``mm``."""
    return queries @ points.T if neg_sq is None else torch.addmm(neg_sq, queries, points.T, alpha=2)


def _fill_short_rows(
    dist: torch.Tensor, idx: torch.Tensor, short: torch.Tensor, data: torch.Tensor, queries: Optional[torch.Tensor],
    k: int, metric: str, exclude_self: bool, max_bytes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Search the rows ``short`` (query positions an approximate back end left with fewer than
    ``k`` neighbors) exactly, in place in ``dist`` and ``idx``; ``queries=None``: a self-query."""
    if len(short):
        source = data if queries is None else queries
        self_index = short if exclude_self else None
        dist[short], idx[short] = _exact(data, source[short.to(source.device)], k, metric, dist.device, self_index, max_bytes)
    return dist, idx


def _exact(
    data: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    metric: str,
    device: torch.device,
    self_index: Optional[torch.Tensor],
    max_bytes: int,
    progress: Optional[str] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute-force top-k in ``q_chunk × d_chunk`` blocks with a running merge.

    Candidates are ranked by a score that grows as distance shrinks: for Euclidean
    ``2<q, x> - ||x||² = ||q||² - ||q - x||²`` (``||q||²`` is constant along a query's row, so it is
    never added), for cosine ``<q, x>`` on unit rows; each block is one fused ``addmm``/``mm``.
    For each query chunk, every data chunk contributes its own top ``min(k, d_chunk)``; these are
    concatenated with the best ``k`` so far and cut back to ``k``, so the answer equals the top-k
    over all data. ``self_index[i]`` (a data index, or None) is masked to ``-inf`` in query ``i``'s
    row. The final ``k`` distances come from :func:`_refine`.
    """
    # float64 input keeps its precision; anything else computes in float32.
    dtype = torch.float64 if torch.float64 in (data.dtype, queries.dtype) else torch.float32
    x = _prepare(data, metric, device, dtype)
    q_all = x if queries is data else _prepare(queries, metric, device, dtype)
    n, m = len(x), len(q_all)
    budget = max(1, max_bytes // x.element_size())
    # Square-ish blocks keep the matmul efficient; the query side grows when whole data rows fit.
    q_chunk = min(m, max(1, budget // n, math.isqrt(budget)))
    d_chunk = min(n, max(1, budget // q_chunk))
    neg_x_sq = -(x * x).sum(dim=1) if metric == "euclidean" else None

    out_i = torch.empty(m, k, dtype=torch.long, device=device)
    chunks = Progress(range(0, m, q_chunk), desc=progress or "", unit="chunk", enabled=progress is not None)
    for q0 in chunks:
        q = q_all[q0 : q0 + q_chunk]
        best_s = torch.full((len(q), k), -math.inf, dtype=x.dtype, device=device)
        best_i = torch.full((len(q), k), -1, dtype=torch.long, device=device)
        sid = None if self_index is None else self_index[q0 : q0 + q_chunk]
        for d0 in range(0, n, d_chunk):
            xb = x[d0 : d0 + d_chunk]
            block = _scores(q, xb, None if neg_x_sq is None else neg_x_sq[d0 : d0 + d_chunk])
            if sid is not None:
                rows = ((sid >= d0) & (sid < d0 + len(xb))).nonzero().squeeze(1)
                block[rows, sid[rows] - d0] = -math.inf
            top_s, top_i = block.topk(min(k, len(xb)), dim=1)
            best_s, pos = torch.cat([best_s, top_s], dim=1).topk(k, dim=1)
            best_i = torch.cat([best_i, top_i + d0], dim=1).gather(1, pos)
        out_i[q0 : q0 + q_chunk] = best_i
    return _refine(q_all, x, out_i, metric, budget)


def _refine(
    queries: torch.Tensor, data: torch.Tensor, idx: torch.Tensor, metric: str, budget: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Recompute the chosen neighbors' distances from differences and re-sort each row.

    The expanded form ``||q||² - 2<q, x> + ||x||²`` loses all precision for near-identical points
    (an exact float32 duplicate can come out at 1e-3), while ``||q - x||`` is exact for duplicates.
    Cosine distance on unit rows is ``||q - x||² / 2``. Done in query chunks of
    ``budget / (k · dims)`` so the gathered ``chunk × k × dims`` block stays within budget.
    """
    m, k = idx.shape
    dist = torch.empty(m, k, dtype=torch.float32, device=idx.device)
    step = max(1, budget // (k * data.shape[1]))
    for s in range(0, m, step):
        sq = (queries[s : s + step, None, :] - data[idx[s : s + step]]).square_().sum(dim=2)
        dist[s : s + step] = sq.sqrt_() if metric == "euclidean" else sq.div_(2)
    dist, order = dist.sort(dim=1, stable=True)
    return dist, idx.gather(1, order)


def _ivf(
    data: torch.Tensor,
    queries: Optional[torch.Tensor],
    k: int,
    metric: str,
    device: torch.device,
    exclude_self: bool,
    max_bytes: int,
    cells: Optional[int],
    probes: int,
    seed: int,
    progress: Optional[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``"ivf"`` back end (see :func:`knn`)."""
    if cells is not None and cells < 1:
        raise ValueError(f"ivf_cells must be >= 1, got {cells}")
    if probes < 1:
        raise ValueError(f"ivf_probes must be >= 1, got {probes}")
    dtype = torch.float64 if data.dtype == torch.float64 else torch.float32
    x = _prepare(data, metric, device, dtype)
    q = x if queries is None else _prepare(queries, metric, device, dtype)
    n, m = len(x), len(q)
    budget = max(1, max_bytes // x.element_size())
    n_cells = min(n, cells or max(1, round(4 * math.sqrt(n))))
    probes = min(probes, n_cells)
    centroids = _lloyd(x, n_cells, seed, budget)
    probed = _nearest_cells(q, centroids, probes, budget)  # each query's cells, nearest first
    home = probed[:, 0] if queries is None else _nearest_cells(x, centroids, 1, budget)[:, 0]
    query_home = probed[:, 0]

    by_cell = torch.argsort(home, stable=True)  # the data, cell after cell
    starts = torch.cat([home.new_zeros(1), torch.bincount(home, minlength=n_cells).cumsum(0)]).tolist()
    query_order = torch.argsort(query_home, stable=True)
    query_starts = torch.cat([home.new_zeros(1), torch.bincount(query_home, minlength=n_cells).cumsum(0)]).tolist()
    neg_x_sq = -(x * x).sum(dim=1) if metric == "euclidean" else None
    found = torch.full((m, k), -1, dtype=torch.long, device=device)
    want = k + 1 if exclude_self else k
    position = torch.empty(n, dtype=torch.long, device=device)  # a data index's column in the cell's block
    chunks = Progress(range(n_cells), desc=progress or "", unit="cell", enabled=progress is not None)
    for cell in chunks:
        rows = query_order[query_starts[cell] : query_starts[cell + 1]]
        if len(rows) == 0:
            continue
        cand = torch.cat([by_cell[starts[c] : starts[c + 1]] for c in torch.unique(probed[rows]).tolist()])
        if len(cand) < want:
            continue  # left at -1: searched exactly below
        step = max(1, budget // len(cand))
        xc = x[cand]
        if exclude_self:
            position[cand] = torch.arange(len(cand), device=device)  # a query's own row is in its home cell
        for r0 in range(0, len(rows), step):
            part = rows[r0 : r0 + step]
            block = _scores(q[part], xc, None if neg_x_sq is None else neg_x_sq[cand])
            if exclude_self:
                block[torch.arange(len(part), device=device), position[part]] = -math.inf
            found[part] = cand[block.topk(k, dim=1).indices]
    dist, idx = _refine(q, x, found.clamp(min=0), metric, budget)
    short = (found < 0).any(dim=1).nonzero().squeeze(1)
    return _fill_short_rows(dist, idx, short, x, None if queries is None else q, k, metric, exclude_self, max_bytes)


def _lloyd(x: torch.Tensor, n_cells: int, seed: int, budget: int) -> torch.Tensor:
    """Centroids of ``IVF_ITERATIONS`` Lloyd steps from seeded rows, on a seeded subsample of
    ``IVF_TRAIN_PER_CELL`` rows per cell (an empty cell keeps its centroid)."""
    generator = torch.Generator().manual_seed(seed)
    sample = x[torch.randperm(len(x), generator=generator)[: IVF_TRAIN_PER_CELL * n_cells].to(x.device)]
    centroids = sample[:n_cells].clone()
    for _ in range(IVF_ITERATIONS):
        assigned = _nearest_cells(sample, centroids, 1, budget)[:, 0]
        sums = torch.zeros_like(centroids).index_add_(0, assigned, sample)
        counts = torch.bincount(assigned, minlength=n_cells)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(sums.dtype)
    return centroids


def _nearest_cells(points: torch.Tensor, centroids: torch.Tensor, probes: int, budget: int) -> torch.Tensor:
    """The ``probes`` nearest centroids of each point (nearest first), in chunks within ``budget``."""
    neg_c_sq = -(centroids * centroids).sum(dim=1)
    step = max(1, budget // len(centroids))
    return torch.cat([
        _scores(points[s : s + step], centroids, neg_c_sq).topk(probes, dim=1).indices
        for s in range(0, len(points), step)
    ])


def drop_self(ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each self-query row's ``k + 1`` found ids less the query's own (or, when it was not found,
    the farthest); returns ``(ids, kept positions)``. Also for the benchmarks' peer searches."""
    drop = ids == np.arange(len(ids))[:, None]
    drop[~drop.any(axis=1), -1] = True
    keep = np.argsort(drop, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(ids, keep, axis=1), keep


def _hnsw(
    data: torch.Tensor,
    queries: Optional[torch.Tensor],
    k: int,
    metric: str,
    device: torch.device,
    exclude_self: bool,
    max_bytes: int,
    links: int,
    ef_search: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate top-k from a faiss HNSW graph (L2 on the rows, unit rows for cosine); rows
    where the search found fewer than ``k`` neighbors fall back to :func:`_exact`."""
    import faiss

    if links < 2:
        raise ValueError(f"hnsw_links must be >= 2, got {links}")
    if ef_search < 1:
        raise ValueError(f"hnsw_ef_search must be >= 1, got {ef_search}")
    x = _prepare(data, metric, torch.device("cpu"), torch.float32).contiguous()
    q = x if queries is None else _prepare(queries, metric, torch.device("cpu"), torch.float32).contiguous()
    want = k + 1 if exclude_self else k
    index = faiss.IndexHNSWFlat(x.shape[1], links)
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)  # a parallel build links points in the order threads reach them
        index.add(x.numpy())
        faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
        index.hnsw.efSearch = max(ef_search, want)
        _, found = index.search(q.numpy(), want)
    finally:
        faiss.omp_set_num_threads(threads)
    ids = torch.from_numpy(found.astype(np.int64))
    if exclude_self:
        ids = torch.from_numpy(drop_self(ids.numpy(), k)[0])
    short = (ids < 0).any(dim=1).nonzero().squeeze(1)
    dist, idx = _refine(q, x, ids.clamp(min=0), metric, max(1, max_bytes // 4))  # short rows: placeholders, searched below
    return _fill_short_rows(dist.to(device), idx.to(device), short.to(device), x, None if queries is None else q, k, metric, exclude_self, max_bytes)


def _annoy(
    data: torch.Tensor,
    queries: Optional[torch.Tensor],
    k: int,
    metric: str,
    device: torch.device,
    exclude_self: bool,
    max_bytes: int,
    n_trees: int,
    search_k: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate top-k from an Annoy forest; self-queries go by item id, others by vector.

    Annoy's angular distance is ``sqrt(2 - 2 cos)``, so cosine distance is ``angular² / 2``.
    Self-queries ask for ``k + 1`` items and drop the query's own id (or, when Annoy did not
    return it, the farthest item). Rows still short of ``k`` neighbors fall back to ``_exact``.
    """
    import annoy

    if n_trees < 1:
        raise ValueError(f"n_trees must be >= 1, got {n_trees}")
    x = data.detach().to("cpu", torch.float32).numpy()
    index = annoy.AnnoyIndex(x.shape[1], _ANNOY_METRIC[metric])
    index.set_seed(seed)
    # Annoy has no bulk insert, so this loop is its only way in; numpy rows (not .tolist()) keep
    # memory flat at ImageNet scale and add no measurable cost.
    for i, row in enumerate(x):
        index.add_item(i, row)
    # One build thread: a multi-threaded forest depends on the core count, so the seed alone would not fix it.
    index.build(n_trees, n_jobs=1)

    self_query = queries is None
    m = len(x) if self_query else len(queries)
    want = k + 1 if exclude_self else k
    ids = np.full((m, want), -1, dtype=np.int64)
    dists = np.full((m, want), np.inf, dtype=np.float32)
    q_rows = None if self_query else queries.detach().to("cpu", torch.float32).numpy()

    def search(rows: range) -> None:
        # Annoy releases the GIL inside get_nns_* (Py_BEGIN_ALLOW_THREADS in annoymodule.cc; two
        # threads halve the wall time of 20k item queries on 2 cores), so threads search in parallel.
        for i in rows:
            if self_query:
                found, dist = index.get_nns_by_item(i, want, search_k, include_distances=True)
            else:
                found, dist = index.get_nns_by_vector(q_rows[i], want, search_k, include_distances=True)
            ids[i, : len(found)] = found
            dists[i, : len(found)] = dist

    workers = os.cpu_count() or 1
    step = max(1, math.ceil(m / (4 * workers)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(search, (range(s, min(s + step, m)) for s in range(0, m, step))))

    if exclude_self:
        ids, keep = drop_self(ids, k)
        dists = np.take_along_axis(dists, keep, axis=1)
    if metric == "cosine":
        dists = np.square(dists) / 2

    short = torch.from_numpy((ids < 0).any(axis=1).nonzero()[0]).to(device)
    dist, idx = torch.from_numpy(dists).to(device), torch.from_numpy(ids).to(device)
    return _fill_short_rows(dist, idx, short, data, queries, k, metric, exclude_self, max_bytes)


def knn_graph(
    data: ArrayLike,
    k: int,
    *,
    backend: str = "exact",
    metric: str = "euclidean",
    device: Device = None,
    weight: str = "connectivity",
    **knn_kwargs,
) -> scipy.sparse.csr_matrix:
    """Symmetric kNN graph ``W`` (float64 CSR, ``n × n``, no self loops).

    Directed edges ``i → j`` for each of ``i``'s ``k`` nearest neighbors (self excluded, see
    :func:`knn`) carry weight 1 (``weight="connectivity"``) or the distance ``d(i, j)``
    (``weight="distance"``). Both are symmetrized as ``W_sym = max(W, Wᵀ)`` elementwise: an
    edge exists when either endpoint lists the other, with the same weight either way since
    distance is symmetric (not ``(W + Wᵀ)/2``, which would halve one-sided edges). Edges between
    duplicate points keep their zero distance as an explicitly stored entry, so every row has at
    least ``k`` stored entries.
    """
    _choice(weight, WEIGHTS, "weight")
    clash = {"queries", "exclude_self"} & knn_kwargs.keys()
    if clash:
        raise ValueError(f"knn_graph always queries data against itself; drop {', '.join(sorted(clash))}")
    dist, idx = knn(data, k, backend=backend, metric=metric, device=device, **knn_kwargs)
    n = len(idx)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = idx.cpu().numpy().ravel()
    vals = np.ones(n * k) if weight == "connectivity" else dist.cpu().numpy().ravel().astype(np.float64)

    # Both directions of every edge, deduplicated by taking the max per (row, col) key.
    keys = np.concatenate([rows * n + cols, cols * n + rows])
    vals = np.concatenate([vals, vals])
    order = np.argsort(keys, kind="stable")
    keys, vals = keys[order], vals[order]
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    vals = np.maximum.reduceat(vals, first)
    keys = keys[first]
    indptr = np.r_[0, np.cumsum(np.bincount(keys // n, minlength=n))]
    return scipy.sparse.csr_matrix((vals, keys % n, indptr), shape=(n, n))


SCALE_RULES = ("ours", "reference")


def gaussian_knn_weights(
    x: torch.Tensor, n_neighbors: int, scale_k: int, local_scale: bool = True, rule: str = "ours"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian kNN weights of one batch, on the batch's device (SpectralNet, §4), as lists.

    Returns ``(weights, indices)``, both ``m × n_neighbors``: ``indices[i]`` are ``x_i``'s nearest
    points in the batch (itself not counted) and ``weights[i, t] = exp(−‖x_i − x_j‖² / σ²)`` for
    ``j = indices[i, t]``, with σ by ``rule``:

    * ``"ours"``: ``σ = σ_i``, the distance from ``x_i`` to its ``scale_k``-th nearest neighbor,
      the point itself not counted (``local_scale``), or the median of those distances over the
      batch (global). ``scale_k`` is honoured in both modes.
    * ``"reference"``: shaham-lab/SpectralNet's ``compute_scale`` and ``get_gaussian_kernel``
      (``src/spectralnet/_utils.py``), whose kNN lists the point itself first at distance 0.
      Global: the median over the batch of column ``scale_k − 1`` of that list, i.e. the
      distance to the ``(scale_k − 1)``-th other point (one neighbor nearer than ours). Local:
      ``σ_j`` of the edge's *other* endpoint (the kernel divides ``D²`` column-wise by
      ``scale``), where ``σ_j`` is the median of ``x_j``'s distances to itself and its
      ``n_neighbors`` nearest points (``np.median``: the mean of the two middle values for an
      even count); the reference ignores ``scale_k`` in local mode, and so does this rule.

    Either way the affinity is ``(W + Wᵀ)/2`` of these lists, without the reference's self-loops
    (weight 1, which change only the normalized Laplacian's degrees), and the global median of
    ``"ours"`` is the lower middle value (``torch.median``). Counts are capped at the batch size
    minus one.
    """
    if rule not in SCALE_RULES:
        raise ValueError(f"scale rule must be one of {', '.join(SCALE_RULES)}, got {rule!r}")
    reference = rule == "reference"
    if reference and not local_scale and scale_k < 2:
        raise ValueError(f"the reference's global scale needs scale_k >= 2 (its neighbor 1 is the point itself), got {scale_k}")
    m = len(x)
    if m < 2:
        raise DataError(f"an affinity needs at least 2 points, got {m}; use more samples")
    # The reference's column scale_k - 1 counting the point itself is our (scale_k - 1)-th other point.
    n_neighbors, scale_k = min(n_neighbors, m - 1), min(scale_k - 1 if reference else scale_k, m - 1)
    distances, indices = _batch_knn(x.float(), max(n_neighbors, scale_k, 1))
    indices = indices[:, :n_neighbors]
    if not reference:
        sigma = distances[:, scale_k - 1]
        sigma = (sigma if local_scale else sigma.median().expand(m)).unsqueeze(1)
    elif local_scale:
        with_self = torch.cat([torch.zeros_like(distances[:, :1]), distances[:, :n_neighbors]], dim=1)
        # quantile interpolates: np.median's mean of the two middle values; then σ of each neighbor (column).
        sigma = with_self.quantile(0.5, dim=1)[indices]
    else:
        sigma = distances[:, scale_k - 1].quantile(0.5).expand(m, 1)
    sigma = sigma.clamp_min(torch.finfo(torch.float32).tiny ** 0.25)  # duplicates put σ at 0
    weights = torch.exp(-distances[:, :n_neighbors].square() / sigma.square())
    return weights, indices


def gaussian_affinity(x: torch.Tensor, n_neighbors: int, scale_k: int, local_scale: bool = True, rule: str = "ours") -> torch.Tensor:
    """The dense symmetric affinity ``(W + Wᵀ)/2`` (m × m) of :func:`gaussian_knn_weights`."""
    weights, indices = gaussian_knn_weights(x, n_neighbors, scale_k, local_scale, rule)
    affinity = torch.zeros(len(x), len(x), dtype=weights.dtype, device=x.device)
    affinity.scatter_(1, indices, weights)
    return (affinity + affinity.T) / 2


DENSE_BATCH_BYTES = 256 * 2**20


def _batch_knn(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """kNN of a training batch, self excluded: one distance matrix and one top-k when the batch's
    m×m distances fit in ``DENSE_BATCH_BYTES`` (the common case, several times faster per step
    than the general chunked search), :func:`knn` otherwise."""
    m = len(x)
    if m * m * 4 > DENSE_BATCH_BYTES:
        return knn(x, k)
    distances = torch.cdist(x, x)
    distances.fill_diagonal_(float("inf"))
    return distances.topk(k, dim=1, largest=False)
