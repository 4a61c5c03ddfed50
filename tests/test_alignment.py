"""Word alignment of a hand-checked sentence: our spans (phoneme durations) against the audio's
energy and Whisper's word timestamps, and the unit spans derived from them."""

from __future__ import annotations

import numpy as np
import pytest

from echoforge.audio import resample
from echoforge.backends.asr import WHISPER_RATE, WhisperASR
from echoforge.backends.tts.base import VoiceRequest
from echoforge.backends.tts.piper import PiperBackend
from echoforge.backends.aligners.agreement import alignment_figures
from echoforge.commands.eval_units import match_word_starts, normalize_word
from echoforge.schemas.records import Units, Word
from echoforge.transforms.align import unit_spans

SENTENCE = "The quick brown fox jumps over the lazy dog."
WORDS = ["The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]


@pytest.fixture(scope="module")
def speech():
    backend = PiperBackend(["joe"])
    backend.setup()
    return backend.synthesize(VoiceRequest((SENTENCE,), "joe", 1.0, 0))


@pytest.fixture(scope="module")
def units(speech):
    from echoforge.registry import unit_tokenizers

    tok = unit_tokenizers.create("whisper-kmeans")
    tok.setup()
    return tok.encode(speech.audio, speech.sample_rate)


def _loud_frames(audio: np.ndarray, rate: int, frame_s: float = 0.01, threshold_db: float = -40.0) -> np.ndarray:
    f = int(rate * frame_s)
    n = len(audio) // f
    rms = np.sqrt(np.mean(audio[: n * f].reshape(n, f).astype(np.float64) ** 2, axis=1))
    return np.flatnonzero(20 * np.log10(rms + 1e-12) > threshold_db)


def test_word_order_and_monotonic_spans(speech):
    assert [w.word for w in speech.words] == WORDS
    prev_end = 0.0
    for w in speech.words:
        assert prev_end <= w.start_s < w.end_s <= speech.duration_s
        prev_end = w.end_s
    assert speech.sentences[0].start_s <= speech.words[0].start_s
    assert speech.words[-1].end_s <= speech.sentences[0].end_s


def test_spans_match_the_audio_energy(speech):
    """Hand check: speech starts where the first word does and stops where the last one ends."""
    loud = _loud_frames(speech.audio, speech.sample_rate)
    onset, offset = loud[0] * 0.01, (loud[-1] + 1) * 0.01
    assert abs(speech.words[0].start_s - onset) <= 0.03
    assert abs(speech.words[-1].end_s - offset) <= 0.1
    # A word's middle is speech, not silence (here "fox", around its stressed vowel).
    fox = speech.words[3]
    mid = int((fox.start_s + fox.end_s) / 2 * 100)
    assert mid in set(loud.tolist())


def test_whisper_word_starts_agree(speech):
    asr = WhisperASR()
    asr.setup()
    heard = asr.transcribe(resample(speech.audio, speech.sample_rate, WHISPER_RATE), word_timestamps=True)
    assert [normalize_word(w) for w, _, _ in heard.words] == [normalize_word(w) for w in WORDS]
    pairs = match_word_starts([(w.word, w.start_s) for w in speech.words], [(w, a) for w, a, _ in heard.words])
    assert len(pairs) == len(WORDS)
    errors = [t - o for o, t in pairs]
    figures = alignment_figures(errors, len(WORDS))
    # Whisper tiny.en's timestamps are coarse (20 ms steps, and it can pull a word start back to
    # the previous word's end): most starts agree within 100 ms, the median well within it.
    assert figures["alignment_median_start_error_ms"] <= 100
    assert figures["alignment_within_100ms"] >= 7 / 9
    assert figures["alignment_words_matched"] == 9


def test_unit_spans_are_times_the_frame_rate(speech, units):
    assert units.frame_rate == 50.0
    assert abs(units.num_frames - speech.duration_s * 50) <= 2
    spans = unit_spans(speech.words, units)
    _, runs = units.dedup()
    run_starts = np.concatenate([[0], np.cumsum(runs)[:-1]])
    run_ends = run_starts + runs
    prev = 0
    for w, s in zip(speech.words, spans):
        # The raw span is the frames (20 ms each) that the word's time touches.
        start, end = w.start_s * 50, w.end_s * 50
        assert s["unit_start"] <= start < s["unit_start"] + 1
        assert s["unit_end"] - 1 < end <= s["unit_end"] or s["unit_end"] == units.num_frames
        assert s["unit_start"] >= prev - 1  # spans follow each other (a boundary frame may be shared)
        prev = s["unit_end"]
        # The deduplicated span holds exactly the runs that the raw span touches.
        touched = np.flatnonzero((run_starts < s["unit_end"]) & (run_ends > s["unit_start"]))
        assert (s["dedup_start"], s["dedup_end"]) == (touched[0], touched[-1] + 1)


def test_match_word_starts_skips_words_the_asr_got_wrong():
    ours = [("The", 0.1), ("quick", 0.3), ("brown", 0.6), ("fox", 0.9)]
    theirs = [("the", 0.12), ("quack", 0.33), ("brown,", 0.58), ("fox.", 0.95)]
    assert match_word_starts(ours, theirs) == [(0.1, 0.12), (0.6, 0.58), (0.9, 0.95)]
    figures = alignment_figures([0.02, -0.02, 0.05, 0.2], 5)
    assert figures["alignment_median_start_error_ms"] == pytest.approx(35.0)
    assert figures["alignment_within_100ms"] == 0.75
    assert figures["alignment_words_total"] == 5
    assert alignment_figures([], 3)["alignment_median_start_error_ms"] is None


def test_unit_spans_clip_to_the_units():
    units = Units(np.array([[1, 1, 2, 2, 2, 3]], dtype=np.int32), 50.0, 4, "test")
    spans = unit_spans([Word("a", 0.0, 0.05), Word("b", 0.05, 0.5)], units)
    assert [(s["unit_start"], s["unit_end"], s["dedup_start"], s["dedup_end"]) for s in spans] == [
        (0, 3, 0, 2), (2, 6, 1, 3)]
