"""The word aligner interface and its registry.

An aligner places known words in audio: for TTS backends that give no durations (XTTS and
other codec-LM voices) and to check the ones that do (``eval-units``).
"""

from __future__ import annotations

import numpy as np

from echoforge.config import AlignConfig
from echoforge.registry import word_aligners
from echoforge.schemas.records import Word



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

    def align(self, audio: np.ndarray, sample_rate: int, words: list[str]) -> list[Word | None]:
        return self.align_batch([(audio, sample_rate, words)])[0]

    def align_batch(self, items: list[tuple[np.ndarray, int, list[str]]]) -> list[list[Word | None]]:
        raise NotImplementedError

    def identity(self) -> dict[str, str]:
        return {"aligner": self.name}


def create_aligner(align: AlignConfig) -> WordAligner:
    """The CTC aligner that ``align.ctc.backend`` names, not yet set up."""
    return word_aligners.get(align.ctc.backend).from_config(align)
