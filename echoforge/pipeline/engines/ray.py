"""Ray engine: Ray Data ``map_batches`` over whole work units; workers read, compute and commit.

Consecutive stages that want the same kind of worker (CPU, or GPU where the cluster has
GPUs) run in one operator, a pool of callable-class actors that each hold those stages'
models (loaded once per actor): on a CPU cluster the whole chain is one operator, as in the
local engine, and no unit's audio crosses the object store; with GPU stages the chain splits
where the kind of worker changes. Rows between operators are ``{"unit", "state"}``, where
``state`` is the pickled :class:`UnitState` of one work unit (its records, rejects so far,
stage seconds). The first operator reads its units' input rows; the last commits each unit
from the worker it runs on, through :meth:`Job.commit`, and passes on only the commit entry.
The driver receives commit entries and nothing else: no audio, no rows.

Each segment runs its units through :func:`~echoforge.pipeline.job.run_unit`, with the
retries and quarantine of every engine. Crashed actors are restarted by Ray, which retries
their tasks.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy, DataContext

from echoforge.errors import EchoforgeError
from echoforge.pipeline.engines.base import Engine, segments
from echoforge.pipeline.job import Job, UnitState, run_unit
from echoforge.pipeline.stages import build_stages
from echoforge.pipeline.workunits import WorkUnit
from echoforge.transforms.base import Stage

SCHEMA = pa.schema([("unit", pa.int64()), ("state", pa.large_binary())])
ENTRY = pa.schema([("unit", pa.int64()), ("entry", pa.large_binary())])


def _encode(states: list[UnitState]) -> pa.Table:
    return pa.Table.from_pydict({"unit": [s.unit.index for s in states],
                                 "state": [pickle.dumps(s, protocol=5) for s in states]}, schema=SCHEMA)


def _decode(batch: pa.Table) -> list[UnitState]:
    return [pickle.loads(p) for p in batch.column("state").to_pylist()]


class _SegmentFn:
    """A Ray Data actor running consecutive stages over one work unit at a time; the first
    segment reads its units' rows, the last commits them and emits only commit entries."""

    def __init__(self, job: Job, stages: list[Stage], first: bool, last: bool):
        self.job, self.stages, self.first, self.last = job, stages, first, last
        for stage in stages:
            stage.ensure_setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        work = [WorkUnit(**row) for row in batch.to_pylist()] if self.first else _decode(batch)
        if not self.last:
            return _encode([run_unit(self.job, w, self.stages, commit=False) for w in work])
        entries = [run_unit(self.job, w, self.stages) for w in work]
        return pa.Table.from_pydict({"unit": [e["unit"] for e in entries],
                                     "entry": [pickle.dumps(e) for e in entries]}, schema=ENTRY)


def _segment_options(stages: list[Stage], scale: float, cpus: float, gpus: float) -> dict[str, Any]:
    """map_batches arguments for a segment: the largest request of its stages."""
    res = [s.resources for s in stages]
    num_cpus = max(r.num_cpus for r in res)
    num_gpus = max(r.num_gpus for r in res) if gpus > 0 else 0.0
    # As many actors as the declared resources allow, at least one.
    limit = gpus / num_gpus if num_gpus > 0 else cpus / max(num_cpus, 1e-3)
    compute = ActorPoolStrategy(min_size=1, max_size=max(1, int(limit)))
    options: dict[str, Any] = {"batch_size": 1, "num_cpus": num_cpus * scale, "compute": compute}
    if num_gpus > 0:
        options["num_gpus"] = num_gpus
    return options


def _check_answers(address: str, timeout_s: float) -> None:
    """Fail with one line, within ``timeout_s``, when the cluster at ``address`` does not
    answer (``ray.init`` would wait for it for minutes)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        host, port = hostport, "10001" if address.startswith("ray://") else "6379"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=min(5.0, timeout_s)):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise EchoforgeError(
                    f"the Ray cluster at {address} does not answer ({exc.strerror or exc}) after {timeout_s:.0f} s: "
                    "check --ray-address (host:port of the head, 6379 by default; ray://host:10001 for Ray "
                    "Client) and that the cluster is up") from None
            time.sleep(1.0)


class RayEngine(Engine):
    """Options: ``address`` (join that cluster; otherwise a local instance starts, or the
    cluster in ``RAY_ADDRESS`` is joined, as under ``ray job submit``), ``num_cpus`` (local
    instance only), ``runtime_env``, ``log_to_driver`` (default False)."""

    name = "ray"

    def __init__(self, workers: int = 1, address: str | None = None, num_cpus: int | None = None,
                 runtime_env: dict[str, Any] | None = None, log_to_driver: bool = False,
                 connect_timeout_s: float = 30.0):
        super().__init__(workers)
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self.num_cpus = num_cpus
        self.runtime_env = runtime_env
        self.log_to_driver = log_to_driver
        self._started = False
        if (address or os.environ.get("RAY_ADDRESS")) and not ray.is_initialized():
            # before any planning or progress: a cluster that does not answer is one line
            _check_answers(address or os.environ["RAY_ADDRESS"], connect_timeout_s)

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
        cluster = ray.cluster_resources()
        cpus, gpus = float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0))
        groups = segments(stages, gpus > 0)
        # One actor per segment must fit at once, or the pipeline would stall on a small
        # cluster: scale CPU requests down when they do not.
        wanted = sum(max(s.resources.num_cpus for s in group) for group in groups)
        scale = min(1.0, cpus / wanted)

        # Each unit travels with its own range and byte offset: workers hold no plan of units.
        ds = ray.data.from_items([dataclasses.asdict(u) for u in units], override_num_blocks=min(len(units), 1000))
        for i, group in enumerate(groups):
            ds = ds.map_batches(_SegmentFn, fn_constructor_args=(job, group, i == 0, i == len(groups) - 1),
                                batch_format="pyarrow", **_segment_options(group, scale, cpus, gpus))
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for blob in batch.column("entry").to_pylist():
                yield pickle.loads(blob)

    def close(self) -> None:
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False
