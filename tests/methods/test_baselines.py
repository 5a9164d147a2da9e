import numpy as np
import pytest
import torch

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import BlobsConfig, GeneratedConfig
from deepclust_cli.errors import CheckpointError, ConfigError, DataError
from deepclust_cli.methods import METHODS, AEKMeans, ClusteringMethod, KMeans, Spectral
from deepclust_cli.ops.metrics import acc


@pytest.fixture(scope="module")
def blobs():
    data = load_dataset(BlobsConfig(name="blobs", n_samples=600, n_test=200, n_classes=4), "unused", 0)
    return data.train, data.test


@pytest.fixture(scope="module")
def moons():
    data = load_dataset(GeneratedConfig(name="twomoons", n_samples=1000, n_test=200, noise=0.05), "unused", 0)
    return data.train, data.test


def test_kmeans_recovers_blobs_and_predicts_unseen_points(blobs):
    train, test = blobs
    model = KMeans(n_clusters=4, seed=0).fit(train.x.numpy())
    assert acc(train.y, model.predict(train.x)) == 1.0
    assert acc(test.y, model.predict(test.x)) == 1.0
    assert np.array_equal(model.predict(test.x), model.predict(test.x.numpy()))


def test_kmeans_save_load_round_trip(blobs, tmp_path):
    train, test = blobs
    model = KMeans(n_clusters=4, seed=0).fit(train.x)
    model.save(tmp_path / "kmeans.ckpt")
    loaded = KMeans.load(tmp_path / "kmeans.ckpt")
    assert loaded.config == model.config
    assert np.array_equal(loaded.predict(test.x), model.predict(test.x))
    assert np.array_equal(ClusteringMethod.load(tmp_path / "kmeans.ckpt").predict(test.x), model.predict(test.x))
    with pytest.raises(CheckpointError, match="holds method 'kmeans', not 'spectral'"):
        Spectral.load(tmp_path / "kmeans.ckpt")


def test_spectral_separates_two_moons_where_kmeans_cannot(moons):
    train, test = moons
    spectral = Spectral(n_clusters=2, n_neighbors=10, seed=0).fit(train.x)
    assert acc(train.y, spectral.predict(train.x)) == 1.0
    assert acc(test.y, spectral.predict(test.x)) == 1.0
    assert acc(train.y, KMeans(n_clusters=2, seed=0).fit_predict(train.x)) < 0.9


def test_spectral_refuses_more_samples_than_max_fit_samples_in_one_line(moons):
    train, _ = moons
    with pytest.raises(DataError, match=r"^spectral: 1,000 samples exceed method.max_fit_samples=999, .*method=spectralnet"):
        Spectral(n_clusters=2, max_fit_samples=999, seed=0).fit(train.x)
    assert acc(train.y, Spectral(n_clusters=2, max_fit_samples=1000, seed=0).fit_predict(train.x)) == 1.0
    with pytest.raises(ConfigError, match="max_fit_samples must be >= 1"):
        Spectral(n_clusters=2, max_fit_samples=0)


def test_spectral_predict_majority_vote_and_persistence(moons, tmp_path):
    train, test = moons
    model = Spectral(n_clusters=2, predict_neighbors=5, seed=0).fit(train.x)
    model.save(tmp_path / "s.ckpt")
    loaded = Spectral.load(tmp_path / "s.ckpt")
    assert np.array_equal(loaded.predict(test.x), model.predict(test.x))
    assert acc(test.y, loaded.predict(test.x)) == 1.0


def test_same_seed_same_labels(blobs):
    train, _ = blobs
    first = KMeans(n_clusters=4, seed=3, n_init=1, init="random").fit_predict(train.x)
    second = KMeans(n_clusters=4, seed=3, n_init=1, init="random").fit_predict(train.x)
    assert np.array_equal(first, second)


def test_parameters_are_validated_like_scikit_learn():
    with pytest.raises(ConfigError, match="kmeans: n_init must be >= 1, got 0"):
        KMeans(n_clusters=2, n_init=0)
    with pytest.raises(ConfigError, match="kmeans.n_init: Value 'ten'"):
        KMeans(n_clusters=2, n_init="ten")
    with pytest.raises(ConfigError, match="kmeans.n_neighbors: Key 'n_neighbors' not in 'KMeansConfig'"):
        KMeans(n_clusters=2, n_neighbors=3)
    with pytest.raises(ConfigError, match="n_clusters is required"):
        KMeans()
    with pytest.raises(ValueError, match="knn_backend must be one of auto, exact, ivf, hnsw, annoy, got 'faiss'"):  # ConfigError is a ValueError, as in scikit-learn
        Spectral(n_clusters=2, knn_backend="faiss")


