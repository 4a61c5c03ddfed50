"""TTS backends, registered by name."""

from echoforge.backends.tts.base import TTSBackend, VoiceRequest
from echoforge.backends.tts import coqui as _coqui  # noqa: F401  (registers "coqui")
from echoforge.backends.tts import kokoro as _kokoro  # noqa: F401  (registers "kokoro")
from echoforge.backends.tts import piper as _piper  # noqa: F401  (registers "piper")
from echoforge.registry import tts_backends

__all__ = ["TTSBackend", "VoiceRequest", "tts_backends"]
