"""Registries: a name → the component's config schema and where its implementation lives.

A catalog (``deepclust_cli/methods/__init__.py``, ``data/__init__.py``, ``nets/__init__.py``) adds
each name with its schema — a plain dataclass — and the implementation as a ``"module:attribute"``
string. The schema goes into Hydra's ConfigStore under ``schema/<kind>/<name>`` at once, so the
CLI composes and validates configs without importing torch; the implementation is imported the
first time :meth:`Registry.get` asks for it, when a run builds it. The YAML file
``conf/<kind>/<name>.yaml`` names its schema in its defaults (``- /schema/<kind>@_here_: <name>``);
a variant's YAML can take another's values and swap in its own schema
(``- override /schema/method@_here_: <variant>``).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Generic, Iterator, Optional, TypeVar

from hydra.core.config_store import ConfigNode, ConfigStore
from omegaconf import OmegaConf

from deepclust_cli.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One registered name: its schema (or None) and its implementation, ``"module:attribute"``."""

    schema: Optional[type]
    target: str


class Registry(Generic[T]):
    """Name → implementation lookup for one kind of component (``method``, ``dataset``, ``backbone``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: str, schema: Optional[type] = None) -> None:
        """Register ``name``: its implementation ``target`` (``"package.module:attribute"``) and its
        config ``schema``, which Hydra's ConfigStore receives now."""
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        if ":" not in target:
            raise ValueError(f"{self.kind} '{name}': target must be 'module:attribute', got {target!r}")
        self._entries[name] = Entry(schema, target)
        if schema is not None:
            group = ConfigStore.instance().repo.setdefault("schema", {}).setdefault(self.kind, {})
            group[f"{name}.yaml"] = _SchemaNode(name=f"{name}.yaml", node=None, group=f"schema/{self.kind}", package=None, provider="deepclust")
            group[f"{name}.yaml"].schema = [schema, None]

    def get(self, name: str) -> T:
        """The implementation registered as ``name``, imported on first use."""
        module, attribute = self._entry(name).target.split(":")
        return getattr(importlib.import_module(module), attribute)

    def schema(self, name: str) -> Any:
        """The config dataclass registered with ``name``."""
        return self._entry(name).schema

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _entry(self, name: str) -> Entry:
        if name not in self._entries:
            raise ConfigError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]


class _SchemaNode(ConfigNode):
    """A ConfigStore entry whose dataclass becomes a DictConfig when Hydra first loads it.

    ``ConfigStore.store`` converts at once, about 4 ms a schema: 0.1 s for every CLI start. A run
    composes two or three of them, so they are converted on first use instead; the conversion is
    kept in ``schema`` — one list shared with the shallow copies ``ConfigStore.load`` hands out.
    """

    schema: list  # [dataclass, its DictConfig once converted]

    def __getattribute__(self, attribute: str) -> Any:
        if attribute != "node" or object.__getattribute__(self, "__dict__")["node"] is not None:
            return object.__getattribute__(self, attribute)
        holder = object.__getattribute__(self, "schema")
        if holder[1] is None:
            holder[1] = OmegaConf.structured(holder[0])
        return holder[1]


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown method 'kmean' (did you mean 'kmeans'?); registered methods: kmeans, spectral``."""
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown {kind} '{name}'{hint}; registered {kind}s: {', '.join(known) or 'none'}"
