"""eval-gate: the gate's decisions against a second, independent ASR.

Kept rows are judged from their stored audio: the build's own gate runs again with the second
ASR on both sides (every other figure is the same audio's, so only the ASR can change the
decision), which also gives the kept corpus's WER by that ASR. Rejected rows carry no audio:
turns the gate refused are rebuilt from the build's inputs (ingest, speakable text, synthesis;
synthesis is seeded by the turn id, so the audio is the audio the gate heard) and judged the
same way; the build's own gate is rerun on them to check that the rebuild reproduces the reject.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

from echoforge.config import BuildConfig, parse_config
from echoforge.errors import EchoforgeError
from echoforge.pipeline.output import iter_rejects, iter_shards, load_manifest
from echoforge.schemas.records import Speech, Turn
from echoforge.transforms.base import StageReject
from echoforge.transforms.gate import Gate

Progress = Callable[[str, int, int], None]
_COLUMNS = ["id", "source", "source_position", "conversation_id", "turn_index", "question_spoken",
            "answer_spoken", "question_audio", "question_voice", "answer_audio", "answer_sample_rate",
            "answer_voice", "question_wer", "answer_wer"]


def _decode(cell: dict | None) -> tuple[np.ndarray, int] | None:
    import soundfile as sf

    if not cell or not cell.get("bytes"):
        return None
    audio, rate = sf.read(io.BytesIO(cell["bytes"]), dtype="float32", always_2d=True)
    return audio[:, 0], int(rate)


def _judge(gate: Gate, turn: Turn) -> tuple[str | None, dict[str, Any]]:
    """The gate's decision on a turn (None: keep, else the reason) and its figures."""
    figures, ref_words = gate.measure(turn, gate.hear([turn])[0])
    try:
        gate.check(turn, figures, ref_words)
    except StageReject as r:
        return r.reason, figures
    return None, figures


def _gates(config: BuildConfig, model: str) -> dict[str, Gate]:
    """The second ASR's gate for both sides, and one for the question only (rows without answer audio)."""
    gates = {}
    for sides in ("both", "question"):
        gate = Gate(config.with_overrides(gate={"asr": sides, "question_asr_model": model, "answer_asr_model": model,
                                                 "second_judge": "none", "audit_rate": 0.0}))
        gate.ensure_setup()
        gates[sides] = gate
    return gates


def _kept_turns(root: str | Path, sample: int | None):
    """Turns rebuilt from the kept rows' stored audio and text (at most ``sample``)."""
    n = 0
    for _, table in iter_shards(root, _COLUMNS):
        for r in table.to_pylist():
            if sample is not None and n >= sample:
                return
            q = _decode(r["question_audio"])
            if q is None:
                continue
            a = _decode(r["answer_audio"])
            n += 1
            yield r, Turn(
                id=r["id"], source=r["source"], source_position=r["source_position"],
                conversation_id=r["conversation_id"], turn_index=r["turn_index"], history=[],
                question_text="", answer_text="", question_spoken=r["question_spoken"],
                answer_spoken=r["answer_spoken"], answer_sentences=[r["answer_spoken"]],
                question_speech=Speech(q[0], q[1], r["question_voice"], 1.0),
                answer_speech=Speech(a[0], a[1], r["answer_voice"], 1.0) if a else
                Speech(np.zeros(1, np.float32), r["answer_sample_rate"] or 22050, r["answer_voice"], 1.0),
            ), a is not None


