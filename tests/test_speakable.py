"""Speakable text: markdown to prose, normalisation, policies, caps and odd characters."""

from __future__ import annotations

import pytest

from echoforge.config import parse_config
from echoforge.schemas.records import Turn
from echoforge.transforms.speakable import Speakable


def turn(answer: str, question: str = "Tell me.") -> Turn:
    return Turn(id="t", source="s", source_position="s:row 0", conversation_id="c", turn_index=0, history=[],
                question_text=question, answer_text=answer)


@pytest.fixture(scope="module")
def stage(cache_env):
    s = Speakable(parse_config({}))
    s.ensure_setup()
    return s


def run(stage: Speakable, answer: str, question: str = "Tell me."):
    kept, rejected = stage.process([turn(answer, question)])
    return (kept[0] if kept else None), (rejected[0] if rejected else None)


def test_markdown_numbers_money_dates_units(stage):
    t, _ = run(stage, "## Plan\n\n1. Pay **$3.50** on Jan 5, 2024.\n2. Walk 5 km at 45% effort.")
    assert t.answer_spoken.startswith("Plan.")
    for words in ("three dollars fifty cents", "january fifth", "twenty twenty four", "five kilometers",
                  "forty five percent"):
        assert words in t.answer_spoken.lower()
    assert not any(ch.isdigit() or ch in "$%*#" for ch in t.answer_spoken)
    assert len(t.answer_sentences) == 3 and t.answer_sentences[0] == "Plan."
    assert t.answer_sentences[1].startswith("Pay three dollars") and t.answer_sentences[2].startswith("Walk five")


