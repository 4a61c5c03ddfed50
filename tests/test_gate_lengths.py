"""Length rules of the gate: question audio past the speech encoder's window, answer units past
the echo-training cap; each a reject that names its figure."""

from __future__ import annotations

import pytest

from echoforge.audio import resample
from echoforge.backends.tts.base import VoiceRequest
from echoforge.backends.tts.piper import PiperBackend
from echoforge.config import parse_config
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.schemas.records import Speech, Turn
from echoforge.transforms.gate import Gate

LONG_QUESTION = " ".join(["Could you tell me, step by step and in plain words, how a river carves a canyon over many "
                          "thousands of years, and why some canyons are deep and narrow while others are wide?"] * 4)
ANSWER = ("Water and sand grind the rock away.", "Hard rock makes narrow walls.")


@pytest.fixture(scope="module")
def turns():
    backend = PiperBackend(["joe"])
    backend.setup()
    from echoforge.registry import unit_tokenizers

    units = unit_tokenizers.create("whisper-kmeans")
    units.setup()
    answer = backend.synthesize(VoiceRequest(ANSWER, "joe", 1.0, 2))
    out = {}
    for name, text in (("long", LONG_QUESTION), ("short", "How do canyons form?")):
        q = backend.synthesize(VoiceRequest((text,), "joe", 1.0, 1))
        question = Speech(resample(q.audio, q.sample_rate, QUESTION_SAMPLE_RATE), QUESTION_SAMPLE_RATE, "joe", 1.0)
        out[name] = Turn(id=name, source="s", source_position="s:row 0", conversation_id=name, turn_index=0,
                         history=[], question_text=text, answer_text=" ".join(ANSWER), question_spoken=text,
                         answer_spoken=" ".join(ANSWER), answer_sentences=list(ANSWER), question_speech=question,
                         answer_speech=answer, answer_units=units.encode(answer.audio, answer.sample_rate))
    return out


def _gate(**limits) -> Gate:
    gate = Gate(parse_config({"gate": {"asr": "none", **limits}}))
    gate.ensure_setup()
    return gate


def test_question_longer_than_the_encoder_window_is_rejected(turns):
    seconds = turns["long"].question_speech.duration_s
    assert seconds > 30
    kept, rejected = _gate(max_duration_s=200).process([turns["long"], turns["short"]])
    assert [t.id for t in kept] == ["short"]
    assert rejected[0].reason == "question_audio_too_long"
    assert f"question_duration_s={seconds:.2f}" in rejected[0].detail and "30.0" in rejected[0].detail
    assert (rejected[0].expected, rejected[0].heard) == (LONG_QUESTION, "")  # refused before any ASR
    kept, rejected = _gate(max_duration_s=200, max_question_audio_s=None).process([turns["long"]])
    assert len(kept) == 1 and not rejected


def test_answer_units_past_the_cap_are_rejected(turns):
    runs = turns["short"].answer_units.dedup()[0].shape[1]
    assert 20 < runs < 2048
    kept, rejected = _gate().process([turns["short"]])
    assert len(kept) == 1
    kept, rejected = _gate(max_answer_dedup_units=runs - 1).process([turns["short"]])
    assert not kept and rejected[0].reason == "answer_units_too_long"
    assert rejected[0].detail == f"answer_dedup_units={runs} above the maximum {runs - 1}"
    kept, _ = _gate(max_answer_dedup_units=runs).process([turns["short"]])
    assert len(kept) == 1
