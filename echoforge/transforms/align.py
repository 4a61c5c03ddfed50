"""Align: word and sentence time spans → unit spans, and echo-training segments sized in the
LLM's own tokens.

Word timings come from the synthesiser's phoneme durations or from a CTC forced aligner on the
answer audio (``align.aligner``: ``auto`` takes the durations when the voice gives them, the
aligner when it gives none, as XTTS). ``align.check`` runs the aligner beside the durations and
records how far their word starts agree (``ctc_*`` columns).

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

from echoforge.backends.aligners import AlignItem, create_aligner
from echoforge.backends.aligners.agreement import alignment_figures, start_differences
from echoforge.backends.llm_tokenizer import LLMTokenizer
from echoforge.text.words import WORD_RE, sentence_words
from echoforge.config import BuildConfig, SegmentsConfig
from echoforge.errors import EchoforgeError
from echoforge.schemas.columns import ALIGNMENT_FEATURES
from echoforge.schemas.records import Reject, Turn, Units, Word
from echoforge.transforms.base import Resources, Stage, StageReject

_CLAUSE_GAP = re.compile(r"[,;:—–]|\s-\s")  # punctuation between two words that ends a clause


def run_starts(runs: np.ndarray) -> np.ndarray:
    """The first raw frame of each run of the deduplicated units, from the run lengths."""
    return np.concatenate([[0], np.cumsum(runs)[:-1]]) if len(runs) else np.zeros(0, dtype=np.int64)


def raw_span(start_s: float, end_s: float, frame_rate: float, n: int) -> tuple[int, int]:
    """The raw unit frames ``[floor(start × rate), ceil(end × rate))`` of a time span, clipped to n frames."""
    start = min(n, max(0, math.floor(start_s * frame_rate)))
    return start, min(n, max(start, math.ceil(end_s * frame_rate)))


def dedup_span(starts: np.ndarray, start: int, end: int, n: int) -> tuple[int, int]:
    """The runs (first raw frames ``starts``) that the raw frames ``[start, end)`` of n touch."""
    if not len(starts):
        return 0, 0
    d_start = int(np.searchsorted(starts, start, side="right") - 1) if start < n else len(starts)
    return d_start, int(np.searchsorted(starts, end - 1, side="right")) if end > start else d_start


def unit_spans(spans: list[Word], units: Units) -> list[dict]:
    """Map time spans to raw and deduplicated unit index spans."""
    n = units.num_frames
    starts = run_starts(units.dedup()[1])
    out = []
    for w in spans:
        start, end = raw_span(w.start_s, w.end_s, units.frame_rate, n)
        d_start, d_end = dedup_span(starts, start, end, n)
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


def ctc_words(words: list[str], placed: list[Word | None], duration_s: float) -> list[Word]:
    """Word spans from a CTC aligner's; a word it could not place (no tokens: a symbol) spans the
    gap between its neighbours."""
    if not any(p is not None for p in placed):
        raise StageReject("ctc_unaligned", f"the CTC aligner placed none of the {len(words)} words "
                          f"in {duration_s:.2f} s of audio")
    out: list[Word] = []
    for i, (word, p) in enumerate(zip(words, placed)):
        if p is not None:
            start = min(p.start_s, duration_s)
            out.append(Word(word, start, max(start, min(p.end_s, duration_s))))
            continue
        start = out[-1].end_s if out else 0.0
        after = next((q.start_s for q in placed[i + 1:] if q is not None), duration_s)
        out.append(Word(word, start, max(start, min(after, duration_s))))
    return out


_CHECK_COLUMNS = [name for name in ALIGNMENT_FEATURES if name.startswith("ctc_")]


class Align(Stage[Turn]):
    name = "align"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        self.tokenizer = LLMTokenizer(config.segments.tokenizer)
        a = config.align
        self.aligner = create_aligner(a) if a.aligner != "synthesiser" or a.check else None
        self._aligner_error: EchoforgeError | None = None
        self._aligner_ready = False
        self._placed: dict[str, list[Word | None] | Exception] = {}

    @property
    def resources(self) -> Resources:
        a = self.config.align
        if self.aligner is None:
            return Resources()
        wants_gpu = self.aligner.uses_gpu and a.device in ("cuda", "auto")
        return Resources(batch_size=a.batch_size, num_gpus=1.0 if wants_gpu else 0.0)

    def setup(self) -> None:
        self.tokenizer.setup()
        if self.aligner is not None and (self.config.align.aligner == "ctc" or self.config.align.check):
            self._setup_aligner()
            if self._aligner_error is not None:
                raise self._aligner_error

    def _setup_aligner(self) -> None:
        """Load the CTC aligner once per process (under ``auto``, when a turn first needs it)."""
        if self._aligner_ready or self._aligner_error is not None:
            return
        try:
            self.aligner.setup()
            self._aligner_ready = True
        except EchoforgeError as exc:  # a missing extra or a bad checkpoint: say so on every turn that needs it
            self._aligner_error = exc

    def identity(self) -> dict[str, str]:
        ident = {"segments_tokenizer": self.tokenizer.identity()}
        if self.aligner is not None:
            ident["word_aligner"] = self.aligner.identity()["aligner"]
        return ident

    def source(self, turn: Turn) -> str:
        """``ctc`` or ``synthesiser``: where this turn's word timings come from."""
        mode = self.config.align.aligner
        return "ctc" if mode == "ctc" or (mode == "auto" and not turn.answer_speech.words) else "synthesiser"

    def _needs_ctc(self, turn: Turn) -> bool:
        return self.aligner is not None and (self.config.align.check or self.source(turn) == "ctc")

    def _place(self, turns: list[Turn]) -> dict[str, list[Word | None] | Exception]:
        """The CTC aligner's word spans of each turn's answer (one batch; turn by turn if it fails)."""
        if not turns:
            return {}
        self._setup_aligner()
        if self._aligner_error is not None:
            return {t.id: self._aligner_error for t in turns}
        items = [AlignItem(t.answer_speech.audio, t.answer_speech.sample_rate, _spoken_words(t), _sentence_spans(t))
                 for t in turns]
        try:
            return {t.id: p for t, p in zip(turns, self.aligner.align_batch(items))}
        except Exception:  # noqa: BLE001 - find the turn that fails below
            out: dict[str, list[Word | None] | Exception] = {}
            for t, item in zip(turns, items):
                try:
                    out[t.id] = self.aligner.align(*item)
                except Exception as exc:  # noqa: BLE001 - becomes this turn's reject
                    out[t.id] = exc
            return out

    def process(self, batch: list[Turn]) -> tuple[list[Turn], list[Reject]]:
        self._placed = self._place([t for t in batch if self._needs_ctc(t)])
        try:
            return super().process(batch)
        finally:
            self._placed = {}

    def process_one(self, turn: Turn) -> Turn:
        speech, units = turn.answer_speech, turn.answer_units
        words = _spoken_words(turn)
        source = self.source(turn)
        placed: list[Word | None] | Exception | None = None
        if self._needs_ctc(turn):
            placed = self._placed.pop(turn.id) if turn.id in self._placed else self._place([turn])[turn.id]
        if source == "ctc":
            if isinstance(placed, Exception):
                raise StageReject("ctc_failed", f"{type(placed).__name__}: {placed}")
            timed = ctc_words(words, placed, speech.duration_s)
        elif not speech.words and words:
            raise StageReject("no_durations", "the voice gives no word durations: set align.aligner to auto or ctc")
        else:
            timed = speech.words
        extra = {**turn.extra, "alignment_source": source}
        if self.config.align.check:
            reference = [w.start_s for w in speech.words] if len(speech.words) == len(words) else []
            errors = start_differences(reference, placed) if reference and isinstance(placed, list) else []
            figures = alignment_figures(errors, len(words), prefix="ctc")
            extra.update({name: figures[name] for name in _CHECK_COLUMNS})
        spans = unit_spans(timed, units)
        segments = unit_spans(speech.sentences, units)
        alignment = [{"word": w.word, **span} for w, span in zip(timed, spans)]
        segs = [{"text": s.word, **span} for s, span in zip(speech.sentences, segments)]
        echo = echo_segments(turn.answer_spoken, turn.answer_sentences, speech.sentences, timed, units,
                             self.tokenizer, self.config.segments)
        return turn.replace(alignment=alignment, segments=segs, echo_segments=echo, extra=extra)


def _spoken_words(turn: Turn) -> list[str]:
    """The answer's words as every TTS backend counts them (one ``Speech.words`` entry each)."""
    return [w for sentence in turn.answer_sentences for w in sentence_words(sentence)]


def _sentence_spans(turn: Turn) -> list[tuple[float, float, int]] | None:
    """The synthesiser's span and word count of each answer sentence (the CTC aligner aligns them
    one by one); ``None`` when the voice gave no sentence spans."""
    spans = turn.answer_speech.sentences
    if len(spans) != len(turn.answer_sentences):
        return None
    return [(s.start_s, s.end_s, len(sentence_words(text))) for s, text in zip(spans, turn.answer_sentences)]
