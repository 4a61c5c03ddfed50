"""Beam engine: the stages as DoFns over whole work units; workers commit their own units.

Work units (each with its range and byte offset) -> ``Reshuffle`` (spread over workers) -> a DoFn that reads each unit's
input rows -> for each stage a DoFn that loads the stage's models in ``setup()`` and runs
the stage over the unit's records in its batch size (a ``Reshuffle`` between stages lets a
runner give each stage its own workers and resource hints: GPUs for stages that declare
them) -> a DoFn that commits the unit from the worker it runs on, through
:meth:`Job.commit`, and emits only the commit entry. No step sees more than one unit's rows,
and nothing but commit markers comes back to the launching process.

``pipeline_args`` are Beam pipeline options (``--runner=DataflowRunner``, ``--project=...``).
Without ``--runner`` the pipeline runs in this process on Beam's direct-runner engine (the
FnApiRunner), named explicitly: Beam's default, and its ``DirectRunner`` alias, first try
to download and start the Prism runner binary, which fails offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from echoforge.errors import ConfigError
from echoforge.pipeline.engines.base import Engine, engines
from echoforge.pipeline.job import Job, UnitState, run_unit
from echoforge.pipeline.stages import build_stages
from echoforge.pipeline.workunits import WorkUnit
from echoforge.transforms.base import Stage

DEFAULT_RUNNER = "FnApiRunner"


class ReadUnit(beam.DoFn):
    """A work unit in (its range and byte offset: workers hold no plan of units), its state
    (its input rows) out."""

    def __init__(self, job: Job):
        self.job = job

    def process(self, unit: WorkUnit) -> Iterator[UnitState]:
        yield run_unit(self.job, unit, [], commit=False)


class StageDoFn(beam.DoFn):
    """One stage over one work unit at a time (in the stage's batch size)."""

    def __init__(self, job: Job, stage: Stage):
        self.job = job
        self.stage = stage

    def setup(self) -> None:
        self.stage.ensure_setup()

    def process(self, state: UnitState) -> Iterator[UnitState]:
        yield run_unit(self.job, state, [self.stage], commit=False)


class CommitUnit(beam.DoFn):
    """Commit one work unit on this worker; emit its commit entry."""

    def __init__(self, job: Job):
        self.job = job

    def process(self, state: UnitState) -> Iterator[dict[str, Any]]:
        yield run_unit(self.job, state, [])


def pipeline_options(pipeline_args: list[str] | None, workers: int = 1) -> PipelineOptions:
    """Beam options; without ``--runner``, the direct-runner engine with ``workers`` worker
    processes (so a build uses the cores the local engine would)."""
    args = list(pipeline_args or [])
    given = {a.split("=")[0] for a in args}
    if "--runner" not in given:
        args.append(f"--runner={DEFAULT_RUNNER}")
        if workers > 1 and "--direct_num_workers" not in given:
            args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return PipelineOptions(args)


def build_pipeline(p: beam.Pipeline, job: Job, units: list[WorkUnit], accelerator: str | None = None) -> None:
    """Add the job's transforms for ``units`` to pipeline ``p``; stages that declare GPUs get
    the ``accelerator`` resource hint (e.g. ``type:nvidia-l4;count:1;install-nvidia-driver``)."""
    states = (p | "Units" >> beam.Create(list(units))
              | "Spread" >> beam.Reshuffle()
              | "Read" >> beam.ParDo(ReadUnit(job)))
    for stage in build_stages(job.config):
        step = beam.ParDo(StageDoFn(job, stage))
        if accelerator and stage.resources.num_gpus > 0:
            step = step.with_resource_hints(accelerator=accelerator)
        states = states | f"{stage.name}/Spread" >> beam.Reshuffle() | f"{stage.name}/Process" >> step
    _ = states | "Commit" >> beam.ParDo(CommitUnit(job))


# What each hosted runner cannot start without, and the option that gives it.
RUNNER_NEEDS = {"DataflowRunner": (("project", "--project=PROJECT"), ("region", "--region=REGION"),
                                   ("temp_location", "--temp_location=gs://BUCKET/tmp"))}


def check_runner_options(options: PipelineOptions) -> None:
    """One line naming the missing options of a hosted runner (Dataflow), before any submission."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, StandardOptions

    runner = str(options.view_as(StandardOptions).runner or "")
    needs = RUNNER_NEEDS.get(runner.rsplit(".", 1)[-1])
    if not needs:
        return
    cloud = options.view_as(GoogleCloudOptions)
    missing = [flag for attr, flag in needs if not getattr(cloud, attr, None)]
    if missing:
        raise ConfigError(f"--runner={runner} needs more options: add "
                          + " ".join(f"--beam-option={flag}" for flag in missing))


@engines.register("beam")
class BeamEngine(Engine):
    """Options: ``pipeline_args``, a list of Beam pipeline options; ``accelerator``, the
    resource hint given to stages that declare GPUs."""

    name = "beam"

    def __init__(self, workers: int = 1, pipeline_args: list[str] | None = None, accelerator: str | None = None,
                 **options: Any):
        super().__init__(workers, **options)
        self.pipeline_args = list(pipeline_args or [])
        self.accelerator = accelerator
        check_runner_options(pipeline_options(self.pipeline_args, workers))

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        if not units:
            return
        p = beam.Pipeline(options=pipeline_options(self.pipeline_args, self.workers))
        build_pipeline(p, job, units, self.accelerator)
        state = p.run().wait_until_finish()
        if state != beam.runners.runner.PipelineState.DONE:
            raise RuntimeError(f"the Beam pipeline ended in state {state}")
        folder = job.layout.folder
        folder.refresh()  # the markers were written by the runner's worker processes
        for u in units:
            yield folder.read_json(job.layout.marker(u.index))
