"""Every registered backbone maps images to unit feature vectors of the asked width."""

import pytest
import torch

from deepclust_cli.errors import ConfigError
from deepclust_cli.nets.backbones import BACKBONES, build_backbone

INPUTS = {
    "resnet18_cifar": (3, 32),
    "resnet50_cifar": (3, 32),
    "alexnet": (3, 224),
    "alexnet_cifar": (3, 32),
    "small_convnet": (1, 28),
}


def test_the_five_backbones_are_registered():
    assert set(BACKBONES.names()) == set(INPUTS)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_backbone_outputs_unit_vectors(name):
    channels, size = INPUTS[name]
    net = build_backbone(name, channels, 128).eval()
    with torch.no_grad():
        features = net(torch.rand(2, channels, size, size))
    assert features.shape == (2, 128)
    assert torch.allclose(features.norm(dim=1), torch.ones(2), atol=1e-5)


def test_cifar_resnets_keep_the_resolution_at_the_stem():
    net = BACKBONES.get("resnet18_cifar")(3, 128)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)


def test_grey_images_on_a_colour_backbone_get_a_one_channel_stem():
    with torch.no_grad():
        assert build_backbone("resnet18_cifar", 1, 16).eval()(torch.rand(2, 1, 32, 32)).shape == (2, 16)


def test_unknown_backbone_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet19'.*registered backbones: alexnet, alexnet_cifar, resnet18_cifar"):
        build_backbone("resnet19", 3, 128)


def test_cifar_alexnet_has_the_reference_layers_and_their_parameter_count():
    # CIFARAlexNet: 3×3 convs 3→64→192→384→256→256 (with bias) each + BN, fc 4096→1024→1024 each + BN, head 1024→dim.
    dim = 128
    convs = [(3, 64), (64, 192), (192, 384), (384, 256), (256, 256)]
    dense = [(256 * 4 * 4, 1024), (1024, 1024)]
    expected = sum(i * o * 9 + o + 2 * o for i, o in convs) + sum(i * o + o + 2 * o for i, o in dense) + 1024 * dim + dim
    assert expected == 7_634_112
    net = build_backbone("alexnet_cifar", 3, dim)
    assert sum(p.numel() for p in net.parameters()) == expected
    kinds = [type(m).__name__ for m in net.body]
    assert kinds.count("Conv2d") == 5 and kinds.count("Linear") == 3 and kinds.count("MaxPool2d") == 3
    assert all(m.kernel_size == (3, 3) and m.stride == (1, 1) for m in net.body if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        trunk = net.body[:-7](torch.rand(2, 3, 32, 32))  # up to the flattened conv map
        assert trunk.shape == (2, 256 * 4 * 4)
        features = net.eval()(torch.rand(2, 3, 32, 32))
    assert features.shape == (2, dim)
