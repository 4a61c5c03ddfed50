"""Align: word and sentence time spans (from the synthesiser's phoneme durations) → unit spans.

Each span carries indices into the raw units (``unit_start``/``unit_end``, end exclusive) and
into the deduplicated units (``dedup_start``/``dedup_end``), as EchoX's segment-wise echo
training needs (text, unit span) pairs.
"""

from __future__ import annotations

import math

import numpy as np

from echoforge.schemas.records import Turn, Units, Word
from echoforge.transforms.base import Stage


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


class Align(Stage[Turn]):
    name = "align"

    def process_one(self, turn: Turn) -> Turn:
        speech, units = turn.answer_speech, turn.answer_units
        words = unit_spans(speech.words, units)
        segments = unit_spans(speech.sentences, units)
        alignment = [{"word": w.word, **span} for w, span in zip(speech.words, words)]
        segs = [{"text": s.word, **span} for s, span in zip(speech.sentences, segments)]
        return turn.replace(alignment=alignment, segments=segs)
