"""Ray engine: one Ray Data ``map_batches`` per stage, over whole work units; workers commit.

Rows between operators are ``{"unit", "state"}``, where ``state`` is the pickled
:class:`UnitState` of one work unit (its records, rejects so far, stage seconds). A reader
turns unit indices into their input rows; each stage runs in its own pool of callable-class
actors (models load once per actor, resources as the stage declares them, GPUs where the
cluster has them) over a unit's records in the stage's batch size; the last operator commits
the unit from the worker it runs on, through :meth:`Job.commit`, and passes on only the
commit entry. The driver receives commit entries and nothing else: no audio, no rows.

A stage that raises on a unit is retried on it up to ``run.unit_attempts`` times; then the
unit is quarantined (committed with no rows and one reject naming its input range).
Crashed actors are restarted by Ray, which retries their tasks.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy, DataContext

from echoforge.pipeline.engines.base import Engine, UnitState, advance, commit_state, engines, read_state
from echoforge.pipeline.job import Job
from echoforge.pipeline.stages import build_stages
from echoforge.pipeline.workunits import WorkUnit
from echoforge.transforms.base import Resources, Stage

SCHEMA = pa.schema([("unit", pa.int64()), ("state", pa.large_binary())])
ENTRY = pa.schema([("unit", pa.int64()), ("entry", pa.large_binary())])


def _encode(states: list[UnitState]) -> pa.Table:
    return pa.Table.from_pydict({"unit": [s.unit.index for s in states],
                                 "state": [pickle.dumps(s, protocol=5) for s in states]}, schema=SCHEMA)


def _decode(batch: pa.Table) -> list[UnitState]:
    return [pickle.loads(p) for p in batch.column("state").to_pylist()]


def _read_units(batch: pa.Table, job: Job) -> pa.Table:
    """Work-unit indices in, the units' input rows out."""
    return _encode([read_state(job, job.plan.units[i]) for i in batch.column("unit").to_pylist()])


class _StageFn:
    """A Ray Data actor running one stage; its models load once, in ``__init__``."""

    def __init__(self, stage: Stage, attempts: int):
        self.stage = stage
        self.attempts = attempts
        self.stage.ensure_setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _encode([advance(self.stage, s, self.attempts) for s in _decode(batch)])


class _CommitFn:
    """Commits units from the worker it runs on; only the commit entries go on."""

    def __init__(self, job: Job):
        self.job = job

    def __call__(self, batch: pa.Table) -> pa.Table:
        entries = [commit_state(self.job, s) for s in _decode(batch)]
        return pa.Table.from_pydict({"unit": [e["unit"] for e in entries],
                                     "entry": [pickle.dumps(e) for e in entries]}, schema=ENTRY)


def _stage_options(res: Resources, scale: float, cpus: float, gpus: float) -> dict[str, Any]:
    """map_batches arguments for a stage's declared resources on this cluster."""
    use_gpu = gpus > 0 and res.num_gpus > 0
    if res.concurrency:
        compute = ActorPoolStrategy(size=res.concurrency)
    else:
        # As many actors as the declared resources allow, at least one.
        limit = gpus / res.num_gpus if use_gpu else cpus / max(res.num_cpus, 1e-3)
        compute = ActorPoolStrategy(min_size=1, max_size=max(1, int(limit)))
    options: dict[str, Any] = {"batch_size": 1, "num_cpus": res.num_cpus * scale, "compute": compute}
    if use_gpu:
        options["num_gpus"] = res.num_gpus
    return options


@engines.register("ray")
class RayEngine(Engine):
    """Options: ``address`` (join that cluster; otherwise a local instance starts, or the
    cluster in ``RAY_ADDRESS`` is joined, as under ``ray job submit``), ``num_cpus`` (local
    instance only), ``runtime_env``, ``log_to_driver`` (default False)."""

    name = "ray"

    def __init__(self, workers: int = 1, address: str | None = None, num_cpus: int | None = None,
                 runtime_env: dict[str, Any] | None = None, log_to_driver: bool = False, **options: Any):
        super().__init__(workers, **options)
        self.address = address
        self.num_cpus = num_cpus
        self.runtime_env = runtime_env
        self.log_to_driver = log_to_driver
        self._started = False

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        common: dict[str, Any] = {"runtime_env": self.runtime_env, "log_to_driver": self.log_to_driver}
        if self.address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=self.address, **common)
        else:
            ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, **common)
        self._started = True

    def run(self, job: Job, units: list[WorkUnit]) -> Iterator[dict[str, Any]]:
        if not units:
            return
        self._connect()
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False

        stages = build_stages(job.config)  # not set up: each actor loads its own models
        attempts = job.config.run.unit_attempts
        cluster = ray.cluster_resources()
        cpus, gpus = float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0))
        # One actor per stage plus the reader and the committer must fit at once, or the
        # pipeline would stall on a small cluster: scale CPU requests down when they do not.
        wanted = 2.0 + sum(s.resources.num_cpus for s in stages)
        scale = min(1.0, cpus / wanted)

        ds = ray.data.from_items([{"unit": u.index} for u in units], override_num_blocks=min(len(units), 1000))
        ds = ds.map_batches(functools.partial(_read_units, job=job), batch_size=1, batch_format="pyarrow",
                            num_cpus=scale)
        for stage in stages:
            ds = ds.map_batches(_StageFn, fn_constructor_args=(stage, attempts), batch_format="pyarrow",
                                **_stage_options(stage.resources, scale, cpus, gpus))
        ds = ds.map_batches(_CommitFn, fn_constructor_args=(job,), batch_size=1, batch_format="pyarrow",
                            num_cpus=scale, compute=ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus))))
        received = 0
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for blob in batch.column("entry").to_pylist():
                received += len(blob)
                yield pickle.loads(blob)
        self.bytes_received = received

    def close(self) -> None:
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False
