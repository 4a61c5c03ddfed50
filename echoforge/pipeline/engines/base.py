"""Engine interface: run a job's pending work units and yield each unit's commit entry;
and the state of a unit that engines moving units between stage workers (Ray, Beam) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from echoforge.pipeline.job import Job
from echoforge.pipeline.stages import run_stage
from echoforge.pipeline.workunits import WorkUnit
from echoforge.schemas.records import Reject
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


@dataclass
class UnitState:
    """A work unit on its way through the stages."""

    unit: WorkUnit
    records: list[Any]
    rejected: list[Reject] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    attempts: int = 0


def read_state(job: Job, unit: WorkUnit) -> UnitState:
    """A unit's input rows as its state; an unreadable unit is quarantined, not fatal."""
    try:
        return UnitState(unit, list(job.plan.read(unit)))
    except Exception as exc:  # noqa: BLE001
        return UnitState(unit, [], failure=f"{type(exc).__name__}: {exc}", attempts=1)


def advance(stage: Stage, state: UnitState, attempts: int) -> UnitState:
    """Run one stage over a unit's records, retrying a unit that raises."""
    if state.failure is not None:
        return state
    for attempt in range(1, attempts + 1):
        try:
            kept, rejected = run_stage(stage, state.records, state.seconds)
        except Exception as exc:  # noqa: BLE001 - a failing unit must not stop the build
            if attempt == attempts:
                state.failure, state.attempts = f"{stage.name}: {type(exc).__name__}: {exc}", attempts
            continue
        state.records = kept
        state.rejected.extend(rejected)
        return state
    return state


def commit_state(job: Job, state: UnitState) -> dict[str, Any]:
    if state.failure is not None:
        return job.quarantine(state.unit, state.failure, state.attempts)
    return job.commit(state.unit, state.records, state.rejected, state.seconds)


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
