"""The output columns: the single source of truth for names, Arrow types and `datasets` features.

Engines and writers never spell a column themselves; they call :func:`turn_to_row` and
use :data:`ROW_FEATURES` / :func:`row_schema`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
from datasets import Audio, Features, List, Value

from echoforge.audio import encode_flac
from echoforge.schemas.records import Reject, Turn

QUESTION_SAMPLE_RATE = 16_000

_WORD_SPAN = {
    "word": Value("string"),
    "start_s": Value("float32"),
    "end_s": Value("float32"),
    "unit_start": Value("int32"),
    "unit_end": Value("int32"),
    "dedup_start": Value("int32"),
    "dedup_end": Value("int32"),
}
_SEGMENT_SPAN = {"text": Value("string"), **{k: v for k, v in _WORD_SPAN.items() if k != "word"}}
_ECHO_SEGMENT = {"text": Value("string"), "num_tokens": Value("int32"),
                 **{k: v for k, v in _WORD_SPAN.items() if k != "word"}}

#: Quality figures computed by the gate; every one is a column (null when not measured).
QUALITY_FEATURES: dict[str, Any] = {
    "question_asr_text": Value("string"),
    "question_wer": Value("float32"),
    "question_leading_silence_s": Value("float32"),
    "question_trailing_silence_s": Value("float32"),
    "question_clipping_ratio": Value("float32"),
    "answer_asr_text": Value("string"),
    "answer_wer": Value("float32"),
    "answer_chars_per_second": Value("float32"),
    "answer_leading_silence_s": Value("float32"),
    "answer_trailing_silence_s": Value("float32"),
    "answer_clipping_ratio": Value("float32"),
    "answer_units_per_second": Value("float32"),
    "answer_dedup_units_per_second": Value("float32"),
    "question_cer": Value("float32"),
    "answer_cer": Value("float32"),
    "question_asr_confidence": Value("float32"),
    "answer_asr_confidence": Value("float32"),
    "question_per": Value("float32"),
    "answer_per": Value("float32"),
    "question_asr_path": Value("string"),
    "answer_asr_path": Value("string"),
    "second_judge_overturned": Value("string"),
    "second_judge_audit": Value("string"),
}

#: Where the word timings came from (``synthesiser`` or ``ctc``) and, with ``align.check``, how the
#: CTC aligner's word starts agree with the synthesiser's (figures of ``alignment_figures``).
ALIGNMENT_FEATURES: dict[str, Any] = {
    "alignment_source": Value("string"),
    "ctc_median_start_error_ms": Value("float32"),
    "ctc_p90_start_error_ms": Value("float32"),
    "ctc_within_50ms": Value("float32"),
    "ctc_within_100ms": Value("float32"),
    "ctc_median_signed_error_ms": Value("float32"),
    "ctc_words_matched": Value("int32"),
}

#: How each side sounds and who speaks (the listen stage; null when not measured): DNSMOS
#: P.835 SIG/BAK/OVRL and P.808 (1..5), the answer's cosine similarity to the assistant voice's
#: reference embedding, and the question's speaker embedding (Resemblyzer, 256 floats).
LISTEN_FEATURES: dict[str, Any] = {
    **{f"{side}_dnsmos_{k}": Value("float32") for side in ("question", "answer") for k in ("sig", "bak", "ovrl", "p808")},
    "answer_speaker_similarity": Value("float32"),
    "question_speaker_embedding": List(Value("float32")),
}

ROW_FEATURES = Features(
    {
        "id": Value("string"),
        "source": Value("string"),
        "source_position": Value("string"),
        "conversation_id": Value("string"),
        "turn_index": Value("int32"),
        "history": List({"role": Value("string"), "text": Value("string")}),
        "question_text": Value("string"),
        "question_spoken": Value("string"),
        "question_audio": Audio(sampling_rate=QUESTION_SAMPLE_RATE),
        "question_voice": Value("string"),
        "question_speaker": Value("string"),
        "question_speaking_rate": Value("float32"),
        "question_duration_s": Value("float32"),
        "answer_text": Value("string"),
        "answer_spoken": Value("string"),
        "answer_audio": Audio(),
        "answer_sample_rate": Value("int32"),
        "answer_voice": Value("string"),
        "answer_speaker": Value("string"),
        "answer_speaking_rate": Value("float32"),
        "answer_duration_s": Value("float32"),
        "answer_units": List(List(Value("int32"))),
        "answer_units_dedup": List(List(Value("int32"))),
        "answer_unit_durations": List(Value("int32")),
        "answer_unit_lm_ids": List(Value("int32")),
        "units_tokenizer": Value("string"),
        "units_frame_rate": Value("float32"),
        "units_codebook_size": Value("int32"),
        "alignment": List(_WORD_SPAN),
        "segments": List(_SEGMENT_SPAN),
        "echo_segments": List(_ECHO_SEGMENT),
        "speakable_notes": List(Value("string")),
        **QUALITY_FEATURES,
        **ALIGNMENT_FEATURES,
        **LISTEN_FEATURES,
    }
)

REJECT_FEATURES = Features(
    {
        "id": Value("string"),
        "source": Value("string"),
        "source_position": Value("string"),
        "conversation_id": Value("string"),
        "turn_index": Value("int32"),
        "stage": Value("string"),
        "reason": Value("string"),
        "detail": Value("string"),
        "expected": Value("string"),
        "heard": Value("string"),
        "second_judge_audit": Value("string"),
    }
)

def row_schema() -> pa.Schema:
    """Arrow schema of data shards, with the `datasets` feature metadata attached."""
    return ROW_FEATURES.arrow_schema


def reject_schema() -> pa.Schema:
    return REJECT_FEATURES.arrow_schema


def split_of(row_id: str, validation_fraction: float) -> str:
    """Stable split assignment from the row id alone."""
    if validation_fraction <= 0:
        return "train"
    h = int.from_bytes(hashlib.sha256(row_id.encode("utf-8")).digest()[:8], "big")
    return "validation" if h / 2**64 < validation_fraction else "train"


def _audio_cell(speech) -> dict[str, Any] | None:
    if speech is None:
        return None
    return {"bytes": encode_flac(speech.audio, speech.sample_rate), "path": None}


def turn_to_row(turn: Turn, keep_answer_audio: bool = True) -> dict[str, Any]:
    """Flatten a finished turn into one output row (plain Python values)."""
    q, a, u = turn.question_speech, turn.answer_speech, turn.answer_units
    row: dict[str, Any] = {
        "id": turn.id,
        "source": turn.source,
        "source_position": turn.source_position,
        "conversation_id": turn.conversation_id,
        "turn_index": turn.turn_index,
        "history": turn.history,
        "question_text": turn.question_text,
        "question_spoken": turn.question_spoken,
        "question_audio": _audio_cell(q),
        "question_voice": q.voice if q else None,
        "question_speaker": q.speaker if q else None,
        "question_speaking_rate": q.rate if q else None,
        "question_duration_s": q.duration_s if q else None,
        "answer_text": turn.answer_text,
        "answer_spoken": turn.answer_spoken,
        "answer_audio": _audio_cell(a) if keep_answer_audio else None,
        "answer_sample_rate": a.sample_rate if a else None,
        "answer_voice": a.voice if a else None,
        "answer_speaker": a.speaker if a else None,
        "answer_speaking_rate": a.rate if a else None,
        "answer_duration_s": a.duration_s if a else None,
        "answer_units": None,
        "answer_units_dedup": None,
        "answer_unit_durations": None,
        "answer_unit_lm_ids": turn.extra.get("answer_unit_lm_ids"),
        "units_tokenizer": None,
        "units_frame_rate": None,
        "units_codebook_size": None,
        "alignment": turn.alignment,
        "segments": turn.segments,
        "echo_segments": turn.echo_segments,
        "speakable_notes": turn.speakable_notes,
    }
    if u is not None:
        dedup, durations = u.dedup()
        row.update(
            answer_units=u.codes.tolist(),
            answer_units_dedup=dedup.tolist(),
            answer_unit_durations=durations.tolist(),
            units_tokenizer=u.tokenizer,
            units_frame_rate=u.frame_rate,
            units_codebook_size=u.codebook_size,
        )
    for name in QUALITY_FEATURES:
        row[name] = turn.quality.get(name)
    for name in (*ALIGNMENT_FEATURES, *LISTEN_FEATURES):
        row[name] = turn.extra.get(name)
    return row


def reject_to_row(reject: Reject) -> dict[str, Any]:
    return {name: getattr(reject, name) for name in REJECT_FEATURES}
