"""Engine interface: run a job's pending work units and yield each unit's commit entry.

Every engine runs units through :func:`echoforge.pipeline.job.run_unit` (whole, or in parts
handing a :class:`~echoforge.pipeline.job.UnitState` on), so reads, stages, retries and
quarantine behave the same everywhere."""

from __future__ import annotations

from typing import Any, Iterator

from echoforge.pipeline.job import Job
from echoforge.pipeline.workunits import WorkUnit
from echoforge.transforms.base import Stage


class Engine:
    """Runs stages over work units somewhere (this process, a pool, Ray, Beam)."""

    name = "base"

    def __init__(self, workers: int = 1):
        self.workers = workers

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release engine resources (also after an aborted run)."""


def segments(stages: list[Stage], gpus: bool) -> list[list[Stage]]:
    """Consecutive stages that want the same kind of worker (GPU workers only where ``gpus``):
    what an engine runs as one step, with no unit crossing between workers inside it."""
    groups: list[tuple[bool, list[Stage]]] = []
    for stage in stages:
        on_gpu = gpus and stage.resources.num_gpus > 0
        if groups and groups[-1][0] == on_gpu:
            groups[-1][1].append(stage)
        else:
            groups.append((on_gpu, [stage]))
    return [group for _, group in groups]
