"""``--to nemo``: NeMo JSON-lines manifests, with tarred audio by option.

Stages: ``asr`` (question audio → ``question_spoken``) and ``tts`` (``answer_spoken`` → answer
audio and its units). Each shard ``n`` of a split is ``<stage>/<split>/manifest_<n>.json``, one
JSON object per line with ``audio_filepath``, ``duration`` (seconds, from the samples written),
``offset`` (0), ``text``, ``speaker`` and the row ``id``; ``tts`` lines add ``units`` (the
deduplicated answer units), ``unit_durations``, ``units_tokenizer`` and ``codebook_size``.

Audio: plain, ``<stage>/<split>/audio_<n>/<id>.wav`` and ``audio_filepath`` relative to the
manifest's folder (NeMo resolves it there; absolute with ``absolute_paths``). Tarred, NeMo's
tarred-dataset convention: ``<stage>/<split>/audio_<n>.tar`` holding ``<id>.wav``, each line
with ``audio_filepath`` the member name and ``shard_id`` ``n`` (``manifest__OP_0..N_CL_.json``
with ``shard_manifests: true``).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

from echoforge.commands.exporters.base import Exporter, encode_audio, exporters, safe_name, tar_sink, units_of
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.storage import DataFolder

_SIDES = {"asr": ("question_audio", "question_spoken", "question_speaker"),
          "tts": ("answer_audio", "answer_spoken", "answer_speaker")}


@exporters.register("nemo")
class NemoExporter(Exporter):
    """NeMo manifests for ASR (question side) and TTS / text-to-unit (answer side)."""

    stages = {"asr": ["id", *_SIDES["asr"]],
              "tts": ["id", *_SIDES["tts"], "answer_units_dedup", "answer_unit_durations", "units_tokenizer",
                      "units_codebook_size"]}
    answer_audio_stages = frozenset({"tts"})

    def write_shard(self, out: DataFolder, split: str, index: int, stages: list[str],
                    rows: Iterator[dict[str, Any]]) -> dict[str, list[str]]:
        fmt, tarred = self.options.audio_format, self.options.tarred
        files: dict[str, list[str]] = {}
        with contextlib.ExitStack() as stack:
            manifests, tars = {}, {}
            for s in stages:
                files[s] = [f"{s}/{split}/manifest_{index}.json"]
                manifests[s] = stack.enter_context(out.open_atomic(files[s][0]))
                if tarred:
                    files[s].append(f"{s}/{split}/audio_{index}.tar")
                    tars[s] = stack.enter_context(tar_sink(out, files[s][1]))
            for row in rows:
                name = f"{safe_name(row['id'])}.{fmt}"
                for s in stages:
                    audio_column, text_column, speaker_column = _SIDES[s]
                    data, rate, samples = encode_audio(row[audio_column], fmt,
                                                       QUESTION_SAMPLE_RATE if s == "asr" else None)
                    if tarred:
                        tars[s].add(name, data)
                        line: dict[str, Any] = {"audio_filepath": name, "shard_id": index}
                    else:
                        rel = f"{s}/{split}/audio_{index}/{name}"
                        out.write_bytes(rel, data)
                        files[s].append(rel)
                        line = {"audio_filepath": out.url_of(rel) if self.options.absolute_paths
                                else rel.split("/", 2)[2]}
                    line.update(duration=samples / rate, offset=0.0, text=row[text_column],
                                speaker=row[speaker_column], id=row["id"])
                    if s == "tts":
                        line.update(units=units_of(row["answer_units_dedup"]),
                                    unit_durations=row["answer_unit_durations"],
                                    units_tokenizer=row["units_tokenizer"],
                                    codebook_size=row["units_codebook_size"])
                    manifests[s].write((json.dumps(line, ensure_ascii=False) + "\n").encode())
        return files
