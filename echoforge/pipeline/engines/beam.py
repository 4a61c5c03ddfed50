"""Beam engine: the stages as DoFns, grouped and committed per work unit inside the pipeline.

Work-unit indices -> rows read per unit -> for each stage ``BatchElements`` (the stage's batch
size) and a DoFn that loads the stage's models in ``setup()`` -> everything (kept turns,
rejects of every stage, stage seconds, and one marker per unit so that units with no rows are
committed too) keyed by work unit -> ``GroupByKey`` -> a DoFn that commits each unit with
:meth:`Job.commit`. Commits are atomic and idempotent, so a retried bundle is harmless.

``pipeline_args`` are Beam pipeline options (``--runner=DataflowRunner``, ``--project=...``).
Without ``--runner`` the pipeline runs in this process on Beam's direct-runner engine (the
FnApiRunner), named explicitly: Beam's default, and its ``DirectRunner`` alias, first try
to download and start the Prism runner binary, which fails offline.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from echoforge.pipeline.engines.base import Engine, engines
from echoforge.pipeline.job import Job
from echoforge.pipeline.stages import identities
from echoforge.pipeline.workunits import Plan, WorkUnit
from echoforge.transforms.base import Stage

DEFAULT_RUNNER = "FnApiRunner"
KEPT, REJECT, SECONDS, UNIT = "kept", "reject", "seconds", "unit"


class ReadUnit(beam.DoFn):
    """A work-unit index in, that unit's input rows out."""

    def __init__(self, plan: Plan):
        self.plan = plan

    def process(self, index: int) -> Iterator[Any]:
        yield from self.plan.read(self.plan.units[index])


class StageDoFn(beam.DoFn):
    """One stage over a batch: kept records on the main output; rejects and the stage's
    seconds (split over the batch's work units by record count) on tagged outputs."""

    def __init__(self, stage: Stage):
        self.stage = stage

    def setup(self) -> None:
        self.stage.ensure_setup()

    def process(self, batch: list[Any]) -> Iterator[Any]:
        t0 = time.perf_counter()
        kept, rejected = self.stage.process(batch)
        seconds = time.perf_counter() - t0
        yield from kept
        for r in rejected:
            yield beam.pvalue.TaggedOutput(REJECT, r)
        counts = Counter(record.work_unit for record in batch)
        for unit, n in counts.items():
            yield beam.pvalue.TaggedOutput(SECONDS, (unit, {self.stage.name: seconds * n / len(batch)}))


class CommitUnit(beam.DoFn):
    """Commit one work unit from everything grouped under its index."""

    def __init__(self, job: Job):
        self.job = job

    def setup(self) -> None:
        stages = self.job.stages()
        self.stage_names = [s.name for s in stages]
        self.models = identities(stages)
        self.units = {u.index: u for u in self.job.plan.units}

    def process(self, element: tuple[int, Iterable[tuple[str, Any]]]) -> Iterator[dict[str, Any]]:
        index, values = element
        kept, rejected = [], []
        seconds = dict.fromkeys(self.stage_names, 0.0)
        for kind, value in values:
            if kind == KEPT:
                kept.append(value)
            elif kind == REJECT:
                rejected.append(value)
            elif kind == SECONDS:
                for k, v in value.items():
                    seconds[k] = seconds.get(k, 0.0) + v
        yield self.job.commit(self.units[index], kept, rejected, seconds, self.models)


def pipeline_options(pipeline_args: list[str] | None) -> PipelineOptions:
    args = list(pipeline_args or [])
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.append(f"--runner={DEFAULT_RUNNER}")
    return PipelineOptions(args)


def build_pipeline(p: beam.Pipeline, job: Job, units: list[WorkUnit]) -> None:
    """Add the job's transforms for ``units`` to pipeline ``p``."""
    indices = p | "Units" >> beam.Create([u.index for u in units]) | "Spread" >> beam.Reshuffle()
    keyed = [indices | "KeyUnits" >> beam.Map(lambda i: (i, (UNIT, None)))]
    records = indices | "Read" >> beam.ParDo(ReadUnit(job.plan))
    for stage in job.stages():
        size = stage.resources.batch_size
        out = (records
               | f"{stage.name}/Batch" >> beam.BatchElements(min_batch_size=size, max_batch_size=size)
               | f"{stage.name}/Process" >> beam.ParDo(StageDoFn(stage)).with_outputs(REJECT, SECONDS, main=KEPT))
        records = out[KEPT]
        keyed.append(out[REJECT] | f"{stage.name}/KeyRejects" >> beam.Map(lambda r: (r.work_unit, (REJECT, r))))
        keyed.append(out[SECONDS] | f"{stage.name}/KeySeconds" >> beam.Map(lambda kv: (kv[0], (SECONDS, kv[1]))))
    keyed.append(records | "KeyKept" >> beam.Map(lambda t: (t.work_unit, (KEPT, t))))
    _ = (keyed
         | "All" >> beam.Flatten()
         | "ByUnit" >> beam.GroupByKey()
         | "Commit" >> beam.ParDo(CommitUnit(job)))


@engines.register("beam")
class BeamEngine(Engine):
    """Option: ``pipeline_args``, a list of Beam pipeline options."""

    name = "beam"

    def __init__(self, workers: int = 1, pipeline_args: list[str] | None = None, **options: Any):
        super().__init__(workers, **options)
        self.pipeline_args = list(pipeline_args or [])

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        if not units:
            return
        p = beam.Pipeline(options=pipeline_options(self.pipeline_args))
        build_pipeline(p, job, units)
        state = p.run().wait_until_finish()
        if state != beam.runners.runner.PipelineState.DONE:
            raise RuntimeError(f"the Beam pipeline ended in state {state}")
        for u in units:
            yield json.loads(job.layout.marker(u.index).read_text())
