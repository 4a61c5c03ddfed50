"""Gate: quality figures for every turn, and rejection of turns that fail a threshold.

Figures: ASR round-trip WER and CER (faster-whisper, a model per side; reference and
hypothesis both passed through Whisper's English normaliser, scored with jiwer), the ASR's
confidence, characters per second, leading and trailing silence, clipping and unit rates. Every
figure becomes a column; thresholds live in :class:`~echoforge.config.GateConfig`; a failing turn
is rejected with the figure that failed. A side of fewer than ``short_words`` words is judged by
its CER (or the ASR's confidence, or its phoneme error rate) instead of its WER: one misheard
word of two is WER 0.5, while "mixed" heard as "mix" is CER 0.4, and the source's typo
"Confucious" read as "Confucius" is phoneme error rate 0. The hypothesis is judged without what
a decoder adds to a short clip (a phrase said again in a row, a trailing "you"). A side that
fails by what the ASR heard is heard again by a second ASR (``gate.second_judge``, at its best: a
beam of :data:`SECOND_JUDGE_BEAM_SIZE` and faster-whisper's fallback) before it is rejected; the
second judge also re-hears a hash-chosen share of all decisions (``gate.audit_rate``; a side
failing there is heard once more by the windowed ``transcribe`` before the verdict): the gate's
own audit, counted in the manifest.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import unicodedata

import numpy as np

from echoforge.audio import clipping_ratio, edge_silence, resample
from echoforge.backends.asr import WHISPER_RATE, WhisperASR
from echoforge.backends.phonemes import PhonemeChecker
from echoforge.config import BuildConfig
from echoforge.schemas.records import Reject, Transcript, Turn
from echoforge.transforms.base import Resources, Stage, StageReject

log = logging.getLogger(__name__)
SIDES = ("question", "answer")


_FRACTION_GLYPH = re.compile(r"(?:(\d+)\s*)?([\u00bc-\u00be\u2150-\u215e])")


def spell_fractions(text: str) -> str:
    """Fraction glyphs as words, as they were said: Whisper base writes "one quarter plus two
    quarters" as "1 ¼ plus 2 ¼", a number followed by the glyph of the fraction's name."""

    def words(m: re.Match) -> str:
        name = unicodedata.name(m[2]).removeprefix("VULGAR FRACTION ").lower().split()
        if m[1] is None:
            return f" {' '.join(name)} "
        one = name[-1] if name[0] == "one" else name[-1][:-1]  # "quarter" of "three quarters"
        return f" {m[1]} {one if m[1] == '1' else 'halves' if one == 'half' else one + 's'} "

    return _FRACTION_GLYPH.sub(words, text)


class WordErrorRate:
    """WER after Whisper's English text normaliser (fraction glyphs spelled out first, numbers
    side by side joined)."""

    def __init__(self):
        from whisper_normalizer.english import EnglishTextNormalizer

        english = EnglishTextNormalizer()
        # Numbers side by side are one token: the normaliser writes "fifty thirty twenty" as
        # "503020" but the heard "50-30-20" as "50 30 20".
        self._norm = lambda text: re.sub(r"(?<=\d) (?=\d)", "", english(spell_fractions(text)))

    def normalize(self, text: str) -> str:
        return self._norm(text)

    def clean(self, reference: str, hypothesis: str) -> str:
        """The normalised hypothesis without what a decoder adds to short clips: a phrase of up
        to four words said again right after itself where the reference does not repeat it, and
        a trailing "you" or "thank you" the reference does not end with. A compound written
        apart or together ("good bye" for "goodbye", "everyday" for "every day") takes the
        reference's spelling. A hypothesis of punctuation alone normalises to nothing: heard
        nothing."""
        ref, hyp = self._norm(reference).split(), self._norm(hypothesis).split()
        said = f" {' '.join(ref)} "
        hyp = _as_compounded(ref, hyp)
        i = 0
        while i < len(hyp):
            for size in range(1, 5):
                twice = hyp[i:i + 2 * size]
                if len(twice) == 2 * size and twice[:size] == twice[size:] and f" {' '.join(twice)} " not in said:
                    del hyp[i + size:i + 2 * size]
                    break
            else:
                i += 1
        for ending in (["thank", "you"], ["you"]):
            if len(hyp) > len(ending) and hyp[-len(ending):] == ending and ref[-len(ending):] != ending:
                hyp = hyp[:-len(ending)]
                break
        return " ".join(hyp)

    def __call__(self, reference: str, hypothesis: str, unit: str = "word") -> float:
        """WER (``unit="word"``) or CER (``unit="char"``) of the normalised reference and the
        :meth:`clean` hypothesis."""
        import jiwer

        ref, hyp = self._norm(reference).strip(), self.clean(reference, hypothesis)
        if not ref:
            return 0.0 if not hyp else 1.0
        if not hyp:
            return 1.0
        return float(jiwer.wer(ref, hyp) if unit == "word" else jiwer.cer(ref, hyp))


