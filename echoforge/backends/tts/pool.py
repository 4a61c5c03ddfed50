"""A voice pool across TTS backends: ``BACKEND:VOICE`` names a voice of any registered backend
(``piper:joe``, ``coqui:/models/vctk-vits#p225``, ``kokoro:jf_alpha*0.6+jm_kumo*0.4``); an
unprefixed voice belongs to the default backend (``synthesis.backend``). A voice generator
(``kokoro:blend(n=64, seed=7)``) stands for the voices it expands into, always the same ones.
One backend instance serves all of its voices."""

from __future__ import annotations

import dataclasses

from echoforge.backends.tts.base import TTSBackend, VoiceRequest
from echoforge.registry import tts_backends
from echoforge.config import SynthesisConfig
from echoforge.schemas.records import Speech


def split_voice(voice: str, default_backend: str) -> tuple[str, str]:
    """(backend, the backend's own voice name) of a pool voice."""
    prefix, sep, rest = voice.partition(":")
    if sep and prefix in tts_backends.names():
        return prefix, rest
    return default_backend, voice


def expand_voices(voices: list[str], default_backend: str, synthesis: SynthesisConfig) -> list[str]:
    """The pool's voices with every generator expanded, in order, each once."""
    out: dict[str, None] = {}
    for voice in voices:
        backend, inner = split_voice(voice, default_backend)
        prefix = voice[:len(voice) - len(inner)]
        out.update((prefix + v, None) for v in tts_backends.get(backend).expand_voice(inner, synthesis))
    return list(out)


def user_voices(synthesis: SynthesisConfig) -> list[str]:
    """The voices a user may speak in: ``synthesis.user_voices`` expanded."""
    return expand_voices(synthesis.user_voices, synthesis.backend, synthesis)


class VoicePool(TTSBackend):
    """Routes each request to the backend of its voice; speech keeps the pool's voice name."""

    name = "pool"

    def __init__(self, default_backend: str, voices: list[str], synthesis: SynthesisConfig | None = None):
        synthesis = synthesis or SynthesisConfig()
        voices = expand_voices(voices, default_backend, synthesis)
        super().__init__(voices)
        self._route = {v: split_voice(v, default_backend) for v in voices}
        names: dict[str, list[str]] = {}
        for backend, inner in self._route.values():
            names.setdefault(backend, []).append(inner)
        self.backends = {b: tts_backends.get(b).from_config(vs, synthesis or SynthesisConfig()) for b, vs in names.items()}

    @property
    def uses_gpu(self) -> bool:
        return any(b.uses_gpu for b in self.backends.values())

    def setup(self) -> None:
        for backend in self.backends.values():
            backend.setup()

    def identity(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for backend in self.backends.values():
            out.update(backend.identity())
        return out

    def _of(self, voice: str) -> tuple[TTSBackend, str]:
        backend, inner = self._route[voice]
        return self.backends[backend], inner

    def synthesize(self, request: VoiceRequest) -> Speech:
        return self.synthesize_batch([request])[0]

    def synthesize_batch(self, requests: list[VoiceRequest]) -> list[Speech]:
        """Each backend gets its requests as one batch; speech comes back in request order."""
        out: list[Speech | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(self._route[r.voice][0], []).append(i)
        for backend, indices in groups.items():
            inner = [dataclasses.replace(requests[i], voice=self._route[requests[i].voice][1]) for i in indices]
            for i, speech in zip(indices, self.backends[backend].synthesize_batch(inner)):
                out[i] = dataclasses.replace(speech, voice=requests[i].voice)
        return out  # type: ignore[return-value]

    def backend_of(self, voice: str) -> str:
        return self._route[voice][0]

    def sample_rate(self, voice: str) -> int:
        backend, inner = self._of(voice)
        return backend.sample_rate(inner)

    def speaker_of(self, voice: str) -> str:
        backend, inner = self._of(voice)
        return backend.speaker_of(inner)

    def speakers(self, voice: str) -> list[str]:
        backend, inner = self._of(voice)
        return backend.speakers(inner)

    def languages(self, voice: str) -> list[str]:
        backend, inner = self._of(voice)
        return backend.languages(inner)
