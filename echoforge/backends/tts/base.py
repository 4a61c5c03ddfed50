"""TTS backend interface and registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from echoforge.schemas.records import Speech, Word
from echoforge.text.words import sentence_words

if TYPE_CHECKING:
    from echoforge.config import SynthesisConfig


PEAK = 0.9  # peak level of every utterance (−0.9 dBFS): no clipping, comparable loudness

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

    @property
    def uses_gpu(self) -> bool:
        """Whether this backend runs its model on a GPU (the engine then places it on one)."""
        return False

    @classmethod
    def expand_voice(cls, voice: str, synthesis: SynthesisConfig) -> list[str]:
        """The voices a pool entry stands for: itself, or those a voice generator names."""
        return [voice]

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


def symbol_word_spans(sentence: str, symbols: list[tuple[str, int, int]], punctuations: str, offset: int,
                sr: int) -> list[Word]:
    """Word spans from symbol spans: words are runs of symbols between spaces and punctuation.

    When the model's text cleaner split or joined words differently from the sentence, each
    word gets a share of the spoken stretch in proportion to its length.
    """
    breaks = (set(punctuations or "") | {" "}) - {"'"}
    runs: list[list[int]] = []
    open_run = False
    for symbol, a, b in symbols:
        if symbol in breaks or symbol.isspace():
            open_run = False
            continue
        if open_run:
            runs[-1][1] = b
        else:
            runs.append([a, b])
            open_run = True
    tokens = sentence_words(sentence)
    if len(runs) != len(tokens):
        spoken = [s for s in symbols if not (s[0] in breaks or s[0].isspace())]
        lo, hi = (spoken[0][1], spoken[-1][2]) if spoken else (0, 0)
        total = sum(len(w) for w in tokens) or 1
        runs, at = [], lo
        for w in tokens:
            end = at + (hi - lo) * len(w) // total
            runs.append([at, end])
            at = end
    return [Word(w, (offset + a) / sr, (offset + b) / sr) for w, (a, b) in zip(tokens, runs)]
