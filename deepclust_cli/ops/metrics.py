"""Clustering and representation metrics: ACC, NMI, ARI, AND's weighted kNN accuracy, and the
label-free scores of a clustering in the space it was assigned in (silhouette, Davies–Bouldin,
Calinski–Harabasz, cluster sizes).

Labels may be numpy arrays, Python sequences or torch tensors (CPU or CUDA); ``y_true`` may hold
any sortable values (negative, non-contiguous, strings), ``y_pred`` any cluster ids. Nothing here
invents labels: when ground truth is absent, :func:`clustering_metrics` returns ``{}``.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

ArrayLike = Union[np.ndarray, torch.Tensor, list, tuple]
Device = Union[str, torch.device, None]

DEFAULT_MAX_BYTES = 256 * 2**20


def _labels(y: ArrayLike, name: str) -> Union[np.ndarray, torch.Tensor]:
    """``y`` as a 1-D tensor (kept on its device) or 1-D numpy array."""
    if not isinstance(y, torch.Tensor):
        y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(y.shape)}")
    return y


def _pair(y_true: ArrayLike, y_pred: ArrayLike):
    """Both label vectors, checked for equal non-zero length, in one framework.

    Two tensors on one device stay torch (so the contingency is counted on that device);
    any other mix goes through numpy, which also covers string labels.
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} labels but y_pred has {len(p)}")
    if len(t) == 0:
        raise ValueError("y_true and y_pred are empty")
    both_torch = isinstance(t, torch.Tensor) and isinstance(p, torch.Tensor) and t.device == p.device
    if not both_torch:
        t, p = (v.cpu().numpy() if isinstance(v, torch.Tensor) else v for v in (t, p))
    return t, p


def _numpy(y: ArrayLike, name: str) -> np.ndarray:
    y = _labels(y, name)
    return y.cpu().numpy() if isinstance(y, torch.Tensor) else y


