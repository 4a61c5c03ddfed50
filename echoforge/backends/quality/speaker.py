"""Speaker embeddings: Resemblyzer's VoiceEncoder (GE2E, 256-dim, L2-normed; its weights ship in the
wheel as ``resemblyzer/pretrained.pt``). Needs the ``speaker`` extra (torch, librosa, webrtcvad).

A clip is preprocessed as Resemblyzer does (16 kHz, volume raised to -30 dBFS, silences longer
than about 0.2 s cut by webrtcvad), cut into 1.6 s partials at 1.3 per second, and embedded as
the normalised mean of the partials. Cosine similarity of two embeddings is their dot product.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from echoforge.errors import require
from echoforge.hashing import sha256_file

EMBEDDING_DIM = 256
RATE = 16_000


class SpeakerEncoder:
    """Resemblyzer's encoder; one torch thread on CPU so that embeddings are the same on every engine."""

    def __init__(self, device: str = "cpu", threads: int = 1):
        self.device, self.threads = device, threads
        self._encoder = None
        self._audio = None

    def setup(self) -> None:
        torch = require("torch", "speaker embeddings (listen.speaker)", "speaker")
        with warnings.catch_warnings():  # its scipy.ndimage.morphology and webrtcvad's pkg_resources imports
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            resemblyzer = require("resemblyzer", "speaker embeddings (listen.speaker)", "speaker")
        if self.device == "cpu" and self.threads:
            torch.set_num_threads(self.threads)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a load message
            self._encoder = resemblyzer.VoiceEncoder(device=self.device, verbose=False)
        self._encoder.eval()
        self._audio = resemblyzer.audio

    def identity(self) -> dict[str, str]:
        from importlib.metadata import version
        from importlib.util import find_spec
        from pathlib import Path

        weights = Path(next(iter(find_spec("resemblyzer").submodule_search_locations))) / "pretrained.pt"
        return {"speaker_encoder": f"resemblyzer {version('resemblyzer')} pretrained.pt "
                                   f"(sha256 {sha256_file(weights)[:12]})"}

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """(256,) float32 L2-normed embedding of one clip; zeros for a clip with no voiced audio."""
        from echoforge.audio import resample

        wav = resample(audio, sample_rate, RATE)
        if not np.isfinite(wav).all() or np.abs(wav).max(initial=0.0) < 1e-4:
            return np.zeros(EMBEDDING_DIM, dtype=np.float32)
        wav = self._audio.normalize_volume(wav, -30, increase_only=True)
        wav = self._audio.trim_long_silences(wav.astype(np.float32))
        if len(wav) < RATE // 10:
            return np.zeros(EMBEDDING_DIM, dtype=np.float32)
        return self._encoder.embed_utterance(wav).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (0 when either is all zeros)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na and nb else 0.0
