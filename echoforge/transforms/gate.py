"""Gate: quality figures for every turn, and rejection of turns that fail a threshold.

Figures: ASR round-trip WER and CER (faster-whisper, a model per side; reference and
hypothesis both passed through Whisper's English normaliser, scored with jiwer), the ASR's
confidence, characters per second, leading and trailing silence, clipping and unit rates. Every
figure becomes a column; thresholds live in :class:`~echoforge.config.GateConfig`; a failing turn
is rejected with the figure that failed. A side of fewer than ``short_words`` words is judged by
its CER (or the ASR's confidence, or its phoneme error rate) instead of its WER: one misheard
word of two is WER 0.5, while "mixed" heard as "mix" is CER 0.4, and the source's typo
"Confucious" read as "Confucius" is phoneme error rate 0.
"""

from __future__ import annotations

from echoforge.audio import clipping_ratio, edge_silence, resample
import logging

import numpy as np

from echoforge.backends.asr import WHISPER_RATE, WhisperASR
from echoforge.backends.phonemes import PhonemeChecker
from echoforge.config import BuildConfig
from echoforge.schemas.records import Reject, Transcript, Turn
from echoforge.transforms.base import Resources, Stage, StageReject

log = logging.getLogger(__name__)
SIDES = ("question", "answer")


class WordErrorRate:
    """WER after Whisper's English text normaliser."""

    def __init__(self):
        from whisper_normalizer.english import EnglishTextNormalizer

        self._norm = EnglishTextNormalizer()

    def normalize(self, text: str) -> str:
        return self._norm(text)

    def __call__(self, reference: str, hypothesis: str, unit: str = "word") -> float:
        """WER (``unit="word"``) or CER (``unit="char"``) of the normalised texts."""
        import jiwer

        ref, hyp = self._norm(reference).strip(), self._norm(hypothesis).strip()
        if not ref:
            return 0.0 if not hyp else 1.0
        if not hyp:
            return 1.0
        return float(jiwer.wer(ref, hyp) if unit == "word" else jiwer.cer(ref, hyp))


