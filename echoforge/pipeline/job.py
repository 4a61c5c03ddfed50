"""A build job, and :func:`run_unit`, the one way every engine runs a work unit.

Engines ship the job to their workers; a worker reads a unit's input rows itself, runs the
stages and commits the unit's objects to the output folder itself, so only commit entries
(small dicts) travel back to the driver.

Retries, the same on every engine:

* the input read is repeated with bounded backoff (``run.storage_retry_s``) while it fails
  with a transient error (connection, time-out, 5xx, throttling); a permanent error (not
  found, access denied, bad data) quarantines the unit at once; a read still failing when
  the time is spent stops the build (:class:`StoreUnavailable`), since the unit is not at fault;
* a stage that raises on a unit is run on it again, up to ``run.unit_attempts`` times, then
  the unit is quarantined: committed with no rows and one reject naming its input range
  (``build --retry-quarantined`` recomputes such units);
* storage calls of the commit are retried by :mod:`echoforge.storage` the same way; the
  commit is fenced by the build's lease (:class:`LeaseLost` stops the build).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

from echoforge.config import BuildConfig, StorageConfig
from echoforge.errors import BuildStopped
from echoforge.pipeline.commit import commit_unit
from echoforge.pipeline.layout import Layout
from echoforge.pipeline.lease import LeaseToken
from echoforge.pipeline.stages import build_stages, run_stage
from echoforge.pipeline.workunits import Plan, WorkUnit
from echoforge.schemas.records import Reject, Turn
from echoforge.storage import retrying
from echoforge.transforms.base import Stage

log = logging.getLogger(__name__)


@dataclass
class UnitState:
    """A work unit on its way through the stages."""

    unit: WorkUnit
    records: list[Any]
    rejected: list[Reject] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    attempts: int = 0


@dataclass
class Job:
    config: BuildConfig
    plan: Plan
    layout: Layout
    lease: LeaseToken | None = None  # fences every commit
    _stages: list[Stage] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_stages"] = None  # each worker sets up its own models
        # No credential travels: folders and inputs resolve theirs where they are unpickled.
        state["config"] = self.config.model_copy(update={"storage": StorageConfig()})
        return state

    def stages(self) -> list[Stage]:
        """The stages, built once per process (not set up: engines set them up where they run)."""
        if self._stages is None:
            self._stages = build_stages(self.config)
        return self._stages

    def commit(self, unit: WorkUnit, kept: list[Turn], rejected: list[Reject], seconds: dict[str, float],
               quarantined: dict[str, Any] | None = None) -> dict[str, Any]:
        return commit_unit(
            self.layout, unit, kept, rejected,
            validation_fraction=self.config.output.validation_fraction,
            keep_answer_audio=self.config.synthesis.keep_answer_audio,
            seconds=seconds,
            row_group_rows=self.config.output.row_group_rows,
            quarantined=quarantined,
            fence=self.lease.ensure if self.lease is not None else None,
        )

    def quarantine(self, unit: WorkUnit, error: str, attempts: int) -> dict[str, Any]:
        """Commit a unit that failed as a whole: no rows, one reject naming its input range."""
        spec = self.plan.inputs[unit.input_index]
        where = f"{spec.name}:rows {unit.start}-{unit.stop - 1}"
        reject = Reject(id=f"unit-{unit.index:06d}", source=spec.name, source_position=where, stage="engine",
                        reason="unit_failed", detail=f"after {attempts} attempts: {error}"[:2000],
                        input_row=unit.start, work_unit=unit.index)
        log.warning("work unit %d (%s) quarantined after %d attempts: %s", unit.index, where, attempts, error)
        return self.commit(unit, [], [reject], {}, quarantined={"error": error[:500], "attempts": attempts,
                                                                  "input": where})

    def process(self, unit: WorkUnit, stages: list[Stage]) -> dict[str, Any]:
        """Read, transform and commit one work unit in this process."""
        return run_unit(self, unit, stages)


def read_unit(job: Job, unit: WorkUnit) -> UnitState:
    """A unit's input rows as its state, read with retries on transient errors; a unit
    whose input fails permanently carries the failure (it is quarantined when committed)."""
    spec = job.plan.inputs[unit.input_index]
    what = f"reading {spec.name} rows {unit.start}-{unit.stop - 1}"
    try:
        return UnitState(unit, retrying(lambda: list(job.plan.read(unit)), what, job.config.run.storage_retry_s))
    except BuildStopped:
        raise
    except Exception as exc:  # noqa: BLE001 - a permanent input failure is the unit's, not the build's
        return UnitState(unit, [], failure=f"read: {type(exc).__name__}: {exc}", attempts=1)


def advance(stage: Stage, state: UnitState, attempts: int) -> UnitState:
    """Run one stage over a unit's records, running it again on a unit that raises."""
    if state.failure is not None:
        return state
    for attempt in range(1, attempts + 1):
        try:
            kept, rejected = run_stage(stage, state.records, state.seconds)
        except BuildStopped:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing unit must not stop the build
            log.debug("work unit %d failed in %s (attempt %d): %s", state.unit.index, stage.name, attempt,
                      traceback.format_exc())
            if attempt == attempts:
                state.failure, state.attempts = f"{stage.name}: {type(exc).__name__}: {exc}", attempts
            continue
        state.records = kept
        state.rejected.extend(rejected)
        return state
    return state


def run_unit(job: Job, work: WorkUnit | UnitState, stages: list[Stage], *, commit: bool = True):
    """The one way every engine runs a work unit (or a part of its stages).

    ``work`` is a unit (its input rows are read first) or the state a previous part left;
    ``stages`` run in order with the retries above; with ``commit`` the unit is committed
    (or quarantined) and its commit entry returned, otherwise its state, for the next part.
    """
    state = work if isinstance(work, UnitState) else read_unit(job, work)
    attempts = job.config.run.unit_attempts
    for stage in stages:
        state = advance(stage, state, attempts)
    if not commit:
        return state
    if state.failure is not None:
        return job.quarantine(state.unit, state.failure, state.attempts)
    return job.commit(state.unit, state.records, state.rejected, state.seconds)
