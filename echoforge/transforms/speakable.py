"""Speakable text: markdown → prose → sentences → normalised spoken form.

Markdown is parsed with markdown-it-py (tables, strikethrough and linkify on); code, tables,
URLs and images are dropped with a note or reject the row, per
:class:`~echoforge.config.SpeakableConfig`. A side not in a language its voice speaks is
refused, a sentence in another language dropped (lingua). Sentences come from pysbd, emoji are
removed with the ``emoji`` package, and NeMo's normaliser turns numbers, money, dates and units
into words. Lengths follow the gate's limits: a question longer than its audio limit is refused,
an answer is cut at a sentence end to fit the unit cap (``SpeakableConfig.answer_chars``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field

from echoforge.text.code_detect import is_identifier
from echoforge.backends.language import COMMON_LANGUAGES, LanguageID, language_name
from echoforge.backends.normalizers import normalizers
from echoforge.text.spoken_forms import after_normalizing, before_normalizing
from echoforge.config import BuildConfig
from echoforge.schemas.records import Turn
from echoforge.transforms.base import Resources, Stage, StageReject
from echoforge.transforms.screen import CODE_GAP, URL_GAP, Screen

_SIDE_LETTERS = 20  # letters a side needs before its language is judged (a CJK character counts 3)
_SENTENCE_LETTERS = 25  # the same for one sentence inside a side
_LANGUAGE_SAMPLE = 2000  # characters of a side's prose its language is judged on

_WORDLIKE_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_ .'-]{0,40}$")
_MAX_SENTENCE_CHARS = 400  # longer sentences are split at clause marks before normalising


@dataclass
class Block:
    """A line group of one markdown block: prose lines, or the description of a dropped part."""

    lines: list[str] = field(default_factory=list)  # what would be said
    raw: list[str] = field(default_factory=list)  # the same lines as written, for detection
    closing: bool = False  # a heading or list item: ends with a full stop
    dropped: str | None = None  # what was dropped here ("code block (python, 3 lines)")


@dataclass
class Prose:
    """Blocks of a markdown text, notes on what was left out, and a refusal reason."""

    blocks: list[Block] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: str | None = None  # reason, when a 'reject' policy fired

    def skip(self, kind: str, policy: str, what: str) -> None:
        if policy == "reject" and self.refused is None:
            self.refused = f"{kind}: {what}"
        self.notes.append(f"dropped {what}")


class MarkdownToProse:
    """Walks markdown-it tokens and keeps what can be read aloud."""

    def __init__(self, config: BuildConfig):
        from markdown_it import MarkdownIt

        self.policy = config.speakable
        self.md = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "strikethrough", "linkify"])

    def convert(self, text: str) -> Prose:
        prose = Prose()
        tokens = self.md.parse(text)
        i = 0
        list_item_depth = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.type in ("fence", "code_block"):
                lang = (tok.info or "").strip().split(" ")[0]
                lines = tok.content.count("\n")
                what = f"code block ({lang or 'plain'}, {lines} lines)"
                prose.skip("code", self.policy.code, what)
                prose.blocks.append(Block(dropped=what))
            elif tok.type == "table_open":
                j = i
                while tokens[j].type != "table_close":
                    j += 1
                rows = sum(1 for t in tokens[i:j] if t.type == "tr_open")
                prose.skip("table", self.policy.tables, f"table ({rows} rows)")
                prose.blocks.append(Block(dropped=f"table ({rows} rows)"))
                i = j
            elif tok.type == "html_block":
                prose.notes.append("dropped HTML block")
            elif tok.type == "list_item_open":
                list_item_depth += 1
            elif tok.type == "list_item_close":
                list_item_depth -= 1
            elif tok.type == "inline":
                heading = i > 0 and tokens[i - 1].type == "heading_open"
                lines, raw = self._inline(tok.children or [], prose)
                written = tok.content.split("\n")
                if len(written) == len(raw):  # keep the indentation, a sign of code
                    raw = [w[: len(w) - len(w.lstrip())] + r for w, r in zip(written, raw)]
                prose.blocks.append(Block(lines, raw, closing=heading or bool(list_item_depth)))
            i += 1
        return prose

    def _inline(self, children, prose: Prose) -> tuple[list[str], list[str]]:
        """Spoken lines of an inline run (URLs and unreadable inline code become gaps), and raw lines."""
        lines: list[list[str]] = [[]]
        raw: list[list[str]] = [[]]
        in_link_url = False
        for child in children:
            t = child.type
            if t == "text":
                raw[-1].append(child.content)
                if not in_link_url:
                    lines[-1].append(child.content)
            elif t in ("softbreak", "hardbreak"):
                lines.append([])
                raw.append([])
            elif t == "code_inline":
                raw[-1].append(child.content)
                if _WORDLIKE_CODE.match(child.content) or is_identifier(child.content):
                    lines[-1].append(child.content)
                else:
                    prose.skip("code", self.policy.code, f"inline code ({child.content[:40]})")
                    lines[-1].append(CODE_GAP)
            elif t == "link_open":
                if child.markup in ("linkify", "autolink"):
                    in_link_url = True
                    prose.skip("url", self.policy.urls, f"URL ({child.attrs.get('href', '')[:80]})")
                    lines[-1].append(URL_GAP)
            elif t == "link_close":
                in_link_url = False
            elif t == "image":
                prose.skip("image", self.policy.images, "image")
            elif t in ("strong_open", "strong_close", "em_open", "em_close") and "_" in child.markup:
                raw[-1].append(child.markup)  # __init__ is a name, not emphasis
        return ["".join(p) for p in lines], ["".join(p) for p in raw]


def _speakable_chars(text: str) -> tuple[str, list[str]]:
    """Remove emoji, control and private-use characters (before normalising); say what went."""
    import emoji

    notes = []
    stripped = emoji.replace_emoji(text, replace="")
    if stripped != text:
        notes.append("dropped emoji")
    kept = "".join(" " if unicodedata.category(ch) in ("Co", "Cs", "Cn", "Cc", "Cf") else ch for ch in stripped)
    return re.sub(r"[ \t]+", " ", kept).strip(), notes


def _tidy(spoken: str) -> str:
    """Drop symbols the normaliser left (the voice would skip them) and stray spaces."""
    spoken = "".join(" " if unicodedata.category(ch) in ("So", "Sk", "Sm", "Sc") else ch for ch in spoken)
    spoken = re.sub(r"\s+([.,!?;:])", r"\1", spoken)
    spoken = re.sub(r"([.,!?;:])(?:\s*[.,;:])+", r"\1", spoken)
    return re.sub(r"\s+", " ", spoken).strip()


def _letters(text: str) -> int:
    return sum(1 for ch in text if ch.isalpha())


class Speakable(Stage[Turn]):
    """Turn question and answer text into what the voice will say."""

    name = "speakable"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        c = config.speakable
        self.normalizer = normalizers.create(c.normalizer, c.nemo_cache_dir) if c.normalizer == "nemo" \
            else normalizers.create(c.normalizer)
        self._md: MarkdownToProse | None = None
        self._segmenter = None
        self.language: LanguageID | None = None
        self.voice_languages: dict[str, tuple[str, ...]] = {}  # side → languages its voices speak

    @property
    def resources(self) -> Resources:
        return Resources(batch_size=32)

    def setup(self) -> None:
        import pysbd

        self.normalizer.setup()
        self._md = MarkdownToProse(self.config)
        self._segmenter = pysbd.Segmenter(language="en", clean=False)
        if self.config.speakable.language_check:
            self.voice_languages = voice_languages(self.config)
            spoken = [code for codes in self.voice_languages.values() for code in codes]
            self.language = LanguageID(COMMON_LANGUAGES + tuple(spoken))
            self.language.setup()

    def identity(self) -> dict[str, str]:
        extra = self.language.identity() if self.language is not None else {}
        return {**self.normalizer.identity(), **extra}

    def sentences(self, text: str, budget: int | None = None,
                  side: str | None = None) -> tuple[list[str], list[str], str | None, bool]:
        """Spoken sentences of a text, notes on what was dropped, a refusal reason, and whether it
        stopped early. With a ``side`` whose voices' languages are known, a text in another
        language is refused (``language``) and sentences in another language are dropped.

        With a budget, normalising stops once more letters than that are spoken (every letter
        lies in a kept sentence, so the sentences are longer than the budget), or after ten
        budgets of text without them: a huge text costs no more than the part that can be kept.
        """
        prose = self._md.convert(text)
        foreign = None
        if self.language is not None and side in self.voice_languages:
            self._check_language(prose, side)
            foreign = functools.partial(self._foreign, self.voice_languages[side])
        screen = Screen(self.config.speakable, self._segmenter.segment, prose.skip, foreign)
        out: list[str] = []
        size = letters = 0
        full = False
        for block in screen(prose.blocks):
            clean, char_notes = _speakable_chars(block)
            prose.notes.extend(char_notes)
            # Normalise before segmenting: digits such as "0." confuse sentence boundaries.
            pieces = []
            for piece in _split_long(clean):
                pieces.append(self._normalize(piece))
                size, letters = size + len(pieces[-1]), letters + _letters(pieces[-1])
                full = budget is not None and (letters > budget or size > 10 * budget)
                if full:
                    break
            out.extend(s.strip() for s in self._segmenter.segment(" ".join(pieces)) if _letters(s) > 0)
            if full:
                break
        notes = prose.notes
        return out, sorted(set(notes), key=notes.index), prose.refused, full

    def _check_language(self, prose: Prose, side: str) -> None:
        """Refuse a side written in a language its voices do not speak (when that is clear)."""
        written = " ".join(line for block in prose.blocks for line in block.lines)
        written = written.replace(URL_GAP, " ").replace(CODE_GAP, " ")[:_LANGUAGE_SAMPLE]
        spoken = self.voice_languages[side]
        found = self.language.foreign(written, spoken, _SIDE_LETTERS)
        if found is not None:
            voices = "assistant voice speaks" if side == "answer" else "user voices speak"
            raise StageReject("language", f"the {side} is in {language_name(found)}; the {voices} "
                              f"{', '.join(language_name(c) for c in spoken)}")

    def _foreign(self, spoken: tuple[str, ...], sentence: str) -> str | None:
        """The language of a sentence its voice cannot speak, or None."""
        found = self.language.foreign(sentence, spoken, _SENTENCE_LETTERS)
        return language_name(found) if found is not None else None

    def _normalize(self, sentence: str) -> str:
        sentence = before_normalizing(sentence)
        try:
            spoken = self.normalizer.normalize(sentence)
        except Exception:  # noqa: BLE001 - the normaliser's grammar may not cover a string
            spoken = sentence
        spoken = after_normalizing(spoken)
        # Digits the grammar left alone are read one by one rather than skipped.
        spoken = re.sub(r"[0-9]", lambda m: f" {_DIGITS[int(m.group())]} ", spoken)
        return _tidy(spoken)

    def process_one(self, turn: Turn) -> Turn:
        c = self.config.speakable
        if not turn.question_text.strip() or not turn.answer_text.strip():
            side = "question" if not turn.question_text.strip() else "answer"
            raise StageReject("empty_text", f"the {side} is empty")
        q_chars, a_chars = c.question_chars(self.config), c.answer_chars(self.config)
        # Text far past the character cap can never be kept: leave it unspoken.
        q_sents, q_notes, q_refused, q_more = self.sentences(turn.question_text, _budget(q_chars), "question")
        a_sents, a_notes, a_refused, a_more = self.sentences(turn.answer_text, _budget(a_chars), "answer")
        for side, refused in (("question", q_refused), ("answer", a_refused)):
            if refused:
                raise StageReject(f"unspeakable_{refused.split(':')[0]}", f"{side} has a {refused.split(': ', 1)[1]} (policy: reject)")
        self._check_question_length(q_sents, q_chars, q_more)
        a_sents, a_cut = self._cap(a_sents, a_chars, c.max_answer_sentences, "answer", a_more)
        # Checked on what is kept: a cap can leave too little to say.
        if sum(map(_letters, q_sents)) < c.min_letters:
            raise StageReject("nothing_speakable", "question has nothing speakable" + _why(q_notes))
        if sum(map(_letters, a_sents)) < c.min_letters:
            raise StageReject("nothing_speakable", "answer has nothing speakable" + _why(a_notes + a_cut))
        notes = [f"question: {n}" for n in q_notes] + [f"answer: {n}" for n in a_notes + a_cut]
        return turn.replace(
            question_spoken=" ".join(q_sents),
            answer_spoken=" ".join(a_sents),
            answer_sentences=a_sents,
            speakable_notes=notes,
        )

    def _check_question_length(self, sents: list[str], max_chars: int, more: bool) -> None:
        """Refuse a question whose speech would run past the audio limit (estimated from its
        spoken characters): cut, it would no longer ask what the answer answers."""
        chars = len(" ".join(sents))
        if chars <= max_chars:
            return
        c, plus = self.config.speakable, "+" if more else ""
        limit = self.config.gate.max_question_audio_s
        why = f"gate.max_question_audio_s={limit}" if c.max_question_chars is None and limit else "max_question_chars"
        raise StageReject("question_too_long", f"question has {chars}{plus} spoken characters, about "
                          f"{chars / c.chars_per_second:.0f}{plus} s of speech; limit {max_chars} ({why})")

    def _cap(self, sents: list[str], max_chars: int, max_sentences: int | None,
             side: str, more: bool = False) -> tuple[list[str], list[str]]:
        """Keep whole sentences up to the limits; truncate or reject per the overflow policy.

        ``more``: the text goes on past ``sents`` (counts are then lower bounds, marked '+').
        """
        total, kept = 0, []
        for s in sents:
            if (max_sentences and len(kept) >= max_sentences) or total + len(s) > max_chars:
                break
            kept.append(s)
            total += len(s) + 1
        if len(kept) < len(sents):
            if self.config.speakable.overflow == "reject":
                plus = "+" if more else ""
                raise StageReject("too_long", f"{side} has {len(sents)}{plus} sentences / "
                                  f"{sum(map(len, sents))}{plus} characters; limit {max_sentences or '-'} / {max_chars}")
            if not kept:  # one sentence longer than the cap: cut it at a word boundary
                kept = [sents[0][:max_chars].rsplit(" ", 1)[0]]
            return kept, [f"truncated to {len(kept)} of {len(sents)}{'+' if more else ''} sentences"]
        return kept, []


_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _budget(max_chars: int) -> int:
    """Spoken letters to gather for a side capped at ``max_chars``: twice the cap and a piece."""
    return 2 * max_chars + _MAX_SENTENCE_CHARS


def _why(notes: list[str]) -> str:
    return f" ({'; '.join(notes)})" if notes else ""


def _split_long(sentence: str) -> list[str]:
    """Split very long text at sentence or clause marks so the normaliser stays fast."""
    if len(sentence) <= _MAX_SENTENCE_CHARS:
        return [sentence] if sentence else []
    parts, current = [], ""
    for piece in re.split(r"(?<=[.!?,;:])\s+", sentence):
        if current and len(current) + len(piece) > _MAX_SENTENCE_CHARS:
            parts.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        parts.append(current)
    out = []
    for p in parts:  # no clause marks at all: cut at word boundaries
        while len(p) > _MAX_SENTENCE_CHARS:
            cut = p.rfind(" ", 0, _MAX_SENTENCE_CHARS)
            cut = cut if cut > 0 else _MAX_SENTENCE_CHARS
            out.append(p[:cut])
            p = p[cut:].strip()
        if p:
            out.append(p)
    return out


def voice_languages(config: BuildConfig) -> dict[str, tuple[str, ...]]:
    """Languages the voices of each side speak: the assistant voice's for the answer, those every
    user voice speaks for the question."""
    from echoforge.backends.tts.pool import VoicePool, user_voices

    s = config.synthesis
    pool = VoicePool(s.backend, [s.assistant_voice, *s.user_voices], s)
    users = [pool.languages(v) for v in user_voices(s)]
    return {"answer": tuple(pool.languages(s.assistant_voice)),
            "question": tuple(code for code in users[0] if all(code in u for u in users))}
