"""ACC against two independent references (munkres, brute force), NMI/ARI against scikit-learn,
and AND's weighted kNN accuracy against hand-computed votes."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from munkres import Munkres
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from deepclust_cli.ops.metrics import acc, ari, cluster_to_class, clustering_metrics, contingency, knn_acc, nmi


def brute_force_acc(y_true, y_pred):
    """Best share of matched samples over every injective map between clusters and classes."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes, clusters = list(np.unique(y_true)), list(np.unique(y_pred))
    best = 0
    if len(clusters) <= len(classes):
        for image in itertools.permutations(classes, len(clusters)):
            mapped = dict(zip(clusters, image))
            best = max(best, sum(mapped[p] == t for t, p in zip(y_true, y_pred)))
    else:
        for image in itertools.permutations(clusters, len(classes)):
            mapped = dict(zip(image, classes))
            best = max(best, sum(mapped.get(p) == t for t, p in zip(y_true, y_pred)))
    return best / len(y_true)


def munkres_acc(y_true, y_pred):
    table = contingency(y_true, y_pred)[0]
    # munkres minimizes and pads rectangular matrices with zero cost, which leaves the optimum intact.
    cost = (table.max() - table).tolist()
    pairs = Munkres().compute(cost)
    return sum(table[r, c] for r, c in pairs) / table.sum()


def test_hand_example():
    assert acc([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 2]) == pytest.approx(5 / 6)


def test_perfect_clustering_with_permuted_names_is_one():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, size=500)
    names = rng.permutation(np.arange(100, 107))
    assert acc(y, names[y]) == 1.0


@pytest.mark.parametrize("seed", range(12))
def test_acc_matches_munkres_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    k_true, k_pred = rng.integers(1, 7, size=2)
    n = int(rng.integers(5, 40))
    y_true = np.array([-3, 7, 100, 4, 55, -20])[rng.integers(0, k_true, size=n)]
    y_pred = rng.integers(0, k_pred, size=n) * 3 - 5
    expected = brute_force_acc(y_true, y_pred)
    assert acc(y_true, y_pred) == pytest.approx(expected)
    assert munkres_acc(y_true, y_pred) == pytest.approx(expected)


@pytest.mark.parametrize("k_true,k_pred", [(2, 5), (5, 2), (3, 6), (6, 4)])
def test_acc_rectangular(k_true, k_pred):
    rng = np.random.default_rng(k_true * 10 + k_pred)
    y_true = rng.integers(0, k_true, size=60)
    y_pred = rng.integers(0, k_pred, size=60)
    assert acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))
    assert acc(y_true, y_pred) == pytest.approx(munkres_acc(y_true, y_pred))


def test_acc_string_labels():
    y_true = ["cat", "cat", "dog", "dog", "eel", "eel", "eel"]
    y_pred = [2, 2, 9, 2, 4, 4, 9]
    assert acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))
    assert acc(y_true, y_pred) == pytest.approx(5 / 7)


@given(
    pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=25),
    names=st.permutations([-9, 0, 3, 42, 1000, 7]),
)
@settings(max_examples=60, deadline=None)
def test_acc_property_relabel_invariant_and_brute_force(pairs, names):
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    value = acc(y_true, y_pred)
    assert value == pytest.approx(acc(y_true, np.array(names)[y_pred]))
    assert value == pytest.approx(brute_force_acc(y_true, y_pred))


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(3)
    y_true = rng.integers(-2, 8, size=300)
    y_pred = rng.integers(0, 12, size=300)
    reference = acc(y_true, y_pred)
    assert acc(torch.from_numpy(y_true), torch.from_numpy(y_pred)) == reference
    assert acc(torch.from_numpy(y_true), y_pred) == reference
    assert acc(y_true.tolist(), torch.from_numpy(y_pred).int()) == reference
    table_np = contingency(y_true, y_pred)
    table_t = contingency(torch.from_numpy(y_true), torch.from_numpy(y_pred))
    for a, b in zip(table_np, table_t):
        np.testing.assert_array_equal(a, b)


def test_contingency_counts_and_values():
    table, classes, clusters = contingency([5, 5, -1, -1, -1], [0, 2, 2, 2, 0])
    np.testing.assert_array_equal(classes, [-1, 5])
    np.testing.assert_array_equal(clusters, [0, 2])
    np.testing.assert_array_equal(table, [[1, 2], [1, 1]])
    assert table.dtype == np.int64


def test_cluster_to_class_hungarian_then_majority():
    # Clusters 10, 20, 30 take classes a, b, c one-to-one; surplus cluster 40 goes to its majority class b.
    y_true = ["a"] * 5 + ["b"] * 5 + ["c"] * 5 + ["b", "b", "a"]
    y_pred = [10] * 5 + [20] * 5 + [30] * 5 + [40, 40, 40]
    assert cluster_to_class(y_true, y_pred) == {10: "a", 20: "b", 30: "c", 40: "b"}
    assert cluster_to_class([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 2]) == {1: 0, 0: 1, 2: 2}


