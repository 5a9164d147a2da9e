import numpy as np
import pytest
import torch

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import BlobsConfig, GeneratedConfig
from deepclust_cli.engine.context import Context
from deepclust_cli.errors import ConfigError
from deepclust_cli.methods import SpectralNet, SpectralNetAE
from deepclust_cli.ops.metrics import acc

QUIET = Context(show_progress=False)
SMALL = {"spectral": {"hidden": [32, 32], "batch_size": 128, "epochs": 5, "lr": 1e-2}, "n_neighbors": 8, "scale_k": 3, "seed": 4}


@pytest.fixture(scope="module")
def moons():
    data = load_dataset(GeneratedConfig(name="twomoons", n_samples=1500, n_test=200, noise=0.05), "unused", 0)
    return data.train, data.test


def test_alpha_zero_is_spectralnet_exactly(moons):
    train, test = moons
    plain = SpectralNet(n_clusters=2, **SMALL).fit(train.x, context=QUIET)
    regularized = SpectralNetAE(n_clusters=2, alpha=0.0, **SMALL).fit(train.x, context=QUIET)
    for key in ("loss", "valid", "lr"):
        assert regularized.stages["spectral"].loop.values(key) == plain.stages["spectral"].loop.values(key), key
    assert np.array_equal(regularized.transform(test.x), plain.transform(test.x))
    assert np.array_equal(regularized.predict(test.x), plain.predict(test.x))
    assert torch.equal(regularized.centers, plain.centers)


def test_alpha_changes_the_embedding_and_the_reconstruction_decreases(moons):
    train, _ = moons
    model = SpectralNetAE(n_clusters=2, alpha=1.0, **{**SMALL, "spectral": {**SMALL["spectral"], "epochs": 15}}).fit(train.x, context=QUIET)
    history = {key: model.stages["spectral"].loop.values(key) for key in ("loss", "spectral", "reconstruction")}
    assert len(history["reconstruction"]) == 15
    assert history["reconstruction"][-1] < 0.5 * history["reconstruction"][0]
    assert history["loss"] == pytest.approx([s + r for s, r in zip(history["spectral"], history["reconstruction"])])
    plain = SpectralNet(n_clusters=2, **{**SMALL, "spectral": {**SMALL["spectral"], "epochs": 15}}).fit(train.x, context=QUIET)
    assert not np.allclose(model.transform(train.x), plain.transform(train.x))


def test_two_moons_preset_clusters_perfectly():
    data = load_dataset(GeneratedConfig(name="twomoons", n_samples=4000, n_test=300, noise=0.05), "unused", 0)
    preset = {"spectral": {"hidden": [128, 128], "batch_size": 712, "epochs": 40, "lr": 1e-2}, "n_neighbors": 8, "scale_k": 2, "scale": "global"}
    model = SpectralNetAE(n_clusters=2, alpha=1e-3, **preset).fit(data.train.x, context=QUIET)
    assert acc(data.train.y, model.predict(data.train.x)) == 1.0
    assert acc(data.test.y, model.predict(data.test.x)) >= 0.99


def test_decoder_shape_and_its_parameters_train_with_the_spectral_stage():
    data = load_dataset(BlobsConfig(name="blobs", n_samples=400, n_classes=3, n_features=6), "unused", 0)
    model = SpectralNetAE(n_clusters=3, alpha=0.1, decoder={"hidden": [12, 24]}, **SMALL).fit(data.train.x, context=QUIET)
    widths = [layer.out_features for layer in model.nets["decoder"] if isinstance(layer, torch.nn.Linear)]
    assert widths == [12, 24, 6]
    optimized = {id(p) for p in model.stages["spectral"].optimizer.parameters}
    assert all(id(p) in optimized for p in model.nets["decoder"].parameters())
    assert set(model.stages) == {"spectral"}
    kinds = [type(layer).__name__ for layer in model.nets["decoder"]]
    assert kinds == ["Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
    reference = SpectralNetAE(n_clusters=3, alpha=0.1, decoder={"hidden": [12, 24], "first_activation": "tanh"}, **SMALL)
    reference._build_nets(6)  # the reference's decoder: tanh after the first layer only
    assert [type(layer).__name__ for layer in reference.nets["decoder"]] == ["Linear", "Tanh", "Linear", "LeakyReLU", "Linear"]


def test_reconstructs_the_ae_codes_when_the_autoencoder_runs():
    data = load_dataset(BlobsConfig(name="blobs", n_samples=400, n_classes=3, n_features=6), "unused", 0)
    model = SpectralNetAE(
        n_clusters=3, alpha=0.1, ae={"enabled": True, "hidden": [16], "code_dim": 4, "epochs": 2, "batch_size": 64}, **SMALL
    ).fit(data.train.x, context=QUIET)
    assert model.nets["decoder"][-1].out_features == 4


def test_save_and_load_keep_decoder_and_predictions(moons, tmp_path):
    train, test = moons
    model = SpectralNetAE(n_clusters=2, alpha=0.1, **SMALL).fit(train.x, context=QUIET)
    model.save(tmp_path / "model.ckpt")
    loaded = SpectralNetAE.load(tmp_path / "model.ckpt")
    assert loaded.config.alpha == 0.1
    assert np.array_equal(loaded.predict(test.x), model.predict(test.x))
    for name, tensor in model.nets["decoder"].state_dict().items():
        assert torch.equal(loaded.nets["decoder"].state_dict()[name], tensor)


def test_config_errors():
    with pytest.raises(ConfigError, match="alpha must be >= 0, got -1"):
        SpectralNetAE(n_clusters=2, alpha=-1)
    with pytest.raises(ConfigError, match=r"decoder.hidden must be positive widths, got \[8, 0\]"):
        SpectralNetAE(n_clusters=2, decoder={"hidden": [8, 0]})
    with pytest.raises(ConfigError, match="decoder.first_activation must be leaky_relu or tanh, got 'relu'"):
        SpectralNetAE(n_clusters=2, decoder={"first_activation": "relu"})
    with pytest.raises(ConfigError, match="decoder.first_activation=tanh needs a hidden layer to follow"):
        SpectralNetAE(n_clusters=2, decoder={"hidden": [], "first_activation": "tanh"})
