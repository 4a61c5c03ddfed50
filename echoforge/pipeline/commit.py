"""The commit protocol: a work unit's parts, its marker, and sealing shards.

1. A worker writes a unit's rows (per split) and rejects as *parts* under a fresh attempt id,
   so two attempts never write the same object: ``_echoforge/parts/UNIT/ATTEMPT/train.parquet``.
2. It then writes the unit's *marker* naming each part with its size and sha256. The marker
   is the commit: a unit without one is recomputed; objects of other attempts are ignored.
3. It lists the markers of the unit's shard groups; when every unit of a shard is committed,
   it *seals* the shard: the parts are merged, in unit order, into one Hub-sized file under
   ``data/`` (written whole: rename on local disk, a PUT on object stores), then the shard's
   seal marker is written, then the merged parts are deleted. Sealing is deterministic and
   idempotent, so two workers that both see a shard complete write the same bytes.

Readers glob ``data/`` only, where nothing but whole sealed shards ever appears.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import uuid
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from echoforge.errors import EchoforgeError
from echoforge.hashing import sha256_file
from echoforge.pipeline.layout import INTERNAL, SHARD_KINDS, SPLITS, TMP, Layout
from echoforge.schemas.columns import reject_schema, reject_to_row, row_schema, split_of, turn_to_row
from echoforge.schemas.records import Reject, Turn
from echoforge.transforms.gate import audit_counts


class CommitError(EchoforgeError):
    """Committed objects do not match their marker."""


def _sort_key(record: Turn | Reject) -> tuple[int, int, str]:
    return (record.input_row, record.turn_index, record.id)


def _parquet_bytes(table: pa.Table, row_group_rows: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_rows, compression="zstd")
    return buf.getvalue()


def commit_unit(layout: Layout, unit, turns: list[Turn], rejects: list[Reject], *, validation_fraction: float,
                keep_answer_audio: bool, seconds: dict[str, float], row_group_rows: int = 100,
                quarantined: dict[str, Any] | None = None, fence: Callable[[], None] | None = None) -> dict[str, Any]:
    """Write a work unit's parts, then its marker, then seal what it completes; return the marker.

    ``fence`` (the build's lease check) runs just before the marker is written and raises
    when this build may no longer commit."""
    folder = layout.folder
    attempt = uuid.uuid4().hex[:12]
    rows: dict[str, list] = {s: [] for s in SPLITS}
    hours = {s: 0.0 for s in SPLITS}
    for turn in sorted(turns, key=_sort_key):
        split = split_of(turn.id, validation_fraction)
        rows[split].append(turn_to_row(turn, keep_answer_audio))
        hours[split] += (turn.question_speech.duration_s + turn.answer_speech.duration_s) / 3600.0
    tables = {s: pa.Table.from_pylist(rows[s], schema=row_schema()) for s in SPLITS if rows[s]}
    reject_rows = [reject_to_row(r) for r in sorted(rejects, key=_sort_key)]
    if reject_rows:
        tables["rejects"] = pa.Table.from_pylist(reject_rows, schema=reject_schema())
    parts: dict[str, dict[str, Any]] = {}
    for kind, table in tables.items():
        data = _parquet_bytes(table, row_group_rows)
        path = layout.part(unit.index, attempt, kind)
        folder.write_bytes(path, data)
        parts[kind] = {"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                       "rows": table.num_rows, "hours": round(hours.get(kind, 0.0), 6)}
    reasons: dict[str, int] = {}
    for r in rejects:
        key = f"{r.stage}.{r.reason}"
        reasons[key] = reasons.get(key, 0) + 1
    entry = {
        "unit": unit.index, "input_index": unit.input_index, "start": unit.start, "stop": unit.stop,
        "attempt": attempt,
        "parts": parts,
        "rows": sum(len(v) for v in rows.values()),
        "rows_by_split": {s: len(rows[s]) for s in SPLITS},
        "rejected": len(reject_rows),
        "rejects_by_reason": reasons,
        "audio_seconds": round(sum(hours.values()) * 3600.0, 3),
        "answer_audio_seconds": round(sum(t.answer_speech.duration_s for t in turns), 3),
        "stage_seconds": {k: round(v, 4) for k, v in seconds.items()},
        "gate_audit": audit_counts(turns, rejects),
        "quarantined": quarantined,
    }
    if fence is not None:
        fence()
    folder.write_json(layout.marker(unit.index), entry)
    seal_completed(layout, unit.index, row_group_rows)
    return entry


def committed_in(layout: Layout, marker_dir: str) -> dict[int, str]:
    """Committed units whose markers live in ``marker_dir``: unit -> marker path."""
    out = {}
    for rel in layout.folder.list(marker_dir):
        name = rel.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            out[int(name[:-5])] = rel
    return out


def seal_completed(layout: Layout, unit: int, row_group_rows: int = 100) -> list[str]:
    """Seal every shard of ``unit`` whose units are all committed; the sealed kinds."""
    committed = committed_in(layout, layout.marker_dir(unit))
    sealed = []
    for kind in SHARD_KINDS:
        group = layout.shards.group(kind, unit)
        if all(u in committed for u in layout.shards.units(kind, group)):
            if seal(layout, kind, group, row_group_rows):
                sealed.append(kind)
    return sealed


def _write_shard(tables: Iterable[pa.Table], path: str, fmt: str, schema: pa.Schema, row_group_rows: int) -> int:
    """Stream tables into one shard file at a local ``path``; the number of rows."""
    n = 0
    if fmt == "arrow":
        with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for t in tables:
                writer.write_table(t, max_chunksize=row_group_rows)
                n += t.num_rows
        return n
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for t in tables:
            writer.write_table(t, row_group_size=row_group_rows)
            n += t.num_rows
    return n


def read_part(layout: Layout, part: dict[str, Any]) -> pa.Table:
    """A committed part, checked against its marker entry."""
    data = layout.folder.read_bytes(part["path"])
    if len(data) != part["bytes"] or hashlib.sha256(data).hexdigest() != part["sha256"]:
        raise CommitError(f"{part['path']} does not match its marker (size or sha256)")
    return pq.read_table(io.BytesIO(data))


def seal(layout: Layout, kind: str, group: int, row_group_rows: int = 100) -> bool:
    """Merge the parts of one shard into its sealed file and write its seal marker.

    Returns False when it was sealed already (by this or another worker).
    """
    folder = layout.folder
    seal_path = layout.seal_marker(kind, group)
    if folder.exists(seal_path):
        return False
    units = layout.shards.units(kind, group)
    markers = [folder.read_json(layout.marker(u)) for u in units]
    schema = reject_schema() if kind == "rejects" else row_schema()
    fmt = layout.shard_format(kind)
    entry: dict[str, Any] = {"kind": kind, "group": group, "units": [units.start, units.stop],
                             "path": None, "rows": 0, "bytes": 0, "sha256": None,
                             "hours": round(sum(m["parts"].get(kind, {}).get("hours", 0.0) for m in markers), 6)}
    if kind == "rejects":  # the widest group carries the figures of all its units
        entry["figures"] = aggregate(markers)
    if any(kind in m["parts"] for m in markers):
        fd, tmp = tempfile.mkstemp(suffix=f".{kind}.part", dir=_local_temp_dir(layout))
        os.close(fd)
        try:
            try:
                n = _write_shard((read_part(layout, m["parts"][kind]) for m in markers if kind in m["parts"]),
                                 tmp, fmt, schema, row_group_rows)
            except FileNotFoundError:
                if folder.exists(seal_path):  # another worker sealed it and removed the parts
                    return False
                raise
            path = layout.shard(kind, group)
            entry.update(path=path, rows=n, bytes=os.path.getsize(tmp), sha256=sha256_file(tmp))
            folder.put_file(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    folder.write_json(seal_path, entry)
    for m in markers:
        if kind in m["parts"]:
            folder.delete(m["parts"][kind]["path"])
    return True


def _local_temp_dir(layout: Layout) -> str | None:
    """Seal in a temp file beside the target on local disk (so the rename stays on one
    filesystem), in the system temp folder for object stores."""
    if layout.folder.is_local:
        d = layout.folder.path(TMP)
        os.makedirs(d, exist_ok=True)
        return d
    return None


def aggregate(markers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Summed figures of unit markers (rows, rejects by reason, hours, stage seconds)."""
    out: dict[str, Any] = {"units": 0, "rows": 0, "rows_by_split": dict.fromkeys(SPLITS, 0), "rejected": 0,
                           "rejects_by_reason": {}, "audio_seconds": 0.0, "answer_audio_seconds": 0.0,
                           "stage_seconds": {}, "gate_audit": {}, "quarantined": []}
    for m in markers:
        add_figures(out, m)
    return out


def add_figures(total: dict[str, Any], m: dict[str, Any]) -> None:
    """Add a marker's (or an aggregate's) figures to ``total`` in place."""
    total["units"] += m.get("units", 1)
    total["rows"] += m["rows"]
    for s in SPLITS:
        total["rows_by_split"][s] += m["rows_by_split"][s]
    total["rejected"] += m["rejected"]
    for k, v in m["rejects_by_reason"].items():
        total["rejects_by_reason"][k] = total["rejects_by_reason"].get(k, 0) + v
    total["audio_seconds"] = round(total["audio_seconds"] + m["audio_seconds"], 3)
    total["answer_audio_seconds"] = round(total["answer_audio_seconds"] + m["answer_audio_seconds"], 3)
    for k, v in m["stage_seconds"].items():
        total["stage_seconds"][k] = round(total["stage_seconds"].get(k, 0.0) + v, 4)
    for k, v in m.get("gate_audit", {}).items():  # markers of older builds have none
        total["gate_audit"][k] = total["gate_audit"].get(k, 0) + v
    q = m.get("quarantined")
    if isinstance(q, list):
        total["quarantined"].extend(q)
    elif q:
        total["quarantined"].append({"unit": m["unit"], "start": m["start"], "stop": m["stop"], **q})


def _sealed_shards(layout: Layout, verify: bool) -> dict[tuple[str, int], dict[str, Any]]:
    """Seal markers whose shard objects match them; the others are deleted."""
    folder = layout.folder
    sizes: dict[str, int] = {}
    for prefix in ("data", "rejects", *SPLITS):
        sizes.update({rel: n for rel, n in folder.list(prefix).items()})
    good = {}
    for rel, seal_entry in folder.iter_json(f"{INTERNAL}/shards"):
        path = seal_entry["path"]
        ok = path is None or (sizes.get(path) == seal_entry["bytes"]
                              and (not verify or folder.sha256(path) == seal_entry["sha256"]))
        if ok:
            good[(seal_entry["kind"], seal_entry["group"])] = seal_entry
        else:
            folder.delete(rel)
    return good


def scan_committed(layout: Layout, verify: bool = False) -> tuple[set[int], dict[str, Any]]:
    """The units a resume may skip, and the summed figures of those units.

    A sealed shard is trusted when its object has the sealed size (and sha256 with
    ``verify``); a unit part not yet sealed when its size and sha256 match its marker. A unit
    whose objects do not match loses its marker and is recomputed; so do all units of a
    sealed shard whose object is missing or damaged (their parts are gone).
    """
    folder = layout.folder
    sealed = _sealed_shards(layout, verify)
    markers = {}
    for rel in folder.list(f"{INTERNAL}/units"):
        name = rel.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit() and int(name[:-5]) < layout.num_units:
            markers[int(name[:-5])] = rel
    part_sizes = folder.list(f"{INTERNAL}/parts")
    done: set[int] = set()
    totals = aggregate([])
    plan = layout.shards
    for group in range(plan.count("rejects")):
        units = plan.units("rejects", group)
        agg = sealed.get(("rejects", group))
        inner_sealed = agg is not None and all(
            (kind, g) in sealed for kind in SPLITS
            for g in range(plan.group(kind, units.start), plan.group(kind, units.stop - 1) + 1))
        if inner_sealed and all(u in markers for u in units):
            done.update(units)
            add_figures(totals, agg["figures"])
            continue
        for u in units:
            if u not in markers:
                continue
            try:
                m = folder.read_json(markers[u])
            except (FileNotFoundError, ValueError):
                folder.delete(markers[u])
                continue
            if _unit_intact(layout, m, sealed, part_sizes):
                done.add(u)
                add_figures(totals, m)
            else:
                folder.delete(markers[u])
    return done, totals


def _unit_intact(layout: Layout, m: dict[str, Any], sealed: dict, part_sizes: dict[str, int]) -> bool:
    for kind in SHARD_KINDS:
        if (kind, layout.shards.group(kind, m["unit"])) in sealed:
            continue
        part = m["parts"].get(kind)
        if part is None:
            continue
        if part_sizes.get(part["path"]) != part["bytes"]:
            return False
        try:
            read_part(layout, part)
        except (CommitError, FileNotFoundError):
            return False
    return True


def seal_all(layout: Layout, row_group_rows: int = 100) -> int:
    """Seal every complete shard still unsealed (a crash or a race between two committers
    can leave one); the number sealed."""
    plan = layout.shards
    count = 0
    for group in range(plan.count("rejects")):
        units = plan.units("rejects", group)
        committed = committed_in(layout, layout.marker_dir(units.start))
        for kind in SHARD_KINDS:
            for g in sorted({plan.group(kind, u) for u in units}):
                if all(u in committed for u in plan.units(kind, g)) and seal(layout, kind, g, row_group_rows):
                    count += 1
    return count


def reopen_quarantined(layout: Layout, row_group_rows: int = 100) -> list[int]:
    """Make quarantined units pending again (``build --retry-quarantined``); the units reopened.

    A quarantined unit's marker is removed; each sealed shard it belongs to is *unsealed*
    first: the shard is cut back into one part per unit (by the row counts their markers
    record), the markers are pointed at those parts, then the shard and its seal marker are
    deleted, so the shard is sealed again, with the recomputed unit, when all are committed.
    """
    folder = layout.folder
    quarantined = sorted(int(m["unit"]) for _, m in folder.iter_json(f"{INTERNAL}/units")
                         if m.get("quarantined") and int(m["unit"]) < layout.num_units)
    for unit in quarantined:
        for kind in SHARD_KINDS:
            _unseal(layout, kind, layout.shards.group(kind, unit), row_group_rows)
        folder.delete(layout.marker(unit))
    return quarantined


def _unseal(layout: Layout, kind: str, group: int, row_group_rows: int) -> None:
    folder = layout.folder
    seal_path = layout.seal_marker(kind, group)
    try:
        entry = folder.read_json(seal_path)
    except FileNotFoundError:
        return
    units = layout.shards.units(kind, group)
    markers = {u: folder.read_json(layout.marker(u)) for u in units}
    if entry["path"] is not None:
        with folder.open(entry["path"], "rb") as f:
            data = f.read()
        if layout.shard_format(kind) == "arrow":
            table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
        else:
            table = pq.read_table(io.BytesIO(data))
        offset = 0
        for u in units:
            part = markers[u]["parts"].get(kind)
            if part is None:
                continue
            data = _parquet_bytes(table.slice(offset, part["rows"]), row_group_rows)
            offset += part["rows"]
            path = layout.part(u, uuid.uuid4().hex[:12], kind)
            folder.write_bytes(path, data)
            markers[u]["parts"][kind] = {**part, "path": path, "bytes": len(data),
                                         "sha256": hashlib.sha256(data).hexdigest()}
            folder.write_json(layout.marker(u), markers[u])
        folder.delete(entry["path"])
    folder.delete(seal_path)
