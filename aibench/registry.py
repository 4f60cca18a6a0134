"""Registries of service and client kinds: one module per kind, registered by name.

Adding a kind means writing one module that decorates its class with ``REGISTRY.register``
and naming it in the registry's ``modules`` (kind -> module); nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class; a kind's module is imported only when that kind is first asked for."""

    def __init__(self, what: str, modules: dict[str, str]) -> None:
        self.what = what
        self._modules = modules  # kind name -> module defining it
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        name = cls.name  # type: ignore[attr-defined]
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(set(self._modules) | set(self._classes))

    def get(self, name: str) -> type[T]:
        if name not in self._classes and name in self._modules:
            importlib.import_module(self._modules[name])
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r} (known: {', '.join(self.names())})") from None

    def create(self, name: str) -> T:
        factory: Callable[[], T] = self.get(name)
        return factory()
