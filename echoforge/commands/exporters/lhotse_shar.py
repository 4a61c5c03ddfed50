"""``--to lhotse-shar``: Lhotse Shar, one folder of cuts per side and split.

Stages: ``question`` (the spoken question, 16 kHz) and ``answer`` (the answer audio, its word
alignment and its units). Shard ``n`` of a split is, under ``<stage>/<split>/``,
``cuts.<nnnnnn>.jsonl.gz`` and ``recording.<nnnnnn>.tar`` (FLAC), plus for answers
``units.<nnnnnn>.tar``: the answer units as a temporal array ``[codebooks, frames]`` at the
unit frame rate (``cut.load_units()``). Each cut holds one supervision with the side's spoken
text and speaker; the answer's carries the word alignment (``alignment["word"]``), and its
custom fields name the unit tokenizer, codebook size, frame rate and the deduplicated units.
Written with lhotse's own ``SharWriter``; read with ``CutSet.from_shar(in_dir=...)``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import numpy as np

from echoforge.commands.exporters.base import Exporter, exporters, local_staging
from echoforge.errors import MissingDependency
from echoforge.storage import DataFolder

_COMMON = ["id", "conversation_id", "turn_index"]
_SIDES = {"question": ("question_audio", "question_spoken", "question_speaker"),
          "answer": ("answer_audio", "answer_spoken", "answer_speaker")}


def _cut(row: dict[str, Any], stage: str):
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.supervision import AlignmentItem

    audio_column, text_column, speaker_column = _SIDES[stage]
    recording = Recording.from_bytes(row[audio_column]["bytes"], recording_id=row["id"])
    alignment = None
    custom: dict[str, Any] = {"conversation_id": row["conversation_id"], "turn_index": row["turn_index"]}
    if stage == "answer":
        alignment = {"word": [AlignmentItem(symbol=w["word"], start=round(w["start_s"], 4),
                                            duration=round(w["end_s"] - w["start_s"], 4))
                              for w in row["alignment"] or []]}
        custom.update(units_tokenizer=row["units_tokenizer"], units_codebook_size=row["units_codebook_size"],
                      units_frame_rate=row["units_frame_rate"], units_dedup=row["answer_units_dedup"])
    supervision = SupervisionSegment(id=row["id"], recording_id=row["id"], start=0.0, duration=recording.duration,
                                     channel=0, text=row[text_column], speaker=row[speaker_column],
                                     alignment=alignment)
    cut = MonoCut(id=row["id"], start=0.0, duration=recording.duration, channel=0, recording=recording,
                  supervisions=[supervision], custom=custom)
    if stage == "answer" and row["answer_units"] is not None:
        cut = cut.attach_tensor("units", np.asarray(row["answer_units"], dtype=np.int32),
                                frame_shift=1.0 / row["units_frame_rate"], temporal_dim=1)
    return cut


@exporters.register("lhotse-shar")
class LhotseSharExporter(Exporter):
    """Lhotse Shar shards: cuts, recordings and (answers) units, one tar per field."""

    stages = {"question": [*_COMMON, *_SIDES["question"]],
              "answer": [*_COMMON, *_SIDES["answer"], "alignment", "answer_units", "answer_units_dedup",
                         "units_tokenizer", "units_codebook_size", "units_frame_rate"]}
    answer_audio_stages = frozenset({"answer"})

    def write_shard(self, out: DataFolder, split: str, index: int, stages: list[str],
                    rows: Iterator[dict[str, Any]]) -> dict[str, list[str]]:
        try:
            from lhotse.shar import SharWriter
        except ImportError:
            raise MissingDependency("--to lhotse-shar", "interop", "lhotse") from None
        files: dict[str, list[str]] = {}
        with local_staging(out) as (tmp, upload):
            with contextlib.ExitStack() as stack:
                writers = {}
                for s in stages:
                    fields = {"recording": "flac", **({"units": "numpy"} if s == "answer" else {})}
                    os.makedirs(os.path.join(tmp, s))
                    writers[s] = stack.enter_context(SharWriter(
                        os.path.join(tmp, s), fields=fields, shard_size=self.options.shard_size,
                        shard_offset=index, warn_unused_fields=False))
                for row in rows:
                    for s, writer in writers.items():
                        writer.write(_cut(row, s))
            for s in stages:
                files[s] = [f"{s}/{split}/{name}" for name in sorted(os.listdir(os.path.join(tmp, s)))]
                for rel in files[s]:
                    upload(f"{s}/{rel.rsplit('/', 1)[1]}", rel)
        return files
