"""The word aligner interface and its registry.

An aligner places known words in audio: for TTS backends that give no durations (XTTS and
other codec-LM voices) and to check the ones that do (``eval-units``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from echoforge.config import AlignConfig
from echoforge.registry import word_aligners
from echoforge.schemas.records import Word



class AlignItem(NamedTuple):
    """One utterance to align: its audio and words, and where the synthesiser put its sentences
    (``(start_s, end_s, number of words)`` each, in order, covering all the words), when known."""

    audio: np.ndarray
    sample_rate: int
    words: list[str]
    sentences: list[tuple[float, float, int]] | None = None


class WordAligner:
    """Audio and its words → one span per word (``None`` where a word could not be placed)."""

    name = "base"
    uses_gpu = False

    @classmethod
    def from_config(cls, align: AlignConfig) -> WordAligner:
        """The aligner of the ``align`` section (its ``ctc`` settings and ``device``)."""
        return cls()

    def setup(self) -> None:
        raise NotImplementedError

    def align(self, audio: np.ndarray, sample_rate: int, words: list[str],
              sentences: list[tuple[float, float, int]] | None = None) -> list[Word | None]:
        return self.align_batch([AlignItem(audio, sample_rate, words, sentences)])[0]

    def align_batch(self, items: list[AlignItem]) -> list[list[Word | None]]:
        """Word spans of each item (plain ``(audio, rate, words)`` tuples are items too)."""
        raise NotImplementedError

    def identity(self) -> dict[str, str]:
        return {"aligner": self.name}


def create_aligner(align: AlignConfig) -> WordAligner:
    """The CTC aligner that ``align.ctc.backend`` names, not yet set up."""
    return word_aligners.get(align.ctc.backend).from_config(align)
