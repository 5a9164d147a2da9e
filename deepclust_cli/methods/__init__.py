"""Clustering methods by name; each module registers its method on import.

Library use: ``from deepclust_cli.methods import KMeans; KMeans(n_clusters=3).fit(X).predict(X)``.
"""

from deepclust_cli.methods.anchor_neighborhood.method import AND
from deepclust_cli.methods.base import METHODS, ClusteringMethod, MethodConfig
from deepclust_cli.methods.geocluster.method import GeoCluster
from deepclust_cli.methods.kmeans import KMeans
from deepclust_cli.methods.lnscc.method import LNSCC
from deepclust_cli.methods.spectral import Spectral
from deepclust_cli.methods.spectralnet.method import SpectralNet
from deepclust_cli.methods.spectralnet.spectralnet_ae import SpectralNetAE

__all__ = ["METHODS", "ClusteringMethod", "MethodConfig", "AND", "GeoCluster", "KMeans", "LNSCC", "Spectral", "SpectralNet", "SpectralNetAE"]
