"""Registries of service and client kinds: one module per kind, registered by name.

Adding a kind means writing one module that decorates its class with ``REGISTRY.register``
and listing that module here in the registry's ``modules``; nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class, with the defining modules imported on first use."""

    def __init__(self, what: str, modules: list[str]) -> None:
        self.what = what
        self._modules = modules
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, cls: type[T]) -> type[T]:
        name = cls.name  # type: ignore[attr-defined]
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.what} {name!r} registered twice")
        self._classes[name] = cls
        return cls

    def _load(self) -> None:
        if not self._loaded:
            for module in self._modules:
                importlib.import_module(module)
            self._loaded = True

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        self._load()
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r} (known: {', '.join(self.names())})") from None

    def create(self, name: str) -> T:
        factory: Callable[[], T] = self.get(name)
        return factory()