def _as_compounded(ref: list[str], hyp: list[str]) -> list[str]:
    """``hyp`` with two words that the reference writes as one joined, and one word that the
    reference writes as two adjacent words split."""
    words, said = set(ref), f" {' '.join(ref)} "
    pairs = {a + b: (a, b) for a, b in itertools.pairwise(ref)}
    out: list[str] = []
    i = 0
    while i < len(hyp):
        w = hyp[i]
        if i + 1 < len(hyp) and w + hyp[i + 1] in words and f" {w} {hyp[i + 1]} " not in said:
            out.append(w + hyp[i + 1])
            i += 2
            continue
        out.extend(pairs[w] if w not in words and w in pairs else (w,))
        i += 1
    return out

#: The second judge's beam (faster-whisper's default): greedy Whisper base misheard 5 of 142 kept
#: turns of a new instruction set that it heard right with a beam of 5 (benchmarks/gate_keep.py).
SECOND_JUDGE_BEAM_SIZE = 5


class Gate(Stage[Turn]):
    name = "gate"

    def __init__(self, config: BuildConfig):
        super().__init__(config)
        g = config.gate
        self.asr = {side: asr for side in SIDES if (asr := WhisperASR.for_side(g, side)) is not None}
        self.phonemes = PhonemeChecker() if g.phonemes or g.short_judge == "phonemes" else None
        self.wer: WordErrorRate | None = None
        self.second: Gate | None = None  # the same gate with the second judge's ASR on both sides, at its best
        if self.asr and g.second_judge != "none":
            self.second = Gate(config.with_overrides(gate={
                "asr_model": g.second_judge, "question_asr_model": g.second_judge, "answer_asr_model": g.second_judge,
                "second_judge": "none", "audit_rate": 0.0, "whisper": {"beam_size": SECOND_JUDGE_BEAM_SIZE}}))

    @property
    def resources(self) -> Resources:
        on_gpu = bool(self.asr) and self.config.gate.whisper.device == "cuda"
        return Resources(batch_size=self.config.gate.batch_size,
                         num_gpus=1.0 if on_gpu else 0.0)

    def setup(self) -> None:
        for asr in self.asr.values():
            asr.setup()
        if self.phonemes is not None:
            self.phonemes.setup()
        self.wer = WordErrorRate()
        if self.second is not None:
            self.second.ensure_setup()

    def identity(self) -> dict[str, str]:
        ids = {side: asr.identity()["asr"] for side, asr in self.asr.items()}
        extra = self.phonemes.identity() if self.phonemes is not None else {}
        if self.second is not None:
            extra["second_judge"] = next(iter(self.second.identity().values()))
        if len(set(ids.values())) <= 1:
            return {**{"asr": v for v in ids.values()}, **extra}
        return {**{f"{side}_asr": v for side, v in ids.items()}, **extra}

    def hear(self, turns: list[Turn]) -> list[dict[str, Transcript]]:
        """Each turn's transcript per side with an ASR, one batch per side; the answer's decoded
        from the encoder states the tokenize stage kept when its units share this ASR's encoder."""
        heard: list[dict[str, Transcript]] = [{} for _ in turns]
        for side in self.asr:
            for h, transcript in zip(heard, self.hear_side(turns, side)):
                h[side] = transcript
        return heard

    def hear_side(self, turns: list[Turn], side: str) -> list[Transcript]:
        """One side's transcripts of turns (that side must have an ASR)."""
        asr = self.asr[side]
        shared = [t.answer_encoding if side == "answer" else None for t in turns]
        states = [e.states if e is not None and e.model == asr.identity()["asr"] else None for e in shared]
        speech = [getattr(t, f"{side}_speech") for t in turns]
        return asr.transcribe_batch([resample(s.audio, s.sample_rate, WHISPER_RATE) for s in speech], states)

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
                rejected.append(self.reject(turn, r))
        try:
            heard = self.hear(ready)
        except Exception:  # noqa: BLE001 - find the turn that fails below
            log.debug("batched ASR failed; transcribing one turn at a time", exc_info=True)
            kept, more = super().process(ready)
            return kept, rejected + more
        kept: list[Turn] = []
        decided: list[Turn | Reject] = []
        for turn, h in zip(ready, heard):
            try:
                decided.append(self.judge(turn, h))
            except StageReject as r:
                decided.append(self.reject(turn, r, h))
        self.audit(ready, decided)
        for d in decided:
            (rejected if isinstance(d, Reject) else kept).append(d)
        return kept, rejected

    def process_one(self, turn: Turn) -> Turn:
        self.check_lengths(turn)
        return self.judge(turn, self.hear([turn])[0])

    def judge(self, turn: Turn, heard: dict[str, Transcript]) -> Turn:
        figures, ref_words = self.measure(turn, heard)
        self.check(turn, figures, ref_words)
        return turn.replace(quality=figures, answer_encoding=None)

    def reject(self, turn: Turn, r: StageReject, heard: dict[str, Transcript] | None = None) -> Reject:
        """A reject that shows what was judged: the side's spoken text, what the ASR heard and how."""
        side = "question" if r.reason.startswith("question_") else "answer"
        said = heard.get(side) if heard else None
        detail = r.detail
        if said is not None:
            detail += f"; {side} heard by the {said.path} path, confidence {said.confidence:.3f}"
        out = Reject.of(turn, self.name, r.reason, detail)
        out.expected = getattr(turn, f"{side}_spoken") or ""
        out.heard = said.text if said is not None else ""
        return out

    def decide(self, turn: Turn) -> str | None:
        """This gate's decision on a turn, length rules aside: None to keep it, else the reason.
        A side that fails as heard by the fast path is heard again by faster-whisper's windowed
        ``transcribe`` (Whisper as it was trained: a 30 s window), whose hearing decides."""
        heard = self.hear([turn])[0]
        figures, ref_words = self.measure(turn, heard)
        failing = [side for side in heard if self.asr_fault(side, figures, ref_words) is not None]
        for side in failing:
            speech = getattr(turn, f"{side}_speech")
            heard[side] = self.asr[side].transcribe(resample(speech.audio, speech.sample_rate, WHISPER_RATE))
        if failing:
            figures, ref_words = self.measure(turn, heard)
        try:
            self.check(turn, figures, ref_words)
        except StageReject as r:
            return r.reason
        return None

    def audit(self, turns: list[Turn], decided: list[Turn | Reject]) -> None:
        """The second judge's verdict on the turns chosen by :func:`audited`, recorded on each
        decision (``second_judge_audit``: "keep" or the reason it would reject)."""
        rate = self.config.gate.audit_rate
        if self.second is None or rate <= 0:
            return
        for turn, d in zip(turns, decided):
            if audited(turn.id, rate):
                verdict = self.second.decide(turn) or "keep"
                if isinstance(d, Reject):
                    d.second_judge_audit = verdict
                else:
                    d.quality["second_judge_audit"] = verdict

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
                figures[f"{side}_asr_path"] = heard[side].path or None
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
        """Raise StageReject naming the first figure outside its limit: what the ASR heard of each
        side (a side that fails there is heard again by the second judge, see :meth:`overturn`),
        then durations, speaking rate, silences and clipping."""
        g = self.config.gate
        a = turn.answer_speech
        for side in SIDES:
            fault = self.asr_fault(side, f, ref_words)
            if fault is not None:
                self.overturn(turn, side, f, fault)
        limits = [
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
                raise StageReject(f"{name}_high", f"{name}={value:.3f} above the maximum {high}")

    def asr_fault(self, side: str, f: dict, ref_words: dict[str, int]) -> StageReject | None:
        """Why a side fails by what the ASR heard, or None: its WER above the side's limit, with at
        least ``min_word_errors`` wrong words; a side of fewer than ``short_words`` words over the
        WER limit is judged by :meth:`short_fault` instead."""
        g = self.config.gate
        value = f.get(f"{side}_wer")
        high = g.max_question_wer if side == "question" else g.max_answer_wer
        if value is None or high is None or value <= high:
            return None
        words = ref_words.get(side, 0)
        if words < g.short_words:
            return self.short_fault(side, f)
        if round(value * words) < min(g.min_word_errors, words):
            return None
        return StageReject(f"{side}_wer_high", f"{side}_wer={value:.3f} above the maximum {high}; "
                                               f"heard: {f.get(f'{side}_asr_text', '')[:200]!r}")

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

    def overturn(self, turn: Turn, side: str, f: dict, fault: StageReject) -> None:
        """Hear a side that failed (``fault``) again with the second judge: kept if it passes there
        (``second_judge_overturned`` names the reason it escaped; the row's figures stay the
        gate's own ASR's), else ``fault`` is raised."""
        if self.second is None or side not in self.second.asr:
            raise fault
        again, words = self.second.measure(turn, {side: self.second.hear_side([turn], side)[0]})
        if self.second.asr_fault(side, again, words) is not None:
            raise fault
        f["second_judge_overturned"] = fault.reason

    def short_fault(self, side: str, f: dict) -> StageReject | None:
        """Why a side too short for WER fails by its CER, the ASR's confidence or its phoneme error
        rate (``gate.short_judge``), or None."""
        g = self.config.gate
        heard = f"; heard: {f.get(f'{side}_asr_text', '')[:200]!r}"
        if g.short_judge == "cer" and f[f"{side}_cer"] > g.max_short_cer:
            return StageReject(f"{side}_cer_high",
                               f"{side}_cer={f[f'{side}_cer']:.3f} above the maximum {g.max_short_cer}{heard}")
        if g.short_judge == "phonemes" and f[f"{side}_per"] > g.max_short_per:
            return StageReject(f"{side}_per_high",
                               f"{side}_per={f[f'{side}_per']:.3f} above the maximum {g.max_short_per}{heard}")
        if g.short_judge == "confidence" and f[f"{side}_asr_confidence"] < g.min_short_confidence:
            return StageReject(f"{side}_asr_confidence_low", f"{side}_asr_confidence={f[f'{side}_asr_confidence']:.3f} "
                               f"below the minimum {g.min_short_confidence}{heard}")
        return None


def audited(turn_id: str, rate: float) -> bool:
    """Whether the gate's audit re-hears a turn: a hash of its id (not the split's) below ``rate``."""
    h = int.from_bytes(hashlib.sha256(f"gate-audit:{turn_id}".encode()).digest()[:8], "big")
    return h / 2**64 < rate


def audit_counts(turns: list[Turn], rejects: list[Reject]) -> dict[str, int]:
    """The second judge's figures of a set of decisions (summed over work units in the manifest)."""
    kept = [t.quality.get("second_judge_audit") for t in turns if t.quality.get("second_judge_audit")]
    refused = [r.second_judge_audit for r in rejects if r.second_judge_audit]
    return {"overturned": sum(1 for t in turns if t.quality.get("second_judge_overturned")),
            "audited_kept": len(kept), "audited_kept_second_rejects": sum(v != "keep" for v in kept),
            "audited_rejects": len(refused), "audited_rejects_second_keeps": sum(v == "keep" for v in refused)}
