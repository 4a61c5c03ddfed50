"""Frame-level phone labels from the synthesiser's phoneme durations.

Used to fit the default codebook's LDA projection (``fit-units``) and to measure units against
phones (``eval-units``). Labels are Piper's phoneme symbols with stress marks, word-boundary
spaces and punctuation dropped (frames whose centre falls in them, or in a pause, carry no
label) and length marks merged into the phone before them (``ɑ`` + ``ː`` → ``ɑː``).
"""

from __future__ import annotations

import numpy as np

STRESS_MARKS = frozenset("ˈˌ")
LENGTH_MARKS = frozenset("ːˑ")
PUNCTUATION = frozenset(".,!?;:'\"-()—…¡¿«»")
DROPPED = STRESS_MARKS | PUNCTUATION | frozenset(" ")


def phone_segments(phonemes: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Phone spans from phoneme spans: drop stress, spaces and punctuation; merge a length mark
    into the phone right before it (a length mark after a dropped symbol is dropped)."""
    out: list[tuple[str, float, float]] = []
    previous_kept = False
    for p, a, b in phonemes:
        if p in LENGTH_MARKS:
            if previous_kept:
                q, qa, _ = out[-1]
                out[-1] = (q + p, qa, b)
            continue
        if p in DROPPED or not p.strip():
            previous_kept = False
            continue
        out.append((p, a, b))
        previous_kept = True
    return out


def frame_phones(segments: list[tuple[str, float, float]], num_frames: int, frame_rate: float) -> np.ndarray:
    """The phone covering each frame's centre ((j + 0.5) / rate), "" where none (a string array)."""
    out = np.full(num_frames, "", dtype="<U4")
    if not segments or num_frames == 0:
        return out
    starts = np.array([a for _, a, _ in segments])
    ends = np.array([b for _, _, b in segments])
    names = np.array([p for p, _, _ in segments], dtype="<U4")
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    k = np.searchsorted(starts, centres, side="right") - 1
    inside = (k >= 0) & (centres < ends[np.clip(k, 0, None)])
    out[inside] = names[k[inside]]
    return out


def frame_labels(segments: list[tuple[str, float, float]], num_frames: int, frame_rate: float,
                 vocabulary: dict[str, int]) -> np.ndarray:
    """Phone ids (from ``vocabulary``, which grows) of :func:`frame_phones`; -1 where none."""
    phones = frame_phones(segments, num_frames, frame_rate)
    labels = np.full(num_frames, -1, dtype=np.int32)
    for i, p in enumerate(phones):
        if p:
            labels[i] = vocabulary.setdefault(str(p), len(vocabulary))
    return labels
