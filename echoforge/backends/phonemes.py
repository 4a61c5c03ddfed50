"""Phoneme error rate: what the audio sounds like against how the text is pronounced.

The phoneme CTC model and the English G2P that ship in ``hama`` (16 kHz input, IPA tokens) give
a check that does not care about spelling, typos in the source or how numbers are written:
"Confucious" and "Confucius" are pronounced alike. Both sides are compared as strings of IPA
letters (tie bars and other combining marks removed), so "ju" and "j u" are the same.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from echoforge.errors import require

_WORD = re.compile(r"[^\w\s']")


class PhonemeChecker:
    """Phoneme error rate of 16 kHz audio against a text (0 = the audio sounds like the text)."""

    def __init__(self):
        self._asr = self._g2p = None

    def setup(self) -> None:
        hama = require("hama", "the phoneme check (hama)", "phonemes")
        self._asr, self._g2p = hama.ASRModel(), hama.G2PModel()

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"phonemes": f"hama=={version('hama')}"}

    def expected(self, text: str) -> str:
        """IPA letters of a text by G2P."""
        words = _WORD.sub(" ", text).split()
        return _letters(self._g2p.predict(" ".join(words)).ipa) if words else ""

    def heard(self, audio16k: np.ndarray) -> str:
        """IPA letters the CTC model hears."""
        if len(audio16k) < 1600:
            return ""
        result = self._asr.transcribe_waveform(audio16k.astype(np.float32), 16_000)
        return _letters("".join(p for p in result.phonemes if not p.startswith("<")))

    def error_rate(self, audio16k: np.ndarray, text: str) -> float:
        import jiwer

        ref, hyp = self.expected(text), self.heard(audio16k)
        if not ref:
            return 0.0 if not hyp else 1.0
        if not hyp:
            return 1.0
        return float(jiwer.cer(ref, hyp))


def _letters(ipa: str) -> str:
    return "".join(ch for ch in ipa if not ch.isspace() and not unicodedata.combining(ch) and ch != "\u0361")
