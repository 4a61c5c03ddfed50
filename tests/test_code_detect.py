"""Unspeakable-content detection without fences: code, notation, tables, identifiers, scripts."""

from __future__ import annotations

import pytest

from echoforge.text.code_detect import (
    classify, drop_foreign_words, drop_symbol_runs, identifier_words, is_identifier, is_table, speak_identifiers,
)

CODE = [
    ("def reverse_sort(lst): return sorted(lst, reverse=True)", "python"),
    ("x = [i for i in range(10)]", "python"),
    ("import numpy as np", "python"),
    ("print(sorted(words, key=len))", "python"),
    ("SELECT name, age FROM users WHERE age > 30 ORDER BY name;", "sql"),
    ("select name from users where age > 30;", "sql"),
    ("UPDATE users SET name = 'Bob' WHERE id = 1;", "sql"),
    ("const add = (a, b) => a + b;", "javascript"),
    ("function greet(name) { return 'Hello ' + name; }", "javascript"),
    ("console.log(items.map(x => x * 2));", "javascript"),
    ("sudo apt-get install -y ffmpeg && ls -la /tmp", "shell"),
    ("pip install numpy", "shell"),
    ("echo $PATH", "shell"),
]


@pytest.mark.parametrize("text,lang", CODE)
def test_unfenced_code_is_found_with_its_language(text, lang):
    finding = classify(text)
    assert finding is not None and finding.kind == "code"
    assert finding.what == f"unfenced {lang} code"


@pytest.mark.parametrize("text,what", [
    ("rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1", "FEN chess position"),
    ("r1bqkbnr/pppp1ppp/2n5/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R w KQkq - 2 3", "FEN chess position"),
    ("x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}", "LaTeX"),
    ("$E = mc^2$", "LaTeX"),
    ("The commit is 3f2a9c8e1b7d4f6a.", "hash or serial number"),
    ("About 100000000000000000000000 stars.", "long digit run"),
    ("Привет, как дела?", "Cyrillic script"),
    ("مرحبا بالعالم", "Arabic script"),
    ("こんにちは世界", "Hiragana script"),
])
def test_notation_numbers_and_scripts(text, what):
    finding = classify(text)
    assert finding is not None and finding.what == what


PROSE = [
    "In 2025 a survey of 3,184 people found 38% of them skipped it, and regretted it.",
    "Dr. Smith (2nd ed., p. 42) says the return on investment is about 7% per year.",
    "If you select the right tool for the job, it is easy to order items from the store where you live.",
    "Let me know if it works; if not, we can try again.",
    "Use a tuple when the data should not change, and a list when it should.",
    "The score was 3-2 after extra time, and fans waited until 10:30 p.m. to celebrate.",
    "Print the form, sign it and return it by Friday.",
    "Import taxes on cars rose by 5% in 2023.",
    "Python is a programming language created by Guido van Rossum in 1991.",
    "Select all that apply: red, green or blue.",
    "The ratio is 3:1, so add three cups of water for each cup of rice.",
    "Mr. O'Brien's café is on 5th Avenue, and it costs $12.50 for two.",
    "Let x be the number of apples; then 2x + 3 = 11, so x = 4.",
    "The U.S. economy grew by 2.5% in 2024, according to the report.",
    "My iPhone and my MacBook both run out of battery by 5 p.m.",
    "It's 50/50 whether it rains tomorrow, about ~20% more than usual.",
    "He said \"thank you\" and left (quietly).",
    "COVID-19 vaccines were approved in late 2020.",
    "Insert the key, turn it twice, and the door opens.",
    "Mañana means tomorrow, and déjà vu is French.",
    "Yes.",
]


@pytest.mark.parametrize("text", PROSE)
def test_ordinary_prose_is_not_flagged(text):
    assert classify(text) is None


