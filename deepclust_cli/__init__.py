"""deepclust: a config-driven experiment runner for deep clustering.

Library use::

    from deepclust_cli.methods import KMeans
    labels = KMeans(n_clusters=3).fit(X).predict(X)
"""

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # 60 ms: not for every CLI start

    try:
        return version("deepclust")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
