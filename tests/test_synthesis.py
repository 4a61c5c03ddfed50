"""Piper synthesis: determinism, word timings, voice policy, question audio at 16 kHz."""

from __future__ import annotations

import numpy as np
import pytest

from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.piper import PiperBackend
from echoforge.config import parse_config
from echoforge.schemas.records import Turn
from echoforge.transforms.synthesize import Synthesize


@pytest.fixture(scope="module")
def piper():
    backend = PiperBackend(["joe"])
    backend.setup()
    return backend


def test_same_seed_same_samples_other_seed_other_samples(piper):
    request = VoiceRequest(("The cat sat on the mat.",), "joe", 1.0, 42)
    a, b = piper.synthesize(request), piper.synthesize(request)
    assert np.array_equal(a.audio, b.audio)
    c = piper.synthesize(VoiceRequest(request.sentences, "joe", 1.0, 43))
    assert not (len(c.audio) == len(a.audio) and np.array_equal(a.audio, c.audio))


def test_fresh_process_gives_the_same_samples(piper):
    import subprocess
    import sys

    code = ("import numpy as np, sys; from echoforge.backends.tts.piper import PiperBackend; "
            "from echoforge.backends.tts import VoiceRequest; b = PiperBackend(['joe']); b.setup(); "
            "a = b.synthesize(VoiceRequest(('Hello there.',), 'joe', 1.05, 7)).audio; "
            "sys.stdout.write(a.tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = piper.synthesize(VoiceRequest(("Hello there.",), "joe", 1.05, 7)).audio
    assert bytes.fromhex(out) == here.tobytes()


def test_word_and_sentence_timings(piper):
    speech = piper.synthesize(VoiceRequest(("Good morning, everyone.", "Let us begin the lesson."), "joe", 1.0, 1))
    assert [w.word for w in speech.words] == ["Good", "morning", "everyone", "Let", "us", "begin", "the", "lesson"]
    starts = [w.start_s for w in speech.words]
    assert starts == sorted(starts) and all(w.end_s >= w.start_s for w in speech.words)
    assert speech.words[-1].end_s <= speech.duration_s + 1e-6
    first, second = speech.sentences
    assert first.end_s <= second.start_s and second.start_s - first.end_s >= 0.2  # the sentence pause
    assert max(abs(speech.audio)) == pytest.approx(0.9, abs=1e-3)  # peak-normalised, never clipped


def test_slower_rate_gives_longer_audio(piper):
    text = ("A slower voice takes longer to say the same words.",)
    fast = piper.synthesize(VoiceRequest(text, "joe", 0.9, 3)).duration_s
    slow = piper.synthesize(VoiceRequest(text, "joe", 1.1, 3)).duration_s
    assert slow > fast * 1.05  # durations are ceil-rounded per phoneme, so not exactly 1.1 / 0.9


def test_voice_policy_and_question_rate():
    stage = Synthesize(parse_config({"synthesis": {"user_voices": ["joe", "joe#0"], "rate_jitter": 0.1}}))
    turns = [Turn(id=f"id{i}", source="s", source_position="s", conversation_id=f"conv{i // 3}", turn_index=i % 3,
                  history=[], question_text="q", answer_text="a") for i in range(30)]
    picks = [stage.voices_for(t) for t in turns]
    again = Synthesize(parse_config({"synthesis": {"user_voices": ["joe", "joe#0"], "rate_jitter": 0.1}}))
    assert picks == [again.voices_for(t) for t in reversed(turns)][::-1]  # deterministic, order-free
    by_conv = {}
    for t, (uv, qr, av, ar) in zip(turns, picks):
        by_conv.setdefault(t.conversation_id, set()).add(uv)
        assert av == "joe" and 0.9 <= qr <= 1.1 and 0.97 <= ar <= 1.03
    assert all(len(v) == 1 for v in by_conv.values())  # one user voice per conversation
    assert len({next(iter(v)) for v in by_conv.values()}) == 2  # both voices used across the corpus
    assert len({qr for _, qr, _, _ in picks}) > 20  # rates vary per turn


def test_unknown_voice_is_a_config_error(tmp_path):
    from echoforge.errors import ConfigError

    with pytest.raises(ConfigError, match="no Piper model"):
        PiperBackend([str(tmp_path / "missing.onnx")]).setup()


def test_piper_reads_its_own_section():
    """Without noise (synthesis.piper) the seed no longer matters; the default voice's noise does."""
    quiet = PiperBackend.from_config(["joe"], parse_config({"synthesis": {"piper": {"noise_scale": 0.0,
                                                                                     "noise_w": 0.0}}}).synthesis)
    quiet.setup()
    text = ("Quiet noise.",)
    a, b = (quiet.synthesize(VoiceRequest(text, "joe", 1.0, seed)).audio for seed in (1, 2))
    assert len(a) > 0 and np.array_equal(a, b)
    default = PiperBackend.from_config(["joe"], parse_config({}).synthesis)
    default.setup()
    c, d = (default.synthesize(VoiceRequest(text, "joe", 1.0, seed)).audio for seed in (1, 2))
    assert not (len(c) == len(d) and np.array_equal(c, d))


def test_a_cuda_section_asks_for_a_gpu_only_when_its_backend_speaks():
    def gpus(**synthesis) -> float:
        return Synthesize(parse_config({"synthesis": synthesis})).resources.num_gpus

    assert gpus() == 0.0
    assert gpus(coqui={"device": "cuda"}) == 0.0  # no coqui voice in the pool
    assert gpus(coqui={"device": "cuda"}, user_voices=["joe", "coqui:/models/vits#p225"]) == 1.0
    assert gpus(piper={"device": "cuda"}) == 1.0
