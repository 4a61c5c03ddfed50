"""A build job: what every engine needs to process and commit one work unit.

Engines ship the job to their workers; a worker reads a unit's input rows itself, runs the
stages and commits the unit's objects to the output folder itself, so only commit entries
(small dicts) travel back to the driver.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

from echoforge.config import BuildConfig
from echoforge.pipeline.commit import commit_unit
from echoforge.pipeline.layout import Layout
from echoforge.pipeline.stages import ChainResult, build_stages, run_chain
from echoforge.pipeline.workunits import Plan, WorkUnit
from echoforge.schemas.records import Reject, Turn
from echoforge.transforms.base import Stage

log = logging.getLogger(__name__)


@dataclass
class Job:
    config: BuildConfig
    plan: Plan
    layout: Layout
    _stages: list[Stage] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_stages"] = None  # each worker sets up its own models
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

    def run(self, unit: WorkUnit, stages: list[Stage]) -> ChainResult:
        return run_chain(stages, list(self.plan.read(unit)))

    def process(self, unit: WorkUnit, stages: list[Stage]) -> dict[str, Any]:
        """Read, transform and commit one work unit in this process.

        A unit that raises is retried up to ``run.unit_attempts`` times, then quarantined.
        """
        attempts = self.config.run.unit_attempts
        for attempt in range(1, attempts + 1):
            try:
                result = self.run(unit, stages)
            except Exception as exc:  # noqa: BLE001 - a failing unit must not stop the build
                error = f"{type(exc).__name__}: {exc}"
                log.debug("work unit %d failed (attempt %d): %s", unit.index, attempt, traceback.format_exc())
                if attempt == attempts:
                    return self.quarantine(unit, error, attempts)
                continue
            return self.commit(unit, result.kept, result.rejected, result.seconds)
        raise AssertionError("unreachable")
