"""TTS backend interface and registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from echoforge.registry import Registry
from echoforge.schemas.records import Speech

tts_backends: Registry[TTSBackend] = Registry("TTS backend")

#: What every backend calls a word of a sentence: each gets one entry of ``Speech.words``, in order.
WORD_RE = re.compile(r"[\w']+")


def sentence_words(sentence: str) -> list[str]:
    return WORD_RE.findall(sentence)


@dataclass(frozen=True)
class VoiceRequest:
    """What to say, in which voice, how fast, and the seed for the voice's sampling noise."""

    sentences: tuple[str, ...]
    voice: str
    rate: float  # length scale: >1 slower, <1 faster
    seed: int
    sentence_pause_s: float = 0.25


class TTSBackend:
    """Synthesises sentences in a named voice; returns audio with word and phoneme timings."""

    name = "base"

    def __init__(self, voices: list[str], **options):
        self.voices = voices
        self.options = options

    def setup(self) -> None:
        raise NotImplementedError

    def synthesize(self, request: VoiceRequest) -> Speech:
        raise NotImplementedError

    def identity(self) -> dict[str, str]:
        return {}
