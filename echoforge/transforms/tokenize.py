"""Tokenize: answer audio → speech units with the configured tokenizer."""

from __future__ import annotations

from echoforge.backends.units import unit_tokenizers
from echoforge.config import BuildConfig
from echoforge.schemas.records import Turn
from echoforge.transforms.base import Resources, Stage


class Tokenize(Stage[Turn]):
    name = "tokenize"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        c = config.units
        options = {"codebook": c.codebook, "model": c.model, "device": c.device}
        self.tokenizer = unit_tokenizers.create(c.tokenizer, **{k: v for k, v in options.items() if v is not None})
        self._unit_lm = None

    @property
    def resources(self) -> Resources:
        return Resources(batch_size=self.config.units.batch_size, uses_model=True,
                         num_gpus=1.0 if self.config.units.device == "cuda" else 0.0)

    def setup(self) -> None:
        self.tokenizer.setup()
        if self.config.units.unit_lm:
            from echoforge.backends.units.unit_lm import UnitLanguageModel

            self._unit_lm = UnitLanguageModel.load(self.config.units.unit_lm)

    def identity(self) -> dict[str, str]:
        ident = self.tokenizer.identity()
        if self._unit_lm is not None:
            ident["unit_lm"] = self._unit_lm.identity()
        return ident

    def process_one(self, turn: Turn) -> Turn:
        speech = turn.answer_speech
        units = self.tokenizer.encode(speech.audio, speech.sample_rate)
        extra = dict(turn.extra)
        if self._unit_lm is not None:
            extra["answer_unit_lm_ids"] = self._unit_lm.encode(units.dedup()[0][0])
        return turn.replace(answer_units=units, extra=extra)
