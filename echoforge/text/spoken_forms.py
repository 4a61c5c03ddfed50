"""Written forms the text normaliser reads wrongly, rewritten before and after it runs.

NeMo's English grammars leave some units as letters ("2 GB" → "two GB", "1 KiB" → "one KiB"),
read ``atm`` as the cash machine, spell a leading ``~`` as "tilde", take the decimal comma of
"$17,82" for a thousands separator, keep bibliographic abbreviations ("ed.", "p."), read
phone numbers as amounts, version numbers as sentence ends and "5-10" as "five-ten".
:func:`before_normalizing` writes these out in words (the number stays for the normaliser);
:func:`after_normalizing` turns parentheses into the commas a reader would pause at.
"""

from __future__ import annotations

import re

# symbol → (singular, plural); only after a number
_UNITS: dict[str, tuple[str, str]] = {
    "B": ("byte", "bytes"), "kB": ("kilobyte", "kilobytes"), "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"), "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"),
    "PB": ("petabyte", "petabytes"), "KiB": ("kibibyte", "kibibytes"), "MiB": ("mebibyte", "mebibytes"),
    "GiB": ("gibibyte", "gibibytes"), "TiB": ("tebibyte", "tebibytes"),
    "kbps": ("kilobit per second", "kilobits per second"), "Mbps": ("megabit per second", "megabits per second"),
    "Gbps": ("gigabit per second", "gigabits per second"),
    "atm": ("atmosphere", "atmospheres"), "kPa": ("kilopascal", "kilopascals"), "hPa": ("hectopascal", "hectopascals"),
    "ms": ("millisecond", "milliseconds"), "µs": ("microsecond", "microseconds"), "ns": ("nanosecond", "nanoseconds"),
    "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "Hz": ("hertz", "hertz"), "rpm": ("revolution per minute", "revolutions per minute"),
    "fps": ("frame per second", "frames per second"), "px": ("pixel", "pixels"), "dpi": ("dot per inch", "dots per inch"),
    "mAh": ("milliamp hour", "milliamp hours"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour", "kilometers per hour"),
    "tbsp": ("tablespoon", "tablespoons"), "tsp": ("teaspoon", "teaspoons"),
    "L": ("liter", "liters"), "mL": ("milliliter", "milliliters"),
}
_PER_SECOND = {"kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "B"}
_NUMBER = r"(?<![\w.,])(\d+(?:[.,]\d+)*)"
_UNIT = re.compile(_NUMBER + r"\s?(" + "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True))
                   + r")(/s)?(?![\w/])")
_ABBREVIATIONS = [  # (pattern, words); numbered ones only before a number
    (re.compile(r"\bed\.(?=\s*[,;)])"), "edition"),
    (re.compile(r"\bpp\.\s*(?=\d)"), "pages "),
    (re.compile(r"\bp\.\s*(?=\d)"), "page "),
    (re.compile(r"\bvol\.\s*(?=\d)", re.I), "volume "),
    (re.compile(r"\bch\.\s*(?=\d)", re.I), "chapter "),
    (re.compile(r"\bfig\.\s*(?=\d)", re.I), "figure "),
    (re.compile(r"\beq\.\s*(?=\d)", re.I), "equation "),
    (re.compile(r"\bno\.\s*(?=\d)", re.I), "number "),
    (re.compile(r"\bapprox\.\s*", re.I), "approximately "),
    (re.compile(r"\be\.g\.(?=[\s,])", re.I), "for example"),
    (re.compile(r"\bi\.e\.(?=[\s,])", re.I), "that is"),
    (re.compile(r"\bvs\.?(?=\s)"), "versus"),
    (re.compile(r"\bProf\.(?=\s+[A-Z])"), "Professor"),
    (re.compile(r"\betc\.(?=\s+[a-z])"), "et cetera"),
]
_DECIMAL_COMMA_MONEY = re.compile(r"([$€£])\s?(\d{1,3}),(\d{2})(?![\d,])")
_ABOUT = re.compile(r"(?:(?<=\s)|^)~\s?(?=[$€£]?\d)")
_PHONE = re.compile(r"(?<![\d-])(?:\(\d{3}\)\s?|\d{3}[-.])?\d{3}[-.]\d{4}(?![\d-])")
_VERSION = re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.])")
_RANGE = re.compile(r"(?<![\d\-/.,])(\d{1,4})\s?[-–]\s?(\d{1,4})(?![\d\-/.,])")
_DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _unit(m: re.Match) -> str:
    number, symbol, per_second = m.group(1), m.group(2), m.group(3)
    singular, plural = _UNITS[symbol]
    words = singular if number == "1" else plural
    if per_second:
        if symbol not in _PER_SECOND:
            return m.group()
        words += " per second"
    return f"{number} {words}"


def before_normalizing(text: str) -> str:
    """Write out units, "about", decimal-comma money and abbreviations the normaliser misreads."""
    text = _ABOUT.sub("about ", text)
    text = _PHONE.sub(lambda m: ", ".join(" ".join(_DIGIT_WORDS[int(d)] for d in group)
                                          for group in re.findall(r"\d+", m.group())), text)
    text = _VERSION.sub(lambda m: m.group().replace(".", " point "), text)
    text = _RANGE.sub(r"\1 to \2", text)
    text = _DECIMAL_COMMA_MONEY.sub(r"\1\2.\3", text)
    text = _UNIT.sub(_unit, text)
    for pattern, words in _ABBREVIATIONS:
        text = pattern.sub(words, text)
    return text


def after_normalizing(spoken: str) -> str:
    """Parentheses become the pauses a reader makes: "(second edition, page forty two)" → commas."""
    spoken = re.sub(r"\s*\(\s*", ", ", spoken)
    spoken = re.sub(r"\s*\)\s*(?=[.,;:!?]|$)", "", spoken)
    spoken = re.sub(r"\s*\)\s*", ", ", spoken)
    return re.sub(r"^,\s*", "", spoken)
