"""``--to webdataset``: tar shards for streaming loaders (WebDataset, Ray, NeMo Curator).

Layout: ``<split>/<split>-<nnnnnn>.tar``; per row, under its key (the row id made safe):
``{key}.flac`` (question audio, 16 kHz), ``{key}.answer.flac`` (answer audio, when the build
kept it), ``{key}.units.npy`` (the answer units, int32 ``[codebooks, frames]``) and
``{key}.json`` (texts, durations, speakers, history, word alignment, deduplicated units).
"""

from __future__ import annotations

import io
import json
from typing import Any, Iterator

import numpy as np

from echoforge.commands.exporters.base import Exporter, encode_audio, exporters, safe_name, tar_sink
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.storage import DataFolder

_META = ["id", "conversation_id", "turn_index", "history", "question_text", "question_spoken", "question_speaker",
         "question_duration_s", "answer_text", "answer_spoken", "answer_speaker", "answer_duration_s",
         "answer_units_dedup", "units_tokenizer", "units_frame_rate", "units_codebook_size", "alignment",
         "question_wer", "answer_wer"]


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@exporters.register("webdataset")
class WebDatasetExporter(Exporter):
    """One tar per shard; each row a sample of audio, units and JSON under one key."""

    stages = {"samples": [*_META, "question_audio", "answer_audio", "answer_units"]}

    def write_shard(self, out: DataFolder, split: str, index: int, stages: list[str],
                    rows: Iterator[dict[str, Any]]) -> dict[str, list[str]]:
        rel = f"{split}/{split}-{index:06d}.tar"
        with tar_sink(out, rel) as tar:
            for row in rows:
                key = safe_name(row["id"])
                question, rate, samples = encode_audio(row["question_audio"], "flac", QUESTION_SAMPLE_RATE)
                meta = {k: row[k] for k in _META}
                meta.update(question_sample_rate=rate, question_samples=samples)
                tar.add(f"{key}.flac", question)
                if row["answer_audio"] is not None:
                    answer, rate, samples = encode_audio(row["answer_audio"], "flac")
                    meta.update(answer_sample_rate=rate, answer_samples=samples)
                    tar.add(f"{key}.answer.flac", answer)
                if row["answer_units"] is not None:
                    tar.add(f"{key}.units.npy", npy(np.asarray(row["answer_units"], dtype=np.int32)))
                tar.add(f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())
        return {"samples": [rel]}