def _gate_rejects(root: str | Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The build's gate rejects by turn id."""
    out = {}
    for table in iter_rejects(root):
        for r in table.to_pylist():
            if r["stage"] == "gate":
                out[r["id"]] = r
    return out


def _rebuilt_rejects(manifest: dict[str, Any], config: BuildConfig, wanted: set[str]) -> list[Turn]:
    """Gate-rejected turns rebuilt from the inputs up to synthesis (the audio the gate heard)."""
    from echoforge.pipeline.workunits import plan_work_units
    from echoforge.transforms.ingest import Ingest
    from echoforge.transforms.speakable import Speakable
    from echoforge.transforms.synthesize import Synthesize

    plan = manifest["plan"]
    work = plan_work_units([i["uri"] for i in manifest["inputs"]], plan["rows_per_unit"], plan["limit"],
                           config.ingest.split, config.storage.options())
    stages = [Ingest(config), Speakable(config), Synthesize(config)]
    turns: list[Turn] = []
    for unit in work.units:
        records: list = list(work.read(unit))
        for i, stage in enumerate(stages):
            stage.ensure_setup()
            records, _ = stage.process(records)
            if i == 0:
                records = [t for t in records if t.id in wanted]
            if not records:
                break
        turns.extend(records)
        if len(turns) >= len(wanted):
            break
    return turns


def evaluate_gate(root: str | Path, *, model: str = "whisper-base", sample: int | None = None,
                  resynthesize: bool = True, progress: Progress | None = None) -> dict[str, Any]:
    """Compare the build's gate with the same gate on a second ASR; see the module docstring."""
    manifest = load_manifest(root)
    config = parse_config(manifest["config"])
    if config.gate.asr == "none":
        raise EchoforgeError(f"{root} was built without an ASR gate (gate.asr: none): nothing to compare")
    gates = _gates(config, model)
    build_asr = manifest.get("models", {})
    kept_figures: dict[str, list[float]] = {"question_wer": [], "answer_wer": []}
    kept = {"judged": 0, "second_rejects": 0, "reasons": {}, "examples": []}
    rows = list(_kept_turns(root, sample))
    for i, (row, turn, has_answer) in enumerate(rows):
        if progress:
            progress("kept rows", i, len(rows))
        reason, f = _judge(gates["both" if has_answer else "question"], turn)
        if not has_answer and reason is not None and not reason.startswith("question_"):
            reason = None  # without answer audio only the question can be judged
        kept["judged"] += 1
        for key in kept_figures:
            if f.get(key) is not None:
                kept_figures[key].append(f[key])
        if reason is not None:
            kept["second_rejects"] += 1
            kept["reasons"][reason] = kept["reasons"].get(reason, 0) + 1
            if len(kept["examples"]) < 5:
                side = reason.split("_")[0]
                kept["examples"].append({"id": row["id"], "reason": reason, "text": row[f"{side}_spoken"][:120],
                                         "heard": f.get(f"{side}_asr_text", "")[:120]})
    if progress:
        progress("kept rows", len(rows), len(rows))
    report: dict[str, Any] = {
        "corpus": str(root),
        "second_asr": gates["both"].identity().get("asr"),
        "build_asr": {k: v for k, v in build_asr.items() if "asr" in k},
        "kept_judged": kept["judged"],
        "kept_second_rejects": kept["second_rejects"],
        "kept_second_reject_reasons": kept["reasons"],
        "kept_examples": kept["examples"],
        "kept_question_wer_mean": round(float(np.mean(kept_figures["question_wer"])), 4)
        if kept_figures["question_wer"] else None,
        "kept_answer_wer_mean": round(float(np.mean(kept_figures["answer_wer"])), 4)
        if kept_figures["answer_wer"] else None,
        "kept_answer_rows_judged": len(kept_figures["answer_wer"]),
    }
    gate_rejects = _gate_rejects(root, manifest)
    report["gate_rejects"] = len(gate_rejects)
    if resynthesize and gate_rejects:
        wanted = set(sorted(gate_rejects)[:sample] if sample else gate_rejects)
        turns = _rebuilt_rejects(manifest, config, wanted)
        own = Gate(config)
        own.ensure_setup()
        judged = reproduced = second_keeps = 0
        examples = []
        for i, turn in enumerate(turns):
            if progress:
                progress("gate rejects", i, len(turns))
            own_reason, _ = _judge(own, turn)
            reason, f = _judge(gates["both"], turn)
            judged += 1
            reproduced += own_reason == gate_rejects[turn.id]["reason"]
            if reason is None:
                second_keeps += 1
                if len(examples) < 5:
                    build_reason = gate_rejects[turn.id]["reason"]
                    side = "question" if build_reason.startswith("question") else "answer"
                    examples.append({"id": turn.id, "build_reason": build_reason,
                                     "text": getattr(turn, f"{side}_spoken")[:120],
                                     "heard": f.get(f"{side}_asr_text", "")[:120]})
        if progress:
            progress("gate rejects", len(turns), len(turns))
        report.update(rejects_judged=judged, rejects_reproduced=reproduced, rejects_second_keeps=second_keeps,
                      reject_examples=examples)
    return report


def report_lines(r: dict[str, Any]) -> list[str]:
    """A human summary of an eval-gate report."""
    lines = [f"{r['corpus']}: second ASR {r['second_asr']}; build gate {r['build_asr']}",
             f"kept rows judged: {r['kept_judged']} ({r['kept_answer_rows_judged']} with answer audio); "
             f"the second ASR would reject {r['kept_second_rejects']} {r['kept_second_reject_reasons'] or ''}",
             f"kept corpus WER by the second ASR: question {r['kept_question_wer_mean']}, "
             f"answer {r['kept_answer_wer_mean']}"]
    for e in r["kept_examples"]:
        lines.append(f"  {e['id']} {e['reason']}: {e['text']!r} heard {e['heard']!r}")
    if "rejects_judged" in r:
        lines.append(f"gate rejects: {r['gate_rejects']}, rebuilt and judged {r['rejects_judged']} "
                     f"(build gate reproduces {r['rejects_reproduced']}); the second ASR would keep "
                     f"{r['rejects_second_keeps']}")
        for e in r["reject_examples"]:
            lines.append(f"  {e['id']} ({e['build_reason']}): {e['text']!r} heard {e['heard']!r}")
    else:
        lines.append(f"gate rejects: {r['gate_rejects']} (not rebuilt)")
    return lines
