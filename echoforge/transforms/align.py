"""Align: word and sentence time spans (from the synthesiser's phoneme durations) → unit spans,
and echo-training segments sized in the LLM's own tokens.

Each span carries indices into the raw units (``unit_start``/``unit_end``, end exclusive) and
into the deduplicated units (``dedup_start``/``dedup_end``), as EchoX's segment-wise echo
training needs (text, unit span) pairs. Echo segments (``segments.*`` in the config) are runs
of sentences or clauses merged until they hold at least ``min_tokens`` LLM tokens (never more
than ``max_tokens``); their token counts partition the answer's tokens, so they add up to the
token count of the whole spoken answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from echoforge.backends.llm_tokenizer import LLMTokenizer
from echoforge.backends.tts.base import WORD_RE
from echoforge.config import BuildConfig, SegmentsConfig
from echoforge.schemas.records import Turn, Units, Word
from echoforge.transforms.base import Stage, StageReject

_CLAUSE_GAP = re.compile(r"[,;:—–]|\s-\s")  # punctuation between two words that ends a clause


def unit_spans(spans: list[Word], units: Units) -> list[dict]:
    """Map time spans to raw and deduplicated unit index spans."""
    n = units.num_frames
    _, runs = units.dedup()
    run_starts = np.concatenate([[0], np.cumsum(runs)[:-1]]) if len(runs) else np.zeros(0, dtype=np.int64)
    out = []
    for w in spans:
        start = min(n, max(0, math.floor(w.start_s * units.frame_rate)))
        end = min(n, max(start, math.ceil(w.end_s * units.frame_rate)))
        if len(run_starts):
            d_start = int(np.searchsorted(run_starts, start, side="right") - 1) if start < n else len(runs)
            d_end = int(np.searchsorted(run_starts, end - 1, side="right")) if end > start else d_start
        else:
            d_start = d_end = 0
        out.append({"start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4), "unit_start": start,
                    "unit_end": end, "dedup_start": d_start, "dedup_end": d_end})
    return out


@dataclass
class _Slot:
    """A word of the spoken answer: where it starts in the text, its time span stretched to its
    neighbours (first and last words reach their sentence's edges), and whether a piece may start here."""

    char_start: int
    start_s: float
    end_s: float
    opens_piece: bool
    tokens: int = 0


def _slots(text: str, sentences: list[str], spans: list[Word], words: list[Word], clauses: bool) -> list[_Slot]:
    slots: list[_Slot] = []
    cursor = wi = 0
    for sentence, span in zip(sentences, spans):
        found = text.find(sentence, cursor)
        offset = found if found >= 0 else cursor
        cursor = offset + len(sentence)
        matches = list(WORD_RE.finditer(sentence)) or [None]
        for k, m in enumerate(matches):
            first, last = k == 0, k == len(matches) - 1
            w = words[wi] if m is not None else None
            wi += m is not None
            gap = sentence[matches[k - 1].end():m.start()] if not first and m is not None else ""
            slots.append(_Slot(offset if first else offset + m.start(),
                               span.start_s if first or w is None else w.start_s,
                               span.end_s if last or w is None else words[wi].start_s,
                               first or (clauses and bool(_CLAUSE_GAP.search(gap)))))
    if slots:
        slots[0].char_start = 0
    return slots


def _pieces(slots: list[_Slot], max_tokens: int) -> list[tuple[int, int, int]]:
    """(first slot, end slot, tokens) of each sentence or clause, long ones cut between words."""
    out: list[tuple[int, int, int]] = []
    lo = 0
    for i in range(1, len(slots) + 1):
        if i < len(slots) and not slots[i].opens_piece:
            continue
        start, count = lo, 0
        for j in range(lo, i):
            if count and count + slots[j].tokens > max_tokens:
                out.append((start, j, count))
                start, count = j, 0
            count += slots[j].tokens
        out.append((start, i, count))
        lo = i
    return out


def _merge(pieces: list[tuple[int, int, int]], min_tokens: int, max_tokens: int) -> list[tuple[int, int, int]]:
    """Merge neighbouring pieces until each has at least min_tokens, never past max_tokens."""
    out: list[list[int]] = []
    for lo, hi, n in pieces:
        if out and out[-1][2] < min_tokens and out[-1][2] + n <= max_tokens:
            out[-1][1], out[-1][2] = hi, out[-1][2] + n
        else:
            out.append([lo, hi, n])
    if len(out) > 1 and out[-1][2] < min_tokens and out[-2][2] + out[-1][2] <= max_tokens:
        last = out.pop()
        out[-1][1], out[-1][2] = last[1], out[-1][2] + last[2]
    return [tuple(p) for p in out]


def echo_segments(text: str, sentences: list[str], sentence_spans: list[Word], words: list[Word],
                  units: Units, tokenizer: LLMTokenizer, policy: SegmentsConfig) -> list[dict]:
    """Echo-training segments of a spoken answer: text, LLM token count, time and unit spans."""
    if sum(len(WORD_RE.findall(s)) for s in sentences) != len(words) or len(sentence_spans) != len(sentences):
        raise StageReject("segments_mismatch", f"{len(words)} timed words for {len(sentences)} sentences "
                          "do not match the spoken text")
    slots = _slots(text, sentences, sentence_spans, words, policy.boundary == "clause")
    for slot, n in zip(slots, tokenizer.piece_counts(text, [s.char_start for s in slots])):
        slot.tokens = n
    segments = _merge(_pieces(slots, policy.max_tokens), policy.min_tokens, policy.max_tokens)
    spans = unit_spans([Word("", slots[lo].start_s, slots[hi - 1].end_s) for lo, hi, _ in segments], units)
    out = []
    for (lo, hi, n), span in zip(segments, spans):
        end = slots[hi].char_start if hi < len(slots) else len(text)
        out.append({"text": text[slots[lo].char_start:end].strip(), "num_tokens": n, **span})
    return out


class Align(Stage[Turn]):
    name = "align"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        self.tokenizer = LLMTokenizer(config.segments.tokenizer)

    def setup(self) -> None:
        self.tokenizer.setup()

    def identity(self) -> dict[str, str]:
        return {"segments_tokenizer": self.tokenizer.identity()}

    def process_one(self, turn: Turn) -> Turn:
        speech, units = turn.answer_speech, turn.answer_units
        words = unit_spans(speech.words, units)
        segments = unit_spans(speech.sentences, units)
        alignment = [{"word": w.word, **span} for w, span in zip(speech.words, words)]
        segs = [{"text": s.word, **span} for s, span in zip(speech.sentences, segments)]
        echo = echo_segments(turn.answer_spoken, turn.answer_sentences, speech.sentences, speech.words, units,
                             self.tokenizer, self.config.segments)
        return turn.replace(alignment=alignment, segments=segs, echo_segments=echo)