def test_identifiers_are_said_as_words():
    assert identifier_words("reverse_sort") == "reverse sort"
    assert identifier_words("getUserName()") == "get user name"
    assert identifier_words("os.path.join") == "os path join"
    assert identifier_words("MAX_RETRIES") == "MAX RETRIES"
    said, n = speak_identifiers("Call reverse_sort or getUserName() before my_list.reverse() runs.")
    assert said == "Call reverse sort or get user name before my list reverse runs." and n == 3
    # brand names and abbreviations are not identifiers
    assert speak_identifiers("My iPhone, e.g. the new one, and macOS.") == ("My iPhone, e.g. the new one, and macOS.", 0)
    assert is_identifier("my_list.reverse()") and not is_identifier("x = 1")


def test_tables_without_pipes():
    assert is_table(["Plan\tPrice\tStorage", "Basic\t$5\t50 GB", "Pro\t$12\t2 TB"])
    assert is_table(["Name  Score  Rank", "Alice  92  1", "Bob  85  2"])
    assert is_table(["fruit, price, unit", "apple, 0.50, each", "banana, 0.25, each"])
    assert not is_table(["Cats, dogs and rabbits are popular pets.", "Fish, however, are easier to keep."])
    assert not is_table(["Yes, I agree, it is fine", "No, I do not"])
    assert not is_table(["One line only\twith a tab"])


def test_foreign_words_and_symbol_runs_are_removed():
    assert drop_foreign_words("You say arigatou, written ありがとう in hiragana.") == (
        "You say arigatou, written in hiragana.", "Hiragana")
    assert drop_foreign_words("Plain English.") == ("Plain English.", None)
    assert drop_symbol_runs("Wait ==== here --> there... ok") == ("Wait here there... ok", 2)


def _bundled_texts():
    import json

    from conftest import DATA

    texts = []
    for line in (DATA / "alpaca_messy.jsonl").read_text().splitlines():
        r = json.loads(line)
        texts += [r["instruction"], r["input"], r["output"]]
    for line in (DATA / "units_fit.jsonl").read_text().splitlines():
        texts += [v for v in json.loads(line).values() if isinstance(v, str)]
    for conv in json.loads((DATA / "sharegpt_sample.json").read_text()):
        texts += [m["value"] for m in conv["conversations"]]
    return texts


def test_no_prose_sentence_of_the_bundled_samples_is_flagged():
    """The bundled samples' markdown prose (code blocks and tables are markdown's to drop)."""
    import pysbd

    from echoforge.config import BuildConfig
    from echoforge.transforms.speakable import MarkdownToProse

    md = MarkdownToProse(BuildConfig())
    segment = pysbd.Segmenter(language="en", clean=False).segment
    sentences = [s for text in _bundled_texts() for block in md.convert(text).blocks for line in block.lines
                 for s in segment(line) if s.strip()]
    assert len(sentences) > 3000
    assert [s for s in sentences if classify(s) is not None] == []


@pytest.mark.parametrize("text", [
    "10X = 5, X = 0.5", "2x + 3 = 7", "36 km/h = 36 x 1000 / 3600 m/s = 10 m/s", "Naruto -> Naruto, Nippon -> Japan",
    "x^2 + y^2 = 25", "15% of 80 = 0.15 * 80 = 12.", "(5 + 3) * 2 = 16", "Area = 3.14 * r^2", "F = m * a",
    "Evaporation → condensation → precipitation.", "1 USD → 0.92 EUR", "Speed = 150 km / 2 h = 75 km/h.",
])
def test_maths_and_mappings_are_speech_not_code(text):
    assert classify(text) is None


@pytest.mark.parametrize("text", [
    "int x = 5;", "let y = x * 2;", "p->next = NULL;", "fn add(a: i32, b: i32) -> i32 { a + b }",
    "if x > 10: print(x)", "arr[i] = arr[i-1] + 1",
])
def test_code_holding_maths_is_still_code(text):
    finding = classify(text)
    assert finding is not None and finding.kind == "code"


def test_greek_letters_in_maths_are_said_by_name():
    assert drop_foreign_words("The area is πr^2 and Δx is small.") == ("The area is pi r^2 and delta x is small.", None)
    assert drop_foreign_words("Το αλφάβητο")[1] == "Greek"
