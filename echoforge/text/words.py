"""Words of spoken text: what the synthesiser, the aligner and the gate count as one word."""

from __future__ import annotations

import re

WORD_RE = re.compile(r"[\w']+")


def sentence_words(sentence: str) -> list[str]:
    """The words of a sentence, in order."""
    return WORD_RE.findall(sentence)
