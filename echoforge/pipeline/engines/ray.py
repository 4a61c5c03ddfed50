"""Ray engine: one Ray Data ``map_batches`` per stage, streaming, committed per work unit.

Rows between operators are ``{"unit", "kind", "payload"}``; the payload is the pickled tuple
``(record, weight, seconds, models)``. ``kind`` is ``record`` (input for the next stage),
``reject`` or ``tally`` (weight with no record). Stages never see the envelope: the adapter
unwraps records, calls ``Stage.process`` and wraps what comes back.

Rows of one unit reach the driver in any order, so completeness is tracked by weight: a unit
starts with weight 1, split over its input rows; each stage hands a unit's input weight on to
that unit's outputs in the batch (or to a tally row when nothing came out). Rejects keep
their weight and pass through the later stages untouched. A unit is complete, and committed
with :meth:`Job.commit`, when its rows' weights sum to exactly 1 (fractions, no rounding). The
driver holds only the rows of units still in flight.
"""

from __future__ import annotations

import functools
import os
import pickle
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy, DataContext

from echoforge.pipeline.engines.base import Engine, engines
from echoforge.pipeline.job import Job
from echoforge.pipeline.workunits import Plan, WorkUnit
from echoforge.schemas.records import Reject, Turn
from echoforge.transforms.base import Resources, Stage

RECORD, REJECT, TALLY = "record", "reject", "tally"
SCHEMA = pa.schema([("unit", pa.int64()), ("kind", pa.string()), ("payload", pa.large_binary())])


@dataclass
class _Item:
    unit: int
    kind: str
    record: Any
    weight: Fraction
    seconds: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)


def _encode(items: list[_Item]) -> pa.Table:
    return pa.Table.from_pydict({
        "unit": [i.unit for i in items],
        "kind": [i.kind for i in items],
        "payload": [pickle.dumps((i.record, i.weight, i.seconds, i.models), protocol=5) for i in items],
    }, schema=SCHEMA)


def _decode(batch: pa.Table) -> list[_Item]:
    return [_Item(u, k, *pickle.loads(p)) for u, k, p in zip(
        batch.column("unit").to_pylist(), batch.column("kind").to_pylist(), batch.column("payload").to_pylist())]


def _read_units(batch: pa.Table, plan: Plan) -> pa.Table:
    """Work-unit indices in, the units' input rows out (weight 1 per unit)."""
    items: list[_Item] = []
    for index in batch.column("unit").to_pylist():
        rows = list(plan.read(plan.units[index]))
        if not rows:
            items.append(_Item(index, TALLY, None, Fraction(1)))
        items.extend(_Item(index, RECORD, row, Fraction(1, len(rows))) for row in rows)
    return _encode(items)


class _StageFn:
    """A Ray Data actor running one stage; its models load once, in ``__init__``."""

    def __init__(self, stage: Stage):
        self.stage = stage
        self.stage.ensure_setup()
        self.identity = stage.identity()

    def __call__(self, batch: pa.Table) -> pa.Table:
        items = _decode(batch)
        todo = [i for i in items if i.kind == RECORD]
        out = [i for i in items if i.kind != RECORD]  # rejects and tallies pass through
        count: dict[int, int] = defaultdict(int)
        for i in todo:
            count[i.unit] += 1
        seconds = 0.0
        if todo:
            t0 = time.perf_counter()
            kept, rejected = self.stage.process([i.record for i in todo])
            seconds = time.perf_counter() - t0
            out += _hand_on(todo, [(RECORD, r) for r in kept] + [(REJECT, r) for r in rejected], self.stage.name)
        # This stage's seconds and model identities ride on one row per unit, so they reach
        # the driver before the unit completes.
        seen: set[int] = set()
        for i in out:
            if i.unit not in seen:
                seen.add(i.unit)
                share = seconds * count[i.unit] / len(todo) if todo else 0.0
                _add_figures(i, {self.stage.name: share}, self.identity)
        return _encode(out)


