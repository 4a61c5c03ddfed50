"""Unspeakable text without fences: code, notation, tables, identifiers, symbol runs, foreign scripts.

Code is scored on Pygments tokens: the Python lexer gives the structure any C-like or
scripting language shares (calls, attribute access, assignments, brackets, operators), and
each language's own lexer attributes keywords (Python, JavaScript, SQL, shell). LaTeX is
recognised by its control sequences, FEN chess positions by their grammar, tables without pipes
by columns that line up, and scripts by Unicode script data (the ``regex`` module's
``\\p{Script=...}``). Identifiers inside prose are rewritten into words (``reverse_sort`` →
"reverse sort"), never spelled as punctuation.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import regex

from echoforge.text.spoken_forms import greek_symbols

#: Operators that prose does not use; each one found is evidence of code.
_CODE_OPERATORS = {"=", "==", "===", "!=", "!==", "<=", ">=", "+=", "-=", "*=", "/=", "=>", "->", "&&", "||",
                   "::", "**", "//", "<<", ">>", "|", "&", "{", "}", "[", "]", "^", "$", "\\", "@"}
#: Keywords that only code uses, per language (found as keywords by that language's lexer).
_CODE_KEYWORDS = {
    "python": {"def", "lambda", "elif", "None", "True", "False", "nonlocal", "self", "print", "range", "len",
               "sorted", "enumerate", "isinstance", "__init__", "import"},
    "javascript": {"const", "var", "function", "null", "undefined", "typeof", "console", "document", "===",
                   "=>", "async", "let"},
    "sql": {"SELECT", "FROM", "WHERE", "INSERT", "INTO", "UPDATE", "DELETE", "CREATE", "TABLE", "JOIN",
            "GROUP", "ORDER", "BY", "VALUES", "LIMIT", "HAVING", "ALTER", "DROP", "PRIMARY", "KEY", "COUNT",
            "DISTINCT", "AND", "OR", "NOT", "NULL", "AS", "ON", "SET", "INNER", "LEFT", "UNION", "INDEX"},
}
_SHELL_COMMANDS = {"sudo", "apt", "apt-get", "pip", "pip3", "npm", "npx", "yarn", "git", "ls", "cd", "mkdir", "rm",
                   "cp", "mv", "cat", "grep", "curl", "wget", "chmod", "chown", "docker", "python", "python3",
                   "brew", "export", "echo", "tar", "ssh", "kubectl", "conda", "cargo", "go", "make", "touch",
                   "find", "sed", "awk", "systemctl", "source", "node", "java", "gcc", "unzip", "ps", "kill"}
_FEN = re.compile(r"(?<![\w/])(?:[pnbrqkPNBRQK1-8]{1,8}/){7}[pnbrqkPNBRQK1-8]{1,8}(?:\s+[wb](?:\s+(?:-|[KQkq]{1,4}))?"
                  r"(?:\s+(?:-|[a-h][36]))?(?:\s+\d+\s+\d+)?)?")
_LATEX = re.compile(r"\\(?:[A-Za-z]+|[\[\]()])|\$(?![\d\s])[^$\n]+\$|[_^]\{")
_IDENT_SNAKE = re.compile(r"(?<![\w.])_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*(?:\(\))?(?![\w])")
_IDENT_CAMEL = re.compile(r"(?<![\w.])[a-z]{2,}(?:[A-Z][a-z0-9]+)+(?:\(\))?(?![\w])|(?<![\w.])[A-Za-z]\w*\(\)(?![\w])")
_IDENT_DOTTED = re.compile(r"(?<![\w.])[a-z_][a-z0-9_]*(?:\.[a-z_][A-Za-z0-9_]*)+(?:\(\))?(?![\w.])")
_CAMEL_SPLIT = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MIXED_TOKEN = re.compile(r"(?<![\w])(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{10,}(?![\w])")
_LONG_DIGITS = re.compile(r"\d{16,}")
_SYMBOL_RUN = re.compile(r"[^\w\s]{3,}")
_SYMBOLS = set("=<>~#*+^|\\_@&-/")
_NOT_LATIN_LETTER = regex.compile(r"(?=\p{L})[^\p{Script=Latin}]")
_PATH = re.compile(r"(?<![\w/])[\w.~-]*(?:/[\w.-]+){2,}")
_PY_IMPORT = re.compile(r"^\s*(?:from\s+[\w.]+\s+)?import\s+[\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+)*\s*$")
_SQL_STATEMENT = re.compile(r"^\s*(?:select\s.+\sfrom\s+\w+|insert\s+into\s+\w+|update\s+\w+\s+set\s|delete\s+from\s+\w+"
                            r"|create\s+table\s+\w+)", re.I)
_ABBREV_DOT = re.compile(r"\b(?:[A-Za-z]\.){2,}")  # e.g. i.e. U.S.
# Maths said as speech (spoken_forms.speak_maths): numbers, one-letter variables and units joined by
# operators ("10X = 5", "2x + 3 = 7", "36 km/h = 36 x 1000 / 3600 m/s"), and arrows between words.
_TERM = (r"\(*(?:[-−]?[$€£]?(?:\d+(?:[.,]\d+)*|\.\d+)(?:\s?(?:[A-Za-z]{1,3}(?:/[A-Za-z]{1,3})?|%)(?![\w(]))?"
         r"|(?<![\w.])[A-Za-z](?![\w(]))(?:\s?(?:\^\s?[-−]?\w+|[²³]))?\)*")
_MATHS_OP = r"\s?(?:[<>!]=|[=≈≠≤≥<>+±×x*·÷/−–-]|->|→)\s?"
_MATHS = re.compile(rf"(?<![\w.]){_TERM}(?:{_MATHS_OP}{_TERM})+")
_STATEMENT = re.compile(r"[;{]\s*$|[{}]|\+\+")  # a line like this is code even if it holds maths
_WORD_ARROW = re.compile(r"(?<=[\w'])\s+(?:->|→)\s+(?=[\w'(])|\s*→\s*")


@dataclass(frozen=True)
class Finding:
    """Why a piece of text cannot be read aloud."""

    kind: str  # the policy that governs it: "code" or "table"; "script" is always dropped
    what: str  # e.g. "unfenced python code", "FEN chess position", "table without pipes"


@functools.lru_cache(maxsize=None)
def _lexer(name: str):
    from pygments.lexers import get_lexer_by_name

    return get_lexer_by_name(name, stripnl=False, ensurenl=False)


def _tokens(lang: str, text: str) -> list[tuple[object, str, int]]:
    """Non-blank Pygments tokens with their offsets."""
    return [(t, v, i) for i, t, v in _lexer(lang).get_tokens_unprocessed(text) if v.strip()]


def code_evidence(text: str) -> tuple[float, str]:
    """Evidence of code per word (0 for prose) and the language whose keywords fit best."""
    from pygments.token import Comment, Keyword, Name, Operator, Punctuation, String

    text = _ABBREV_DOT.sub(" ", text)
    words = max(len(text.split()), 1)
    structure = float(len(_PATH.findall(text)))
    toks = _tokens("python", text)
    for k, (ttype, value, pos) in enumerate(toks):
        before = text[pos - 1] if pos > 0 else " "
        after = text[pos + len(value)] if pos + len(value) < len(text) else " "
        if ttype in Operator or ttype in Punctuation:
            v = value.strip()
            if v in _CODE_OPERATORS:
                structure += 1
            elif v in ("(", ".") and not before.isspace() and not after.isspace() and after not in ".,;:" \
                    and not (before.isdigit() and after.isdigit()):
                structure += 1  # call or attribute access: name(…), obj.attr
            elif v == ":" and k + 1 == len(toks) and k > 0 and toks[k - 1][1] == ")":
                structure += 1  # def f(x):
            elif v == ";" and (after.isspace() is False or pos + 1 == len(text.rstrip())):
                structure += 1
            elif v in ("<", ">", "+", "*", "/") and before.isspace() != after.isspace():
                structure += 1
        elif ttype in Comment:
            structure += 1
        elif ttype in String and value[:1] in "\"'" and len(value) > 1 and before in "(=,[ " and value[-1:] in "\"'":
            structure += 0.5 if before == " " else 1
    best, best_hits = "", 0
    for lang in ("python", "javascript", "sql"):
        hits = sum(1 for ttype, value, _ in _tokens(lang, text)
                   if (ttype in Keyword or ttype in Name or ttype in Operator) and value in _CODE_KEYWORDS[lang])
        if lang == "sql" and hits < 2:
            hits = 0
        if hits > best_hits:
            best, best_hits = lang, hits
    if _PY_IMPORT.match(text):
        best, best_hits = "python", max(best_hits, 2)
    if _SQL_STATEMENT.match(text):
        best, best_hits = "sql", max(best_hits, 2)
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    if first in _SHELL_COMMANDS and (len(text.split()) == 1 or re.search(r"\s(?:--?[\w-]+|[~./$]\S*|[a-z][\w.-]*)", text)) \
            and not text.rstrip().endswith(("?", "!")):
        best, best_hits = "shell", max(best_hits, 2)
    return (structure + best_hits) / words, best or "unknown"


def without_maths(text: str) -> str:
    """The text with its maths (with a digit) and word arrows taken out: what code evidence is
    judged on, since ``10X = 5`` or ``Naruto -> Japan`` is speech, not code."""
    text = _WORD_ARROW.sub(" to ", text)
    if _STATEMENT.search(text):
        return text
    return _MATHS.sub(lambda m: " 1 " if any(ch.isdigit() for ch in m.group()) else m.group(), text)


def classify(text: str) -> Finding | None:
    """What makes a line or sentence unspeakable as a whole, or None when it reads as prose."""
    stripped = text.strip()
    if not stripped:
        return None
    if _FEN.search(stripped):
        return Finding("code", "FEN chess position")
    latex = _LATEX.findall(stripped)
    if latex and (len(latex) >= 2 or "{" in stripped or latex[0].startswith("$")):
        return Finding("code", "LaTeX")
    score, lang = code_evidence(without_maths(stripped))
    if score >= 0.3 and (score * len(stripped.split()) >= 2 or lang == "shell"):
        return Finding("code", f"unfenced {lang} code" if lang != "unknown" else "unfenced code")
    if _LONG_DIGITS.search(stripped):
        return Finding("code", "long digit run")
    if _MIXED_TOKEN.search(stripped):
        return Finding("code", "hash or serial number")
    letters = regex.findall(r"\p{L}", stripped)
    foreign = _NOT_LATIN_LETTER.findall(stripped)
    if letters and len(foreign) > len(letters) / 2:
        return Finding("script", f"{script_name(foreign[0])} script")
    return None


def script_name(ch: str) -> str:
    """A human name of a character's script (from its Unicode name)."""
    name = unicodedata.name(ch, "UNKNOWN")
    word = name.split()[0]
    return {"CJK": "Chinese", "HANGUL": "Korean"}.get(word, word.capitalize())


