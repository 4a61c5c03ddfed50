"""A build job: what every engine needs to process and commit one work unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from echoforge.config import BuildConfig
from echoforge.pipeline.output import Layout, commit_unit
from echoforge.pipeline.stages import ChainResult, build_stages, identities, run_chain
from echoforge.pipeline.workunits import Plan, WorkUnit
from echoforge.schemas.records import Reject, Turn
from echoforge.transforms.base import Stage


@dataclass(frozen=True)
class Job:
    config: BuildConfig
    plan: Plan
    layout: Layout

    def stages(self) -> list[Stage]:
        return build_stages(self.config)

    def commit(self, unit: WorkUnit, kept: list[Turn], rejected: list[Reject], seconds: dict[str, float],
               models: dict[str, str]) -> dict[str, Any]:
        entry = commit_unit(
            self.layout, unit, kept, rejected,
            validation_fraction=self.config.output.validation_fraction,
            keep_answer_audio=self.config.synthesis.keep_answer_audio,
            seconds=seconds,
            models=models,
        )
        return entry

    def process(self, unit: WorkUnit, stages: list[Stage]) -> dict[str, Any]:
        """Read, transform and commit one work unit in this process."""
        result: ChainResult = run_chain(stages, list(self.plan.read(unit)))
        return self.commit(unit, result.kept, result.rejected, result.seconds, identities(stages))
