"""Echo-training segments: token counts under a real tokenizer, merging policy, unit spans."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer

from echoforge.backends.llm_tokenizer import LLMTokenizer, default_tokenizer_path
from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.piper import PiperBackend
from echoforge.config import parse_config
from echoforge.schemas.records import Units
from echoforge.transforms.align import echo_segments

SENTENCES = ["The capital of France is Paris, a city of about two million people.",
             "It sits on the Seine; the river runs through its heart.",
             "Yes.",
             "Visitors come for the museums, the food and the long walks by the water."]
TEXT = " ".join(SENTENCES)


@pytest.fixture(scope="module")
def speech():
    backend = PiperBackend(["joe"])
    backend.setup()
    return backend.synthesize(VoiceRequest(tuple(SENTENCES), "joe", 1.0, 5))


@pytest.fixture(scope="module")
def units(speech):
    frames = int(round(speech.duration_s * 50))
    codes = np.random.default_rng(0).integers(0, 4, size=(1, frames)).astype(np.int32)  # runs to deduplicate
    return Units(codes, 50.0, 4, "test")


@pytest.fixture(scope="module")
def tokenizer():
    tok = LLMTokenizer(str(default_tokenizer_path()))
    tok.setup()
    return tok


@pytest.fixture(scope="module")
def reference():
    """The same tokenizer, used directly."""
    return Tokenizer.from_file(str(default_tokenizer_path()))


def _segments(speech, units, tokenizer, **policy):
    config = parse_config({"segments": policy})
    return echo_segments(TEXT, SENTENCES, speech.sentences, speech.words, units, tokenizer, config.segments)


def _direct_count(reference, text: str, first: bool) -> int:
    # A segment after the first follows a space in the answer: byte-level BPE folds it into the first token.
    return len(reference.encode(text if first else " " + text, add_special_tokens=False).ids)


@pytest.mark.parametrize("boundary", ["sentence", "clause"])
def test_token_counts_match_the_tokenizer(speech, units, tokenizer, reference, boundary):
    segments = _segments(speech, units, tokenizer, boundary=boundary, min_tokens=1, max_tokens=64)
    total = len(reference.encode(TEXT, add_special_tokens=False).ids)
    assert sum(s["num_tokens"] for s in segments) == total
    for i, s in enumerate(segments):
        assert s["num_tokens"] == _direct_count(reference, s["text"], i == 0), s["text"]
    assert " ".join(s["text"] for s in segments) == TEXT


def test_sentence_and_clause_boundaries(speech, units, tokenizer):
    sentences = _segments(speech, units, tokenizer, boundary="sentence", min_tokens=1, max_tokens=64)
    assert [s["text"] for s in sentences] == SENTENCES
    clauses = _segments(speech, units, tokenizer, boundary="clause", min_tokens=1, max_tokens=64)
    assert [s["text"] for s in clauses] == [
        "The capital of France is Paris,", "a city of about two million people.", "It sits on the Seine;",
        "the river runs through its heart.", "Yes.", "Visitors come for the museums,",
        "the food and the long walks by the water."]


def test_merging_reaches_the_minimum_and_keeps_the_maximum(speech, units, tokenizer, reference):
    segments = _segments(speech, units, tokenizer, boundary="clause", min_tokens=12, max_tokens=20)
    counts = [s["num_tokens"] for s in segments]
    assert all(n <= 20 for n in counts)
    assert all(n >= 12 for n in counts[:-1])
    # "Yes." (2 tokens) never stands alone: it is merged into a neighbour.
    assert "Yes." not in [s["text"] for s in segments]
    assert sum(counts) == len(reference.encode(TEXT, add_special_tokens=False).ids)


def test_long_pieces_are_cut_between_words(speech, units, tokenizer):
    segments = _segments(speech, units, tokenizer, boundary="sentence", min_tokens=1, max_tokens=5)
    assert all(s["num_tokens"] <= 5 for s in segments)
    assert len(segments) > len(SENTENCES)
    assert " ".join(s["text"] for s in segments) == TEXT


def test_time_and_unit_spans_tile_the_answer(speech, units, tokenizer):
    segments = _segments(speech, units, tokenizer, boundary="clause", min_tokens=1, max_tokens=64)
    assert segments[0]["start_s"] == pytest.approx(speech.sentences[0].start_s, abs=1e-3)
    assert segments[-1]["end_s"] == pytest.approx(speech.sentences[-1].end_s, abs=1e-3)
    _, runs = units.dedup()
    for a, b in zip(segments, segments[1:]):
        assert a["end_s"] <= b["start_s"] + 1e-6
        assert a["unit_end"] <= b["unit_start"] + 1  # a boundary frame may be shared
        assert a["dedup_end"] <= b["dedup_start"] + 1
    for s in segments:
        assert s["unit_start"] < s["unit_end"] <= units.num_frames
        assert s["dedup_start"] < s["dedup_end"] <= len(runs)


def test_policy_errors_name_the_field():
    from echoforge.errors import ConfigError

    with pytest.raises(ConfigError, match="segments"):
        parse_config({"segments": {"min_tokens": 10, "max_tokens": 5}})
