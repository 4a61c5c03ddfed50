"""Export a finished build in a trainer's own format: ``echoforge export DIR --to NAME --output OUT``.

Formats are classes registered by name (:mod:`echoforge.commands.exporters`). The driver cuts
each split's rows, in the build's order, into shards of ``shard_size`` rows (shard ``k`` holds
rows ``k*N .. k*N+N-1`` of the split, whatever the build's work units), streams each shard's
rows from the build's Parquet/Arrow files in small record batches, and has the format write
the shard's files through :mod:`echoforge.storage` (local disk, ``s3://``, ``gs://``,
``memory://``). Once a shard's files are whole, a marker listing them is written; a rerun
skips every shard whose marker is there and whose files still are, without reading its rows.

Layout of ``OUT``: ``export.json`` (what this is an export of, with which options),
``_echoforge/export/<stage>/<split>-<nnnnn>.json`` (the markers) and the format's own files.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from echoforge.commands.exporters import ExportOptions, Exporter, exporters  # noqa: F401  (the API of export)
from echoforge.errors import ConfigError, EchoforgeError
from echoforge.pipeline.layout import INTERNAL
from echoforge.pipeline.output import load_manifest
from echoforge.storage import DataFolder, folder as open_folder

BATCH_ROWS = 64


def _build_fingerprint(manifest: dict[str, Any]) -> str:
    blob = json.dumps([(s["path"], s["sha256"]) for s in manifest["shards"]]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _marker(stage: str, split: str, index: int) -> str:
    return f"{INTERNAL}/export/{stage}/{split}-{index:05d}.json"


def iter_batches(build: DataFolder, shard: dict[str, Any], fmt: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """A build shard's rows in record batches of at most ``BATCH_ROWS`` rows (flat memory)."""
    if fmt == "arrow":
        with build.open(shard["path"], "rb") as f:
            for batch in pa.ipc.open_stream(f):
                batch = batch.select(columns)
                for start in range(0, batch.num_rows, BATCH_ROWS):
                    yield batch.slice(start, BATCH_ROWS)
        return
    with build.open(shard["path"], "rb") as f:
        yield from pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=BATCH_ROWS, columns=columns)


class _Plan:
    """Which shards of which stages are finished in ``out`` (marker there, and every file it lists)."""

    def __init__(self, out: DataFolder, stages: list[str]):
        self.stages = stages
        listing = out.list()
        self.done: set[tuple[str, str, int]] = set()
        for rel in listing:
            parts = rel.split("/")
            if rel.startswith(f"{INTERNAL}/export/") and len(parts) == 4 and parts[2] in stages:
                split, _, index = parts[3].removesuffix(".json").rpartition("-")
                files = out.read_json(rel)["files"]
                if all(f in listing for f in files):
                    self.done.add((parts[2], split, int(index)))

    def pending(self, split: str, index: int) -> list[str]:
        return [s for s in self.stages if (s, split, index) not in self.done]


def export_build(root: str, to: str, output: str, stages: list[str] | None = None,
                 options: ExportOptions | None = None, progress: Callable[[int, int], None] | None = None,
                 **settings: Any) -> dict[str, Any]:
    """Write a finished build in format ``to`` under ``output``; return what was written and skipped.

    ``settings`` are :class:`ExportOptions` fields (``shard_size``, ``audio_format``, ...);
    ``progress(rows done, rows in all)`` is called as rows are written or skipped.
    """
    cls = exporters.get(to)
    try:
        options = options or ExportOptions(**settings)
    except ValueError as exc:
        raise ConfigError(f"export options: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    exporter = cls(options)
    stages = list(stages or exporter.stages)
    unknown = [s for s in stages if s not in exporter.stages]
    if unknown:
        raise ConfigError(f"--stage: {to} has no stage '{unknown[0]}': choose from {', '.join(exporter.stages)}")
    build = open_folder(root)
    manifest = load_manifest(build)
    columns = sorted({c for s in stages for c in exporter.stages[s]})
    missing = [c for c in columns if c not in manifest.get("features", {})]
    if missing:
        raise EchoforgeError(f"{root} has no column '{missing[0]}' that the {to} export reads: "
                             "rebuild it with this version of echoforge")
    needs_answer = sorted(exporter.answer_audio_stages & set(stages))
    if needs_answer and not manifest.get("config", {}).get("synthesis", {}).get("keep_answer_audio", True):
        raise EchoforgeError(f"{root} was built without answer audio (synthesis.keep_answer_audio: false), which "
                             f"the {to} stage '{needs_answer[0]}' needs: choose other stages with --stage")
    out = open_folder(output)
    out.check_writable()
    record = {"format": to, "source": str(root), "build": _build_fingerprint(manifest),
              "options": options.model_dump(), "models": manifest.get("models", {})}
    try:
        before = out.read_json("export.json")
    except FileNotFoundError:
        before = None
    if before is not None:
        if before.get("build") != record["build"] or before.get("format") != to:
            raise EchoforgeError(f"{output} holds an export of another build or format; export into a new directory")
        if before.get("options") != record["options"]:
            changed = next(k for k, v in record["options"].items() if before.get("options", {}).get(k) != v)
            raise EchoforgeError(f"{output} was exported with another {changed} "
                                 f"({before.get('options', {}).get(changed)!r}); export into a new directory")
    out.write_json("export.json", record)

    plan = _Plan(out, stages)
    total = sum(s["rows"] for s in manifest["shards"])
    report = {"output": output, "rows": dict.fromkeys(stages, 0), "shards_written": 0, "shards_skipped": 0}
    done_rows = 0

    def tick(rows: int) -> None:
        nonlocal done_rows
        done_rows += rows
        if progress:
            progress(done_rows, total)

    size = options.shard_size
    for split in dict.fromkeys(s["split"] for s in manifest["shards"]):
        pieces = [s for s in manifest["shards"] if s["split"] == split]
        split_rows = sum(s["rows"] for s in pieces)
        for stage in stages:
            report["rows"][stage] += split_rows
        for index in range(-(-split_rows // size)):
            report["shards_skipped"] += len(stages) - len(plan.pending(split, index))
        rows = _pending_rows(build, manifest["format"], pieces, columns, size, lambda k: bool(plan.pending(split, k)),
                             tick)
        for index, group in itertools.groupby(rows, key=lambda item: item[0] // size):
            pending = plan.pending(split, index)
            files = exporter.write_shard(out, split, index, pending, (row for _, row in group))
            for stage in pending:
                out.write_json(_marker(stage, split, index),
                               {"rows": min(size, split_rows - index * size), "files": files[stage]})
            report["shards_written"] += len(pending)
    out.write_json("export.json", {**record, "rows": total})
    return report


def _pending_rows(build: DataFolder, fmt: str, pieces: list[dict[str, Any]], columns: list[str], size: int,
                  wanted: Callable[[int], bool], tick: Callable[[int], None]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row number in the split, row)`` for the rows of shards that are ``wanted``; a build
    shard whose rows all belong to finished shards is not read."""
    start = 0
    for piece in pieces:
        end = start + piece["rows"]
        if not any(wanted(k) for k in range(start // size, (end - 1) // size + 1)):
            tick(piece["rows"])
            start = end
            continue
        number = start
        for batch in iter_batches(build, piece, fmt, columns):
            for row in batch.to_pylist():
                if wanted(number // size):
                    yield number, row
                tick(1)
                number += 1
        start = end
