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
    # 11 sentences of 75 characters fill the answer's character cap (903)
    assert huge.answer_sentences == short.answer_sentences and len(huge.answer_sentences) == 11
    assert "answer: truncated to 11 of " in " ".join(huge.speakable_notes)


def test_what_is_kept_after_the_cap_must_still_be_speakable(stage):
    _, r = run(stage, "A.\n\n" + "word " * 300)  # the long paragraph does not fit the cap
    assert r.reason == "nothing_speakable" and "truncated to 1 of 2 sentences" in r.detail


@pytest.mark.parametrize("written,spoken", [
    ("10X = 5, X = 0.5", "ten X equals five, X equals zero point five"),
    ("Solve 2x + 3 = 7.", "Solve two x plus three equals seven."),
    ("36 km/h = 36 x 1000 / 3600 m/s = 10 m/s",
     "thirty six kilometers per hour equals thirty six times one thousand divided by three thousand six hundred "
     "meters per second equals ten meters per second"),
    ("Naruto -> Naruto, Nippon -> Japan", "Naruto to Naruto, Nippon to Japan"),
    ("Evaporation → condensation → precipitation.", "Evaporation to condensation to precipitation."),
    ("x^2 + y^3 = 2^n", "x squared plus y cubed equals two to the power of n"),
    ("144 / 12 = 12.", "one hundred and forty four divided by twelve equals twelve."),
    ("10 - 3 = 7 and 7 × 8 = 56.", "ten minus three equals seven and seven times eight equals fifty six."),
    ("1/4 + 1/2 = 3/4.", "one quarter plus one half equals three quarters."),
    ("The area is πr^2.", "The area is pi r squared."),
    ("Density = 200 g / 50 cm^3 = 4 g/cm^3.",
     "Density equals two hundred grams divided by fifty cubic centimeters equals four grams per cubic centimeter."),
    ("It costs $25/month and is 2x faster.", "It costs twenty five dollars per month and is two times faster."),
    ("Use TCP/IP and/or UDP as the #1 choice.", "Use TCP IP and or UDP as the number one choice."),
    ("Follow the 50/30/20 rule, it works 24/7.", "Follow the fifty thirty twenty rule, it works twenty four seven."),
])
def test_maths_arrows_and_units_are_said_as_words(stage, written, spoken):
    t, _ = run(stage, written)
    assert t.answer_spoken == spoken and not t.speakable_notes


def test_no_symbol_is_said_by_its_name(stage):
    from echoforge.text.spoken_forms import SPOKEN_SYMBOL_NAMES

    texts = ["a = b", "Set x_y and a * b, then a / b.", "Use input/output and x|y.", "2^10 = 1024", "a ~ b",
             "Q&A at 8:00; ratio 3:1.", "x = -2 and y <= 5", "Path: a\\b"]
    for text in texts:
        t, _ = run(stage, text)
        said = t.answer_spoken.lower()
        assert not [n for n in SPOKEN_SYMBOL_NAMES if n in said], (text, said)


def test_real_code_is_still_dropped_beside_maths(stage):
    t, _ = run(stage, "Solve 10X = 5, so X = 0.5.\n\nlet y = x * 2;\n\nThat is all.")
    assert t.answer_spoken == "Solve ten X equals five, so X equals zero point five. That is all."
    assert any("unfenced javascript code" in n for n in t.speakable_notes)


@pytest.mark.parametrize("language,question,answer", [
    ("Chinese", "什么是人工智能？", "人工智能是让计算机模拟人类智能的技术，包括学习、推理和理解语言。"),
    ("Russian", "Расскажи коротко о Москве.", "Москва — столица России и крупнейший город страны."),
    ("Arabic", "ما هو الذكاء الاصطناعي؟", "الذكاء الاصطناعي هو قدرة الحاسوب على التعلم والتفكير مثل الإنسان."),
    ("Japanese", "日本の首都はどこですか？", "日本の首都は東京です。東京は世界でも有数の大都市です。"),
    ("Spanish", "¿Cuál es la capital de España?", "La capital de España es Madrid, una ciudad llena de museos y parques."),
    ("French", "Quelle est la capitale de la France ?", "La capitale de la France est Paris, la plus grande ville du pays."),
    ("German", "Was ist die Hauptstadt von Deutschland?", "Die Hauptstadt von Deutschland ist Berlin, eine sehr große Stadt."),
])
def test_turns_in_other_languages_never_reach_an_english_voice(stage, language, question, answer):
    for q, a in ((question, answer), ("Tell me something interesting about the capital city.", answer),
                 (question, "It is a large city with many museums, parks and old buildings.")):
        _, r = run(stage, a, question=q)
        assert r is not None and r.reason == "language" and r.stage == "speakable", (q, a)
        assert language in r.detail and "English" in r.detail


