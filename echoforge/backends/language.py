"""Language identification of written text with lingua (``lingua-language-detector``, whose
wheel carries its n-gram models; nothing is downloaded).

The detector knows a limited set of languages (English and the twenty most spoken others, plus
whatever the voices speak): fewer candidates are faster and confuse less. It judges only text
with enough letters and a clear winner; short texts ("OK", numbers, names) are never judged.
Its models load on first use, per script, in the high-accuracy mode (the low-accuracy mode
takes English sentences full of names for German or French).
"""

from __future__ import annotations

#: English and the twenty most spoken other languages lingua knows (ISO 639-1).
COMMON_LANGUAGES = ("en", "zh", "es", "hi", "ar", "bn", "pt", "ru", "ja", "de", "ko", "fr", "tr", "vi", "it",
                    "ur", "id", "fa", "pl", "nl", "uk")


class LanguageID:
    """The language of a text, when it is clear; built once per worker (``setup``)."""

    def __init__(self, languages: tuple[str, ...] | list[str] = COMMON_LANGUAGES):
        self.languages = tuple(dict.fromkeys(code.lower() for code in languages))
        self._detector = None

    def setup(self) -> None:
        import lingua

        codes = [getattr(lingua.IsoCode639_1, c.upper(), None) for c in self.languages]
        self._detector = lingua.LanguageDetectorBuilder.from_iso_codes_639_1(*[c for c in codes if c]).build()

    def detect(self, text: str, min_letters: int, min_confidence: float) -> str | None:
        """ISO 639-1 code of the text's language when it has ``min_letters`` letters and the
        winner's confidence is at least ``min_confidence``; None otherwise."""
        if sum(ch.isalpha() for ch in text) < min_letters:
            return None
        values = self._detector.compute_language_confidence_values(text)
        if not values or values[0].value < min_confidence:
            return None
        return values[0].language.iso_code_639_1.name.lower()

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"language_id": f"lingua-language-detector=={version('lingua-language-detector')}"}


def language_name(code: str) -> str:
    """English name of an ISO 639-1 code ("es" → "Spanish")."""
    import lingua

    iso = getattr(lingua.IsoCode639_1, code.upper(), None)
    if iso is None:
        return code
    return lingua.Language.from_iso_code_639_1(iso).name.capitalize()
