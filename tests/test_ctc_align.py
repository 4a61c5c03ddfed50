"""CTC forced alignment (torchaudio.functional.forced_align): the hama phoneme model on speech
from the bundled voice, and a wav2vec2 CTC checkpoint (tiny, random) through its loading code."""

from __future__ import annotations

import numpy as np
import pytest

from echoforge.registry import word_aligners
from echoforge.backends.aligners.ctc import spoken_word
from echoforge.backends.tts.base import VoiceRequest
from echoforge.backends.tts.piper import PiperBackend
from echoforge.errors import ConfigError
from tiny_models import save_wav2vec2_ctc, speechlike

SENTENCES = ("The quick brown fox jumps over the lazy dog.",
             "Forty two people came to the meeting at seven o'clock, and nobody left early.")


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
