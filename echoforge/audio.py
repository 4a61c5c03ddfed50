"""Audio helpers: resampling (soxr), FLAC I/O (soundfile) and signal figures."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono float32 audio; a no-op when the rates match."""
    if from_rate == to_rate:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio.astype(np.float32, copy=False), from_rate, to_rate, quality="HQ")


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float audio as 16-bit FLAC bytes (deterministic for equal input)."""
    buf = io.BytesIO()
    sf.write(buf, to_pcm16(audio), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode audio bytes to (float32 mono, sample rate)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.mean(axis=1), int(rate)


def edge_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                 frame_s: float = 0.01) -> tuple[float, float]:
    """Leading and trailing silence in seconds: frames whose RMS is below threshold_db of full scale."""
    frame = max(1, int(sample_rate * frame_s))
    n = len(audio) // frame
    if n == 0:
        return len(audio) / sample_rate, 0.0
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(20 * np.log10(rms + 1e-12) > threshold_db)
    if len(loud) == 0:
        return len(audio) / sample_rate, 0.0
    lead = loud[0] * frame / sample_rate
    trail = (len(audio) - (loud[-1] + 1) * frame) / sample_rate
    return float(lead), float(trail)


def clipping_ratio(audio: np.ndarray, level: float = 0.999) -> float:
    """Share of samples at or beyond full scale."""
    if len(audio) == 0:
        return 0.0
    return float(np.mean(np.abs(audio) >= level))
