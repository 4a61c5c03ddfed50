"""Engines, registered by name. Ray and Beam adapters load only when asked for."""

from __future__ import annotations

from echoforge.pipeline.engines.base import Engine, engines
from echoforge.pipeline.engines import local as _local  # noqa: F401


def get_engine(name: str, **options) -> Engine:
    if name == "ray":
        from echoforge.pipeline.engines import ray as _ray  # noqa: F401
    elif name == "beam":
        from echoforge.pipeline.engines import beam as _beam  # noqa: F401
    return engines.create(name, **options)


__all__ = ["Engine", "engines", "get_engine"]
