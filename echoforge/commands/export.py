"""Export a finished build in a trainer's own format: ``echoforge export DIR --to NAME --output OUT``.

An exporter is a class registered by name that says which stages it writes, which columns each
stage reads, and how a row becomes one JSON line of a stage. The driver streams the build's
shards (:func:`~echoforge.pipeline.output.iter_shards`), writes one JSONL part per shard and
stage through fsspec (any filesystem: local, ``s3://``, ``gs://``, ``memory://``, ...), and the
question audio files the lines point at. A part is written to a temporary name and moved into
place last, so a rerun skips finished parts and redoes the rest.

Layout of ``OUT``::

    export.json                         what this is an export of, and the parts written
    audio/<part>/<row id>.wav           question audio, 16 kHz mono 16-bit (or .flac)
    <stage>/<split>-<nnnnn>.jsonl       one line per kept row of shard nnnnn of the build
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from typing import Any, Callable, ClassVar

from echoforge.audio import decode_audio, resample
from echoforge.errors import ConfigError, EchoforgeError
from echoforge.pipeline.output import iter_shards, load_manifest
from echoforge.registry import Registry
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.storage import DataFolder, folder as open_folder

AUDIO_FORMATS = ("wav", "flac")


class Exporter:
    """A trainer's format: its stages, the columns each reads, and one JSON object per row."""

    #: stage name → columns of the build it reads
    stages: ClassVar[dict[str, list[str]]] = {}
    #: stages whose lines point at question audio files
    audio_stages: ClassVar[frozenset[str]] = frozenset()

    def line(self, stage: str, row: dict[str, Any], audio_path: str | None) -> dict[str, Any]:
        raise NotImplementedError


exporters: Registry[type[Exporter]] = Registry("export format")


def _units(rows: list[list[int]] | None) -> list[int] | list[list[int]] | None:
    """One codebook: a flat list; several: one list per codebook."""
    if rows is None:
        return None
    return rows[0] if len(rows) == 1 else rows


@exporters.register("echox")
class EchoXExporter(Exporter):
    """EchoX's three training stages: speech-to-text, text-to-unit, echo (see docs/echox.md)."""

    _conversation = ["id", "history", "question_spoken", "answer_spoken"]
    stages = {
        "s2t": _conversation,
        "t2u": ["id", "answer_spoken", "answer_units_dedup", "units_tokenizer", "units_codebook_size"],
        "echo": [*_conversation, "answer_units_dedup", "echo_segments", "units_tokenizer", "units_codebook_size"],
    }
    audio_stages = frozenset({"s2t", "echo"})

    @staticmethod
    def _conversations(row: dict[str, Any], audio_path: str) -> list[dict[str, Any]]:
        turns = [{"from": "user" if h["role"] == "user" else "assistant", "value": h["text"]}
                 for h in row["history"] or [] if h["role"] in ("user", "assistant")]
        turns.append({"from": "user", "value": "", "audio": audio_path, "transcript": row["question_spoken"]})
        turns.append({"from": "assistant", "value": row["answer_spoken"]})
        return turns

    def line(self, stage: str, row: dict[str, Any], audio_path: str | None) -> dict[str, Any]:
        if stage == "s2t":
            return {"id": row["id"], "conversations": self._conversations(row, audio_path)}
        dedup = row["answer_units_dedup"]
        if stage == "t2u":
            return {"id": row["id"], "text": row["answer_spoken"], "units": _units(dedup),
                    "units_tokenizer": row["units_tokenizer"], "codebook_size": row["units_codebook_size"]}
        segments = [{"text": s["text"], "num_tokens": s["num_tokens"], "dedup_start": s["dedup_start"],
                     "dedup_end": s["dedup_end"],
                     "units": _units([c[s["dedup_start"]:s["dedup_end"]] for c in dedup])}
                    for s in row["echo_segments"] or []]
        return {"id": row["id"], "conversations": self._conversations(row, audio_path),
                "text": row["answer_spoken"], "units": _units(dedup),
                "sub_lengths": [s["num_tokens"] for s in segments], "segments": segments,
                "units_tokenizer": row["units_tokenizer"], "codebook_size": row["units_codebook_size"]}


