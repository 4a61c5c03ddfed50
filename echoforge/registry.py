"""Backends registered by name (TTS voices, unit tokenizers, aligners, engines, exporters).

A backend is one class: ``@registry.register("name", config=Section)`` binds the class and the
typed config section it reads, so adding a backend touches no other file. The config section
(``synthesis.<name>``, ``units.<name>``) is validated from the registry when a config is parsed.
A registry knows the package whose modules hold its built-in backends and imports it the first
time it is asked for its names (as plugin systems load their entry points); a backend defined
anywhere else registers itself when its module is imported.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, TypeVar

from echoforge.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → factory table; ``@registry.register("name", config=Model)`` adds one."""

    def __init__(self, kind: str, builtins: str | None = None):
        self.kind = kind
        self._builtins = builtins  # package that registers the built-in backends on import
        self._factories: dict[str, Callable[..., T]] = {}
        self._configs: dict[str, tuple[str, type]] = {}  # name → (config section, its model)

    def register(self, name: str, config: type | None = None, section: str | None = None,
                 ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Register a factory; ``config`` is the model of its section (named ``section``, default ``name``)."""

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            if config is not None:
                self._configs[name] = (section or name, config)
            return factory

        return add

    def load(self) -> None:
        """Import the built-in backends (once; later calls cost a dictionary look-up)."""
        if self._builtins is not None:
            importlib.import_module(self._builtins)

    def names(self) -> list[str]:
        self.load()
        return sorted(self._factories)

    def sections(self) -> dict[str, type]:
        """Config section name → its model, for every registered backend that has one."""
        self.load()
        return {section: model for section, model in self._configs.values()}

    def get(self, name: str) -> Callable[..., T]:
        self.load()
        try:
            return self._factories[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown {self.kind} '{name}'{hint}: choose one of {', '.join(self.names())}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.get(name)(*args, **kwargs)


# The registries every layer shares; each lives here, below the config that reads their sections.
tts_backends: Registry[Any] = Registry("TTS backend", "echoforge.backends.tts")
unit_tokenizers: Registry[Any] = Registry("unit tokenizer", "echoforge.backends.units")
word_aligners: Registry[Any] = Registry("word aligner", "echoforge.backends.aligners")
engines: Registry[Any] = Registry("engine", "echoforge.pipeline.engines")
