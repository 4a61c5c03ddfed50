"""`echoforge validate`: schema, counts, checksums and row invariants of an output directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.parquet as pq

from echoforge.audio import decode_audio
from echoforge.io.files import sha256_file
from echoforge.pipeline.output import Layout, read_shard
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE, reject_schema, row_schema, split_of

_EPS = 0.02  # seconds of slack for float32 timings


class Checker:
    def __init__(self):
        self.problems: list[str] = []
        self.checks = 0

    def check(self, ok: bool, message: str) -> bool:
        self.checks += 1
        if not ok:
            self.problems.append(message)
        return ok


def _row_problems(row: dict[str, Any], split: str, fraction: float) -> Iterator[str]:
    rid = row["id"]
    if split_of(rid, fraction) != split:
        yield f"row {rid}: in {split} but its id hashes to {split_of(rid, fraction)}"
    for col in ("question_text", "question_spoken", "answer_text", "answer_spoken", "question_audio", "answer_units"):
        if row.get(col) in (None, "", []):
            yield f"row {rid}: {col} is empty"
            return
    audio, rate = decode_audio(row["question_audio"]["bytes"])
    if rate != QUESTION_SAMPLE_RATE:
        yield f"row {rid}: question audio at {rate} Hz, not {QUESTION_SAMPLE_RATE}"
    if abs(len(audio) / rate - row["question_duration_s"]) > _EPS:
        yield f"row {rid}: question audio lasts {len(audio) / rate:.3f} s, question_duration_s says {row['question_duration_s']:.3f}"
    if row.get("answer_audio"):
        a_audio, a_rate = decode_audio(row["answer_audio"]["bytes"])
        if abs(len(a_audio) / a_rate - row["answer_duration_s"]) > _EPS:
            yield f"row {rid}: answer audio length disagrees with answer_duration_s"
    units = np.asarray(row["answer_units"], dtype=np.int64)
    dedup = np.asarray(row["answer_units_dedup"], dtype=np.int64)
    durations = np.asarray(row["answer_unit_durations"], dtype=np.int64)
    if units.ndim != 2 or dedup.ndim != 2 or units.shape[0] != dedup.shape[0]:
        yield f"row {rid}: answer_units / answer_units_dedup are not (codebooks, frames) arrays"
        return
    if units.size and (units.min() < 0 or units.max() >= row["units_codebook_size"]):
        yield f"row {rid}: unit outside [0, {row['units_codebook_size']})"
    if dedup.shape[1] != len(durations) or not np.array_equal(np.repeat(dedup, durations, axis=1), units):
        yield f"row {rid}: deduplicated units and run lengths do not expand to the units"
    expected_frames = row["answer_duration_s"] * row["units_frame_rate"]
    if abs(units.shape[1] - expected_frames) > max(3, 0.02 * expected_frames):
        yield f"row {rid}: {units.shape[1]} unit frames for {row['answer_duration_s']:.2f} s at {row['units_frame_rate']} Hz"
    n, nd = units.shape[1], dedup.shape[1]
    for kind, spans in (("alignment", row["alignment"]), ("segments", row["segments"])):
        prev = 0.0
        for s in spans:
            if not (0 <= s["start_s"] <= s["end_s"] <= row["answer_duration_s"] + _EPS and s["start_s"] + _EPS >= prev):
                yield f"row {rid}: {kind} span {s['start_s']:.3f}-{s['end_s']:.3f} s out of order or range"
                break
            if not (0 <= s["unit_start"] <= s["unit_end"] <= n and 0 <= s["dedup_start"] <= s["dedup_end"] <= nd):
                yield f"row {rid}: {kind} unit span out of range"
                break
            prev = s["start_s"]
    if not row["alignment"]:
        yield f"row {rid}: no word alignment"


def validate_output(root: Path) -> tuple[list[str], int]:
    """All problems found in an output directory, and how many checks ran."""
    c = Checker()
    mpath = root / "manifest.json"
    if not c.check(mpath.exists(), f"{root}: no manifest.json"):
        return c.problems, c.checks
    manifest = json.loads(mpath.read_text())
    fraction = manifest["config"]["output"]["validation_fraction"]
    fmt = manifest["format"]
    c.check(manifest["complete"], f"only {manifest['committed_units']} of {manifest['num_units']} work units committed")
    layout = Layout(root, manifest["num_units"], fmt)
    markers = {e["unit"] for e in layout.entries()}
    c.check(len(markers) == manifest["committed_units"], "work unit markers disagree with the manifest")
    expected_schema = row_schema()
    ids: set[str] = set()
    rows_seen = 0
    for shard in manifest["shards"]:
        path = root / shard["path"]
        if not c.check(path.exists(), f"{shard['path']}: missing"):
            continue
        c.check(sha256_file(path) == shard["sha256"], f"{shard['path']}: sha256 mismatch")
        table = read_shard(path, fmt)
        c.check(table.num_rows == shard["rows"], f"{shard['path']}: {table.num_rows} rows, manifest says {shard['rows']}")
        c.check(table.schema.remove_metadata().equals(expected_schema.remove_metadata()),
                f"{shard['path']}: schema differs from the echoforge row schema")
        rows_seen += table.num_rows
        for row in table.to_pylist():
            c.check(row["id"] not in ids, f"row {row['id']}: duplicate id")
            ids.add(row["id"])
            for problem in _row_problems(row, shard["split"], fraction):
                c.check(False, problem)
            c.checks += 1
    c.check(rows_seen == manifest["rows"], f"{rows_seen} rows in shards, manifest says {manifest['rows']}")
    rejected = 0
    for rej in manifest["rejects"]:
        path = root / rej["path"]
        if not c.check(path.exists(), f"{rej['path']}: missing"):
            continue
        c.check(sha256_file(path) == rej["sha256"], f"{rej['path']}: sha256 mismatch")
        table = pq.read_table(path)
        c.check(table.schema.remove_metadata().equals(reject_schema().remove_metadata()), f"{rej['path']}: schema differs")
        for r in table.to_pylist():
            c.check(bool(r["stage"] and r["reason"] and r["source_position"]), f"reject {r['id']}: no stage, reason or position")
        rejected += table.num_rows
    c.check(rejected == manifest["rejected"], f"{rejected} rejects in files, manifest says {manifest['rejected']}")
    models = {json.dumps(e.get("models", {}), sort_keys=True) for e in layout.entries()}
    c.check(len(models) <= 1, "work units were built with different models (a resumed build changed models)")
    return c.problems, c.checks
