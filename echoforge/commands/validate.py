"""`echoforge validate`: schema, counts, checksums and row invariants of an output directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from echoforge.audio import decode_audio
from echoforge.backends.llm_tokenizer import LLMTokenizer
from echoforge.errors import EchoforgeError
from echoforge.pipeline.layout import INTERNAL, ShardPlan
from echoforge.pipeline.output import read_table
from echoforge.storage import folder as open_folder
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE, reject_schema, row_schema, split_of
from echoforge.transforms.align import dedup_span, raw_span, run_starts

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


def _echo_segment_problems(row: dict[str, Any], tokenizer: LLMTokenizer | None) -> Iterator[str]:
    """Echo segments: spans in order, apart and within the units; texts tiling ``answer_spoken``;
    token counts those of the build's tokenizer (when given)."""
    rid, segments, text = row["id"], row["echo_segments"] or [], row["answer_spoken"]
    if not row["answer_units"] or not text:
        return  # reported by the row checks
    if not segments:
        if row["alignment"]:
            yield f"row {rid}: no echo_segments"
        return
    n, rate = len(row["answer_units"][0]), row["units_frame_rate"]
    starts = run_starts(np.asarray(row["answer_unit_durations"], dtype=np.int64))
    prev = {"end_s": 0.0, "unit_end": 0, "dedup_end": 0}
    for i, s in enumerate(segments):
        where = (f"row {rid}: echo segment {i} ({s['start_s']:.3f}-{s['end_s']:.3f} s, "
                 f"units {s['unit_start']}-{s['unit_end']}, runs {s['dedup_start']}-{s['dedup_end']})")
        in_audio = 0 <= s["start_s"] <= s["end_s"] <= row["answer_duration_s"] + _EPS
        if not (in_audio and s["start_s"] + _EPS >= prev["end_s"]):
            yield f"{where}: times out of order, overlapping the one before or past the audio"
            return
        # neighbours may share a boundary frame (and so a run)
        if not (0 <= s["unit_start"] <= s["unit_end"] <= n and s["unit_start"] + 1 >= prev["unit_end"]
                and s["dedup_start"] + 1 >= prev["dedup_end"]):
            yield f"{where}: unit span out of order, overlapping the one before or outside the {n} frames"
            return
        expected = raw_span(s["start_s"], s["end_s"], rate, n)
        if abs(s["unit_start"] - expected[0]) > 1 or abs(s["unit_end"] - expected[1]) > 1:
            yield f"{where}: unit span is not its times at {rate:g} Hz (frames {expected[0]}-{expected[1]})"
            return
        runs = dedup_span(starts, s["unit_start"], s["unit_end"], n)
        if (s["dedup_start"], s["dedup_end"]) != runs:
            yield f"{where}: deduplicated span is not the runs {runs[0]}-{runs[1]} that its unit span touches"
            return
        prev = s
    char_starts, cursor = [], 0
    for i, s in enumerate(segments):
        at = cursor + len(text[cursor:]) - len(text[cursor:].lstrip())
        if not s["text"] or not text.startswith(s["text"], at):
            yield (f"row {rid}: echo segment {i} text {s['text'][:40]!r} does not continue answer_spoken "
                   f"at character {at}")
            return
        char_starts.append(at if i else 0)
        cursor = at + len(s["text"])
    if text[cursor:].strip():
        yield f"row {rid}: echo segments end at character {cursor} of the {len(text)} of answer_spoken"
        return
    if tokenizer is None:
        return
    total, counted = tokenizer.count(text), sum(s["num_tokens"] for s in segments)
    if counted != total:
        yield (f"row {rid}: echo_segments num_tokens add up to {counted}, answer_spoken has {total} tokens "
               f"under {tokenizer.identity()}")
        return
    for i, (s, expected) in enumerate(zip(segments, tokenizer.piece_counts(text, char_starts))):
        if s["num_tokens"] != expected:
            yield f"row {rid}: echo segment {i} has num_tokens {s['num_tokens']}, its text has {expected} tokens"
            return


def _segments_tokenizer(c: Checker, manifest: dict[str, Any]) -> LLMTokenizer | None:
    """The tokenizer the build counted echo-segment tokens with (None: not recorded, or not the same now)."""
    recorded = manifest.get("models", {}).get("segments_tokenizer")
    if not recorded:
        return None
    tokenizer = LLMTokenizer(manifest["config"].get("segments", {}).get("tokenizer"))
    try:
        tokenizer.setup()
    except EchoforgeError as exc:
        c.check(False, f"echo_segments token counts not checked: {exc}")
        return None
    if not c.check(tokenizer.identity() == recorded, f"echo_segments token counts not checked: the segments "
                   f"tokenizer is now {tokenizer.identity()}, the build used {recorded}"):
        return None
    return tokenizer


