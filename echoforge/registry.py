"""Backends registered by name (TTS voices, unit tokenizers, ASR models, engines)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from echoforge.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → factory table; ``@registry.register("name")`` adds one."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} '{name}': choose one of {', '.join(self.names())}"
            ) from None

    def create(self, name: str, *args, **kwargs) -> T:
        return self.get(name)(*args, **kwargs)
