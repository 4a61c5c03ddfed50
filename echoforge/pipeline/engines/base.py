"""Engine interface: run a job's pending work units and yield each unit's commit entry.

Every engine runs units through :func:`echoforge.pipeline.job.run_unit` (whole, or in parts
handing a :class:`~echoforge.pipeline.job.UnitState` on), so reads, stages, retries and
quarantine behave the same everywhere."""

from __future__ import annotations

from typing import Any, Iterator

from echoforge.pipeline.job import Job
from echoforge.pipeline.workunits import WorkUnit
from echoforge.registry import Registry


class Engine:
    """Runs stages over work units somewhere (this process, a pool, Ray, Beam)."""

    name = "base"

    def __init__(self, workers: int = 1, **options: Any):
        self.workers = workers
        self.options = options

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release engine resources (also after an aborted run)."""


engines: Registry[Engine] = Registry("engine")
