"""Network building blocks two or more methods use, one family per module; image backbones by name.

The catalog below names each backbone and where it is built, so a config can check a backbone's
name without importing torch (:mod:`deepclust_cli.registry`).
"""

from deepclust_cli.registry import Registry

BACKBONES: Registry = Registry("backbone")  # name → factory(in_channels, dim) -> module
for _name in ("resnet18_cifar", "resnet50_cifar", "alexnet", "alexnet_cifar", "small_convnet"):
    BACKBONES.add(_name, f"deepclust_cli.nets.backbones:{_name}")
