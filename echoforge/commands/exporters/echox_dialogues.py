"""``--to echox-dialogues``: the layout EchoX published its dialogues in (EchoX-Dialogues-Plus).

``<subset>/<subset>-<nnnnn>.tar.gz`` (the subset is the split), each holding ``data.json``,
a list of ``{"id", "conversations": [...]}``, and the ``.wav`` files its turns point at by their
path inside the archive. Earlier turns are text (``{"from", "value"}``); the spoken turn pair is
``{"from": "user", "value": question_spoken, "audio": "wavs/<id>-user.wav", "wer": question WER}``
and ``{"from": "assistant", "value": answer_spoken, "audio": "wavs/<id>-assistant.wav",
"wer": answer WER}``. ``wer`` is the gate's round-trip figure (its CER where the gate measured
the side by characters) and is left out where the gate measured neither; a trainer that reads
this layout drops turns with ``wer > 0.25``. The answer's ``audio`` is left out for a build
made without answer audio.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from echoforge.commands.exporters.base import Exporter, encode_audio, exporters, safe_name, tar_sink
from echoforge.commands.exporters.echox import conversation_turns
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.storage import DataFolder


def _wer(row: dict[str, Any], side: str) -> dict[str, float]:
    for figure in ("wer", "cer"):
        value = row[f"{side}_{figure}"]
        if value is not None:
            return {"wer": round(float(value), 4)}
    return {}


@exporters.register("echox-dialogues")
class EchoXDialoguesExporter(Exporter):
    """``.tar.gz`` shards of ``data.json`` and WAV files, as EchoX-Dialogues ships."""

    stages = {"dialogues": ["id", "history", "question_spoken", "answer_spoken", "question_audio", "answer_audio",
                            "question_wer", "question_cer", "answer_wer", "answer_cer"]}

    def write_shard(self, out: DataFolder, split: str, index: int, stages: list[str],
                    rows: Iterator[dict[str, Any]]) -> dict[str, list[str]]:
        rel = f"{split}/{split}-{index:05d}.tar.gz"
        data = []
        with tar_sink(out, rel, gzip=True) as tar:
            for row in rows:
                key = safe_name(row["id"])
                user = {"from": "user", "value": row["question_spoken"], "audio": f"wavs/{key}-user.wav",
                        **_wer(row, "question")}
                tar.add(user["audio"], encode_audio(row["question_audio"], "wav", QUESTION_SAMPLE_RATE)[0])
                assistant = {"from": "assistant", "value": row["answer_spoken"], **_wer(row, "answer")}
                if row["answer_audio"] is not None:
                    assistant["audio"] = f"wavs/{key}-assistant.wav"
                    tar.add(assistant["audio"], encode_audio(row["answer_audio"], "wav")[0])
                data.append({"id": row["id"], "conversations": [*conversation_turns(row), user, assistant]})
            tar.add("data.json", json.dumps(data, ensure_ascii=False, indent=1).encode())
        return {"dialogues": [rel]}
