"""The methods by name: each is a package with ``config.py`` (its schema, a plain dataclass) and
the estimator. Listing a method here registers its schema for the CLI without importing torch; its
estimator is imported when a run builds it, or when a library user imports it from here::

    from deepclust_cli.methods import KMeans
    labels = KMeans(n_clusters=3).fit(X).predict(X)
"""

from typing import Any

from deepclust_cli.methods.ae_kmeans.config import AEKMeansConfig
from deepclust_cli.methods.anchor_neighborhood.config import ANDConfig
from deepclust_cli.methods.geocluster.config import GeoClusterConfig
from deepclust_cli.methods.kmeans.config import KMeansConfig
from deepclust_cli.methods.lnscc.config import LNSCCConfig
from deepclust_cli.methods.spectral.config import SpectralConfig
from deepclust_cli.methods.spectralnet.config import SpectralNetAEConfig, SpectralNetConfig
from deepclust_cli.registry import Registry

METHODS: Registry = Registry("method")  # name → the estimator class (a ClusteringMethod)
METHODS.add("ae_kmeans", "deepclust_cli.methods.ae_kmeans.method:AEKMeans", AEKMeansConfig)
METHODS.add("and", "deepclust_cli.methods.anchor_neighborhood.method:AND", ANDConfig)
METHODS.add("geocluster", "deepclust_cli.methods.geocluster.method:GeoCluster", GeoClusterConfig)
METHODS.add("kmeans", "deepclust_cli.methods.kmeans.method:KMeans", KMeansConfig)
METHODS.add("lnscc", "deepclust_cli.methods.lnscc.method:LNSCC", LNSCCConfig)
METHODS.add("spectral", "deepclust_cli.methods.spectral.method:Spectral", SpectralConfig)
METHODS.add("spectralnet", "deepclust_cli.methods.spectralnet.method:SpectralNet", SpectralNetConfig)
METHODS.add("spectralnet_ae", "deepclust_cli.methods.spectralnet.spectralnet_ae:SpectralNetAE", SpectralNetAEConfig)

# The estimators under their class names, imported on first use (PEP 562).
_CLASSES = {"AEKMeans": "ae_kmeans", "AND": "and", "GeoCluster": "geocluster", "KMeans": "kmeans", "LNSCC": "lnscc", "Spectral": "spectral",
            "SpectralNet": "spectralnet", "SpectralNetAE": "spectralnet_ae"}


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        return METHODS.get(_CLASSES[name])
    if name == "ClusteringMethod":
        from deepclust_cli.methods.base import ClusteringMethod

        return ClusteringMethod
    if name == "MethodConfig":
        from deepclust_cli.methods.config import MethodConfig

        return MethodConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METHODS", "ClusteringMethod", "MethodConfig", *_CLASSES]
