"""HuBERT k-means tokenizer: one HuBERT layer's features at 50 Hz → the nearest k-means centre.

The classic "semantic units" of unit vocoders and unit LMs. EchoX decodes its units with
fairseq's unit HiFi-GAN trained on mHuBERT layer 11 + k-means 1000; ``units.hubert`` names the
checkpoint (any ``transformers`` ``HubertModel``: a local directory, or a Hub id when online),
the layer, the codebook (``fit-units`` fits one; ``import-kmeans`` converts a published
fairseq/joblib file) and the vocoder that speaks the result.

Layer ``L`` is the output of the L-th transformer layer, which is ``hidden_states[L]`` of a
``transformers`` call and fairseq's ``extract_features(output_layer=L)``; the layers after it
are dropped at load. Batches are padded as :mod:`echoforge.backends.speech_encoders` says, so
a batch gives the features each utterance gets alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pydantic import Field

from echoforge.audio import resample
from echoforge.backends.speech_encoders import normalized, padded_encoder_states, preprocessor_normalizes
from echoforge.backends.units.base import KMeansCodebook, UnitTokenizer, torch_device
from echoforge.registry import unit_tokenizers
from echoforge.config import Section, UnitsConfig
from echoforge.errors import ConfigError, require
from echoforge.hashing import sha256_file
from echoforge.schemas.records import Units

HUBERT_RATE = 16_000


class HubertUnitsConfig(Section):
    """``units.hubert``: a HuBERT-family encoder layer + a k-means codebook (``hubert-kmeans``)."""

    model: str | None = None  # transformers HubertModel directory or Hub id
    layer: int = Field(11, ge=1)  # output of this transformer layer (1 = first); EchoX: 11
    codebook: str | None = None  # plain .npy codebook (fit-units, or import-kmeans from joblib)
    normalize: bool | None = None  # zero-mean unit-variance input; None: the model's preprocessor_config
    vocoder: str | None = None  # the unit vocoder that speaks these units, recorded with the build


@unit_tokenizers.register("hubert-kmeans", config=HubertUnitsConfig, section="hubert")
class HubertKMeansTokenizer(UnitTokenizer):
    """Audio → HuBERT layer ``layer`` features → index of the nearest codebook centre."""

    name = "hubert-kmeans"
    frame_rate = 50.0
    sample_rate = HUBERT_RATE
    uses_gpu = True

    def __init__(self, model: str | None = None, layer: int = 11, codebook: str | None = None,
                 normalize: bool | None = None, vocoder: str | None = None, device: str = "cpu",
                 threads: int = 1, pad_batches: bool | None = None):
        self.model_path, self.layer, self.normalize, self.vocoder = model, layer, normalize, vocoder
        self.codebook_path = Path(codebook) if codebook else None
        self.device, self.threads, self.pad_batches = device, threads, pad_batches
        self.codebook: KMeansCodebook | None = None
        self._model = None
        self._model_sha = ""

    @classmethod
    def from_config(cls, units: UnitsConfig, **overrides) -> HubertKMeansTokenizer:
        h = units.section("hubert")
        options = {"model": h.model or units.model, "layer": h.layer, "codebook": h.codebook or units.codebook,
                   "normalize": h.normalize, "vocoder": h.vocoder, "device": units.device, **overrides}
        return cls(**options)

    def setup(self) -> None:
        if self.codebook_path is None:
            raise ConfigError("the hubert-kmeans tokenizer needs units.hubert.codebook: a .npy codebook "
                              "(echoforge fit-units, or echoforge import-kmeans for a fairseq/joblib file)")
        self.codebook = KMeansCodebook.load(self.codebook_path)
        self.codebook_size = self.codebook.size
        self.setup_encoder()
        dim = self._model.config.hidden_size
        cb = self.codebook
        expected = cb.centroids.shape[1] if cb.mean is None else cb.mean.shape[0]
        if expected != dim:
            raise ConfigError(f"units.hubert.codebook {self.codebook_path.name} is for {expected}-dim features; "
                              f"this HuBERT gives {dim}-dim features")

    def setup_encoder(self) -> None:
        """Load the encoder alone (fitting a codebook needs no codebook)."""
        torch = require("torch", "the hubert-kmeans tokenizer", "torch")
        transformers = require("transformers", "the hubert-kmeans tokenizer", "torch")
        if not self.model_path:
            raise ConfigError("the hubert-kmeans tokenizer needs units.hubert.model: a HubertModel directory "
                              "(save_pretrained) or a Hub id")
        transformers.utils.logging.disable_progress_bar()
        try:
            model = transformers.HubertModel.from_pretrained(self.model_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"units.hubert.model: cannot load a HubertModel from {self.model_path} "
                              f"({str(exc).splitlines()[0]})") from None
        n_layers = model.config.num_hidden_layers
        if not 1 <= self.layer <= n_layers:
            raise ConfigError(f"units.hubert.layer is {self.layer}, but this HuBERT has {n_layers} layers")
        model.encoder.layers = model.encoder.layers[: self.layer]  # later layers are never needed
        self._device = torch_device(self.device)
        if self._device == "cpu" and self.threads:
            torch.set_num_threads(self.threads)
        self._model = model.eval().to(self._device)
        if self.pad_batches is None:
            self.pad_batches = self._device == "cuda"
        if self.normalize is None:
            self.normalize = preprocessor_normalizes(self.model_path)
        local = Path(self.model_path)
        self._model_sha = (sha256_file(local / "model.safetensors") if (local / "model.safetensors").exists()
                           else "")

    def features_batch(self, audios: list[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        """Layer features (frames, dim) of each utterance: one padded batch on a GPU (or with
        ``pad_batches``), one at a time otherwise (a padded batch is slower on CPU: docs/units.md)."""
        if len(audios) > 1 and not self.pad_batches:
            return [self.features_batch([a])[0] for a in audios]
        waves = []
        for audio, rate in audios:
            wav = resample(np.asarray(audio, dtype=np.float32), rate, HUBERT_RATE)
            waves.append(normalized(wav) if self.normalize else wav)
        return [s.float().cpu().numpy() for s in padded_encoder_states(self._model, waves, self._device)]

    def features(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Layer features (frames, dim) at 50 Hz."""
        return self.features_batch([(audio, sample_rate)])[0]

    def encode_batch(self, audios: list[tuple[np.ndarray, int]]) -> list[Units]:
        return [Units(self.codebook.assign(f)[None, :], self.frame_rate, self.codebook_size, self.tag)
                for f in self.features_batch(audios)]

    def encode(self, audio: np.ndarray, sample_rate: int) -> Units:
        return self.encode_batch([(audio, sample_rate)])[0]

    @property
    def tag(self) -> str:
        return f"{self.name}:L{self.layer}:k{self.codebook.size}:{self.codebook.sha256[:12]}"

    def identity(self) -> dict[str, str]:
        ident = {
            "tokenizer": self.tag,
            "tokenizer_encoder": f"{self.model_path} layer {self.layer}"
                                 + (f" sha256:{self._model_sha}" if self._model_sha else ""),
            "tokenizer_codebook": f"{self.codebook_path.name} sha256:{self.codebook.sha256}",
        }
        vocoder = self.vocoder or self.codebook.provenance.get("vocoder")
        if vocoder:
            ident["tokenizer_vocoder"] = vocoder
        return ident
