"""The align stage's word-timing sources: the synthesiser's durations, the CTC aligner (hama) on
the answer audio, ``auto`` for voices without durations, and the ``align.check`` columns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from echoforge.backends.aligners.ctc import HamaAligner
from echoforge.backends.tts import VoiceRequest
from echoforge.registry import tts_backends
from echoforge.backends.tts.piper import PiperBackend
from echoforge.config import parse_config
from echoforge.errors import ConfigError
from echoforge.pipeline.build import build
from echoforge.pipeline.output import iter_shards, load_manifest
from echoforge.schemas.records import Turn, Units
from echoforge.transforms.align import Align
from echoforge.commands.validate import validate_output

from conftest import FAST_CONFIG, SHAREGPT

pytestmark = pytest.mark.slow

CHECK = ["ctc_median_start_error_ms", "ctc_p90_start_error_ms", "ctc_within_50ms", "ctc_within_100ms",
         "ctc_median_signed_error_ms", "ctc_words_matched"]


@tts_backends.register("piper-without-durations")
class PiperWithoutDurations(PiperBackend):
    """Piper's audio without its word and phoneme durations: sentence spans only, as a codec-LM
    voice (XTTS) gives its speech."""

    def synthesize(self, request: VoiceRequest):
        return dataclasses.replace(super().synthesize(request), words=[], phonemes=[])


def _build(tmp_path_factory, name: str, **sections) -> dict[str, dict]:
    out = tmp_path_factory.mktemp(name) / "out"
    config = parse_config({**FAST_CONFIG, "gate": {"asr": "none"}, **sections})
    build([str(SHAREGPT)], out, config, limit=3)
    assert validate_output(out)[0] == []
    rows = {r["id"]: r for _, t in iter_shards(out) for r in t.to_pylist()}
    assert len(rows) >= 4
    return {"rows": rows, "models": load_manifest(out)["models"]}


@pytest.fixture(scope="module")
def synthesiser(tmp_path_factory, cache_env):
    return _build(tmp_path_factory, "synthesiser", align={"check": True})


@pytest.fixture(scope="module")
def ctc(tmp_path_factory, cache_env):
    return _build(tmp_path_factory, "ctc", align={"aligner": "ctc"})


@pytest.fixture(scope="module")
def without_durations(tmp_path_factory, cache_env):
    return _build(tmp_path_factory, "nodur", align={"check": True},
                  synthesis={"backend": "piper-without-durations"})


def _starts(row):
    return [(w["word"], w["start_s"]) for w in row["alignment"]]


def test_ctc_word_starts_agree_with_the_synthesiser(synthesiser, ctc):
    assert ctc["rows"].keys() == synthesiser["rows"].keys()
    diffs = []
    for rid, row in ctc["rows"].items():
        ours = synthesiser["rows"][rid]
        assert row["alignment_source"] == "ctc" and ours["alignment_source"] == "synthesiser"
        assert [w["word"] for w in row["alignment"]] == [w["word"] for w in ours["alignment"]]
        diffs += [c["start_s"] - s["start_s"] for c, s in zip(row["alignment"], ours["alignment"])]
        assert all(row[name] is None for name in CHECK)  # no check asked
        # echo segments keep their texts and token counts; only their times follow the new word starts
        assert [(s["text"], s["num_tokens"]) for s in row["echo_segments"]] == [
            (s["text"], s["num_tokens"]) for s in ours["echo_segments"]]
    assert len(diffs) > 40
    assert np.median(np.abs(diffs)) <= 0.05
    assert np.mean(np.abs(diffs) <= 0.1) >= 0.9
    assert ctc["models"]["word_aligner"].startswith("hama phoneme CTC")


def test_check_columns_measure_the_ctc_build(synthesiser, ctc):
    """The check figures of one build equal what comparing it with a CTC build of the same rows gives."""
    for rid, row in synthesiser["rows"].items():
        other = ctc["rows"][rid]["alignment"]
        abs_ms = np.abs([c["start_s"] - s["start_s"] for c, s in zip(other, row["alignment"])]) * 1000
        assert row["ctc_words_matched"] == len(row["alignment"])
        assert row["ctc_median_start_error_ms"] == pytest.approx(np.median(abs_ms), abs=0.15)
        assert row["ctc_within_50ms"] == pytest.approx(np.mean(abs_ms <= 50.05), abs=1e-3)
        assert 0 <= row["ctc_within_50ms"] <= row["ctc_within_100ms"] <= 1
        assert row["ctc_median_start_error_ms"] <= row["ctc_p90_start_error_ms"] < 200
        assert abs(row["ctc_median_signed_error_ms"]) <= row["ctc_p90_start_error_ms"]


def test_auto_aligns_speech_without_durations(without_durations, ctc, synthesiser):
    rows = without_durations["rows"]
    assert rows.keys() == ctc["rows"].keys()
    for rid, row in rows.items():
        assert row["alignment_source"] == "ctc"
        # the same audio as Piper's, so the aligner finds the same word spans as in the CTC build
        assert _starts(row) == _starts(ctc["rows"][rid])
        assert row["echo_segments"] == ctc["rows"][rid]["echo_segments"]
        # nothing to check the aligner against
        assert row["ctc_words_matched"] == 0 and row["ctc_median_start_error_ms"] is None
    assert "word_aligner" in synthesiser["models"]


# --- the stage alone ---------------------------------------------------------------------

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "It was a sunny day."]


@pytest.fixture(scope="module")
def speech():
    backend = PiperBackend(["joe"])
    backend.setup()
    return backend.synthesize(VoiceRequest(tuple(SENTENCES), "joe", 1.0, 3))


def _turn(speech, i: int = 0, sentences=SENTENCES) -> Turn:
    frames = int(np.ceil(speech.duration_s * 50))
    codes = np.random.default_rng(i).integers(0, 8, size=(1, frames)).astype(np.int32)
    return Turn(id=f"t{i}", source="s", source_position=f"s:row {i}", conversation_id="c", turn_index=0, history=[],
                question_text="q", answer_text=" ".join(sentences), answer_spoken=" ".join(sentences),
                answer_sentences=list(sentences), answer_speech=speech, answer_units=Units(codes, 50.0, 8, "test"))


def test_turns_that_cannot_be_aligned_are_rejects(speech):
    stage = Align(parse_config({"align": {"aligner": "ctc"}}))
    stage.ensure_setup()
    silent = dataclasses.replace(speech, audio=np.zeros(800, dtype=np.float32))  # 0.04 s for 14 words
    digits = dataclasses.replace(speech, sentences=[dataclasses.replace(speech.sentences[0], word="42 7.")])
    kept, rejected = stage.process([_turn(speech, 0), _turn(silent, 1), _turn(digits, 2, ["42 7."])])
    assert [t.id for t in kept] == ["t0"] and kept[0].extra["alignment_source"] == "ctc"
    assert [(r.id, r.stage, r.reason) for r in rejected] == [("t1", "align", "ctc_unaligned"),
                                                           ("t2", "align", "ctc_unaligned")]
    assert "placed none of the 14 words" in rejected[0].detail and rejected[0].source_position == "s:row 1"
    no_durations = dataclasses.replace(speech, words=[])
    kept, rejected = Align(parse_config({"align": {"aligner": "synthesiser"}})).process([_turn(no_durations)])
    assert not kept and rejected[0].reason == "no_durations" and "align.aligner" in rejected[0].detail


def test_the_aligner_loads_once_per_process_and_only_when_needed(speech, monkeypatch):
    loads = []
    real_setup = HamaAligner.setup
    monkeypatch.setattr(HamaAligner, "setup", lambda self: (loads.append(1), real_setup(self))[1])
    stage = Align(parse_config({}))  # auto
    stage.ensure_setup()
    kept, _ = stage.process([_turn(speech, 0), _turn(speech, 1)])
    assert loads == [] and {t.extra["alignment_source"] for t in kept} == {"synthesiser"}
    no_durations = dataclasses.replace(speech, words=[])
    for batch in range(2):
        kept, rejected = stage.process([_turn(no_durations, 2 * batch), _turn(speech, 2 * batch + 1)])
        assert not rejected and [t.extra["alignment_source"] for t in kept] == ["ctc", "synthesiser"]
    assert loads == [1]
    checked = Align(parse_config({"align": {"check": True}}))
    checked.ensure_setup()
    assert loads == [1, 1]  # check mode loads it with the stage
    checked.process([_turn(speech, 0)])
    checked.process([_turn(speech, 1)])
    assert loads == [1, 1]


def test_resources_and_config():
    auto = Align(parse_config({"align": {"batch_size": 4}})).resources
    assert auto.batch_size == 4 and auto.num_gpus == 0
    gpu = Align(parse_config({"align": {"aligner": "ctc", "device": "cuda",
                                        "ctc": {"backend": "wav2vec2", "model": "/models/w2v2"}}})).resources
    assert gpu.num_gpus == 1
    with pytest.raises(ConfigError, match=r"align\.ctc\.model: the wav2vec2 aligner needs"):
        parse_config({"align": {"ctc": {"backend": "wav2vec2"}}})
    with pytest.raises(ConfigError, match=r"align\.aligner"):
        parse_config({"align": {"aligner": "whisper"}})


def test_a_wav2vec2_checkpoint_by_path_in_the_stage(speech, tmp_path):
    from tiny_models import save_wav2vec2_ctc

    path = save_wav2vec2_ctc(tmp_path / "tiny-w2v2")
    stage = Align(parse_config({"align": {"aligner": "ctc", "ctc": {"backend": "wav2vec2", "model": str(path)}}}))
    stage.ensure_setup()
    assert stage.identity()["word_aligner"] == f"wav2vec2 CTC {path}"
    kept, rejected = stage.process([_turn(speech, 0), _turn(speech, 1)])
    assert not rejected and [t.extra["alignment_source"] for t in kept] == ["ctc", "ctc"]
    words = kept[0].alignment  # a random model places the words somewhere, in order, inside the audio
    assert [w["word"] for w in words] == [w.word for w in speech.words]
    assert all(a["end_s"] <= b["start_s"] for a, b in zip(words, words[1:]))
    assert 0 <= words[0]["start_s"] and words[-1]["end_s"] <= speech.duration_s
    assert [(w["start_s"], w["end_s"]) for w in kept[1].alignment] == [(w["start_s"], w["end_s"]) for w in words]
