"""Fuzz tests: any value in any field of any layout, and any bytes in a JSONL or CSV file.

Property: every input row ends as turns or as one reject with its position, nothing raises,
no unexpected error is swallowed (no reject with reason ``error``), nothing is counted twice,
and everything that comes out can be written to the output's Arrow schemas. Examples are
derandomised, so CI runs the same inputs every time; each example is a batch of rows.
"""

from __future__ import annotations

import csv
import io
import json
import random
from functools import cache

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from echoforge.config import BuildConfig, parse_config
from echoforge.io.readers import RawRow
from echoforge.pipeline.workunits import plan_work_units
from echoforge.schemas.columns import reject_schema, reject_to_row, row_schema, turn_to_row
from echoforge.transforms.ingest import Ingest
from echoforge.transforms.speakable import Speakable


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


# --- values ---

def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Draw from one of the strategies, chosen in proportion to its weight."""
    return _weighted([s for w, s in choices for _ in range(w)])


@st.composite
def _weighted(draw, pool: list[st.SearchStrategy]):
    return draw(pool[draw(st.sampled_from(range(len(pool))))])


SPECIAL = [
    "\x00", "\x07", "\x1b", "\x7f", "\x85", "\t", "\r\n", "\u2028", "\u2029",  # control and line breaks
    "\ud800", "\udfff", "\udc80",  # lone surrogates (valid in JSON escapes)
    "e\u0301", "\u0300\u0301\u0302\u0303", "Z\u0351\u0352\u0353\u0354",  # combining marks
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",  # zero-width
    "\u202e", "\u200f", "\u061c", "مرحبا", "שלום", "\u202bmixed עברית text\u202c",  # right-to-left
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "1\ufe0f\u20e3",  # emoji
    "$3.50", "45%", "1st", "Jan 5, 2024", "10:30", "3/4", "½", "²", "Ⅻ", "١٢٣", "𝟘", "ﬁ", "1e10", "-0",
    "```", "```python\nx = 1\n```", "|a|b|\n|-|-|\n|1|2|", "https://x.io/a?b=c", "![img](u.png)", "<b>hi</b>",
    "**", "# ", "1. ", "- ", "> ", "\\", '"', "[", "{",
]
WORDS = ["the", "What", "is", "a", "river?", "Paris.", "It", "flows", "to", "sea", "and", "why", "not", "Yes,", "!"]

tiny_text = st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from(SPECIAL)),
                     max_size=8).map("".join)
prose = st.lists(weighted((3, st.sampled_from(WORDS)), (1, st.sampled_from(SPECIAL)), (1, tiny_text)),
                 min_size=1, max_size=25).map(" ".join)
long_text = st.builds(lambda t, n: (t or "word ") * n, st.one_of(prose, tiny_text), st.integers(200, 3000))
numbers = st.one_of(
    st.integers(), st.integers(-(10**40), 10**40), st.floats(),
    st.sampled_from([-(10**400), 5e-324, 1.7976931348623157e308, -0.0, float("nan"), float("inf")]),
    st.sampled_from([4301, 5000]).map(lambda digits: 10**digits),  # longer than Python will print
)
scalars = st.one_of(st.none(), st.booleans(), numbers, tiny_text, prose)
keys = st.one_of(st.sampled_from(["text", "type", "id", "role", "content", "from", "value"]), tiny_text)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                           max_leaves=10)


def _nest(value, depth: int, in_dict: bool):
    for _ in range(depth):
        value = {"text": value} if in_dict else [value]
    return value


deep = st.builds(_nest, scalars, st.integers(2, 5000), st.booleans())
any_value = weighted((3, json_values), (1, deep), (1, long_text))


class Rows:
    """Rows of every layout, built from a pool of drawn values by a seeded generator.

    Hypothesis draws the pool (odd values of any JSON type, prose, ids) and the seed; each
    field of each row is then a plausible value most of the time and an odd one otherwise, so
    one example gives a whole batch of rows at the cost of a few draws.
    """

    def __init__(self, odd: list, texts: list[str], ids: list, seed: int):
        self.odd, self.texts, self.ids, self.rng = odd, texts, ids, random.Random(seed)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def maybe(self, plausible, p: float = 0.2):
        """The plausible value, or (with probability ``p``) an odd one."""
        return self.rng.choice(self.odd) if self.chance(p) else plausible

    def text(self):
        return self.maybe(self.rng.choice(self.texts))

    def record(self, required: dict, optional: dict | None = None, p_hole: float = 0.1) -> dict:
        """An object with the fields, some optional ones and a stray one; sometimes a field is missing."""
        out = dict(required)
        out.update({k: v for k, v in (optional or {}).items() if self.chance(0.5)})
        if self.chance(p_hole):
            out.pop(self.rng.choice(list(out)))
        if self.chance(0.3):
            out[self.rng.choice(["stray", "text", "meta", "\ud800", ""])] = self.rng.choice(self.odd)
        return out

    def content(self):
        r = self.rng.random()
        if r < 0.25:
            parts = [{"type": "text", "text": self.text()}, self.text(),
                     {"type": "image_url", "image_url": {"url": self.text()}}, {"text": self.text()}]
            return self.maybe(self.rng.sample(parts, self.rng.randint(1, 4)), 0.1)
        return self.text()

    def messages(self, role_key: str, text_key: str, users: list[str], assistants: list[str]):
        def message(roles):
            msg = self.record({role_key: self.maybe(self.rng.choice(roles), 0.05), text_key: self.content()},
                              p_hole=0.03)
            return self.maybe(msg, 0.03)

        out = [message(["system", "tool", "narrator"])] if self.chance(0.3) else []
        for _ in range(self.rng.randint(1, 4)):
            out += [message(users), message(assistants)]
        if self.chance(0.1):
            self.rng.shuffle(out)
        return self.maybe(out, 0.05)

    def row(self, layout: str):
        if layout == "unreadable":
            return RawRow("fuzz.jsonl", 0, None, str(self.rng.choice(self.texts + [""])))
        if layout == "sharegpt":
            return self.record({"conversations": self.messages("from", "value", USERS, ASSISTANTS)},
                               {"id": self.rng.choice(self.ids)})
        if layout == "openai":
            return self.record({"messages": self.messages("role", "content", USERS, ASSISTANTS)},
                               {"conversation_id": self.rng.choice(self.ids)})
        if layout == "alpaca":
            return self.record({"instruction": self.text(), "output": self.text()},
                               {"input": self.text(), "idx": self.rng.choice(self.ids)})
        if layout == "qa":
            return self.record({"question": self.text(), "answer": self.text()}, {"uuid": self.rng.choice(self.ids)})
        if layout == "mapping-messages":
            return self.record({"chat": self.maybe(self.record({"turns": self.messages("speaker", "says", ["me"], ["it"])}),
                                                   0.05)}, {"meta": {"id": self.rng.choice(self.ids)}})
        if layout == "mapping-qa":
            return self.record({"q": self.maybe({"text": self.text()}, 0.05), "a": self.maybe({"text": self.text()}, 0.05)},
                               {"ctx": self.text(), "meta": self.maybe({"id": self.rng.choice(self.ids)})})
        examples = [self.maybe(self.record({"in": self.text(), "out": self.text()}), 0.05)
                    for _ in range(self.rng.randint(0, 4))]
        return self.record({"task": self.maybe(self.record({"instruction": self.text(),
                                                            "examples": self.maybe(examples, 0.05)}), 0.05)})

    def batch(self, layout: str, size: int) -> list[RawRow]:
        """Rows mostly in ``layout``, some in other layouts and some unreadable ones."""
        others = [*LAYOUTS, "unreadable"]
        data = [self.row(layout if self.chance(0.8) else self.rng.choice(others)) for _ in range(size)]
        return rows_of(data)


USERS, ASSISTANTS = ["human", "user", " Human ", "prompter"], ["gpt", "assistant", "GPT", "bot", "model"]
LAYOUTS = ["sharegpt", "openai", "alpaca", "qa", "mapping-messages", "mapping-qa", "mapping-instances"]
pools = st.builds(Rows, st.lists(any_value, min_size=1, max_size=8), st.lists(prose, min_size=1, max_size=8),
                  st.lists(st.one_of(tiny_text, numbers, any_value), min_size=1, max_size=3), st.integers(0, 2**32 - 1))
MAPPINGS = {
    "mapping-messages": {"id": "meta.id", "messages": "chat.turns", "role": "speaker", "content": "says",
                         "user_roles": ["me"], "assistant_roles": ["it"]},
    "mapping-qa": {"id": "meta.id", "question": "q.text", "answer": "a.text", "context": "ctx"},
    "mapping-instances": {"instruction": "task.instruction", "instances": "task.examples",
                          "instance_input": "in", "instance_output": "out"},
}


def config_for(layout: str, normalizer: str = "none") -> BuildConfig:
    ingest = {"format": "mapping", "mapping": MAPPINGS[layout]} if layout in MAPPINGS else {}
    return parse_config({"ingest": {**ingest, "system_prompts": "history", "max_history_turns": 2},
                         "speakable": {"normalizer": normalizer, "max_answer_sentences": 3, "max_answer_chars": 300}})


@cache
def stages(layout: str, normalizer: str = "none") -> tuple[Ingest, Speakable]:
    config = config_for(layout, normalizer)
    speakable = Speakable(config)
    speakable.ensure_setup()
    return Ingest(config), speakable


def rows_of(data: list) -> list[RawRow]:
    return [RawRow("fuzz.jsonl", i, d.data, d.error, f"row {i}") if isinstance(d, RawRow)
            else RawRow("fuzz.jsonl", i, d, None, f"row {i}") for i, d in enumerate(data)]


# --- the property ---

def writable(rows: list[dict], schema: pa.Schema) -> None:
    pa.Table.from_pylist(rows, schema=schema)  # raises on text that is not UTF-8 or a wrong type


def check_ingest(rows: list[RawRow], ingest: Ingest):
    turns, rejects = ingest.process(rows)
    rejected = [r.input_row for r in rejects]
    kept = {t.input_row for t in turns}
    assert len(rejected) == len(set(rejected)), "a row was rejected twice"
    assert kept.isdisjoint(rejected), "a row was both kept and rejected"
    assert kept | set(rejected) == {r.position for r in rows}, "a row was lost"
    assert not [r for r in rejects if r.reason == "error"], [r.detail for r in rejects if r.reason == "error"]
    assert all(r.stage == "ingest" and r.reason and r.detail and len(r.detail) <= 300 for r in rejects)
    assert all(r.source_position == f"fuzz.jsonl:row {r.input_row}" for r in rejects)
    assert len({t.id for t in turns}) == len(turns), "two turns share an id"
    for t in turns:  # turns of one row are numbered without gaps
        assert t.turn_index == sum(1 for u in turns if u.input_row == t.input_row and u.turn_index < t.turn_index)
    writable([reject_to_row(r) for r in rejects], reject_schema())
    return turns, rejects


def check_speakable(turns, speakable: Speakable):
    spoken, refused = speakable.process(turns)
    assert sorted([t.id for t in spoken] + [r.id for r in refused]) == sorted(t.id for t in turns)
    assert not [r for r in refused if r.reason == "error"], [r.detail for r in refused if r.reason == "error"]
    min_letters = speakable.config.speakable.min_letters
    for t in spoken:
        assert sum(ch.isalpha() for ch in t.question_spoken) >= min_letters
        assert sum(ch.isalpha() for ch in t.answer_spoken) >= min_letters
        assert t.answer_spoken == " ".join(t.answer_sentences)
        assert len(t.answer_sentences) <= 3
    writable([turn_to_row(t) for t in spoken], row_schema())
    writable([reject_to_row(r) for r in refused], reject_schema())
    return spoken, refused


ROWS_PER_EXAMPLE = 32


@pytest.mark.parametrize("layout", LAYOUTS)
@fuzz_settings(30)
@given(rows=pools)
def test_ingest_and_speakable_account_for_every_row(layout, rows):
    ingest, speakable = stages(layout)
    turns, _ = check_ingest(rows.batch(layout, ROWS_PER_EXAMPLE), ingest)
    check_speakable(turns, speakable)


@fuzz_settings(10)
@given(rows=pools)
def test_speakable_with_the_nemo_normaliser(rows, cache_env):
    ingest, speakable = stages("qa", "nemo")
    turns, _ = check_ingest(rows.batch("qa", 6), ingest)
    check_speakable(turns, speakable)


# --- readers on raw bytes ---

def read_all(path, rows_per_unit: int) -> list[RawRow]:
    plan = plan_work_units([str(path)], rows_per_unit)
    return [r for unit in plan.units for r in plan.read(unit)]


def check_reader(path, expected_rows: int | None = None) -> list[RawRow]:
    rows = read_all(path, 3)
    assert [r.position for r in rows] == list(range(len(rows)))
    if expected_rows is not None:
        assert len(rows) == expected_rows
    assert all((r.data is None) != (r.error is None) for r in rows)
    assert [(r.data, r.error) for r in read_all(path, 1000)] == [(r.data, r.error) for r in rows]
    ingest = Ingest(BuildConfig())
    turns, rejects = ingest.process(rows)
    assert {t.input_row for t in turns} | {r.input_row for r in rejects} == set(range(len(rows)))
    assert not [r for r in rejects if r.reason == "error"]
    return rows


def _json_line(value, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


small_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), tiny_text),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                          max_leaves=8)
jsonl_line = st.one_of(
    st.binary(max_size=40),
    st.builds(_json_line, small_json, st.booleans()),
    st.builds(lambda rows, layout: _row_line(rows.row(layout)), pools, st.sampled_from(["qa", "sharegpt"])),
    st.sampled_from([b"", b"   ", b"\r", b"\xef\xbb\xbf{}", b'{"question": "caf\xe9"}', b"[1, 2", b"null", b"\x00"]),
)


def _row_line(row) -> bytes:
    """A generated row as a JSONL line; rows that `json` cannot write (or too long to be worth it) as {}."""
    try:
        line = _json_line(row, False)
    except (ValueError, RecursionError):
        return b"{}"
    return line if len(line) < 20_000 else b"{}"


@fuzz_settings(120)
@given(lines=st.lists(jsonl_line, max_size=12), end=st.sampled_from([b"", b"\n", b"\r\n"]))
def test_every_jsonl_line_is_a_row_or_a_reject(tmp_path_factory, lines, end):
    data = b"\n".join(lines) + end
    path = tmp_path_factory.mktemp("jsonl") / "fuzz.jsonl"
    path.write_bytes(data)
    pieces = data.split(b"\n")
    rows = check_reader(path, sum(1 for p in pieces if p.strip()))
    for row, line in zip(rows, (p for p in pieces if p.strip())):
        try:
            value = json.loads(line.decode("utf-8"))
        except ValueError:  # also UnicodeDecodeError
            value = None
        if isinstance(value, dict):
            assert json.dumps(row.data) == json.dumps(value)
        else:
            assert row.data is None and row.error


csv_text = st.text(st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from([",", '"', "\n", "\r", "\t"])),
                   max_size=20)


@fuzz_settings(80)
@given(records=st.lists(st.tuples(csv_text, csv_text, csv_text), max_size=10))
def test_csv_written_by_a_csv_writer_reads_back_exactly(tmp_path_factory, records):
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["question", "answer", "note"])
    writer.writerows(records)
    path = tmp_path_factory.mktemp("csv") / "fuzz.csv"
    path.write_bytes(buf.getvalue().encode("utf-8"))
    rows = check_reader(path, len(records))
    assert [r.data for r in rows] == [dict(zip(["question", "answer", "note"], rec)) for rec in records]


@fuzz_settings(80)
@given(lines=st.lists(st.one_of(st.binary(max_size=30), st.sampled_from([b'"', b'a,"b', b'x,y,z', b"\xff,\xfe", b""])),
                      max_size=10))
def test_any_csv_bytes_become_rows_or_rejects(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("csv") / "fuzz.csv"
    path.write_bytes(b"question,answer\n" + b"\n".join(lines))
    check_reader(path)


# Inputs past the parsers' own limits (Python's integer digits, recursion depth, the csv field
# size): each becomes a reject, not a crash.

def test_jsonl_integer_longer_than_python_reads_is_a_reject(tmp_path):
    path = tmp_path / "long-int.jsonl"
    path.write_bytes(b'{"question": "q", "answer": ' + b"7" * 5000 + b"}\n")
    check_reader(path, 1)


def test_jsonl_line_nested_deeper_than_the_recursion_limit_is_a_reject(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"question": "q", "answer": ' + b"[" * 100_000 + b"}\n")
    check_reader(path, 1)


def test_json_file_with_an_integer_longer_than_python_reads_is_a_reject(tmp_path):
    path = tmp_path / "long-int.json"
    path.write_bytes(b'[{"question": "q", "answer": ' + b"7" * 5000 + b"}]")
    check_reader(path, 1)


def test_csv_field_longer_than_the_csv_modules_default_limit_is_read_whole(tmp_path):
    """Python's csv module refuses fields over 131,072 characters by default; the reader lifts
    that limit, so such a field is read, not lost."""
    path = tmp_path / "long-field.csv"
    path.write_text("question,answer\nq," + "a" * 200_000 + "\nq,short\n")
    rows = check_reader(path, 2)
    assert rows[0].data is not None and len(rows[0].data["answer"]) == 200_000