def _hand_on(inputs: list[_Item], outputs: list[tuple[str, Any]], stage: str) -> list[_Item]:
    """Wrap a stage's outputs, giving each unit's input weight and figures to its outputs."""
    by_unit: dict[int, list[_Item]] = defaultdict(list)
    for kind, record in outputs:
        by_unit[record.work_unit].append(_Item(record.work_unit, kind, record, Fraction(0)))
    weight: dict[int, Fraction] = defaultdict(Fraction)
    for i in inputs:
        weight[i.unit] += i.weight
    unknown = set(by_unit) - set(weight)
    if unknown:
        raise RuntimeError(f"stage {stage} returned records of work units {sorted(unknown)} it was not given")
    out: list[_Item] = []
    for unit, w in weight.items():
        new = by_unit.get(unit) or [_Item(unit, TALLY, None, Fraction(0))]
        for i in new:
            i.weight = w / len(new)
        for i in inputs:
            if i.unit == unit:
                _add_figures(new[0], i.seconds, i.models)
        out += new
    return out


def _add_figures(item: _Item, seconds: dict[str, float], models: dict[str, str]) -> None:
    for k, v in seconds.items():
        item.seconds[k] = item.seconds.get(k, 0.0) + v
    item.models.update(models)


@dataclass
class _Pending:
    kept: list[Turn] = field(default_factory=list)
    rejected: list[Reject] = field(default_factory=list)
    weight: Fraction = Fraction(0)
    seconds: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)


def _stage_options(res: Resources, scale: float, cpus: float, gpus: float) -> dict[str, Any]:
    """map_batches arguments for a stage's declared resources on this cluster."""
    use_gpu = gpus > 0 and res.num_gpus > 0
    if res.concurrency:
        compute = ActorPoolStrategy(size=res.concurrency)
    else:
        # As many actors as the declared resources allow, at least one.
        limit = gpus / res.num_gpus if use_gpu else cpus / max(res.num_cpus, 1e-3)
        compute = ActorPoolStrategy(min_size=1, max_size=max(1, int(limit)))
    options: dict[str, Any] = {"batch_size": res.batch_size, "num_cpus": res.num_cpus * scale, "compute": compute}
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

        stages = job.stages()
        cluster = ray.cluster_resources()
        cpus, gpus = float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0))
        # One actor per stage plus the reader must fit at once, or the pipeline would stall
        # on a small cluster: scale CPU requests down when they do not.
        wanted = 1.0 + sum(s.resources.num_cpus for s in stages)
        scale = min(1.0, cpus / wanted)

        ds = ray.data.from_items([{"unit": u.index} for u in units], override_num_blocks=min(len(units), 1000))
        ds = ds.map_batches(functools.partial(_read_units, plan=job.plan), batch_size=1, batch_format="pyarrow",
                            num_cpus=scale)
        for stage in stages:
            ds = ds.map_batches(_StageFn, fn_constructor_args=(stage,), batch_format="pyarrow",
                                **_stage_options(stage.resources, scale, cpus, gpus))

        by_index = {u.index: u for u in units}
        names = [s.name for s in stages]
        pending: dict[int, _Pending] = {}
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for item in _decode(batch):
                state = pending.setdefault(item.unit, _Pending(seconds=dict.fromkeys(names, 0.0)))
                if item.kind == RECORD:
                    state.kept.append(item.record)
                elif item.kind == REJECT:
                    state.rejected.append(item.record)
                state.weight += item.weight
                for k, v in item.seconds.items():
                    state.seconds[k] = state.seconds.get(k, 0.0) + v
                state.models.update(item.models)
                if state.weight == 1:
                    del pending[item.unit]
                    yield job.commit(by_index[item.unit], state.kept, state.rejected, state.seconds, state.models)
        if pending:
            raise RuntimeError(f"work units {sorted(pending)} did not complete (rows lost between stages)")

    def close(self) -> None:
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False
