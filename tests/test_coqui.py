"""Coqui TTS backend on a tiny random multi-speaker VITS saved as coqui saves models and loaded
back through coqui's own loading path: determinism, speakers, durations, word spans."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from echoforge.backends.tts import VoiceRequest
from echoforge.text.words import sentence_words
from echoforge.backends.tts.coqui import CoquiBackend
from echoforge.backends.tts.coqui import CoquiConfig
from echoforge.errors import ConfigError

from tiny_coqui import SPEAKERS, make_tiny_vits

SENTENCES = ("Hello there, old friend.", "It's a fine day for a walk.")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_vits(tmp_path_factory.mktemp("coqui") / "tiny-vits")


@pytest.fixture(scope="module")
def backend(model_dir):
    b = CoquiBackend([f"{model_dir}#bo", f"{model_dir}#1", f"{model_dir}#ada", f"{model_dir}"])
    b.setup()
    return b


def _say(backend, voice, seed=7, rate=1.0, sentences=SENTENCES):
    return backend.synthesize(VoiceRequest(sentences, voice, rate, seed))


def test_same_seed_same_samples_other_seed_other_samples(backend, model_dir):
    a, b = _say(backend, f"{model_dir}#bo"), _say(backend, f"{model_dir}#bo")
    assert np.array_equal(a.audio, b.audio) and len(a.audio) > 0
    c = _say(backend, f"{model_dir}#bo", seed=8)
    assert not (len(c.audio) == len(a.audio) and np.array_equal(a.audio, c.audio))


def test_fresh_process_gives_the_same_samples(backend, model_dir):
    code = ("import sys; from echoforge.backends.tts.coqui import CoquiBackend; "
            "from echoforge.backends.tts import VoiceRequest; "
            f"b = CoquiBackend([{str(model_dir) + '#cy'!r}]); b.setup(); "
            f"a = b.synthesize(VoiceRequest(('Good morning.',), {str(model_dir) + '#cy'!r}, 1.05, 3)).audio; "
            "sys.stdout.write(a.tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    here = CoquiBackend([f"{model_dir}#cy"])
    here.setup()
    assert bytes.fromhex(out) == here.synthesize(VoiceRequest(("Good morning.",), f"{model_dir}#cy", 1.05, 3)).audio.tobytes()


def test_speaker_by_name_or_index(backend, model_dir):
    by_name, by_index = _say(backend, f"{model_dir}#bo"), _say(backend, f"{model_dir}#1")
    assert np.array_equal(by_name.audio, by_index.audio)
    assert by_name.speaker == by_index.speaker == "tiny-vits#bo"
    other = _say(backend, f"{model_dir}#ada")
    assert other.speaker == "tiny-vits#ada"
    n = min(len(other.audio), len(by_name.audio))
    assert not np.allclose(other.audio[:n], by_name.audio[:n], atol=1e-3)
    assert backend.speaker_of(str(model_dir)) == "tiny-vits#ada"  # no speaker named: the first
    assert backend.speakers(f"{model_dir}#bo") == SPEAKERS
    assert backend.sample_rate(f"{model_dir}#bo") == 16_000


def test_unknown_speakers_are_config_errors(model_dir):
    with pytest.raises(ConfigError, match="no speaker 'zed'"):
        CoquiBackend([f"{model_dir}#zed"]).setup()
    with pytest.raises(ConfigError, match="speaker index 7 of 3"):
        CoquiBackend([f"{model_dir}#7"]).setup()
    with pytest.raises(ConfigError, match="no model directory"):
        CoquiBackend([f"{model_dir}-missing"]).setup()


def test_durations_cover_the_audio(backend, model_dir):
    speech = _say(backend, f"{model_dir}#bo", sentences=(SENTENCES[0],))
    symbols = [p for p, _, _ in speech.phonemes]
    assert "".join(symbols) == SENTENCES[0].lower()  # every character of the cleaned text, in order
    hop = 64 / 16_000
    spans = [(a, b) for _, a, b in speech.phonemes]
    assert all(b > a for a, b in spans)  # every symbol lasts at least a frame
    assert all(b1 <= a2 + 1e-9 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    # Symbols and the blanks between them add up to the audio: frames of hop_length samples.
    assert len(speech.audio) % 64 == 0
    assert 0 <= spans[0][0] and spans[-1][1] <= speech.duration_s
    blanks = [a2 - b1 for (_, b1), (a2, _) in zip(spans, spans[1:])]
    covered = sum(b - a for a, b in spans) + sum(blanks) + spans[0][0] + (speech.duration_s - spans[-1][1])
    assert covered == pytest.approx(speech.duration_s, abs=1e-6)
    assert all(round(g / hop, 6).is_integer() for g in blanks)


def test_word_and_sentence_spans(backend, model_dir):
    speech = _say(backend, f"{model_dir}#bo")
    expected = [w for s in SENTENCES for w in sentence_words(s)]
    assert [w.word for w in speech.words] == expected
    prev = 0.0
    for w in speech.words:
        assert prev <= w.start_s < w.end_s <= speech.duration_s
        prev = w.end_s
    first, second = speech.sentences
    assert second.start_s - first.end_s == pytest.approx(0.25, abs=1e-3)
    assert first.start_s <= speech.words[0].start_s and speech.words[-1].end_s <= second.end_s
    assert max(abs(speech.audio)) == pytest.approx(0.9, abs=1e-3)


def test_slower_rate_gives_longer_audio(backend, model_dir):
    fast = _say(backend, f"{model_dir}#bo", rate=0.8).duration_s
    slow = _say(backend, f"{model_dir}#bo", rate=1.25).duration_s
    assert slow > fast * 1.2


def test_a_moved_model_directory_loads(model_dir, tmp_path):
    """coqui writes the absolute path of the speakers file; a moved directory still finds its own."""
    built = make_tiny_vits(tmp_path / "built-here")  # same seed: the same weights as model_dir
    moved = tmp_path / "moved-vits"
    shutil.move(built, moved)
    assert not built.exists()
    copy = CoquiBackend([f"{moved}#cy"])
    copy.setup()
    assert copy.speaker_of(f"{moved}#cy") == "moved-vits#cy" and copy.speakers(f"{moved}#cy") == SPEAKERS
    original = CoquiBackend([f"{model_dir}#cy"])
    original.setup()
    said = copy.synthesize(VoiceRequest(("Same weights.",), f"{moved}#cy", 1.0, 1)).audio
    assert np.array_equal(said, original.synthesize(VoiceRequest(("Same weights.",), f"{model_dir}#cy", 1.0, 1)).audio)


@pytest.fixture(scope="module")
def xtts(tmp_path_factory):
    """A tiny random XTTS and two reference clips of different voices: (model dir, clip, other clip)."""
    import soundfile as sf

    from tiny_coqui import make_tiny_xtts

    root = tmp_path_factory.mktemp("xtts")
    model = make_tiny_xtts(root / "tiny-xtts")
    t = np.arange(22050) / 22050
    maria = (np.random.default_rng(0).standard_normal(22050) * 0.1).astype(np.float32)
    tom = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    sf.write(root / "maria.wav", maria, 22050)
    sf.write(root / "tom.wav", tom, 22050)
    return model, root / "maria.wav", root / "tom.wav"


def test_xtts_voice_loads_from_a_model_directory_with_reference_clips(xtts, tmp_path):
    model, clip, _ = xtts
    voice = f"{model}#{clip}"
    backend = CoquiBackend([voice])
    backend.setup()
    assert backend.speaker_of(voice) == "tiny-xtts#maria"
    assert backend.sample_rate(voice) == 24_000 and backend.speakers(voice) == []
    latents = backend._voices[voice].model.get_conditioning_latents(audio_path=[str(clip)])
    gpt_prompt, speaker_embedding = latents  # the clip, as the GPT's prompt and as a speaker embedding
    assert gpt_prompt.shape[0] == 1 and gpt_prompt.shape[2] == 32 and tuple(speaker_embedding.shape) == (1, 512, 1)
    with pytest.raises(ConfigError, match="needs reference clips"):
        CoquiBackend([str(model)]).setup()
    with pytest.raises(ConfigError, match="reference clip not found"):
        CoquiBackend([f"{model}#{tmp_path / 'nobody.wav'}"]).setup()


@pytest.fixture(scope="module")
def xtts_backend(xtts):
    model, maria, tom = xtts
    backend = CoquiBackend([f"{model}#{maria}", f"{model}#{tom}"])
    backend.setup()
    return backend


def test_xtts_speaks_seeded_without_durations(xtts, xtts_backend):
    """XTTS generates under transformers 5 (coqui_compat), the same samples for the same seed."""
    model, maria, _ = xtts
    voice = f"{model}#{maria}"
    a, b = _say(xtts_backend, voice, seed=5), _say(xtts_backend, voice, seed=5)
    assert len(a.audio) > 0 and np.array_equal(a.audio, b.audio)
    assert a.sample_rate == 24_000 and np.isfinite(a.audio).all() and max(abs(a.audio)) == pytest.approx(0.9, abs=1e-3)
    assert a.words == [] and a.phonemes == []  # for a forced aligner to time
    first, second = a.sentences
    assert [first.word, second.word] == list(SENTENCES)
    assert first.start_s == 0 and first.end_s > 0 and second.end_s == pytest.approx(a.duration_s)
    assert second.start_s - first.end_s == pytest.approx(0.25, abs=1e-3)
    c = _say(xtts_backend, voice, seed=6)
    assert not (len(c.audio) == len(a.audio) and np.array_equal(a.audio, c.audio))


def test_xtts_reference_clip_changes_the_voice(xtts, xtts_backend):
    model, maria, tom = xtts
    a = _say(xtts_backend, f"{model}#{maria}", seed=5, sentences=("Hello there.",))
    b = _say(xtts_backend, f"{model}#{tom}", seed=5, sentences=("Hello there.",))
    assert xtts_backend.speaker_of(f"{model}#{tom}") == "tiny-xtts#tom"
    n = min(len(a.audio), len(b.audio))
    assert n > 0 and not np.allclose(a.audio[:n], b.audio[:n], atol=1e-2)


def test_coqui_reads_its_own_section(model_dir):
    """synthesis.coqui's VITS noise reaches the model: without noise, seeds give the same samples."""
    from echoforge.config import parse_config

    voice = f"{model_dir}#bo"
    quiet = CoquiBackend.from_config([voice], parse_config(
        {"synthesis": {"coqui": {"noise_scale": 0.0, "noise_scale_dp": 0.0}}}).synthesis)
    quiet.setup()
    a, b = _say(quiet, voice, seed=1), _say(quiet, voice, seed=2)
    assert len(a.audio) > 0 and np.array_equal(a.audio, b.audio)
    noisy = CoquiBackend.from_config([voice], parse_config({}).synthesis)
    noisy.setup()
    c, d = _say(noisy, voice, seed=1), _say(noisy, voice, seed=2)
    assert not (len(c.audio) == len(d.audio) and np.array_equal(c.audio, d.audio))
    assert c.words and [p for p, _, _ in c.phonemes]  # VITS gives symbol durations