@pytest.mark.parametrize("question,answer", [
    ("What does 'carpe diem' mean?", "Carpe diem is Latin for seize the day: make the most of the present."),
    ("What was the Renaissance?", "The Renaissance was a cultural movement that began in Italy."),
    ("What is Kindergarten?", "In German, Kindergarten means children's garden; English borrowed the word."),
    ("How do you say thank you in French?", "You say merci, or merci beaucoup for thank you very much."),
])
def test_english_turns_with_a_foreign_phrase_keep_the_english(stage, question, answer):
    t, r = run(stage, answer, question=question)
    assert r is None and t.question_spoken == question and not any("sentence in" in n for n in t.speakable_notes)


def test_a_sentence_in_another_language_is_dropped_with_a_note(stage):
    text = ("The French national motto goes back to the revolution of 1789. It is written on coins and on many "
            "public buildings. La liberté, l'égalité et la fraternité sont les valeurs de la République française. "
            "Most French children learn it at school.")
    t, _ = run(stage, text)
    assert "liberté" not in t.answer_spoken and t.answer_spoken.endswith("Most French children learn it at school.")
    assert any(n.startswith("answer: dropped sentence in French") for n in t.speakable_notes)


def test_the_voices_declare_their_languages(tmp_path, cache_env):
    import json

    from echoforge.backends.tts.coqui import CoquiBackend
    from echoforge.backends.tts.piper import PiperBackend
    from echoforge.backends.tts.coqui import CoquiConfig

    assert PiperBackend(["joe"]).languages("joe") == ["en"]
    (tmp_path / "es.onnx").write_bytes(b"")  # languages() reads the JSON only
    (tmp_path / "es.onnx.json").write_text(json.dumps({"language": {"code": "es_ES"}}))
    spanish = str(tmp_path / "es.onnx")
    assert PiperBackend([spanish]).languages(spanish) == ["es"]
    vits = tmp_path / "vits"
    vits.mkdir()
    (vits / "config.json").write_text(json.dumps({"model": "vits", "phoneme_language": "de"}))
    assert CoquiBackend([str(vits)]).languages(str(vits)) == ["de"]
    (vits / "config.json").write_text(json.dumps({"model": "xtts", "languages": ["en", "fr"]}))
    assert CoquiBackend([str(vits)], CoquiConfig(language="fr")).languages(str(vits)) == ["fr"]
    # A Spanish voice pool takes Spanish turns and refuses English ones
    s = Speakable(parse_config({"synthesis": {"assistant_voice": spanish, "user_voices": [spanish]}}))
    s.ensure_setup()
    t, _ = run(s, "La capital de España es Madrid, una ciudad llena de museos y parques.",
               question="¿Cuál es la capital de España?")
    assert t is not None
    _, r = run(s, "Madrid is the capital of Spain, a city full of museums and parks.")
    assert r.reason == "language" and "English" in r.detail and "Spanish" in r.detail


def test_length_budgets_follow_the_gate(stage):
    from echoforge.config import BuildConfig

    c = BuildConfig()
    q_cap, a_cap = c.speakable.question_chars(c), c.speakable.answer_chars(c)
    # the answer cap is the unit cap at the measured units per character, slowest assistant voice
    assert a_cap == int(c.gate.max_answer_dedup_units / (c.speakable.units_per_char * 1.03))
    assert q_cap == int(c.gate.max_question_audio_s * c.speakable.chars_per_second / 1.08)
    sentence = "The river runs past the old mill and then it turns west toward the sea."
    t, _ = run(stage, " ".join([sentence] * 40))
    assert len(t.answer_spoken) <= a_cap and t.answer_spoken.endswith("sea.")
    assert len(t.answer_spoken) * c.speakable.units_per_char <= c.gate.max_answer_dedup_units
    _, r = run(stage, "Fine.", question=" ".join([sentence] * 8))  # about 580 characters, 39 s
    assert r.reason == "question_too_long" and "s of speech" in r.detail
    t, _ = run(stage, "Fine.", question=" ".join([sentence] * 4))
    assert t is not None


def test_length_limits_that_contradict_each_other_fail_at_load():
    from echoforge.errors import ConfigError

    with pytest.raises(ConfigError, match="max_answer_chars"):
        parse_config({"speakable": {"max_answer_chars": 1200}})
    with pytest.raises(ConfigError, match="max_question_chars"):
        parse_config({"speakable": {"max_question_chars": 600}})
    c = parse_config({"speakable": {"max_answer_chars": 1200}, "gate": {"max_answer_dedup_units": 4096}})
    assert c.speakable.answer_chars(c) == 1200
    c = parse_config({"gate": {"max_question_audio_s": None, "max_answer_dedup_units": None}})
    assert c.speakable.question_chars(c) == 600 and c.speakable.answer_chars(c) == int(90 * 15 / 1.03)
