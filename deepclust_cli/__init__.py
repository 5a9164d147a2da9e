"""deepclust: a config-driven experiment runner for deep clustering.

Library use::

    from deepclust_cli.methods import KMeans
    labels = KMeans(n_clusters=3).fit(X).predict(X)
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepclust")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
