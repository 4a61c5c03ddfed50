"""CTC forced alignment (torchaudio.functional.forced_align): the hama phoneme model on speech
from the bundled voice (a short answer, and a long one past the model's 30 s window), and a
wav2vec2 CTC checkpoint (tiny, random) through its loading code."""

from __future__ import annotations

import numpy as np
import pytest

from echoforge.backends.aligners import AlignItem
from echoforge.registry import word_aligners
from echoforge.backends.aligners.ctc import spoken_word
from echoforge.backends.tts.base import VoiceRequest
from echoforge.text.words import sentence_words
from echoforge.backends.tts.piper import PiperBackend
from echoforge.errors import ConfigError
from tiny_models import save_wav2vec2_ctc, speechlike

SENTENCES = ("The quick brown fox jumps over the lazy dog.",
             "Forty two people came to the meeting at seven o'clock, and nobody left early.")
# A long spoken answer (numbers as the normaliser writes them, names, a list): about 40 s
LONG = (("Apollo eleven launched from Kennedy Space Center on July sixteenth, nineteen sixty nine, carrying "
         "Neil Armstrong, Buzz Aldrin and Michael Collins."),
        ("The Saturn five rocket burned about two thousand tonnes of propellant in its first one hundred and "
         "sixty eight seconds."),
        "Four days later, the lunar module Eagle separated from Columbia and landed in the Sea of Tranquility.",
        ("Armstrong stepped onto the surface at two fifty six UTC on July twenty first, followed by Aldrin "
         "about nineteen minutes later."),
        "They collected twenty one point five kilograms of rock, planted a flag and left a plaque.",
        ("The crew splashed down in the Pacific on July twenty fourth, after eight days, three hours and "
         "eighteen minutes in flight."))


@pytest.fixture(scope="module")
def speech():
    backend = PiperBackend(["joe"])
    backend.setup()
    return backend.synthesize(VoiceRequest(SENTENCES, "joe", 1.0, 0))


@pytest.fixture(scope="module")
def hama():
    aligner = word_aligners.create("hama")
    aligner.setup()
    return aligner


def test_hama_word_starts_agree_with_the_synthesiser(speech, hama):
    words = [w.word for w in speech.words]
    placed = hama.align(speech.audio, speech.sample_rate, words)
    assert len(placed) == len(words) == 23 and all(p is not None for p in placed)
    starts = [p.start_s for p in placed]
    assert starts == sorted(starts) and all(p.start_s < p.end_s <= speech.duration_s + 0.02 for p in placed)
    diffs = np.abs(np.array(starts) - np.array([w.start_s for w in speech.words]))
    assert np.median(diffs) <= 0.05  # the median word starts within 50 ms of Piper's durations
    assert np.mean(diffs <= 0.1) >= 0.9


@pytest.fixture(scope="module")
def long_speech():
    backend = PiperBackend(["joe"])
    backend.setup()
    return backend.synthesize(VoiceRequest(LONG, "joe", 1.0, 0))


def start_errors(speech, placed) -> np.ndarray:
    assert len(placed) == len(speech.words) and all(p is not None for p in placed)
    return np.abs(np.array([p.start_s for p in placed]) - np.array([w.start_s for w in speech.words]))


def test_a_long_answer_agrees_with_the_synthesiser_sentence_by_sentence(long_speech, hama):
    assert long_speech.duration_s > 35  # past the model's 30 s window
    words = [w.word for w in long_speech.words]
    sentences = [(s.start_s, s.end_s, len(sentence_words(t))) for s, t in zip(long_speech.sentences, LONG)]
    by_sentence = hama.align(long_speech.audio, long_speech.sample_rate, words, sentences)
    err = start_errors(long_speech, by_sentence)
    assert np.quantile(err, 0.9) <= 0.15 and np.mean(err <= 0.1) >= 0.95
    # without the sentences, the overlapping windows alone keep the end of the answer in place
    whole = start_errors(long_speech, hama.align(long_speech.audio, long_speech.sample_rate, words))
    assert np.quantile(whole, 0.9) <= 0.15 and np.mean(whole <= 0.1) >= 0.95
    assert whole[-10:].max() <= 0.15  # past 30 s: the model's own window would have lost these


def test_long_audio_is_heard_in_windows(long_speech, hama):
    from echoforge.audio import resample

    wav = resample(long_speech.audio, long_speech.sample_rate, 16_000)
    plan = hama.windows(len(wav))
    assert len(plan) == 2 and all(hi - lo <= 30 * 16_000 for lo, hi, _, _ in plan)
    (em,) = hama.emissions([wav])
    assert len(em) == len(wav) // 320 + 1  # every 20 ms frame, not the model's first 1,500
    # the first window's kept frames are the frames the model gives for that audio alone
    lo, hi, first, count = plan[0]
    alone = hama.emissions_batch([wav[lo:hi]])[0]
    assert np.array_equal(em[:count], alone[first:first + count])
    with pytest.raises(ValueError, match="sentences hold"):
        hama.align_batch([AlignItem(long_speech.audio, long_speech.sample_rate, ["a", "b"], [(0.0, 1.0, 1)])])


def test_hama_batches_words_without_tokens_and_short_audio(speech, hama):
    words = [w.word for w in speech.words]
    one = hama.align(speech.audio, speech.sample_rate, words)
    both = hama.align_batch([(speech.audio, speech.sample_rate, words), (speech.audio[:2000], speech.sample_rate, words)])
    assert [(p.start_s, p.end_s) for p in both[0]] == [(p.start_s, p.end_s) for p in one]
    assert both[1] == [None] * len(words)  # 0.09 s cannot hold 23 words: nothing is placed
    with_symbol = hama.align(speech.audio, speech.sample_rate, words[:3] + ["—"] + words[3:])
    assert with_symbol[3] is None and [p.start_s for p in with_symbol[:3] + with_symbol[4:]] == [p.start_s for p in one]


def test_spoken_word():
    assert [spoken_word(w) for w in ("O'Clock,", "'twas", "—", "42")] == ["o'clock", "twas", "", ""]


def test_wav2vec2_ctc_checkpoint_by_path(tmp_path):
    path = save_wav2vec2_ctc(tmp_path / "tiny-w2v2")
    aligner = word_aligners.create("wav2vec2", model=str(path), pad_batches=True)
    aligner.setup()
    assert aligner.frame_s == 0.02 and aligner.blank == 0 and aligner.separator == 2
    assert aligner.word_tokens("o'clock") == [4 + ord(c) - ord("A") if c != "'" else 3 for c in "O'CLOCK"]
    items = [(speechlike(2.0, 16_000, seed=i), 16_000, ["hello", "big", "world"]) for i in range(2)]
    items.append((speechlike(0.9, 22_050, seed=5), 22_050, ["one", "more"]))
    batch = aligner.align_batch(items)
    for item, placed in zip(items, batch):
        alone = aligner.align(*item)
        assert [(p.start_s, p.end_s) for p in placed] == [(p.start_s, p.end_s) for p in alone]
        assert all(p is not None for p in placed) and [p.word for p in placed] == item[2]
        assert all(a.end_s <= b.start_s for a, b in zip(placed, placed[1:]))  # words in order, not overlapping
    with pytest.raises(ConfigError, match="cannot load a Wav2Vec2ForCTC"):
        word_aligners.create("wav2vec2", model=str(tmp_path)).setup()