def test_code_table_url_dropped_with_notes(stage):
    text = ("Run this:\n\n```bash\nls -la\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "Docs at https://example.com/docs now. The rest is easy.")
    t, _ = run(stage, text)
    assert t.answer_spoken == "The rest is easy."
    notes = " ".join(t.speakable_notes)
    assert "code block (bash" in notes and "table (2 rows)" in notes and "URL (https://example.com/docs)" in notes
    assert "lead-in 'Run this:'" in notes
    assert t.answer_text == text  # the original is kept


def test_reject_policies(cache_env):
    s = Speakable(parse_config({"speakable": {"code": "reject", "urls": "reject"}}))
    s.ensure_setup()
    _, r = run(s, "Try:\n\n```\nx = 1\n```")
    assert r.reason == "unspeakable_code" and r.stage == "speakable"
    _, r = run(s, "See https://example.com.")
    assert r.reason == "unspeakable_url"


def test_only_code_is_rejected(stage):
    _, r = run(stage, "```python\nprint('hi')\n```")
    assert r.reason == "nothing_speakable" and "code block" in r.detail


def test_empty_text(stage):
    _, r = run(stage, "   ")
    assert r.reason == "empty_text"


def test_long_answer_truncated_at_sentence_boundary(stage):
    text = " ".join(f"This is sentence number {i}." for i in range(200))
    t, _ = run(stage, text)
    assert len(t.answer_sentences) == 12 and t.answer_spoken.endswith(".")
    assert any("truncated to 12 of" in n for n in t.speakable_notes)


def test_ten_thousand_words_rejected_when_policy_says(cache_env):
    s = Speakable(parse_config({"speakable": {"overflow": "reject"}}))
    s.ensure_setup()
    _, r = run(s, " ".join(["word"] * 10_000) + ".")
    assert r.reason == "too_long"


def test_huge_numbers_emoji_and_scripts(stage):
    t, _ = run(stage, "About 100000000000000000000000 stars. They shine at night.")
    assert t.answer_spoken == "They shine at night." and "long digit run" in " ".join(t.speakable_notes)
    t, _ = run(stage, "Great 🎉 thanks! 👍")
    assert t.answer_spoken == "Great thanks!" and "answer: dropped emoji" in t.speakable_notes
    _, r = run(stage, "مرحبا بالعالم")
    assert r.reason == "language" and "Arabic" in r.detail
    _, r = run(stage, "Γεια σου κόσμε")  # a script the language detector does not know
    assert r.reason == "nothing_speakable" and "Greek script" in r.detail
    t, _ = run(stage, "In Hebrew it is שלום, pronounced shalom.")
    assert t.answer_spoken == "In Hebrew it is, pronounced shalom." and "ש" not in t.answer_spoken
    assert "answer: dropped words in Hebrew script" in t.speakable_notes


UNFENCED = {
    "python": "def reverse_sort(lst): return sorted(lst, reverse=True)",
    "python block": "def double(x):\n    return x * 2",
    "sql": "SELECT name, age FROM users WHERE age > 30 ORDER BY name;",
    "javascript": "const add = (a, b) => a + b;",
    "shell": "sudo apt-get install -y ffmpeg && ls -la /tmp",
    "latex": "x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}",
    "fen": "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1",
}


@pytest.mark.parametrize("kind", sorted(UNFENCED))
def test_unfenced_code_never_reaches_the_voice(stage, kind):
    code = UNFENCED[kind]
    t, _ = run(stage, f"Try it like this:\n{code}\nIt works on any list.")
    assert t.answer_spoken == "It works on any list."
    notes = " ".join(t.speakable_notes)
    assert "lead-in 'Try it like this:'" in notes
    assert any(w in notes for w in ("unfenced", "LaTeX", "FEN")), notes
    # alone in its paragraph too
    t, _ = run(stage, f"Here you go.\n\n{code}")
    assert t.answer_spoken == "Here you go."


@pytest.mark.parametrize("table", [
    "Plan\tPrice\tStorage\nBasic\t$5\t50 GB\nPro\t$12\t2 TB",
    "Name  Score  Rank\nAlice  92  1\nBob  85  2",
    "fruit, price, unit\napple, 0.50, each\nbanana, 0.25, each",
])
def test_tables_without_pipes_are_dropped(stage, table):
    t, _ = run(stage, f"Here is a quick comparison:\n{table}\nThe second one is better value.")
    assert t.answer_spoken == "The second one is better value."
    assert any("table without pipes" in n for n in t.speakable_notes)


def test_code_and_table_policies_reject_unfenced_content(cache_env):
    s = Speakable(parse_config({"speakable": {"code": "reject", "tables": "reject"}}))
    s.ensure_setup()
    _, r = run(s, "Sure.\nSELECT name FROM users WHERE age > 30;\nDone.")
    assert r.reason == "unspeakable_code" and "unfenced sql code" in r.detail
    _, r = run(s, "Scores:\nAlice  92  1\nBob  85  2")
    assert r.reason == "unspeakable_table" and "table without pipes" in r.detail
    kept, _ = run(s, "In 2025 a survey of 3,184 people found 38% of them skipped it.")
    assert kept is not None


def test_prose_with_numbers_names_and_punctuation_is_kept_whole(stage):
    from test_code_detect import PROSE

    for text in PROSE:
        t, _ = run(stage, text)
        assert not any(n.startswith("answer: dropped") for n in t.speakable_notes), (text, t.speakable_notes)


def test_identifiers_inside_prose_are_said_as_words(stage):
    t, _ = run(stage, "Use the `reverse_sort` helper, or call getUserName() and `my_list.reverse()` on it.")
    assert t.answer_spoken == "Use the reverse sort helper, or call get user name and my list reverse on it."
    t, _ = run(stage, "Set a_b, c_d, e_f and g_h before run_all. Then wait.")
    assert t.answer_spoken == "Then wait." and any("identifiers" in n for n in t.speakable_notes)


def test_sentences_that_need_a_dropped_url_go_whole(stage):
    text = ("The official documentation is at https://docs.python.org/3/ and a gentler tutorial lives at "
            "https://realpython.com. Both are free to read.")
    t, _ = run(stage, text)
    assert t.answer_spoken == "Both are free to read."
    notes = t.speakable_notes
    assert "answer: dropped URL (https://docs.python.org/3/)" in notes
    assert "answer: dropped URL (https://realpython.com)" in notes
    t, _ = run(stage, "The docs (see https://example.com/docs) are short.")
    assert t.answer_spoken == "The docs are short."
    t, _ = run(stage, "Run `rm -rf /tmp/x` to clean up. Then rebuild.")
    assert t.answer_spoken == "Then rebuild."


def test_placeholders_when_the_config_asks(cache_env):
    s = Speakable(parse_config({"speakable": {"url_placeholder": "the link in the text",
                                              "block_placeholder": "See the {what} in the text."}}))
    s.ensure_setup()
    t, _ = run(s, "The official documentation is at https://docs.python.org/3/ and a tutorial is at "
                  "https://realpython.com.")
    assert t.answer_spoken == ("The official documentation is at the link in the text and a tutorial is at "
                               "the link in the text.")
    text = ("Here is a quick comparison:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nTo reverse a list in place:\n\n"
            "```python\nx.reverse()\n```\n\nUse a tuple when the data should not change.")
    t, _ = run(s, text)
    assert t.answer_spoken == ("Here is a quick comparison. See the table in the text. To reverse a list in place. "
                               "See the code in the text. Use a tuple when the data should not change.")


def test_lead_ins_of_dropped_blocks_go_with_them(stage):
    text = ("Here is a quick comparison:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nTo reverse a list in place:\n\n"
            "```python\nx.reverse()\n```\n\nUse a tuple when the data should not change.")
    t, _ = run(stage, text)
    assert t.answer_spoken == "Use a tuple when the data should not change."
    notes = " ".join(t.speakable_notes)
    assert "lead-in 'Here is a quick comparison:'" in notes and "lead-in 'To reverse a list in place:'" in notes


@pytest.mark.parametrize("written,spoken", [
    ("Keep it at 1 atm.", "Keep it at one atmosphere."),
    ("It uses 2 GB of memory and 63 km.", "It uses two gigabytes of memory and sixty three kilometers."),
    ("A 1 KiB block and 5 MiB.", "A one kibibyte block and five mebibytes."),
    ("It costs ~$17,82 now.", "It costs about seventeen dollars eighty two cents now."),
    ("In the handbook (2nd ed., p. 42), in the chapter on soil.",
     "In the handbook, second edition, page forty two, in the chapter on soil."),
    ("It runs at 25 MB/s on average.", "It runs at twenty five megabytes per second on average."),
    ("Call 555-0123 now.", "Call five five five, zero one two three now."),
    ("Version 3.11.7 was released.", "Version three point eleven point seven was released."),
    ("It takes 5-10 minutes at 100 km/h.", "It takes five to ten minutes at one hundred kilometers per hour."),
    ("Prof. Lee adds 2 tbsp of oil.", "Professor Lee adds two tablespoons of oil."),
    ("Keep the filter at 3.5 L and add 1 L.", "Keep the filter at three point five liters and add one liter."),
])
def test_spoken_forms_the_normaliser_misreads(stage, written, spoken):
    t, _ = run(stage, written)
    assert t.answer_spoken == spoken


def test_a_huge_answer_costs_no_more_than_the_part_that_can_be_kept(stage, monkeypatch):
    normalize, calls = stage.normalizer.normalize, []
    monkeypatch.setattr(stage.normalizer, "normalize", lambda text: calls.append(text) or normalize(text))
    sentence = "The river runs for 12 km past the old mill, then it turns west."
    huge, _ = run(stage, " ".join([sentence] * 2000))  # 130,000 characters
    assert len(calls) < 20
    short, _ = run(stage, " ".join([sentence] * 40))
    assert huge.answer_sentences == short.answer_sentences and len(huge.answer_sentences) == 12
    assert "answer: truncated to 12 of " in " ".join(huge.speakable_notes)


def test_what_is_kept_after_the_cap_must_still_be_speakable(stage):
    _, r = run(stage, "A.\n\n" + "word " * 300)  # the long paragraph does not fit the cap
    assert r.reason == "nothing_speakable" and "truncated to 1 of 2 sentences" in r.detail
