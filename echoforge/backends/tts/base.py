"""TTS backend interface and registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from echoforge.registry import Registry
from echoforge.schemas.records import Speech

if TYPE_CHECKING:
    from echoforge.config import SynthesisConfig

tts_backends: Registry[TTSBackend] = Registry("TTS backend")

PEAK = 0.9  # peak level of every utterance (−0.9 dBFS): no clipping, comparable loudness

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

    def __init__(self, voices: list[str]):
        self.voices = voices

    @classmethod
    def from_config(cls, voices: list[str], synthesis: SynthesisConfig) -> TTSBackend:
        """The backend for some voices, configured from its own section of ``synthesis``."""
        return cls(voices)

    def setup(self) -> None:
        raise NotImplementedError

    def synthesize(self, request: VoiceRequest) -> Speech:
        raise NotImplementedError

    def synthesize_batch(self, requests: list[VoiceRequest]) -> list[Speech]:
        """Speech of several requests, in order; the same as one ``synthesize`` each."""
        return [self.synthesize(r) for r in requests]

    def sample_rate(self, voice: str) -> int:
        raise NotImplementedError

    def speaker_of(self, voice: str) -> str:
        """Who speaks in a loaded voice: model and speaker name, however the voice was named."""
        return voice

    def speakers(self, voice: str) -> list[str]:
        """Every speaker of the voice's model (empty for a single-speaker model)."""
        return []

    def languages(self, voice: str) -> list[str]:
        """ISO 639-1 codes of the languages the voice speaks, read without loading it; the
        default: English."""
        return ["en"]

    def identity(self) -> dict[str, str]:
        return {}


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad audio to n samples (to the length its symbol durations add up to)."""
    if len(audio) >= n:
        return audio[:n]
    return np.concatenate([audio, np.zeros(n - len(audio), dtype=np.float32)])


def peak_normalize(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return (audio * (PEAK / peak)).astype(np.float32) if peak > 1e-8 else audio