class Gate(Stage[Turn]):
    name = "gate"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        g = config.gate
        self.asr = {side: asr for side in SIDES if (asr := WhisperASR.for_side(g, side)) is not None}
        self.phonemes = PhonemeChecker() if g.phonemes or g.short_judge == "phonemes" else None
        self.wer: WordErrorRate | None = None

    @property
    def resources(self) -> Resources:
        on_gpu = bool(self.asr) and self.config.gate.whisper.device == "cuda"
        return Resources(batch_size=self.config.gate.batch_size, uses_model=bool(self.asr),
                         num_gpus=1.0 if on_gpu else 0.0)

    def setup(self) -> None:
        for asr in self.asr.values():
            asr.setup()
        if self.phonemes is not None:
            self.phonemes.setup()
        self.wer = WordErrorRate()

    def identity(self) -> dict[str, str]:
        ids = {side: asr.identity()["asr"] for side, asr in self.asr.items()}
        extra = self.phonemes.identity() if self.phonemes is not None else {}
        if len(set(ids.values())) <= 1:
            return {**{"asr": v for v in ids.values()}, **extra}
        return {**{f"{side}_asr": v for side, v in ids.items()}, **extra}

    def hear(self, turns: list[Turn]) -> list[dict[str, Transcript]]:
        """Each turn's transcript per side with an ASR: the answer's from the tokenize stage when it
        shared this ASR's encoder, the rest transcribed here as one batch per side."""
        heard: list[dict[str, Transcript]] = [{} for _ in turns]
        for side, asr in self.asr.items():
            todo = []
            for i, turn in enumerate(turns):
                shared = turn.answer_heard if side == "answer" else None
                if shared is not None and shared.model == asr.identity()["asr"]:
                    heard[i][side] = shared
                else:
                    todo.append(i)
            speech = [getattr(turns[i], f"{side}_speech") for i in todo]
            clips = [resample(s.audio, s.sample_rate, WHISPER_RATE) for s in speech]
            for i, transcript in zip(todo, asr.transcribe_batch(clips)):
                heard[i][side] = transcript
        return heard

    def process(self, batch: list[Turn]) -> tuple[list[Turn], list[Reject]]:
        """Length rules, then one batched ASR pass per side, then each turn's figures and limits;
        a batch the ASR fails on goes one turn at a time, so that one bad turn is one reject."""
        rejected: list[Reject] = []
        ready: list[Turn] = []
        for turn in batch:
            try:
                self.check_lengths(turn)
                if not all(np.isfinite(s.audio).all() for s in (turn.question_speech, turn.answer_speech)):
                    raise StageReject("bad_audio", "the audio has non-finite samples")
                ready.append(turn)
            except StageReject as r:
                rejected.append(Reject.of(turn, self.name, r.reason, r.detail))
        try:
            heard = self.hear(ready)
        except Exception:  # noqa: BLE001 - find the turn that fails below
            log.debug("batched ASR failed; transcribing one turn at a time", exc_info=True)
            kept, more = super().process(ready)
            return kept, rejected + more
        kept: list[Turn] = []
        for turn, h in zip(ready, heard):
            try:
                kept.append(self.judge(turn, h))
            except StageReject as r:
                rejected.append(Reject.of(turn, self.name, r.reason, r.detail))
        return kept, rejected

    def process_one(self, turn: Turn) -> Turn:
        self.check_lengths(turn)
        return self.judge(turn, self.hear([turn])[0])

    def judge(self, turn: Turn, heard: dict[str, Transcript]) -> Turn:
        figures, ref_words = self.measure(turn, heard)
        self.check(turn, figures, ref_words)
        return turn.replace(quality=figures, answer_heard=None)

    def measure(self, turn: Turn, heard: dict[str, Transcript]) -> tuple[dict[str, float | str | None], dict[str, int]]:
        """Quality figures of a turn, and the word count of each side's normalised reference."""
        q, a, u = turn.question_speech, turn.answer_speech, turn.answer_units
        figures: dict[str, float | str | None] = {}
        ref_words: dict[str, int] = {}
        for side, speech, spoken in (("question", q, turn.question_spoken), ("answer", a, turn.answer_spoken)):
            lead, trail = edge_silence(speech.audio, speech.sample_rate)
            figures[f"{side}_leading_silence_s"] = round(lead, 3)
            figures[f"{side}_trailing_silence_s"] = round(trail, 3)
            figures[f"{side}_clipping_ratio"] = round(clipping_ratio(speech.audio), 6)
            if side in heard:
                text = heard[side].text
                figures[f"{side}_asr_text"] = text
                figures[f"{side}_wer"] = round(self.wer(spoken, text), 4)
                figures[f"{side}_cer"] = round(self.wer(spoken, text, unit="char"), 4)
                figures[f"{side}_asr_confidence"] = heard[side].confidence
                ref_words[side] = len(self.wer.normalize(spoken).split())
            if self.phonemes is not None:
                audio16k = resample(speech.audio, speech.sample_rate, WHISPER_RATE)
                figures[f"{side}_per"] = round(self.phonemes.error_rate(audio16k, spoken), 4)
        figures["answer_chars_per_second"] = round(len(turn.answer_spoken) / max(a.duration_s, 1e-6), 3)
        if u is not None and a.duration_s > 0:
            figures["answer_units_per_second"] = round(u.num_frames / a.duration_s, 3)
            figures["answer_dedup_units_per_second"] = round(u.dedup()[0].shape[1] / a.duration_s, 3)
        return figures, ref_words

    def check(self, turn: Turn, f: dict, ref_words: dict[str, int]) -> None:
        """Raise StageReject naming the first figure outside its limit."""
        g = self.config.gate
        a = turn.answer_speech
        limits = [
            ("question_wer", f.get("question_wer"), None, g.max_question_wer),
            ("answer_wer", f.get("answer_wer"), None, g.max_answer_wer),
            ("answer_duration_s", a.duration_s, g.min_duration_s, g.max_duration_s),
            ("question_duration_s", turn.question_speech.duration_s, g.min_duration_s, g.max_duration_s),
            ("answer_chars_per_second", f["answer_chars_per_second"], g.min_chars_per_second, g.max_chars_per_second),
            ("answer_leading_silence_s", f["answer_leading_silence_s"], None, g.max_leading_silence_s),
            ("answer_trailing_silence_s", f["answer_trailing_silence_s"], None, g.max_trailing_silence_s),
            ("question_leading_silence_s", f["question_leading_silence_s"], None, g.max_leading_silence_s),
            ("question_trailing_silence_s", f["question_trailing_silence_s"], None, g.max_trailing_silence_s),
            ("answer_clipping_ratio", f["answer_clipping_ratio"], None, g.max_clipping_ratio),
            ("question_clipping_ratio", f["question_clipping_ratio"], None, g.max_clipping_ratio),
        ]
        for name, value, low, high in limits:
            if value is None:
                continue
            if low is not None and value < low:
                raise StageReject(f"{name}_low", f"{name}={value:.3f} below the minimum {low}")
            if high is not None and value > high:
                extra = ""
                if name.endswith("_wer"):
                    side = name.split("_")[0]
                    words = ref_words.get(side, 0)
                    if words < g.short_words:
                        self.check_short(side, f)
                        continue
                    if round(value * words) < min(g.min_word_errors, words):
                        continue
                    extra = f"; heard: {f.get(f'{side}_asr_text', '')[:200]!r}"
                raise StageReject(f"{name}_high", f"{name}={value:.3f} above the maximum {high}{extra}")

    def check_lengths(self, turn: Turn) -> None:
        """Reject what a speech LLM cannot take: question audio past its encoder window, answer
        unit sequences past the echo-training cap (checked before ASR, which they would waste)."""
        g = self.config.gate
        seconds = turn.question_speech.duration_s
        if g.max_question_audio_s is not None and seconds > g.max_question_audio_s:
            raise StageReject("question_audio_too_long",
                              f"question_duration_s={seconds:.2f} above the maximum {g.max_question_audio_s}")
        units = turn.answer_units.dedup()[0].shape[1] if turn.answer_units is not None else 0
        if g.max_answer_dedup_units is not None and units > g.max_answer_dedup_units:
            raise StageReject("answer_units_too_long",
                              f"answer_dedup_units={units} above the maximum {g.max_answer_dedup_units}")

    def check_short(self, side: str, f: dict) -> None:
        """Judge a side too short for WER by its CER or the ASR's confidence; raise when it fails."""
        g = self.config.gate
        heard = f"; heard: {f.get(f'{side}_asr_text', '')[:200]!r}"
        if g.short_judge == "cer" and f[f"{side}_cer"] > g.max_short_cer:
            raise StageReject(f"{side}_cer_high",
                              f"{side}_cer={f[f'{side}_cer']:.3f} above the maximum {g.max_short_cer}{heard}")
        if g.short_judge == "phonemes" and f[f"{side}_per"] > g.max_short_per:
            raise StageReject(f"{side}_per_high",
                              f"{side}_per={f[f'{side}_per']:.3f} above the maximum {g.max_short_per}{heard}")
        if g.short_judge == "confidence" and f[f"{side}_asr_confidence"] < g.min_short_confidence:
            raise StageReject(f"{side}_asr_confidence_low", f"{side}_asr_confidence={f[f'{side}_asr_confidence']:.3f} "
                              f"below the minimum {g.min_short_confidence}{heard}")
