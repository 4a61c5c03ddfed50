"""A backend is one class: a TTS backend defined here, with its own config model, registers
itself, makes ``synthesis.backend: quiet`` and its ``synthesis.quiet`` section valid, and builds a
corpus, without a change to any file of the package."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydantic import Field

from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.piper import PiperBackend
from echoforge.config import BuildConfig, Section, SynthesisConfig, parse_config
from echoforge.errors import ConfigError
from echoforge.pipeline.build import build
from echoforge.pipeline.output import iter_shards, load_manifest
from echoforge.registry import tts_backends

from conftest import FAST_CONFIG, SHAREGPT


class QuietConfig(Section):
    """``synthesis.quiet``: how loud the quiet voice speaks."""

    peak: float = Field(0.25, gt=0.0, le=1.0)


class QuietBackend(PiperBackend):
    """Piper's voices, scaled to a peak of ``synthesis.quiet.peak``."""

    def __init__(self, voices: list[str], peak: float):
        super().__init__(voices)
        self.peak = peak

    @classmethod
    def from_config(cls, voices: list[str], synthesis: SynthesisConfig) -> QuietBackend:
        return cls(voices, synthesis.section("quiet").peak)

    def synthesize(self, request: VoiceRequest):
        speech = super().synthesize(request)
        return dataclasses.replace(speech, audio=speech.audio * np.float32(self.peak / np.abs(speech.audio).max()))

    def identity(self) -> dict[str, str]:
        return {**super().identity(), "quiet": f"peak {self.peak}"}


@pytest.fixture(autouse=True)
def quiet_registered():
    """Register the backend for one test, then unload it, so the rest of the session's builds
    do not save a ``synthesis.quiet`` section that a fresh process would not know."""
    tts_backends.load()
    saved = dict(tts_backends._factories), dict(tts_backends._configs)
    tts_backends.register("quiet", config=QuietConfig)(QuietBackend)
    yield
    tts_backends._factories, tts_backends._configs = saved


def test_the_section_of_a_registered_backend_is_validated_and_defaulted():
    assert BuildConfig().synthesis.section("quiet").peak == 0.25
    assert parse_config({"synthesis": {"quiet": {"peak": 0.5}}}).synthesis.section("quiet").peak == 0.5
    with pytest.raises(ConfigError, match=r"synthesis\.quiet\.peak: Input should be less than or equal to 1"):
        parse_config({"synthesis": {"quiet": {"peak": 3}}})
    with pytest.raises(ConfigError, match=r"synthesis\.quiet\.pek: unknown field \(did you mean 'peak'\?\)"):
        parse_config({"synthesis": {"quiet": {"pek": 0.5}}})
    with pytest.raises(ConfigError, match=r"synthesis\.quite: unknown field \(did you mean 'quiet'\?\)"):
        parse_config({"synthesis": {"quite": {}}})
    with pytest.raises(ConfigError, match=r"unknown TTS backend 'quite' \(did you mean 'quiet'\?\)"):
        parse_config({"synthesis": {"backend": "quite"}})


def test_a_backend_registered_outside_the_package_builds_a_corpus(tmp_path, cache_env):
    config = parse_config({**FAST_CONFIG, "synthesis": {"backend": "quiet", "quiet": {"peak": 0.3}}})
    out = tmp_path / "out"
    build([str(SHAREGPT)], out, config, limit=2)
    rows = [r for _, t in iter_shards(out) for r in t.to_pylist()]
    assert rows
    import io

    import soundfile as sf

    for r in rows:
        audio, _ = sf.read(io.BytesIO(r["question_audio"]["bytes"]))
        assert abs(np.abs(audio).max() - 0.3) < 0.02  # the backend's own setting reached its speech
    manifest = load_manifest(out)
    assert manifest["config"]["synthesis"]["quiet"] == {"peak": 0.3}  # saved with the build
    assert any("peak 0.3" in v for v in manifest["models"].values())