def drop_foreign_words(text: str) -> tuple[str, str | None]:
    """Remove words written in a non-Latin script from mostly English text; name the script.
    Greek letters standing alone are maths and are said by name."""
    text = greek_symbols(text)
    found = _NOT_LATIN_LETTER.search(text)
    if not found:
        return text, None
    kept = regex.sub(r"[^\s\p{P}]*(?=\p{L})[^\p{Script=Latin}][^\s\p{P}]*", " ", text)
    kept = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"[ \t]+", " ", kept)).strip()
    return kept, script_name(found.group())


def drop_symbol_runs(text: str) -> tuple[str, int]:
    """Remove runs of symbols (``====``, ``-->``, ``#!$%``); ellipses, quotes and brackets stay."""
    count = 0

    def cut(m: re.Match) -> str:
        nonlocal count
        if sum(ch in _SYMBOLS for ch in m.group()) < 2:
            return m.group()
        count += 1
        return " "

    return re.sub(r"[ \t]+", " ", _SYMBOL_RUN.sub(cut, text)).strip(), count


def identifier_words(name: str) -> str:
    """``reverse_sort`` → "reverse sort", ``getUserName()`` → "get user name", ``os.path`` → "os path"."""
    name = name.removesuffix("()")
    parts = re.split(r"[_.]+", name)
    words = [w for p in parts for w in _CAMEL_SPLIT.split(p) if w]
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)