def test_bad_inputs_fail_with_one_line():
    model = KMeans(n_clusters=3)
    with pytest.raises(DataError, match="expected a 2-D array"):
        model.fit(np.zeros(10))
    with pytest.raises(DataError, match="2 NaN or inf values"):
        model.fit(np.array([[0.0, np.nan], [1.0, np.inf], [2.0, 2.0]]))
    with pytest.raises(DataError, match="2 samples cannot form n_clusters=3"):
        model.fit(np.zeros((2, 2)))
    with pytest.raises(DataError, match="not fitted"):
        model.predict(np.zeros((2, 2)))


def test_labels_may_be_given_but_never_change_the_fit(blobs):
    train, _ = blobs
    with_labels = KMeans(n_clusters=4, seed=0).fit(train.x, torch.zeros(len(train.x), dtype=torch.long))
    without = KMeans(n_clusters=4, seed=0).fit(train.x)
    assert torch.equal(with_labels.centers, without.centers)


@pytest.mark.parametrize(
    "name, params",
    [
        ("kmeans", {}),
        ("spectral", {}),
        ("spectralnet", {"spectral": {"epochs": 3, "hidden": [16], "batch_size": 128}}),
        ("lnscc", {"epochs": 3, "clustering_epoch": 2, "hidden": [16], "embedding_dim": 3, "plot_every": 0}),
    ],
)
def test_fitted_attributes_follow_scikit_learn(name, params, blobs):
    x = blobs[0].x
    method = METHODS.get(name)(n_clusters=4, **params)
    with pytest.raises(AttributeError, match="call fit"):
        method.labels_
    method.fit(x)
    assert method.labels_.shape == (len(x),) and method.labels_.dtype == np.int64 and method.n_clusters_ == 4
    if name == "spectral":  # its clusters come from the graph; predict votes among the fitted points
        assert not hasattr(method, "cluster_centers_")
    else:  # the training clusters are the nearest centers in the space transform maps to
        assert method.cluster_centers_.shape == (4, method.transform(x[:2]).shape[1])
        assert (method.labels_ == method.predict(x)).all()


AE_KMEANS = {"n_clusters": 4, "n_init": 3, "ae": {"hidden": [32], "code_dim": 2, "epochs": 15, "batch_size": 64}}


@pytest.fixture(scope="module")
def ae_kmeans(blobs):
    return AEKMeans(seed=0, **AE_KMEANS).fit(blobs[0].x)


def test_ae_kmeans_clusters_the_codes_and_predicts_unseen_points(ae_kmeans, blobs):
    train, test = blobs
    assert ae_kmeans.stage.loop.position == 15  # the autoencoder trained its epochs
    assert acc(train.y, ae_kmeans.labels_) > 0.95 and acc(test.y, ae_kmeans.predict(test.x)) > 0.95
    assert np.array_equal(ae_kmeans.predict(train.x), ae_kmeans.labels_)
    codes = ae_kmeans.transform(test.x)
    assert codes.shape == (200, 2) and ae_kmeans.cluster_centers_.shape == (4, 2)
    nearest = ((codes[:, None] - ae_kmeans.cluster_centers_[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert np.array_equal(nearest, ae_kmeans.predict(test.x))  # predict: the nearest center in code space
    again = AEKMeans(seed=0, **AE_KMEANS).fit(train.x)
    assert np.array_equal(again.predict(test.x), ae_kmeans.predict(test.x))


def test_ae_kmeans_save_load_round_trip(ae_kmeans, blobs, tmp_path):
    test = blobs[1]
    ae_kmeans.save(tmp_path / "ae_kmeans.ckpt")
    loaded = AEKMeans.load(tmp_path / "ae_kmeans.ckpt")
    assert loaded.config == ae_kmeans.config and np.array_equal(loaded.labels_, ae_kmeans.labels_)
    assert np.array_equal(loaded.predict(test.x), ae_kmeans.predict(test.x))
    assert np.allclose(loaded.transform(test.x), ae_kmeans.transform(test.x))
    assert np.array_equal(ClusteringMethod.load(tmp_path / "ae_kmeans.ckpt").predict(test.x), ae_kmeans.predict(test.x))
    with pytest.raises(DataError, match="trained on samples of 2 features; this data has 3"):
        loaded.predict(np.zeros((4, 3), dtype=np.float32))


def test_ae_kmeans_settings_fail_in_one_line():
    with pytest.raises(ConfigError, match=r"validation_fraction must be in \(0, 0.5\), got 0.7"):
        AEKMeans(n_clusters=2, validation_fraction=0.7)
    with pytest.raises(ConfigError, match="ae.code_dim must be >= 1, got 0"):
        AEKMeans(n_clusters=2, ae={"code_dim": 0})
