"""Synthesize: speech for the question (16 kHz, Whisper's rate) and the answer (the voice's rate).

Voice policy: the assistant speaks in one stable voice; each conversation's user gets a voice
drawn from the pool by a seeded hash of the conversation id, so users vary across the corpus
but not within a conversation. Speaking rate is jittered per turn and side, also seeded. The
pool may mix backends (``BACKEND:VOICE``, see :mod:`echoforge.backends.tts.pool`).
"""

from __future__ import annotations

import dataclasses

from echoforge.audio import resample
from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.pool import VoicePool, user_voices
from echoforge.config import BuildConfig
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE
from echoforge.schemas.records import Reject, Speech, Turn
from echoforge.seeding import stable_int, stable_uniform
from echoforge.transforms.base import Resources, Stage


class Synthesize(Stage[Turn]):
    name = "synthesize"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        c = config.synthesis
        self.backend = VoicePool(c.backend, [c.assistant_voice, *c.user_voices], c)
        self.user_voices = user_voices(c)  # generators expanded

    @property
    def resources(self) -> Resources:
        c = self.config.synthesis
        return Resources(batch_size=c.batch_size, num_gpus=1.0 if self.backend.uses_gpu else 0.0)

    def setup(self) -> None:
        self.backend.setup()

    def identity(self) -> dict[str, str]:
        return self.backend.identity()

    def voices_for(self, turn: Turn) -> tuple[str, float, str, float]:
        """(user voice, user rate, assistant voice, assistant rate) of a turn."""
        c = self.config.synthesis
        user_voice = self.user_voices[stable_int(c.seed, "user-voice", turn.conversation_id) % len(self.user_voices)]
        q_rate = 1.0 + c.rate_jitter * (2 * stable_uniform(c.seed, "rate", turn.id, "question") - 1)
        a_rate = 1.0 + c.assistant_rate_jitter * (2 * stable_uniform(c.seed, "rate", turn.id, "answer") - 1)
        return user_voice, round(q_rate, 4), c.assistant_voice, round(a_rate, 4)

    def requests(self, turn: Turn) -> tuple[VoiceRequest, VoiceRequest]:
        """What the question and the answer are synthesised from (text, voice, rate, seed)."""
        c = self.config.synthesis
        q_voice, q_rate, a_voice, a_rate = self.voices_for(turn)
        question = VoiceRequest((turn.question_spoken,), q_voice, q_rate,
                                stable_int(c.seed, "noise", turn.id, "question"), c.sentence_pause_s)
        answer = VoiceRequest(tuple(turn.answer_sentences), a_voice, a_rate,
                              stable_int(c.seed, "noise", turn.id, "answer"), c.sentence_pause_s)
        return question, answer

    def process(self, batch: list[Turn]) -> tuple[list[Turn], list[Reject]]:
        """Both sides of every turn of the batch in one call to the voices (coqui batches them);
        should that fail, turn by turn, so that only the bad turn is rejected."""
        try:
            requests = [r for turn in batch for r in self.requests(turn)]
            speech = self.backend.synthesize_batch(requests)
        except Exception:  # noqa: BLE001 - the turn-by-turn pass names the failing record
            return super().process(batch)
        return [self._turn(t, speech[2 * i], speech[2 * i + 1]) for i, t in enumerate(batch)], []

    def process_one(self, turn: Turn) -> Turn:
        return self._turn(turn, *self.backend.synthesize_batch(list(self.requests(turn))))

    @staticmethod
    def _turn(turn: Turn, question: Speech, answer: Speech) -> Turn:
        """The turn with its speech; the question resampled to 16 kHz."""
        question = dataclasses.replace(question, audio=resample(question.audio, question.sample_rate,
                                                                QUESTION_SAMPLE_RATE),
                                       sample_rate=QUESTION_SAMPLE_RATE)
        return turn.replace(question_speech=question, answer_speech=answer)