def _build_fingerprint(manifest: dict[str, Any]) -> str:
    blob = json.dumps([(s["path"], s["sha256"]) for s in manifest["shards"]]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _encode_question(cell: dict[str, Any], fmt: str) -> bytes:
    import soundfile as sf

    from echoforge.audio import to_pcm16

    audio, rate = decode_audio(cell["bytes"])
    audio = resample(audio, rate, QUESTION_SAMPLE_RATE)
    buf = io.BytesIO()
    sf.write(buf, to_pcm16(audio), QUESTION_SAMPLE_RATE, format=fmt.upper(), subtype="PCM_16")
    return buf.getvalue()


def export_build(root: str, to: str, output: str, stages: list[str] | None = None, audio_format: str = "wav",
                 absolute_paths: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write a finished build in format ``to`` under ``output``; return what was written and skipped."""
    exporter = exporters.create(to)
    stages = list(stages or exporter.stages)
    unknown = [s for s in stages if s not in exporter.stages]
    if unknown:
        raise ConfigError(f"--stage: {to} has no stage '{unknown[0]}': choose from {', '.join(exporter.stages)}")
    if audio_format not in AUDIO_FORMATS:
        raise ConfigError(f"--audio-format: choose one of {', '.join(AUDIO_FORMATS)}")
    manifest = load_manifest(root)
    out = open_folder(output)
    out.check_writable()
    try:
        record = out.read_json("export.json")
    except FileNotFoundError:
        record = {}
    build = _build_fingerprint(manifest)
    if record and (record.get("build") != build or record.get("format") != to):
        raise EchoforgeError(f"{output} holds an export of another build or format; export into a new directory")
    record = {"format": to, "source": str(root), "build": build, "audio_format": audio_format,
              "models": manifest.get("models", {}), "parts": record.get("parts", {})}
    columns = sorted({c for s in stages for c in exporter.stages[s]}
                     | ({"question_audio"} if exporter.audio_stages & set(stages) else set()))
    missing = [c for c in columns if c not in manifest.get("features", {})]
    if missing:
        raise EchoforgeError(f"{root} has no column '{missing[0]}' that the {to} export reads: "
                             "rebuild it with this version of echoforge")
    report = {"output": output, "rows": dict.fromkeys(stages, 0), "parts_written": 0, "parts_skipped": 0}
    total = len(manifest["shards"])
    for index, (shard, table) in enumerate(iter_shards(root, columns=columns)):
        part = f"{shard['split']}-{index:05d}"
        pending = [s for s in stages if not out.exists(f"{s}/{part}.jsonl")]
        report["parts_skipped"] += len(stages) - len(pending)
        for s in stages:
            report["rows"][s] += table.num_rows
        if pending:
            _export_part(exporter, out, part, pending, table, audio_format, absolute_paths)
            report["parts_written"] += len(pending)
            for s in pending:
                record["parts"][s] = sorted({*record["parts"].get(s, []), f"{s}/{part}.jsonl"})
            out.write_json("export.json", record)
        if progress:
            progress(index + 1, total)
    return report


def _export_part(exporter: Exporter, out: DataFolder, part: str, stages: list[str], table, audio_format: str,
                 absolute_paths: bool) -> None:
    """Audio files first, then each stage's part, streamed row by row into its temporary file."""
    wants_audio = bool(exporter.audio_stages & set(stages))
    with contextlib.ExitStack() as files:
        sinks = {s: files.enter_context(out.open_atomic(f"{s}/{part}.jsonl")) for s in stages}
        for batch in table.to_batches(max_chunksize=64):
            for row in batch.to_pylist():
                audio_path = None
                if wants_audio:
                    audio_path = f"audio/{part}/{row['id']}.{audio_format}"
                    out.write_bytes(audio_path, _encode_question(row["question_audio"], audio_format))
                    audio_path = out.url_of(audio_path) if absolute_paths else audio_path
                for s, sink in sinks.items():
                    sink.write((json.dumps(exporter.line(s, row, audio_path), ensure_ascii=False) + "\n").encode())