def speak_identifiers(text: str) -> tuple[str, int]:
    """Rewrite identifiers inside prose as words; return the text and how many were rewritten."""
    count = 0

    def say(m: re.Match) -> str:
        nonlocal count
        count += 1
        return identifier_words(m.group())

    for pattern in (_IDENT_DOTTED, _IDENT_SNAKE, _IDENT_CAMEL):
        text = pattern.sub(say, text)
    return text, count


def is_table(lines: list[str]) -> bool:
    """Lines whose cells line up in columns (tabs, runs of spaces or commas), without pipes."""
    rows = [ln.strip() for ln in lines if ln.strip()]
    if len(rows) < 2:
        return False
    for splitter in (r"\t+", r" {2,}", r"\s*,\s*", r"\s*;\s*"):
        cells = [re.split(splitter, r) for r in rows]
        counts = {len(c) for c in cells}
        if len(counts) == 1 and counts.pop() >= 2:
            short = all(len(cell.split()) <= 4 for row in cells for cell in row)
            if splitter.startswith(r"\s*") and not short:
                continue
            if any(r.rstrip()[-1:] in ".!?" for r in rows) and splitter.startswith(r"\s*"):
                continue
            return True
    return False


def is_identifier(text: str) -> bool:
    """A lone identifier (``my_list.reverse()``, ``getUserName``) that can be said as words."""
    return any(p.fullmatch(text.strip()) for p in (_IDENT_DOTTED, _IDENT_SNAKE, _IDENT_CAMEL))