def validate_output(root: str | Path, options: dict[str, Any] | None = None) -> tuple[list[str], int]:
    """All problems found in an output folder (any filesystem), and how many checks ran."""
    c = Checker()
    folder = open_folder(root, options)
    if not c.check(folder.exists("manifest.json"), f"{folder.url}: no manifest.json"):
        return c.problems, c.checks
    manifest = folder.read_json("manifest.json")
    fraction = manifest["config"]["output"]["validation_fraction"]
    fmt = manifest["format"]
    c.check(manifest["complete"], f"only {manifest['committed_units']} of {manifest['num_units']} work units committed")
    _check_objects(c, folder, manifest)
    expected_schema = row_schema()
    tokenizer = _segments_tokenizer(c, manifest)
    ids: set[str] = set()
    rows_seen = 0
    for shard in manifest["shards"]:
        if not folder.exists(shard["path"]):
            continue
        try:
            table = read_table(folder, shard["path"], fmt)
        except Exception as exc:  # noqa: BLE001 - a damaged shard is a finding, not a crash
            c.check(False, f"{shard['path']}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        c.check(table.num_rows == shard["rows"], f"{shard['path']}: {table.num_rows} rows, manifest says {shard['rows']}")
        c.check(table.schema.remove_metadata().equals(expected_schema.remove_metadata()),
                f"{shard['path']}: schema differs from the echoforge row schema")
        rows_seen += table.num_rows
        for row in table.to_pylist():
            c.check(row["id"] not in ids, f"row {row['id']}: duplicate id")
            ids.add(row["id"])
            try:
                for problem in _row_problems(row, shard["split"], fraction):
                    c.check(False, problem)
                for problem in _echo_segment_problems(row, tokenizer):
                    c.check(False, problem)
            except Exception as exc:  # noqa: BLE001 - damaged audio or arrays are findings
                c.check(False, f"row {row['id']}: unreadable ({type(exc).__name__}: {str(exc)[:120]})")
            c.checks += 2
    c.check(rows_seen == manifest["rows"], f"{rows_seen} rows in shards, manifest says {manifest['rows']}")
    rejected = 0
    for rej in manifest["rejects"]:
        if not folder.exists(rej["path"]):
            continue
        try:
            table = read_table(folder, rej["path"], "parquet")
        except Exception as exc:  # noqa: BLE001
            c.check(False, f"{rej['path']}: unreadable ({type(exc).__name__})")
            continue
        c.check(table.schema.remove_metadata().equals(reject_schema().remove_metadata()), f"{rej['path']}: schema differs")
        for r in table.to_pylist():
            c.check(bool(r["stage"] and r["reason"] and r["source_position"]), f"reject {r['id']}: no stage, reason or position")
        rejected += table.num_rows
    c.check(rejected == manifest["rejected"], f"{rejected} rejects in files, manifest says {manifest['rejected']}")
    return c.problems, c.checks


def _check_objects(c: Checker, folder, manifest: dict[str, Any]) -> None:
    """Every object the manifest names exists with its size and sha256; no stray data files;
    every unit marker's parts (of shards not yet sealed) match it."""
    listed: dict[str, int] = {}
    for prefix in ("data", "rejects", "train", "validation"):
        listed.update(folder.list(prefix))
    named = set()
    for obj in manifest["shards"] + manifest["rejects"]:
        path = obj["path"]
        named.add(path)
        if not c.check(path in listed, f"{path}: missing"):
            continue
        if not c.check(listed[path] == obj["bytes"], f"{path}: {listed[path]} bytes, manifest says {obj['bytes']} (truncated?)"):
            continue
        c.check(folder.sha256(path) == obj["sha256"], f"{path}: sha256 mismatch (corrupted)")
    for path in listed:
        if path.endswith((".parquet", ".arrow")):
            c.check(path in named, f"{path}: stray data file not in the manifest (datasets would load it)")
    sealed = {(e["kind"], e["group"]) for _, e in folder.iter_json(f"{INTERNAL}/shards")}
    parts = folder.list(f"{INTERNAL}/parts")
    plan = ShardPlan(manifest["num_units"], manifest["shard_plan"]["units_per_shard"],
                     manifest["shard_plan"]["aux_factor"])
    markers = 0
    marked_rows: dict[tuple[str, int], int] = {}
    for _, m in folder.iter_json(f"{INTERNAL}/units"):
        markers += 1
        for kind, part in m["parts"].items():
            key = (kind, plan.group(kind, m["unit"]))
            marked_rows[key] = marked_rows.get(key, 0) + part["rows"]
            if key in sealed:
                continue
            c.check(parts.get(part["path"]) == part["bytes"],
                    f"work unit {m['unit']}: part {part['path']} does not match its marker")
    for obj, kind in [(s, s["split"]) for s in manifest["shards"]] + [(r, "rejects") for r in manifest["rejects"]]:
        c.check(marked_rows.get((kind, obj["shard"]), 0) == obj["rows"],
                f"{obj['path']}: {obj['rows']} rows, but its work units' markers count "
                f"{marked_rows.get((kind, obj['shard']), 0)}: the shard and its units do not match their markers")
    c.check(markers == manifest["committed_units"],
            f"{markers} work unit markers, manifest says {manifest['committed_units']} committed")
