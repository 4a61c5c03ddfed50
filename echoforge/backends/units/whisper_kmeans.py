"""The embedded default tokenizer: Whisper tiny.en encoder states + a k-means codebook.

Runs offline on CPU through faster-whisper (CTranslate2); 50 frames per second, one codebook.
The packaged codebook is produced by ``echoforge fit-units`` (see docs/units.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echoforge.audio import resample
from echoforge.backends.asr import WHISPER_RATE, encoder_states, load_whisper, model_identity
from echoforge.backends.units.base import ASSETS, KMeansCodebook, UnitTokenizer
from echoforge.registry import unit_tokenizers
from echoforge.schemas.records import Units

DEFAULT_CODEBOOK = ASSETS / "whisper-tiny-en-k500.npy"


@unit_tokenizers.register("whisper-kmeans")
class WhisperKMeansTokenizer(UnitTokenizer):
    name = "whisper-kmeans"
    frame_rate = 50.0
    sample_rate = WHISPER_RATE

    def __init__(self, codebook: str | None = None, model: str | None = None, device: str = "cpu",
                 threads: int = 1):
        self.codebook_path = Path(codebook) if codebook else DEFAULT_CODEBOOK
        self.model_path, self.device, self.threads = model, device, threads
        self._model = None
        self.codebook: KMeansCodebook | None = None

    def setup(self) -> None:
        self.codebook = KMeansCodebook.load(self.codebook_path)
        self.codebook_size = self.codebook.size
        self.setup_encoder()

    def setup_encoder(self) -> None:
        """Load the encoder alone (fitting a codebook needs no codebook)."""
        self._model = load_whisper(self.model_path, self._device, self.threads, None)

    @property
    def _device(self) -> str:
        return "cuda" if self.device == "cuda" else "cpu"

    def encodes_like(self, asr) -> bool:
        return asr.same_encoder(self.model_path, self._device)

    def features(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Encoder states (frames, dim) at 50 Hz."""
        return encoder_states(self._model, resample(audio, sample_rate, WHISPER_RATE))

    def encode(self, audio: np.ndarray, sample_rate: int) -> Units:
        return self.units_of(self.features(audio, sample_rate))

    def units_of(self, features: np.ndarray) -> Units:
        """Units of encoder states from :meth:`features`."""
        codes = self.codebook.assign(features)
        return Units(codes[None, :], self.frame_rate, self.codebook_size, self.tag)

    @property
    def tag(self) -> str:
        return f"{self.name}:k{self.codebook.size}:{self.codebook.sha256[:12]}"

    def identity(self) -> dict[str, str]:
        return {
            "tokenizer": self.tag,
            "tokenizer_encoder": model_identity(self.model_path),
            "tokenizer_codebook": f"{self.codebook_path.name} sha256:{self.codebook.sha256}",
        }