def test_nmi_ari_equal_sklearn():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, size=400)
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, 6, size=400))
    expected_nmi = normalized_mutual_info_score(y_true, y_pred, average_method="arithmetic")
    expected_ari = adjusted_rand_score(y_true, y_pred)
    assert nmi(y_true, y_pred) == pytest.approx(expected_nmi, abs=1e-12)
    assert ari(y_true, y_pred) == pytest.approx(expected_ari, abs=1e-12)
    assert nmi(torch.from_numpy(y_true), torch.from_numpy(y_pred)) == pytest.approx(expected_nmi, abs=1e-12)
    assert ari(torch.from_numpy(y_true), y_pred) == pytest.approx(expected_ari, abs=1e-12)


def test_clustering_metrics_keys_and_types():
    result = clustering_metrics(torch.tensor([0, 0, 1, 1, 2, 2]), np.array([1, 1, 0, 0, 0, 2]))
    assert set(result) == {"acc", "nmi", "ari"}
    assert all(type(v) is float for v in result.values())
    assert result["acc"] == pytest.approx(5 / 6)
    assert result["nmi"] == pytest.approx(normalized_mutual_info_score([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 2]))


def test_clustering_metrics_without_labels_is_empty():
    assert clustering_metrics(None, np.array([0, 1, 1])) == {}


@pytest.mark.parametrize("fn", [acc, nmi, ari, clustering_metrics, contingency, cluster_to_class])
def test_length_mismatch_raises_with_both_lengths(fn):
    with pytest.raises(ValueError, match=r"4.*3"):
        fn([0, 1, 0, 1], [0, 1, 1])


def test_two_dimensional_labels_raise():
    with pytest.raises(ValueError, match="1-D"):
        acc(np.zeros((2, 2)), np.zeros((2, 2)))


def unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# Query at 0°: one class-7 neighbor at 0° (sim 1) against two class-3 neighbors at ±60° (sim 0.5);
# a class-7 point at 180° lies outside k=3.
TRAIN = np.array([unit(0), unit(60), unit(-60), unit(180)], dtype=np.float32)
TRAIN_Y = np.array([7, 3, 3, 7])


def test_knn_acc_weighting_decides_against_majority():
    # T=0.1: class 7 gets exp(1/0.1) = 22026, class 3 gets 2 exp(0.5/0.1) = 297 -> 7 wins.
    assert math.exp(10) > 2 * math.exp(5)
    assert knn_acc(TRAIN, TRAIN_Y, [unit(0)], [7], k=3, temperature=0.1) == 1.0
    # T=100: exp(0.01) = 1.010 < 2 exp(0.005) = 2.010 -> the majority class 3 wins.
    assert math.exp(0.01) < 2 * math.exp(0.005)
    assert knn_acc(TRAIN, TRAIN_Y, [unit(0)], [7], k=3, temperature=100.0) == 0.0
    # k=1 is plain nearest neighbor.
    assert knn_acc(TRAIN, TRAIN_Y, [unit(0)], [7], k=1, temperature=100.0) == 1.0


def test_knn_acc_normalizes_features_and_clips_k():
    scaled = TRAIN * np.array([[5.0], [0.1], [3.0], [100.0]], dtype=np.float32)
    # k=50 > 4 train samples: all four vote; class 7: e^10 + e^-10, class 3: 2 e^5 -> 7.
    assert knn_acc(scaled, TRAIN_Y, np.array([unit(0)]) * 9, [7], k=50) == 1.0
    # At 120° the sims are -0.5 (0°), 0.5 (60°), -1 (-60°), 0.5 (180°):
    # class 3: e^5 + e^-10 < class 7: e^-5 + e^5, so 7 wins by the far neighbors' weights alone.
    assert math.exp(5) + math.exp(-10) < math.exp(-5) + math.exp(5)
    assert knn_acc(scaled, TRAIN_Y, [unit(120)], [7], k=4) == 1.0


def reference_knn_acc(train, y_train, test, y_test, k, t):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    sim = test @ train.T
    classes = np.unique(y_train)
    correct = 0
    for i in range(len(test)):
        top = np.argsort(-sim[i])[:k]
        votes = [np.exp(sim[i, top][y_train[top] == c] / t).sum() for c in classes]
        correct += classes[int(np.argmax(votes))] == y_test[i]
    return correct / len(test)


