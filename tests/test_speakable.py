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
            "Docs at https://example.com/docs now.")
    t, _ = run(stage, text)
    assert "ls" not in t.answer_spoken and "example" not in t.answer_spoken
    notes = " ".join(t.speakable_notes)
    assert "code block (bash" in notes and "table (2 rows)" in notes and "URL" in notes
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
    t, _ = run(stage, "About 100000000000000000000000 stars.")
    assert not any(ch.isdigit() for ch in t.answer_spoken) and "stars" in t.answer_spoken
    t, _ = run(stage, "Great 🎉 thanks! 👍")
    assert t.answer_spoken == "Great thanks!" and "answer: dropped emoji" in t.speakable_notes
    _, r = run(stage, "مرحبا بالعالم")
    assert r.reason == "nothing_speakable" and "non-Latin" in r.detail
    t, _ = run(stage, "In Hebrew it is שלום, pronounced shalom.")
    assert "shalom" in t.answer_spoken and "ש" not in t.answer_spoken


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
    _, r = run(stage, "Fine.", question="A.\n\n" + "word " * 200)  # the long paragraph does not fit the cap
    assert r.reason == "nothing_speakable" and "truncated to 1 of 2 sentences" in r.detail
