"""Written forms the text normaliser reads wrongly, rewritten before and after it runs.

NeMo's English grammars leave some units as letters ("2 GB" → "two GB", "1 KiB" → "one KiB"),
read ``atm`` as the cash machine, spell a leading ``~`` as "tilde", take the decimal comma of
"$17,82" for a thousands separator, keep bibliographic abbreviations ("ed.", "p."), read
phone numbers as amounts, version numbers as sentence ends and "5-10" as "five-ten", and it
names the symbols of maths and notation ("equal sign", "slash", "underscore", "asterisk").
:func:`before_normalizing` writes these out in words (the number stays for the normaliser):
maths as a person reads it (``=`` "equals", ``×`` "times", ``/`` "divided by" or "per",
``->`` "to", ``^2`` "squared"), and drops what no one would say;
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
    "L": ("liter", "liters"), "mL": ("milliliter", "milliliters"), "g": ("gram", "grams"),
}
_PER_SECOND = {"kB", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "B"}
_NUMBER = r"(?<![\w.,])(\d+(?:[.,]\d+)*)"
_UNIT = re.compile(_NUMBER + r"\s?(" + "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True))
                   + r")(/s)?(?![\w/])")
_ABBREVIATIONS = [  # (pattern, words); numbered ones only before a number
    (re.compile(r"\bed\.(?=\s*[,;)])"), "edition"),
    (re.compile(r"(?<![\d/.])24/7(?![\d/])"), "twenty four seven"),  # not a fraction
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


# Maths. Measures a compound unit ("km/h", "m/s^2") or a power of one ("m^2") is made of.
_MEASURES: dict[str, tuple[str, str]] = {
    "m": ("meter", "meters"), "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"), "in": ("inch", "inches"),
    "s": ("second", "seconds"), "sec": ("second", "seconds"), "min": ("minute", "minutes"), "h": ("hour", "hours"),
    "hr": ("hour", "hours"), "g": ("gram", "grams"), "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"), "L": ("liter", "liters"), "l": ("liter", "liters"), "mL": ("milliliter", "milliliters"),
    "gal": ("gallon", "gallons"), "mol": ("mole", "moles"), "J": ("joule", "joules"), "kJ": ("kilojoule", "kilojoules"),
    "W": ("watt", "watts"), "kW": ("kilowatt", "kilowatts"), "N": ("newton", "newtons"), "Pa": ("pascal", "pascals"),
}
_MEASURE = "|".join(sorted(map(re.escape, _MEASURES), key=len, reverse=True))
_LENGTHS = {"m", "km", "cm", "mm", "mi", "ft", "in"}
_POWER_WORDS = {"2": "squared", "²": "squared", "3": "cubed", "³": "cubed"}
_COMPOUND = re.compile(_NUMBER + rf"\s?({_MEASURE})/({_MEASURE})(?:\^?([23²³]))?(?![\w/^])")
_AREA = re.compile(_NUMBER + rf"\s?({_MEASURE})(?:\^([23])|([²³]))(?![\w/^])")
#: "/" before one of these is "per": "$5/month", "3 times/day", "60 words/min"
_PER = re.compile(r"(?<=[\w%)])\s?/\s?(?=(?:second|sec|minute|min|hour|hr|day|week|month|year|yr|person|night|"
                  r"serving|head|mile|gallon|liter|kg|unit|item|user|seat|capita|annum)s?\b)", re.I)
_EQUATION = re.compile(r"[=≈≠≤≥]|\d\s*[−+×*·÷^]\s*\d")
_OPERAND_END = r"(?<=[\w)%²³])"
_OPERAND_START = r"(?=[\w(√.−-])"
_ARROW = re.compile(r"\s*(?:-+>|→|⟶|⇒|=>)\s*")
_RELATIONS = [
    (re.compile(r"\s*≈\s*"), " is about "), (re.compile(r"\s*≠\s*|\s*!=\s*"), " is not equal to "),
    (re.compile(r"\s*(?:≤|<=)\s*"), " is at most "), (re.compile(r"\s*(?:≥|>=)\s*"), " is at least "),
    (re.compile(r"\s*={1,3}\s*"), " equals "),
    (re.compile(_OPERAND_END + r"\s*<\s*" + _OPERAND_START), " is less than "),
    (re.compile(_OPERAND_END + r"\s*>\s*" + _OPERAND_START), " is greater than "),
]
_POWERS = [
    (re.compile(r"\s*(?:\^\s*2(?!\d)|²)"), " squared"), (re.compile(r"\s*(?:\^\s*3(?!\d)|³)"), " cubed"),
    (re.compile(r"\s*\^\s*\(?\s*([-−]?[\w.]+)\s*\)?"), r" to the power of \1"),
]
_TIMES = re.compile(_OPERAND_END + r"\s*[×·*]\s*" + _OPERAND_START + r"|(?<=\d)\s+[xX]\s+(?=[\d(])")
_BY = re.compile(r"(?<=\d)[xX](?=\d)")  # 1920x1080, 3x3
_TIMES_AS = re.compile(r"(?<=\d)[xX](?=\s+(?:[a-z]+er|more|less|as|the)\b)")  # "2x faster"
_DIGIT_SLASH = re.compile(r"(?<![\d.])(\d[\d.,]*)(\s*)/(\s*)(\d[\d.,]*)")
_DIVIDED = re.compile(_OPERAND_END + r"\s*÷\s*" + _OPERAND_START + r"|" + _OPERAND_END + r"\s+/\s+" + _OPERAND_START
                      + r"|(?<![\w.])([A-Za-z])/([A-Za-z])(?![\w/])")
_PLUS = re.compile(_OPERAND_END + r"\s*\+\s*(?=[\w(√.])")
_PLUS_MINUS = re.compile(r"\s*±\s*")
_MINUS_SIGN = re.compile(r"\s*−\s*")
_MINUS = re.compile(r"(?<=[\w)²³])\s+[-–]\s+(?=[\w(√.])|(?<=[\d)²³])[-–](?=[\d(√.])|(?<![\w-])([A-Za-z])-(?=[\d(]|[A-Za-z](?![\w-]))")
_COEFFICIENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([A-Za-z])(?![\w(])")
_ROOT = re.compile(r"√\s*")
_WORD_SLASH = re.compile(r"(?<=[a-z])/(?=[a-z])")
_RATIO = re.compile(r"(?<![\d:.])(\d+):(\d)(?![\d:])")  # 3:1, 16:9 (a time has two digits of minutes)
_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])")
_VERSION_V = re.compile(r"(?<![\w.])v(?=\d+(?:\.\d+)*(?![\w]))")
_NUMBER_SIGN = re.compile(r"(?<![\w&])#\s?(?=\d)")
_UNSAID = re.compile(r"(?<![A-Za-z])#|[_*\\|^{}\[\]`<>=~]")  # symbols no one reads aloud in prose
#: Greek letters that stand alone in maths (πr², Δx, 5 Ω), said by name.
GREEK_SYMBOLS = {"π": "pi", "θ": "theta", "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "Δ": "delta",
                 "λ": "lambda", "μ": "mu", "σ": "sigma", "Σ": "sigma", "Ω": "ohms", "ω": "omega", "φ": "phi",
                 "ε": "epsilon", "ρ": "rho", "τ": "tau"}
_GREEK_SYMBOL = re.compile(r"(?<![\u0370-\u03ff])[" + "".join(GREEK_SYMBOLS) + r"](?![\u0370-\u03ff])")
#: What the normaliser says for a symbol it is handed (never in a spoken text of this stage).
#: ("hash", "dot" and "pipe" are left out: they are also words, as in "hash map").
SPOKEN_SYMBOL_NAMES = ("equal sign", "open paren", "close paren", "underscore", "asterisk", "slash",
                       "backslash", "vertical bar", "circumflex", "tilde", "caret", "left bracket",
                       "right bracket", "dollar sign", "at sign", "ampersand", "percent sign")


def _compound(m: re.Match) -> str:
    number, top, bottom, power = m.groups()
    singular, plural = _MEASURES[top]
    words = f"{number} {singular if number == '1' else plural} per"
    if power and bottom in _LENGTHS:  # g/cm^3: per cubic centimeter
        return f"{words} {'square' if power in '2²' else 'cubic'} {_MEASURES[bottom][0]}"
    return f"{words} {_MEASURES[bottom][0]} {_POWER_WORDS[power]}" if power else f"{words} {_MEASURES[bottom][0]}"


def _area(m: re.Match) -> str:
    number, unit, power = m.group(1), m.group(2), m.group(3) or m.group(4)
    singular, plural = _MEASURES[unit]
    return f"{number} {'square' if power in '2²' else 'cubic'} {singular if number == '1' else plural}"


def _division(m: re.Match) -> str:
    """In an equation, "1000/3600" and "8 / 2" are divided; "3/4" stays a fraction for the normaliser."""
    top, space_before, space_after, bottom = m.groups()
    if space_before or space_after or len(top) > 2 or len(bottom) > 2:
        return f"{top} divided by {bottom}"
    return m.group()


def speak_maths(text: str) -> str:
    """Maths, arrows and units as a person says them: ``36 km/h = 36 x 1000 / 3600 m/s`` →
    "36 kilometers per hour equals 36 times 1000 divided by 3600 meters per second", ``2x + 3 = 7``
    → "2 x plus 3 equals 7", ``a -> b`` → "a to b", ``x^2`` → "x squared"; symbols nobody
    says go. Numbers stay digits for the normaliser."""
    text = _COMPOUND.sub(_compound, text)
    text = _AREA.sub(_area, text)
    text = _PER.sub(" per ", text)
    text = _ARROW.sub(" to ", text)
    text = _RATIO.sub(r"\1 to \2", text)
    text = _SCIENTIFIC.sub(r"\1 times ten to the power of \2", text)
    text = _VERSION_V.sub("version ", text)
    text = _NUMBER_SIGN.sub("number ", text)
    text = re.sub(r"(?<=[A-Z])&(?=[A-Z])", " and ", text)
    if _EQUATION.search(text):
        text = _DIGIT_SLASH.sub(_division, text)
        text = _COEFFICIENT.sub(r"\1 \2", text)
        text = _MINUS.sub(lambda m: f"{m.group(1)} minus " if m.group(1) else " minus ", text)
    text = _TIMES_AS.sub(" times", text)
    for pattern, words in _RELATIONS + _POWERS:
        text = pattern.sub(words, text)
    text = _ROOT.sub("the square root of ", text)
    text = _TIMES.sub(" times ", text)
    text = _BY.sub(" by ", text)
    text = _DIVIDED.sub(lambda m: f"{m.group(1)} divided by {m.group(2)}" if m.group(1) else " divided by ", text)
    text = _PLUS_MINUS.sub(" plus or minus ", text)
    text = _PLUS.sub(" plus ", text)
    text = _MINUS_SIGN.sub(" minus ", text)
    text = text.replace("and/or", "and or")
    text = _WORD_SLASH.sub(" or ", text)
    text = re.sub(r"(?<!\d)/|/(?!\d)", " ", text)  # a slash left between words is a pause, not a word
    text = _UNSAID.sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _unit(m: re.Match) -> str:
    number, symbol, per_second = m.group(1), m.group(2), m.group(3)
    singular, plural = _UNITS[symbol]
    words = singular if number == "1" else plural
    if per_second:
        if symbol not in _PER_SECOND:
            return m.group()
        words += " per second"
    return f"{number} {words}"


def greek_symbols(text: str) -> str:
    """A Greek letter standing alone (not in a Greek word) said by its name: ``πr^2`` → "pi r^2"."""
    said = _GREEK_SYMBOL.sub(lambda m: f" {GREEK_SYMBOLS[m.group()]} ", text)
    return text if said == text else re.sub(r" {2,}", " ", said).strip()


def before_normalizing(text: str) -> str:
    """Write out units, maths, "about", decimal-comma money and abbreviations the normaliser misreads."""
    text = _ABOUT.sub("about ", text)
    text = _PHONE.sub(lambda m: ", ".join(" ".join(_DIGIT_WORDS[int(d)] for d in group)
                                          for group in re.findall(r"\d+", m.group())), text)
    text = _VERSION.sub(lambda m: m.group().replace(".", " point "), text)
    text = _UNIT.sub(_unit, text)
    text = speak_maths(text)
    text = _RANGE.sub(r"\1 to \2", text)
    text = _DECIMAL_COMMA_MONEY.sub(r"\1\2.\3", text)
    for pattern, words in _ABBREVIATIONS:
        text = pattern.sub(words, text)
    return text


def after_normalizing(spoken: str) -> str:
    """Parentheses become the pauses a reader makes: "(second edition, page forty two)" → commas;
    a slash the normaliser left between words is not read: "the fifty/thirty/twenty rule" is
    "the fifty thirty twenty rule"."""
    spoken = re.sub(r"\s*/\s*", " ", spoken)
    spoken = re.sub(r"\s*\(\s*", ", ", spoken)
    spoken = re.sub(r"\s*\)\s*(?=[.,;:!?]|$)", "", spoken)
    spoken = re.sub(r"\s*\)\s*", ", ", spoken)
    return re.sub(r"^,\s*", "", spoken)
