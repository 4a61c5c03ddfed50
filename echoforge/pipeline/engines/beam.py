"""Beam engine: the stages as one DoFn per kind of worker; workers read, compute and commit.

Work-unit indices -> ``Reshuffle`` (spread over workers) -> one step per run of stages that
want the same kind of worker, like Ray's operators: on CPU workers the whole chain (read,
every stage, commit) is one DoFn and no unit's audio crosses a shuffle; with an
``accelerator`` and stages that declare GPUs, the chain splits where the kind of worker
changes, a ``Reshuffle`` between steps lets the runner place each on its own workers, and
the GPU steps carry the accelerator resource hint. Each step, as RunInference's model handler
does, loads its stages' models once per worker process and shares them across the DoFn
instances of that process (``apache_beam.utils.shared``; Dataflow runs several threads per
process). The last step commits each unit from the worker it runs on, through
:meth:`Job.commit`; nothing but commit markers comes back to the launching process, which
reads them from the output folder while the pipeline runs, so progress and the failure ratio
are live on every runner.

``pipeline_args`` are Beam pipeline options (``--runner=DataflowRunner``, ``--project=...``).
Without ``--runner`` the pipeline runs in this process on Beam's direct-runner engine (the
FnApiRunner), named explicitly: Beam's default, and its ``DirectRunner`` alias, first try
to download and start the Prism runner binary, which fails offline.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils import shared

from echoforge.errors import ConfigError
from echoforge.pipeline.engines.base import Engine, segments
from echoforge.pipeline.job import Job, run_unit
from echoforge.pipeline.stages import build_stages
from echoforge.pipeline.workunits import WorkUnit
from echoforge.transforms.base import Stage

DEFAULT_RUNNER = "FnApiRunner"
POLL_S = 2.0  # how often the launcher looks for new unit markers


class _Loaded:
    """The set-up stages of one step, held once per worker process."""

    def __init__(self, stages: list[Stage]):
        for stage in stages:
            stage.ensure_setup()
        self.stages = stages


class StepDoFn(beam.DoFn):
    """Consecutive stages over one work unit at a time (each in its own batch size); the first
    step reads its units' rows, the last commits them and emits only commit entries."""

    def __init__(self, job: Job, stages: list[Stage], handle: shared.Shared, last: bool):
        self.job, self.stages, self.handle, self.last = job, stages, handle, last
        self._loaded: _Loaded | None = None

    def setup(self) -> None:
        self._loaded = self.handle.acquire(lambda: _Loaded(self.stages))

    def process(self, work: Any) -> Iterator[Any]:  # a WorkUnit (first step) or the UnitState a step left
        yield run_unit(self.job, work, self._loaded.stages, commit=self.last)


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
    """Add the job's transforms for ``units`` to pipeline ``p``: one step per run of stages on
    one kind of worker; steps of stages that declare GPUs get the ``accelerator`` resource hint
    (e.g. ``type:nvidia-l4;count:1;install-nvidia-driver``)."""
    steps = segments(build_stages(job.config), gpus=bool(accelerator))
    # Each unit travels with its own range and byte offset: workers hold no plan of units.
    items = p | "Units" >> beam.Create(list(units))
    for i, stages in enumerate(steps):
        name = "+".join(s.name for s in stages)
        fn = StepDoFn(job, stages, shared.Shared(), last=i == len(steps) - 1)
        step = beam.ParDo(fn)
        if accelerator and any(s.resources.num_gpus > 0 for s in stages):
            step = step.with_resource_hints(accelerator=accelerator)
        items = items | f"{name}/Spread" >> beam.Reshuffle() | f"{name}/Run" >> step


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


class BeamEngine(Engine):
    """Options: ``pipeline_args``, a list of Beam pipeline options; ``accelerator``, the
    resource hint given to steps whose stages declare GPUs."""

    name = "beam"

    def __init__(self, workers: int = 1, pipeline_args: list[str] | None = None, accelerator: str | None = None):
        super().__init__(workers)
        self.pipeline_args = list(pipeline_args or [])
        self.accelerator = accelerator
        check_runner_options(pipeline_options(self.pipeline_args, workers))

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        if not units:
            return
        p = beam.Pipeline(options=pipeline_options(self.pipeline_args, self.workers))
        build_pipeline(p, job, units, self.accelerator)
        outcome: dict[str, Any] = {}

        def run_pipeline() -> None:
            try:
                outcome["state"] = p.run().wait_until_finish()
            except BaseException as exc:  # noqa: BLE001 - handed to the launcher's thread
                outcome["error"] = exc

        pending = {u.index for u in units}
        stale = dict(self._markers(job, pending))  # markers a resumed build recomputes
        runner = threading.Thread(target=run_pipeline, name="beam-pipeline", daemon=True)
        runner.start()
        while pending:
            finished = not runner.is_alive()
            for unit, entry in self._markers(job, pending):
                if entry != stale.get(unit):
                    pending.discard(unit)
                    yield entry
            if finished:
                break
            runner.join(POLL_S)
        runner.join()  # every unit is committed; the runner still winds its workers down
        if "error" in outcome:
            raise outcome["error"]
        if outcome.get("state") != beam.runners.runner.PipelineState.DONE:
            raise RuntimeError(f"the Beam pipeline ended in state {outcome.get('state')}")
        if pending:
            raise RuntimeError(f"the Beam pipeline finished without committing {len(pending)} work units")

    @staticmethod
    def _markers(job: Job, units: set[int]) -> list[tuple[int, dict[str, Any]]]:
        """(unit, commit entry) of every unit among ``units`` whose marker is in the output folder."""
        folder = job.layout.folder
        folder.refresh()  # the markers are written by other processes
        found = []
        for group in sorted({job.layout.marker_dir(u) for u in units}):
            for rel in folder.list(group):
                unit = int(rel.rsplit("/", 1)[-1].removesuffix(".json")) if rel.endswith(".json") else -1
                if unit in units:
                    try:
                        found.append((unit, folder.read_json(rel)))
                    except FileNotFoundError:  # replaced between the listing and the read
                        continue
        return found
