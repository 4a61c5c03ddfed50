"""Language identification of written text with lingua (``lingua-language-detector``, whose
wheel carries its n-gram models; nothing is downloaded).

The detector knows a limited set of languages (English and the twenty most spoken others, plus
whatever the voices speak): fewer candidates are faster and confuse less. It judges only text
with enough letters where the voices' languages are all but ruled out; short texts ("OK",
numbers, names) are never judged.
Its models load on first use, per script, in the high-accuracy mode (the low-accuracy mode
takes English sentences full of names for German or French); ``setup`` loads those of the Latin
script, which nearly every text needs, so that workers forked after it share them (2 s and
about 280 MB each otherwise).
"""

from __future__ import annotations

import unicodedata

import regex

_NAME = regex.compile(r"\b\p{Lu}\p{L}*")  # a capitalised word: a name, a noun, a unit
_WORD = regex.compile(r"\p{L}+")

#: English and the twenty most spoken other languages lingua knows (ISO 639-1).
COMMON_LANGUAGES = ("en", "zh", "es", "hi", "ar", "bn", "pt", "ru", "ja", "de", "ko", "fr", "tr", "vi", "it",
                    "ur", "id", "fa", "pl", "nl", "uk")


#: Confidence the voices' languages may have together before a text counts as foreign: English
#: questions naming a foreign thing ("What was the Renaissance?") give English 0.1 or more; a
#: French sentence of 50 letters gives it about 0.07.
MAX_SPOKEN = 0.1

#: A text in the Latin alphabet: judging it loads the models of every candidate written in it.
_LATIN_SAMPLE = "The quick brown fox jumps over the lazy dog."


class LanguageID:
    """The language of a text, when it is clear; built once per worker (``setup``)."""

    def __init__(self, languages: tuple[str, ...] | list[str] = COMMON_LANGUAGES):
        self.languages = tuple(dict.fromkeys(code.lower() for code in languages))
        self._detector = None

    def setup(self) -> None:
        import lingua

        codes = [getattr(lingua.IsoCode639_1, c.upper(), None) for c in self.languages]
        self._detector = lingua.LanguageDetectorBuilder.from_iso_codes_639_1(*[c for c in codes if c]).build()
        self._detector.compute_language_confidence_values(_LATIN_SAMPLE)  # loads the Latin script's models

    def foreign(self, text: str, spoken: tuple[str, ...] | list[str], min_letters: int) -> str | None:
        """ISO 639-1 code of the text's language when it is clearly none of ``spoken``: at least
        ``min_letters`` letters (:func:`_letters`), a third of them in lower-case words of three
        letters or more (a list of names or units, "Johann Sebastian Bach", "Meter (m)", is in no language), the
        winner at least 0.3 of the confidence, and the ``spoken`` languages together under
        :data:`MAX_SPOKEN`. None otherwise (short, mixed or unclear)."""
        content = " ".join(w for w in _WORD.findall(_NAME.sub(" ", text)) if len(w) > 2)
        if _letters(text) < min_letters or _letters(content) < min_letters // 3 + 1:
            return None
        values = self._detector.compute_language_confidence_values(text)
        codes = [(v.language.iso_code_639_1.name.lower(), v.value) for v in values]
        if not codes or codes[0][1] < 0.3 or sum(p for code, p in codes if code in spoken) >= MAX_SPOKEN:
            return None
        return codes[0][0]

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"language_id": f"lingua-language-detector=={version('lingua-language-detector')}"}


def _letters(text: str) -> int:
    """Letters of a text, one outside the Latin alphabet counting three (a CJK character or a
    letter of another script says more about the language than a Latin one)."""
    return sum(1 if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN") else 3
               for ch in text if ch.isalpha())


def language_name(code: str) -> str:
    """English name of an ISO 639-1 code ("es" → "Spanish")."""
    import lingua

    iso = getattr(lingua.IsoCode639_1, code.upper(), None)
    if iso is None:
        return code
    return lingua.Language.from_iso_code_639_1(iso).name.capitalize()