def test_knn_acc_matches_reference_and_chunking_is_invisible():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4, 16))
    y_train, y_test = rng.integers(0, 4, size=300), rng.integers(0, 4, size=97)
    train = centers[y_train] + 1.5 * rng.standard_normal((300, 16))
    test = centers[y_test] + 1.5 * rng.standard_normal((97, 16))
    labels = np.array([-5, 2, 9, 40])
    expected = reference_knn_acc(train, labels[y_train], test, labels[y_test], k=20, t=0.1)
    whole = knn_acc(train, labels[y_train], test, labels[y_test], k=20)
    assert whole == pytest.approx(expected)
    assert 0.3 < whole < 1.0
    assert knn_acc(train, labels[y_train], test, labels[y_test], k=20, chunk_size=1) == whole
    assert knn_acc(train, labels[y_train], test, labels[y_test], k=20, chunk_size=7) == whole
    assert knn_acc(train, labels[y_train], test, labels[y_test], k=20, max_bytes=4 * 300 * 3) == whole
    as_torch = knn_acc(
        torch.from_numpy(train), torch.from_numpy(labels[y_train]), torch.from_numpy(test), labels[y_test], k=20, device="cpu"
    )
    assert as_torch == whole


def test_knn_acc_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        knn_acc(TRAIN, TRAIN_Y, [unit(0)], [7], k=0)
    with pytest.raises(ValueError, match="temperature"):
        knn_acc(TRAIN, TRAIN_Y, [unit(0)], [7], temperature=0)
    with pytest.raises(ValueError, match="dims"):
        knn_acc(TRAIN, TRAIN_Y, [[1.0, 0.0, 0.0]], [7])
    with pytest.raises(ValueError, match="length"):
        knn_acc(TRAIN, TRAIN_Y[:3], [unit(0)], [7])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=40).flatmap(
        lambda t: st.tuples(st.just(t), st.lists(st.integers(-2, 5), min_size=len(t), max_size=len(t)))
    )
)
def test_nmi_and_ari_match_scikit_learn_on_any_labelling(pair):
    y_true, y_pred = pair
    assert nmi(y_true, y_pred) == pytest.approx(normalized_mutual_info_score(y_true, y_pred), abs=1e-10)
    assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred), abs=1e-10)


@pytest.mark.parametrize(
    "y_true, y_pred",
    [([0, 0, 0], [5, 5, 5]), ([0, 1, 2], [0, 1, 2]), ([0, 1, 2], [7, 7, 7]), ([1, 1, 2, 2], [3, 4, 3, 4]), ([0], [0])],
)
def test_nmi_and_ari_limit_cases_match_scikit_learn(y_true, y_pred):
    assert nmi(y_true, y_pred) == pytest.approx(normalized_mutual_info_score(y_true, y_pred), abs=1e-12)
    assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred), abs=1e-12)


def test_label_free_scores_match_scikit_learn():
    from sklearn.datasets import make_blobs
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    from deepclust_cli.ops.metrics import label_free_scores, silhouette

    x, y = make_blobs(400, n_features=3, centers=4, random_state=0)
    predicted = (y + (np.arange(400) % 9 == 0)) % 4  # some samples in the wrong cluster
    predicted[0] = 7  # a singleton cluster scores 0 in the silhouette; clusters 4-6 are empty
    scores = label_free_scores(x, predicted, n_clusters=8, sample_size=None)
    assert scores["silhouette"] == pytest.approx(silhouette_score(x, predicted), rel=1e-6)  # torch.cdist by matmul
    assert scores["davies_bouldin"] == pytest.approx(davies_bouldin_score(x, predicted), rel=1e-6)  # scikit-learn expands ‖a − b‖²
    assert scores["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(x, predicted), rel=1e-6)  # B − W cancels digits
    sizes = np.bincount(predicted, minlength=8)
    assert scores["cluster_sizes"] == sizes.tolist() and scores["clusters_used"] == 5
    shares = sizes[sizes > 0] / 400
    assert scores["size_entropy"] == pytest.approx(-(shares * np.log(shares)).sum() / np.log(8))
    assert scores["largest_cluster"] == pytest.approx(shares.max())
    # a subsample is scikit-learn's score of that subsample, and seeded
    sub = silhouette(x, predicted, sample_size=150, seed=3)
    assert sub == silhouette(torch.as_tensor(x), torch.as_tensor(predicted), sample_size=150, seed=3)
    assert sub != silhouette(x, predicted, sample_size=150, seed=4)


def test_one_cluster_has_sizes_but_no_geometric_scores():
    from deepclust_cli.ops.metrics import label_free_scores

    scores = label_free_scores(np.random.default_rng(0).normal(size=(50, 2)), np.zeros(50, dtype=int), n_clusters=3)
    assert scores == {"size_entropy": 0.0, "largest_cluster": 1.0, "clusters_used": 1, "cluster_sizes": [50, 0, 0]}
