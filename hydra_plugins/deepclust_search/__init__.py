"""deepclust's Optuna search as a Hydra sweeper plugin (``hydra/sweeper=search``). Hydra accepts
plugins only from the ``hydra_plugins`` namespace and imports every one of them at start-up, so
this module is light: the search itself (and Optuna) is imported when a search starts."""

from typing import Any

from hydra.plugins.sweeper import Sweeper


class OptunaSearch(Sweeper):
    """Hydra's entry to :class:`deepclust_cli.search.OptunaSearch` (the keyword arguments of
    Hydra's Optuna sweeper config)."""

    def __init__(self, **settings: Any) -> None:
        from deepclust_cli.search import OptunaSearch as Search

        self.search = Search(**settings)

    def setup(self, **kwargs: Any) -> None:
        self.search.setup(**kwargs)

    def sweep(self, arguments: list[str]) -> None:
        self.search.sweep(arguments)
