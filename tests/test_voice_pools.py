"""Voice pools across backends: routing, the voice policy over a mixed pool, `echoforge voices`,
and real builds of the ShareGPT sample with coqui voices that validate and report hours per speaker."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from echoforge.backends.tts.pool import VoicePool, split_voice
from echoforge.cli import main
from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.pipeline.output import iter_shards
from echoforge.commands.inspect import inspect_output
from echoforge.commands.validate import validate_output

from conftest import SHAREGPT, write_config
from tiny_coqui import make_tiny_vits


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_vits(tmp_path_factory.mktemp("pool") / "tiny-vits")


def _config(**synthesis) -> dict:
    return {"run": {"work_unit_rows": 2, "workers": 1}, "output": {"validation_fraction": 0.0},
            "gate": {"asr": "none"}, "synthesis": synthesis}


def test_split_voice():
    assert split_voice("coqui:/m/vits#p225", "piper") == ("coqui", "/m/vits#p225")
    assert split_voice("piper:joe", "coqui") == ("piper", "joe")
    assert split_voice("joe", "piper") == ("piper", "joe")
    assert split_voice("/models/x:y.onnx", "piper") == ("piper", "/models/x:y.onnx")  # not a backend prefix


def test_pool_routes_each_voice_to_its_backend(model_dir):
    from echoforge.backends.tts import VoiceRequest

    pool = VoicePool("piper", ["joe", f"coqui:{model_dir}#cy"])
    pool.setup()
    piper = pool.synthesize(VoiceRequest(("Hello.",), "joe", 1.0, 1))
    coqui = pool.synthesize(VoiceRequest(("Hello.",), f"coqui:{model_dir}#cy", 1.0, 1))
    assert (piper.sample_rate, piper.speaker, piper.voice) == (22050, "joe", "joe")
    assert (coqui.sample_rate, coqui.speaker, coqui.voice) == (16000, "tiny-vits#cy", f"coqui:{model_dir}#cy")
    assert set(pool.identity()) >= {"piper-tts", "coqui-tts", "voice:joe", f"voice:{model_dir}#cy"}


def test_voices_command_lists_the_pool(model_dir, tmp_path):
    config = write_config(tmp_path / "c.yaml", {"synthesis": {"assistant_voice": "joe", "user_voices": [
        "joe", f"coqui:{model_dir}#bo", f"coqui:{model_dir}#2"]}})
    result = CliRunner().invoke(main, ["voices", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    voices = json.loads(result.output)["voices"]
    assert [(v["roles"], v["speaker"], v["backend"], v["sample_rate"]) for v in voices] == [
        (["assistant", "user"], "joe", "piper", 22050), (["user"], "tiny-vits#bo", "coqui", 16000),
        (["user"], "tiny-vits#cy", "coqui", 16000)]
    assert voices[1]["model_speakers"] == ["ada", "bo", "cy"]
    bad = write_config(tmp_path / "bad.yaml", {"synthesis": {"user_voices": [f"coqui:{model_dir}#nobody"]}})
    result = CliRunner().invoke(main, ["voices", "--config", str(bad)])
    assert result.exit_code == 2 and "no speaker 'nobody'" in result.output


def _speakers(root) -> tuple[set, set]:
    q, a = set(), set()
    for _, table in iter_shards(root, ["question_speaker", "answer_speaker"]):
        q |= set(table.column("question_speaker").to_pylist())
        a |= set(table.column("answer_speaker").to_pylist())
    return q, a


def test_build_with_the_coqui_backend(model_dir, tmp_path, cache_env):
    config = parse_config(_config(backend="coqui", assistant_voice=f"{model_dir}#ada",
                                  user_voices=[f"{model_dir}#bo", f"{model_dir}#cy"]))
    out = tmp_path / "coqui"
    manifest = build([str(SHAREGPT)], out, config, limit=3)
    assert manifest["rows"] >= 3, manifest["rejects_by_reason"]
    problems, _ = validate_output(out)
    assert problems == []
    questions, answers = _speakers(out)
    assert answers == {"tiny-vits#ada"} and questions <= {"tiny-vits#bo", "tiny-vits#cy"}
    report = inspect_output(out)
    assert set(report["hours_by_speaker"]) == questions | answers
    assert sum(report["hours_by_speaker"].values()) == pytest.approx(report["hours"], abs=1e-5)
    assert any(k.startswith("voice:") for k in manifest["models"])


def test_build_with_a_mixed_piper_and_coqui_pool(model_dir, tmp_path, cache_env):
    config = parse_config(_config(assistant_voice="joe", user_voices=["joe", f"coqui:{model_dir}#ada",
                                                                      f"coqui:{model_dir}#1"], rate_jitter=0.1))
    out = tmp_path / "mixed"
    manifest = build([str(SHAREGPT)], out, config, limit=8)
    assert manifest["rows"] >= 8, manifest["rejects_by_reason"]
    problems, _ = validate_output(out)
    assert problems == []
    questions, answers = _speakers(out)
    assert answers == {"joe"}
    assert "joe" in questions and questions & {"tiny-vits#ada", "tiny-vits#bo"}
    result = CliRunner().invoke(main, ["inspect", str(out)])
    assert result.exit_code == 0 and "hours by speaker: joe" in result.output
