"""Typed records that flow between stages.

A :class:`Turn` is one user→assistant exchange. Stages fill in its fields in order
(ingest → speakable → synthesize → tokenize → align → gate → listen); the writer turns it into an
output row (see :mod:`echoforge.schemas.columns`). A :class:`Reject` is a record that a
stage refused, with the stage, a short machine-readable reason and a human detail.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Word:
    """A word of the spoken text with its time span in the audio."""

    word: str
    start_s: float
    end_s: float


@dataclass
class Speech:
    """Synthesised audio for one side of a turn, with its timing facts."""

    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    voice: str
    rate: float  # length scale used (1.0 = the voice's own pace)
    words: list[Word] = field(default_factory=list)  # empty: the synthesiser gives no timings (XTTS)
    sentences: list[Word] = field(default_factory=list)  # sentence text with its span
    phonemes: list[tuple[str, float, float]] = field(default_factory=list)
    speaker: str = ""  # who speaks: the voice's model and speaker name, the same however the voice was named

    @property
    def duration_s(self) -> float:
        return len(self.audio) / float(self.sample_rate)


@dataclass
class Transcript:
    """What an ASR heard in one clip."""

    text: str
    words: list[tuple[str, float, float]] = field(default_factory=list)  # (word, start s, end s) when asked for
    confidence: float = 0.0  # exp of the mean token log-probability, 0..1
    model: str = ""  # identity of the ASR model that heard it
    path: str = ""  # how it was decoded: "fast", "fallback" or "transcribe" (see backends/asr.py)


@dataclass
class Encoding:
    """Encoder states of a clip and the identity of the model that computed them: one encoder
    pass shared by the stages that use that encoder (the units, then the gate's transcript)."""

    model: str
    states: np.ndarray


@dataclass
class Units:
    """Speech units of an utterance: ``codes`` has shape (num_codebooks, frames)."""

    codes: np.ndarray
    frame_rate: float
    codebook_size: int
    tokenizer: str

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[1])

    def dedup(self) -> tuple[np.ndarray, np.ndarray]:
        """Collapse runs of identical frames; return (codes, run lengths)."""
        return dedup_frames(self.codes)


def dedup_frames(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse consecutive identical frames of a (codebooks, frames) array."""
    if codes.shape[1] == 0:
        return codes.copy(), np.zeros(0, dtype=np.int32)
    change = np.ones(codes.shape[1], dtype=bool)
    change[1:] = np.any(codes[:, 1:] != codes[:, :-1], axis=0)
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, codes.shape[1])).astype(np.int32)
    return codes[:, starts], lengths


@dataclass
class Turn:
    """One user→assistant turn and everything the stages learn about it."""

    id: str
    source: str
    source_position: str  # "<file or dataset>:<row>" of the input row
    conversation_id: str
    turn_index: int
    history: list[dict[str, str]]  # earlier turns: {"role", "text"}
    question_text: str
    answer_text: str
    question_spoken: str | None = None
    answer_spoken: str | None = None
    answer_sentences: list[str] = field(default_factory=list)
    speakable_notes: list[str] = field(default_factory=list)  # what the speakable stage dropped
    question_speech: Speech | None = None
    answer_speech: Speech | None = None
    answer_units: Units | None = None
    answer_encoding: Encoding | None = None  # the answer's encoder states, when the units came from the gate ASR's encoder
    alignment: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    echo_segments: list[dict[str, Any]] = field(default_factory=list)
    quality: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific columns
    input_row: int = -1  # row number within its input (orders rows inside a shard)
    work_unit: int = -1  # the work unit this turn belongs to (engine bookkeeping)

    def replace(self, **changes: Any) -> Turn:
        return dataclasses.replace(self, **changes)


@dataclass
class Reject:
    """A record refused by a stage, kept in the rejects table."""

    id: str
    source: str
    source_position: str
    stage: str
    reason: str
    detail: str
    conversation_id: str = ""
    turn_index: int = -1
    input_row: int = -1
    work_unit: int = -1
    expected: str = ""  # the spoken text the gate judged against
    heard: str = ""  # what the gate's ASR heard
    second_judge_audit: str = ""  # audited by the gate's second judge: "keep" or the reason it would reject

    @classmethod
    def of(cls, turn: Turn, stage: str, reason: str, detail: str) -> Reject:
        return cls(
            input_row=turn.input_row,
            work_unit=turn.work_unit,
            id=turn.id,
            source=turn.source,
            source_position=turn.source_position,
            stage=stage,
            reason=reason,
            detail=detail[:2000],
            conversation_id=turn.conversation_id,
            turn_index=turn.turn_index,
        )