def test_cuda_without_a_gpu_is_one_config_error(model_dir):
    import torch

    if torch.cuda.is_available():  # the error is for machines without one
        backend = CoquiBackend([f"{model_dir}#bo"], CoquiConfig(device="cuda"))
        backend.setup()
        assert backend.sample_rate(f"{model_dir}#bo") == 16_000
        return
    with pytest.raises(ConfigError, match="synthesis.coqui.device is 'cuda' but torch sees no CUDA device"):
        CoquiBackend([f"{model_dir}#bo"], CoquiConfig(device="cuda")).setup()


def test_build_with_an_xtts_voice_times_its_words_by_ctc(xtts, tmp_path, cache_env):
    """XTTS gives no durations: under ``align.aligner: auto`` the CTC aligner times its words,
    and the build validates."""
    import json

    from echoforge.config import parse_config
    from echoforge.pipeline.build import build
    from echoforge.pipeline.output import iter_shards
    from echoforge.commands.validate import validate_output

    model, maria, _ = xtts
    rows = tmp_path / "short.jsonl"
    rows.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in
                            [("Who wrote it?", "She did."), ("Is it late?", "Not yet.")]))
    config = parse_config({"run": {"workers": 1}, "output": {"validation_fraction": 0.0},
                           "gate": {"asr": "none", "min_duration_s": 0.0}, "units": {"device": "cpu"},
                           "synthesis": {"backend": "coqui", "assistant_voice": f"{model}#{maria}",
                                         "user_voices": [f"{model}#{maria}"]}})
    out = tmp_path / "xtts"
    manifest = build([str(rows)], out, config)
    assert manifest["rows"] == 2, manifest["rejects_by_reason"]
    assert manifest["models"]["word_aligner"].startswith("hama")
    for _, table in iter_shards(out, ["alignment_source", "alignment", "answer_duration_s"]):
        for row in table.to_pylist():
            assert row["alignment_source"] == "ctc" and len(row["alignment"]) == 2
            assert all(0 <= w["start_s"] <= w["end_s"] <= row["answer_duration_s"] + 1e-6 for w in row["alignment"])
    problems, _ = validate_output(out)
    assert problems == []
