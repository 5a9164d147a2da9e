"""Registries that map names to methods and datasets, with their config schemas.

Registering a name also stores its config dataclass in Hydra's ConfigStore under
``schema/<kind>/<name>``; the YAML file ``conf/<kind>/<name>.yaml`` names that schema in its
defaults (``- /schema/<kind>@_here_: <name>``), so Hydra type-checks every value while it composes
the config, and a variant's YAML can take another method's values and swap in its own schema
(``- override /schema/method@_here_: <variant>``).
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from hydra.core.config_store import ConfigStore

from deepclust_cli.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → object lookup for one kind of component (``method``, ``dataset``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, schema: type | None = None) -> Callable[[T], T]:
        """Decorator: ``@METHODS.register("kmeans", schema=KMeansConfig)``."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            if schema is not None:
                ConfigStore.instance().store(group=f"schema/{self.kind}", name=name, node=schema)
            return obj

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown method 'kmean' (did you mean 'kmeans'?); registered methods: kmeans, spectral``."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} '{name}'{hint}; registered {kind}s: {', '.join(known) or 'none'}"
