"""Tokenize: answer audio → speech units with the configured tokenizer, a padded batch at a time."""

from __future__ import annotations

import logging

import numpy as np

from echoforge.backends.asr import WhisperASR
from echoforge.backends.units import create_tokenizer
from echoforge.config import BuildConfig
from echoforge.schemas.records import Encoding, Reject, Turn, Units
from echoforge.transforms.base import Resources, Stage, StageReject

log = logging.getLogger(__name__)


class Tokenize(Stage[Turn]):
    name = "tokenize"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        self.tokenizer = create_tokenizer(config.units)
        self._unit_lm = None
        self._shared_with: str | None = None  # identity of the gate ASR whose encoder the units share

    @property
    def resources(self) -> Resources:
        device = self.config.units.device
        wants_gpu = device == "cuda" or (device == "auto" and self.tokenizer.uses_gpu)
        return Resources(batch_size=self.config.units.batch_size,
                         num_gpus=1.0 if wants_gpu else 0.0)

    def setup(self) -> None:
        self.tokenizer.setup()
        asr = WhisperASR.for_side(self.config.gate, "answer")
        if asr is not None and self.tokenizer.encodes_like(asr):
            self._shared_with = asr.identity()["asr"]  # the gate decodes the states these units come from
        if self.config.units.unit_lm:
            from echoforge.backends.units.unit_lm import UnitLanguageModel

            self._unit_lm = UnitLanguageModel.load(self.config.units.unit_lm)

    def identity(self) -> dict[str, str]:
        ident = self.tokenizer.identity()
        if self._unit_lm is not None:
            ident["unit_lm"] = self._unit_lm.identity()
        return ident

    def process(self, batch: list[Turn]) -> tuple[list[Turn], list[Reject]]:
        """One batch through the tokenizer; if a turn's audio is bad or the batch fails, each turn
        alone (so that one bad turn becomes a reject and the rest are kept)."""
        if not all(np.isfinite(t.answer_speech.audio).all() for t in batch):
            return super().process(batch)
        try:
            if self._shared_with is not None:
                return self._with_states(batch), []
            units = self.tokenizer.encode_batch([(t.answer_speech.audio, t.answer_speech.sample_rate) for t in batch])
        except Exception:  # noqa: BLE001 - find the turn that fails below
            log.debug("batched tokenize failed; tokenizing one at a time", exc_info=True)
            return super().process(batch)
        return [self._with_units(t, u) for t, u in zip(batch, units)], []

    def _with_states(self, batch: list[Turn]) -> list[Turn]:
        """Units from one encoder pass per answer, its states kept for the gate to decode."""
        states = [self.tokenizer.features(t.answer_speech.audio, t.answer_speech.sample_rate) for t in batch]
        return [self._with_units(t, self.tokenizer.units_of(s)).replace(answer_encoding=Encoding(self._shared_with, s))
                for t, s in zip(batch, states)]

    def process_one(self, turn: Turn) -> Turn:
        speech = turn.answer_speech
        if not np.isfinite(speech.audio).all():
            raise StageReject("bad_audio", "the answer audio has non-finite samples")
        return self._with_units(turn, self.tokenizer.encode(speech.audio, speech.sample_rate))

    def _with_units(self, turn: Turn, units: Units) -> Turn:
        extra = dict(turn.extra)
        if self._unit_lm is not None:
            extra["answer_unit_lm_ids"] = self._unit_lm.encode(units.dedup()[0][0])
        return turn.replace(answer_units=units, extra=extra)
