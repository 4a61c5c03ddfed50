"""Listen: how each kept turn sounds and who speaks in it.

DNSMOS (P.835 SIG/BAK/OVRL, P.808) of both sides, and with ``listen.speaker`` a speaker
embedding per side: the question's is stored (per-build voice figures:
:mod:`echoforge.commands.listen_stats`), the answer's is compared with the assistant voice's
reference embedding, made once per worker from ``listen.reference_text`` spoken by that voice
at its own pace with a fixed seed, so it is the same on every engine and resume.

The stage runs after the gate: with its limits unset (the default) it only measures, and then
it measures just the turns that are kept. Its figures live in ``Turn.extra`` (the gate owns
``Turn.quality``); a turn below a limit is rejected as ``listen.<figure>_low``.
"""

from __future__ import annotations

import numpy as np

from echoforge.backends.quality.dnsmos import DNSMOS, FIGURES
from echoforge.backends.quality.speaker import SpeakerEncoder, similarity
from echoforge.backends.tts import VoiceRequest
from echoforge.backends.tts.pool import VoicePool
from echoforge.config import BuildConfig
from echoforge.schemas.records import Speech, Turn
from echoforge.seeding import stable_int
from echoforge.transforms.base import Resources, Stage, StageReject

SIDES = ("question", "answer")


class Listen(Stage[Turn]):
    name = "listen"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        c = config.listen
        self.dnsmos = DNSMOS(c.dnsmos_hop_s, c.device) if c.dnsmos else None
        self.speaker = SpeakerEncoder(c.device) if c.speaker else None
        self.reference: np.ndarray | None = None

    @property
    def resources(self) -> Resources:
        c = self.config.listen
        busy = c.dnsmos or c.speaker
        return Resources(batch_size=c.batch_size,
                         num_gpus=1.0 if busy and c.device == "cuda" else 0.0)

    def setup(self) -> None:
        if self.dnsmos is not None:
            self.dnsmos.setup()
        if self.speaker is not None:
            self.speaker.setup()
            speech = self.reference_speech()
            self.reference = self.speaker.embed(speech.audio, speech.sample_rate)

    def reference_speech(self) -> Speech:
        """The assistant voice speaking ``listen.reference_text`` (rate 1, a fixed seed)."""
        s = self.config.synthesis
        voice = VoicePool(s.backend, [s.assistant_voice], s)
        voice.setup()
        request = VoiceRequest((self.config.listen.reference_text,), s.assistant_voice, 1.0,
                               stable_int(s.seed, "listen-reference", s.assistant_voice), s.sentence_pause_s)
        return voice.synthesize(request)

    def identity(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for backend in (self.dnsmos, self.speaker):
            if backend is not None:
                out.update(backend.identity())
        return out

    def process_one(self, turn: Turn) -> Turn:
        figures: dict = {}
        for side in SIDES:
            speech = getattr(turn, f"{side}_speech")
            if self.dnsmos is not None:
                scores = self.dnsmos.score(speech.audio, speech.sample_rate)
                figures.update({f"{side}_dnsmos_{k}": scores[k] for k in FIGURES})
            if self.speaker is not None:
                embedding = self.speaker.embed(speech.audio, speech.sample_rate)
                if side == "question":
                    figures["question_speaker_embedding"] = embedding.tolist()
                else:
                    figures["answer_speaker_similarity"] = round(similarity(embedding, self.reference), 4)
        self.check(figures)
        return turn.replace(extra={**turn.extra, **figures})

    def check(self, figures: dict) -> None:
        """Raise StageReject naming the first figure below its limit."""
        c = self.config.listen
        for name, low in (("question_dnsmos_ovrl", c.min_question_ovrl), ("answer_dnsmos_ovrl", c.min_answer_ovrl),
                          ("answer_speaker_similarity", c.min_answer_speaker_similarity)):
            value = figures.get(name)
            if low is not None and value is not None and value < low:
                raise StageReject(f"{name}_low", f"{name}={value:.3f} below the minimum {low}")
