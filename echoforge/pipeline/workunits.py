"""Work units: fixed slices of input rows, the unit of scheduling, commit and resume."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from echoforge.errors import InputError
from echoforge.io.readers import MAX_ROW_BYTES, InputSpec, RawRow, read_slice, resolve_input, scan_input

MAX_UNIT_ROWS = 16  # the default work unit: small enough to lose little when a worker dies
MIN_UNITS = 16  # a small input is cut finer, into at least this many units, so workers share it


@dataclass(frozen=True)
class WorkUnit:
    index: int
    input_index: int
    start: int  # first input row (inclusive)
    stop: int  # last input row (exclusive)
    offset: int | None = field(default=None, compare=False)  # byte offset of its first row, where known

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    inputs: tuple[InputSpec, ...]
    units: tuple[WorkUnit, ...]
    rows_per_unit: int

    @property
    def total_rows(self) -> int:
        return sum(u.rows for u in self.units)

    def read(self, unit: WorkUnit) -> Iterator[RawRow]:
        """The input rows of a work unit, tagged with the unit's index."""
        spec = self.inputs[unit.input_index]
        for row in read_slice(spec, unit.start, unit.stop, self.rows_per_unit, unit.offset):
            yield dataclasses.replace(row, work_unit=unit.index, source_id=spec.identity)

    def __getstate__(self) -> dict[str, Any]:
        """What a worker needs: the inputs without their offsets and no units (each unit,
        sent with the work, carries its own offset), so a plan of millions of units does not
        travel to every worker."""
        return {"inputs": tuple(dataclasses.replace(s, offsets=()) for s in self.inputs), "units": (),
                "rows_per_unit": self.rows_per_unit}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)


def plan_work_units(uris: list[str], rows_per_unit: int | None = None, limit: int | None = None,
                    split: str = "train", options: Mapping[str, Any] | None = None,
                    max_row_bytes: int = MAX_ROW_BYTES) -> Plan:
    """Scan the inputs and cut them into work units; the same inputs give the same plan.

    ``rows_per_unit`` None: :data:`MAX_UNIT_ROWS`, or fewer when the input (after ``limit``)
    would make fewer than :data:`MIN_UNITS` units. With ``limit``, inputs are scanned only as
    far as the rows used.
    """
    size = rows_per_unit or MAX_UNIT_ROWS

    def scan(slice_rows: int) -> list[InputSpec]:
        out, left = [], limit
        for u in uris:
            if left is not None and left <= 0:  # past the limit: identified, not read
                out.append(resolve_input(u, split, options, max_row_bytes))
                continue
            spec = scan_input(resolve_input(u, split, options, max_row_bytes), slice_rows, left)
            left = None if left is None else left - spec.rows
            out.append(spec)
        return out

    specs = scan(size)
    if rows_per_unit is None:
        total = min(sum(s.rows for s in specs), limit if limit is not None else math.inf)
        rows_per_unit = max(1, min(MAX_UNIT_ROWS, int(total // MIN_UNITS)))
        if rows_per_unit != size:  # slice offsets are recorded per unit size: scan again
            specs = scan(rows_per_unit)
    seen: dict[str, str] = {}
    for u, spec in zip(uris, specs):
        if spec.identity in seen:
            raise InputError(f"input {u} is given twice (also as {seen[spec.identity]}); its rows would repeat")
        seen[spec.identity] = u
    units: list[WorkUnit] = []
    budget = limit if limit is not None else float("inf")
    for i, spec in enumerate(specs):
        start = 0
        while start < spec.rows and budget > 0:
            stop = int(min(spec.rows, start + rows_per_unit, start + budget))
            k = start // rows_per_unit
            units.append(WorkUnit(len(units), i, start, stop, spec.offsets[k] if k < len(spec.offsets) else None))
            budget -= stop - start
            start = stop
    return Plan(tuple(specs), tuple(units), rows_per_unit)
