"""Engines, registered by name. Ray and Beam adapters load only when asked for."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from echoforge.pipeline.engines.base import Engine
from echoforge.pipeline.engines import local as _local  # noqa: F401  (registers "local")
from echoforge.registry import engines


def _on_demand(module: str, cls: str) -> Callable[..., Engine]:
    """A factory that imports an engine's module (and its heavy framework) only when it is used."""

    def create(**options: Any) -> Engine:
        return getattr(importlib.import_module(module), cls)(**options)

    return create


engines.register("ray")(_on_demand("echoforge.pipeline.engines.ray", "RayEngine"))
engines.register("beam")(_on_demand("echoforge.pipeline.engines.beam", "BeamEngine"))


def get_engine(name: str, **options: Any) -> Engine:
    return engines.create(name, **options)


__all__ = ["Engine", "engines", "get_engine"]