def _contingency(t, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count table ``C[i, j] = #{n : y_true[n] = class_i and y_pred[n] = cluster_j}``.

    Both label vectors are recoded to dense ids by sorting (``unique(return_inverse)``), and the
    pair ``(i, j)`` is flattened to ``i * n_clusters + j`` so one ``bincount`` fills the table:
    O(N log N) with no Python loop over samples or clusters.
    """
    if isinstance(t, torch.Tensor):
        classes, ti = torch.unique(t, sorted=True, return_inverse=True)
        clusters, pi = torch.unique(p, sorted=True, return_inverse=True)
        flat = torch.bincount(ti.long() * len(clusters) + pi.long(), minlength=len(classes) * len(clusters))
        table = flat.view(len(classes), len(clusters)).cpu().numpy()
        return table.astype(np.int64, copy=False), classes.cpu().numpy(), clusters.cpu().numpy()
    classes, ti = np.unique(t, return_inverse=True)
    clusters, pi = np.unique(p, return_inverse=True)
    flat = np.bincount(ti.ravel().astype(np.int64) * len(clusters) + pi.ravel(), minlength=len(classes) * len(clusters))
    return flat.reshape(len(classes), len(clusters)).astype(np.int64, copy=False), classes, clusters


def contingency(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contingency table ``C`` (int64, ``n_classes × n_clusters``) with its row and column values.

    ``C[i, j]`` counts samples of class ``class_values[i]`` put in cluster ``cluster_values[j]``;
    both value arrays are sorted ascending (``np.unique`` order).
    """
    return _contingency(*_pair(y_true, y_pred))


def _assignment(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching maximizing ``sum C[row_k, col_k]`` over one-to-one row/column pairs.

    Rectangular tables are fine: ``min(n_classes, n_clusters)`` pairs are matched.
    """
    return linear_sum_assignment(table, maximize=True)


def _acc_from_table(table: np.ndarray) -> float:
    rows, cols = _assignment(table)
    return float(table[rows, cols].sum() / table.sum())


def acc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Clustering accuracy ``ACC = max_m (1/N) sum_n [y_true[n] = m(y_pred[n])]``.

    ``m`` ranges over one-to-one maps from clusters to classes; when the counts differ, the
    surplus clusters (or classes) stay unmatched and their samples count as errors. The maximum is
    found with the Hungarian algorithm on the contingency table.
    """
    return _acc_from_table(contingency(y_true, y_pred)[0])


def cluster_to_class(y_true: ArrayLike, y_pred: ArrayLike) -> dict:
    """Map every cluster value to a class value, e.g. to order a confusion-matrix plot.

    Clusters matched by the Hungarian assignment behind :func:`acc` map to their matched class.
    Clusters left unmatched (possible only when there are more clusters than classes) map to their
    majority class, so the map covers every cluster but is one-to-one only on the matched ones.
    Keys and values are plain Python scalars.
    """
    table, classes, clusters = contingency(y_true, y_pred)
    target = table.argmax(axis=0)
    rows, cols = _assignment(table)
    target[cols] = rows
    return dict(zip(clusters.tolist(), classes[target].tolist()))


def _nmi_from_table(table: np.ndarray) -> float:
    """``I(T; P) / ((H(T) + H(P)) / 2)`` from the contingency table, natural logarithms.

    Matches scikit-learn's ``normalized_mutual_info_score(average_method="arithmetic")``,
    including its limits: two single-cluster labellings score 1, a zero mutual information 0.
    """
    n_classes, n_clusters = table.shape
    if n_classes == n_clusters == 1:
        return 1.0
    total = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    i, j = np.nonzero(table)
    joint = table[i, j] / total
    mutual = float(np.sum(joint * (np.log(table[i, j] * float(total)) - np.log(rows[i] * cols[j].astype(np.float64)))))
    if mutual <= 0:
        return 0.0

    def entropy(counts: np.ndarray) -> float:
        shares = counts[counts > 0] / total
        return float(-np.sum(shares * np.log(shares)))

    # Rounding can put the ratio a few ulps above its bound of 1.
    return min(1.0, mutual / max((entropy(rows) + entropy(cols)) / 2, np.finfo(np.float64).eps))


def _ari_from_table(table: np.ndarray) -> float:
    """Adjusted Rand index ``2(tp·tn − fn·fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn))`` over
    sample pairs, from the contingency table (scikit-learn's ``adjusted_rand_score`` formula;
    identical labellings score 1)."""
    total = int(table.sum())
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    squares = int((table.astype(np.int64) ** 2).sum())
    tp = squares - total
    fp = int((table * cols[None, :]).sum()) - squares
    fn = int((table * rows[:, None]).sum()) - squares
    tn = total * total - fp - fn - squares
    if fn == 0 and fp == 0:
        return 1.0
    return float(2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def nmi(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Normalized mutual information ``I(T; P) / ((H(T) + H(P)) / 2)`` (arithmetic mean, as scikit-learn's default)."""
    return _nmi_from_table(contingency(y_true, y_pred)[0])


def ari(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Adjusted Rand index ``(RI − E[RI]) / (max RI − E[RI])``, as scikit-learn's ``adjusted_rand_score``."""
    return _ari_from_table(contingency(y_true, y_pred)[0])


def clustering_metrics(y_true: Optional[ArrayLike], y_pred: ArrayLike) -> dict:
    """``{"acc", "nmi", "ari"}`` as Python floats, or ``{}`` when ``y_true`` is None.

    Absent labels skip the metrics rather than fake them.
    """
    if y_true is None:
        return {}
    table = contingency(y_true, y_pred)[0]
    return {"acc": _acc_from_table(table), "nmi": _nmi_from_table(table), "ari": _ari_from_table(table)}


def _features(x: ArrayLike, name: str) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples × dims), got shape {tuple(x.shape)}")
    return x


def knn_predict(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    k: int = 200,
    temperature: float = 0.1,
    device: Device = None,
    chunk_size: Optional[int] = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """The weighted kNN classifier of Wu et al. (2018, section 3.5), used by AND (Huang et al. 2019;
    reference code ``lib/protocols.py``, ``kNN``): one predicted train label per test feature.

    Features are L2-normalized so ``s_ij = <f_i, g_j>`` is cosine similarity. For test feature
    ``f_i`` let ``N_k(i)`` be its ``k`` most similar train features (all of them when
    ``k > N_train``); class ``c`` gets the vote ``w_c(i) = sum_{j in N_k(i), y_j = c} exp(s_ij / T)``
    and the prediction is ``argmax_c w_c(i)`` (ties: the smallest label). Weights are computed as
    ``exp((s_ij - max_j s_ij) / T)``, the same ratio between classes, so small temperatures cannot overflow.

    Runs with torch on ``device`` (default: the train features' device, else CPU), chunked over
    test queries: ``chunk_size`` queries at a time, or as many as keep the ``chunk × N_train``
    float32 similarity block within ``max_bytes``.
    """
    train = _features(train_features, "train_features")
    test = _features(test_features, "test_features")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train_features have {train.shape[1]} dims but test_features have {test.shape[1]}")
    y_train = _numpy(train_labels, "train_labels")
    if len(y_train) != len(train):
        raise ValueError(f"train features and labels differ in length: {len(train)} vs {len(y_train)}")
    if len(train) == 0 or len(test) == 0:
        raise ValueError("knn needs at least one train and one test sample")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")

    device = torch.device(device) if device is not None else train.device
    values, codes = np.unique(y_train, return_inverse=True)
    code_train = torch.as_tensor(codes.ravel(), dtype=torch.long, device=device)
    bank = torch.nn.functional.normalize(train.to(device=device, dtype=torch.float32), dim=1)
    k = min(k, len(bank))
    chunk = chunk_size or max(1, max_bytes // (4 * len(bank)))
    predicted = torch.empty(len(test), dtype=torch.long, device=device)
    for start in range(0, len(test), chunk):
        query = torch.nn.functional.normalize(test[start : start + chunk].to(device=device, dtype=torch.float32), dim=1)
        sim, idx = (query @ bank.T).topk(k, dim=1)
        weight = ((sim - sim[:, :1]) / temperature).exp_()
        votes = torch.zeros(len(query), len(values), device=device).scatter_add_(1, code_train[idx], weight)
        predicted[start : start + chunk] = votes.argmax(dim=1)
    return values[predicted.cpu().numpy()]


def knn_acc(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    k: int = 200,
    temperature: float = 0.1,
    device: Device = None,
    chunk_size: Optional[int] = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> float:
    """Top-1 accuracy of :func:`knn_predict` on ``test_labels`` (a test label no train sample has is
    never predicted, so it counts as wrong)."""
    y_test = _numpy(test_labels, "test_labels")
    if len(y_test) != len(_features(test_features, "test_features")):
        raise ValueError(f"test features and labels differ in length: {len(test_features)} vs {len(y_test)}")
    predicted = knn_predict(train_features, train_labels, test_features, k, temperature, device, chunk_size, max_bytes)
    return float((predicted == y_test.ravel()).mean())


SILHOUETTE_SAMPLES = 10_000  # a seeded subsample keeps the O(m²) silhouette at seconds for any N


def _dense_labels(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    values, codes = torch.unique(labels, sorted=True, return_inverse=True)
    return codes, len(values)


def _centroids(z: torch.Tensor, codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    counts = torch.bincount(codes, minlength=k).to(z.dtype)
    sums = torch.zeros(k, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, codes, z)
    return sums / counts[:, None], counts


def calinski_harabasz(z: ArrayLike, labels: ArrayLike) -> float:
    """``[tr(B) / (k − 1)] / [tr(W) / (N − k)]``: between-cluster dispersion ``Σ_c n_c‖μ_c − μ‖²``
    over within-cluster dispersion ``Σ_i ‖z_i − μ_{c(i)}‖²`` (Caliński & Harabasz 1974; 1 when
    W = 0, as scikit-learn). Higher is better."""
    z, codes, k = _scores_input(z, labels)
    centers, counts = _centroids(z, codes, k)
    within = float((z - centers[codes]).square().sum())
    between = float((counts * (centers - z.mean(dim=0)).square().sum(dim=1)).sum())
    if within == 0.0:
        return 1.0
    return between * (len(z) - k) / (within * (k - 1))


def davies_bouldin(z: ArrayLike, labels: ArrayLike) -> float:
    """``(1/k) Σ_c max_{d≠c} (s_c + s_d) / ‖μ_c − μ_d‖`` with ``s_c`` the mean distance of cluster
    c's points to its centroid (Davies & Bouldin 1979; coinciding centroids are ignored, as in
    scikit-learn). Lower is better."""
    z, codes, k = _scores_input(z, labels)
    centers, counts = _centroids(z, codes, k)
    spread = torch.zeros(k, dtype=z.dtype, device=z.device).index_add_(0, codes, (z - centers[codes]).norm(dim=1)) / counts
    separation = torch.cdist(centers, centers)
    if float(spread.abs().max()) == 0.0 or float(separation.max()) == 0.0:
        return 0.0
    separation = separation.masked_fill(separation == 0, float("inf"))
    ratio = (spread[:, None] + spread[None, :]) / separation
    return float(ratio.max(dim=1).values.mean())


def silhouette(
    z: ArrayLike, labels: ArrayLike, *, sample_size: Optional[int] = SILHOUETTE_SAMPLES, seed: int = 0, max_bytes: int = DEFAULT_MAX_BYTES
) -> float:
    """Mean silhouette ``(b_i − a_i) / max(a_i, b_i)`` (Rousseeuw 1987): ``a_i`` the mean Euclidean
    distance to the other points of i's cluster, ``b_i`` the least mean distance to another
    cluster; 0 for a point alone in its cluster. On a seeded random ``sample_size`` of the points
    (all of them when None or N is smaller), the sample's pairwise distances computed in blocks of
    ``max_bytes``, as scikit-learn's ``silhouette_score(sample_size=...)`` does on its sample."""
    z, codes, _ = _scores_input(z, labels)
    if sample_size is not None and len(z) > sample_size:
        keep = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:sample_size].to(z.device)
        z, codes = z[keep], codes[keep]
    codes, k = _dense_labels(codes)
    if k < 2 or k >= len(z):
        raise ValueError(f"silhouette needs 2 to N − 1 clusters among its {len(z)} points, got {k}")
    one_hot = torch.nn.functional.one_hot(codes, k).to(z.dtype)
    counts = one_hot.sum(dim=0)
    total = torch.zeros((), dtype=torch.float64, device=z.device)
    chunk = max(1, max_bytes // (8 * len(z)))
    for start in range(0, len(z), chunk):
        block = torch.cdist(z[start : start + chunk], z)
        sums = block @ one_hot  # distances from each row to every cluster, summed
        own = codes[start : start + chunk]
        own_size = counts[own]
        a = sums.gather(1, own[:, None])[:, 0] / (own_size - 1).clamp(min=1)
        b = (sums / counts).scatter(1, own[:, None], float("inf")).min(dim=1).values
        score = ((b - a) / torch.maximum(a, b)).nan_to_num(0.0)
        total += torch.where(own_size > 1, score, torch.zeros_like(score)).sum()
    return float(total) / len(z)


def _scores_input(z: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, int]:
    z = _features(z, "z").to(torch.float64)
    labels = _labels(labels, "labels")
    labels = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(labels)
    if len(labels) != len(z):
        raise ValueError(f"z has {len(z)} rows but labels has {len(labels)}")
    codes, k = _dense_labels(labels.to(z.device))
    if k < 2:
        raise ValueError(f"the scores need at least 2 clusters, got {k}")
    return z, codes, k


def cluster_sizes(labels: ArrayLike, n_clusters: Optional[int] = None) -> np.ndarray:
    """Samples per cluster id ``0..n_clusters − 1`` (empty clusters count 0)."""
    labels = _numpy(labels, "labels").astype(np.int64)
    return np.bincount(labels, minlength=n_clusters or 0)


def label_free_scores(
    z: ArrayLike, labels: ArrayLike, n_clusters: Optional[int] = None, *, sample_size: Optional[int] = SILHOUETTE_SAMPLES, seed: int = 0
) -> dict:
    """What a clustering says about itself, without ground truth, in the space ``z`` it was assigned in.

    ``silhouette`` (on a seeded ``sample_size`` subsample), ``davies_bouldin``,
    ``calinski_harabasz``; ``size_entropy`` = ``−Σ p_c log p_c / log K`` over the ``K = n_clusters``
    asked for (1: equal sizes, 0: one cluster holds everything); ``largest_cluster`` (its share of
    the samples); ``clusters_used`` (non-empty clusters); ``cluster_sizes`` (a list). The three
    geometric scores are left out when fewer than two clusters are used.
    """
    sizes = cluster_sizes(labels, n_clusters)
    shares = sizes[sizes > 0] / sizes.sum()
    k = max(n_clusters or 0, len(sizes))
    scores: dict = {}
    if len(shares) >= 2:
        z_tensor = _features(z, "z")
        label_tensor = torch.as_tensor(_numpy(labels, "labels"), device=z_tensor.device)
        if len(shares) < min(len(z_tensor), sample_size or len(z_tensor)):
            scores["silhouette"] = silhouette(z_tensor, label_tensor, sample_size=sample_size, seed=seed)
        scores["davies_bouldin"] = davies_bouldin(z_tensor, label_tensor)
        scores["calinski_harabasz"] = calinski_harabasz(z_tensor, label_tensor)
    scores["size_entropy"] = float(-(shares * np.log(shares)).sum() / np.log(k)) if k > 1 else 0.0
    scores["largest_cluster"] = float(shares.max())
    scores["clusters_used"] = int(len(shares))
    scores["cluster_sizes"] = sizes.tolist()
    return scores
