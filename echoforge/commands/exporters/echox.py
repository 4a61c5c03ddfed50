"""``--to echox``: EchoX's three training stages as JSON lines (see docs/echox.md).

Layout: ``<stage>/<split>-<nnnnn>.jsonl`` (one line per row of shard ``nnnnn``) and the question
audio the lines point at, ``audio/<split>-<nnnnn>/<id>.wav`` (16 kHz mono 16-bit, or ``.flac``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

from echoforge.commands.exporters.base import Exporter, encode_audio, exporters, safe_name, units_of
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.storage import DataFolder


def conversation_turns(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The earlier turns of a row (``history``) as ``{"from", "value"}`` text turns."""
    return [{"from": "user" if h["role"] == "user" else "assistant", "value": h["text"]}
            for h in row["history"] or [] if h["role"] in ("user", "assistant")]


@exporters.register("echox")
class EchoXExporter(Exporter):
    """EchoX's training stages: speech-to-text, text-to-unit, echo."""

    _conversation = ["id", "history", "question_spoken", "answer_spoken", "question_audio"]
    stages = {
        "s2t": _conversation,
        "t2u": ["id", "answer_spoken", "answer_units_dedup", "units_tokenizer", "units_codebook_size"],
        "echo": [*_conversation, "answer_units_dedup", "echo_segments", "units_tokenizer", "units_codebook_size"],
    }
    audio_stages = frozenset({"s2t", "echo"})

    def write_shard(self, out: DataFolder, split: str, index: int, stages: list[str],
                    rows: Iterator[dict[str, Any]]) -> dict[str, list[str]]:
        part = f"{split}-{index:05d}"
        fmt = self.options.audio_format
        files: dict[str, list[str]] = {s: [f"{s}/{part}.jsonl"] for s in stages}
        with contextlib.ExitStack() as stack:
            sinks = {s: stack.enter_context(out.open_atomic(f"{s}/{part}.jsonl")) for s in stages}
            for row in rows:
                audio_path = None
                if self.audio_stages & set(stages):
                    rel = f"audio/{part}/{safe_name(row['id'])}.{fmt}"
                    out.write_bytes(rel, encode_audio(row["question_audio"], fmt, QUESTION_SAMPLE_RATE)[0])
                    for s in self.audio_stages & set(stages):
                        files[s].append(rel)
                    audio_path = out.url_of(rel) if self.options.absolute_paths else rel
                for s, sink in sinks.items():
                    sink.write((json.dumps(self.line(s, row, audio_path), ensure_ascii=False) + "\n").encode())
        return files

    @staticmethod
    def _conversations(row: dict[str, Any], audio_path: str | None) -> list[dict[str, Any]]:
        return [*conversation_turns(row),
                {"from": "user", "value": "", "audio": audio_path, "transcript": row["question_spoken"]},
                {"from": "assistant", "value": row["answer_spoken"]}]

    def line(self, stage: str, row: dict[str, Any], audio_path: str | None) -> dict[str, Any]:
        """One JSON object of ``stage`` for a row."""
        if stage == "s2t":
            return {"id": row["id"], "conversations": self._conversations(row, audio_path)}
        dedup = row["answer_units_dedup"]
        if stage == "t2u":
            return {"id": row["id"], "text": row["answer_spoken"], "units": units_of(dedup),
                    "units_tokenizer": row["units_tokenizer"], "codebook_size": row["units_codebook_size"]}
        segments = [{"text": s["text"], "num_tokens": s["num_tokens"], "dedup_start": s["dedup_start"],
                     "dedup_end": s["dedup_end"],
                     "units": units_of([c[s["dedup_start"]:s["dedup_end"]] for c in dedup])}
                    for s in row["echo_segments"] or []]
        return {"id": row["id"], "conversations": self._conversations(row, audio_path),
                "text": row["answer_spoken"], "units": units_of(dedup),
                "sub_lengths": [s["num_tokens"] for s in segments], "segments": segments,
                "units_tokenizer": row["units_tokenizer"], "codebook_size": row["units_codebook_size"]}
