"""Neural codecs through ``transformers``: EnCodec (``EncodecModel``) and Mimi (``MimiModel``).

A codec tokenizer keeps the first ``num_codebooks`` residual-VQ codebooks and decodes them back
to audio. Both codecs are causal (causal convolutions, a unidirectional LSTM or causal
attention), so a batch is zero-padded at the end: every utterance is first padded to a whole
number of frames, and its codes are the first ceil(samples / hop) frames of the batch's, the
same as it gets alone. Weights come from a ``save_pretrained`` directory (or a Hub id when
online); nothing is downloaded otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pydantic import Field

from echoforge.audio import resample
from echoforge.backends.units.base import UnitTokenizer, torch_device
from echoforge.registry import unit_tokenizers
from echoforge.config import Section, UnitsConfig
from echoforge.errors import ConfigError, require
from echoforge.hashing import sha256_file
from echoforge.schemas.records import Units


SHORT_FRAMES = 16  # inputs shorter than this run alone where the codec pads by reflection


def is_transformers_checkpoint(path: str | None) -> bool:
    return bool(path) and (Path(path) / "config.json").is_file()


class TransformersCodec:
    """A loaded ``EncodecModel`` or ``MimiModel``: codes of padded batches, audio of codes."""

    def __init__(self, kind: str, path: str, device: str, threads: int = 1):
        torch = require("torch", f"the {kind} tokenizer", "torch")
        transformers = require("transformers", f"the {kind} tokenizer", "torch")
        cls = {"encodec": transformers.EncodecModel, "mimi": transformers.MimiModel}[kind]
        transformers.utils.logging.disable_progress_bar()
        try:
            model = cls.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"units.{kind}.model: cannot load a {cls.__name__} from {path} "
                              f"({str(exc).splitlines()[0]})") from None
        c = model.config
        if kind == "encodec":
            if c.chunk_length_s is not None or c.normalize:
                raise ConfigError(f"units.encodec.model: {path} chunks or normalises its input (the 48 kHz "
                                  "EnCodec); only the unchunked 24 kHz family is supported")
            self.hop = int(c.hop_length)
            self.max_codebooks = int(c.num_quantizers)
        else:
            self.hop = int(c.frame_size)
            self.max_codebooks = int(c.num_quantizers)
            self.min_codebooks = int(c.num_semantic_quantizers)
        self.kind, self.torch = kind, torch
        self.reflects = getattr(c, "pad_mode", "constant") == "reflect"
        self.sample_rate = int(c.sampling_rate)
        self.frame_rate = float(self.sample_rate / self.hop)
        self.codebook_size = int(c.codebook_size)
        self.device = torch_device(device)
        if self.device == "cpu" and threads:
            torch.set_num_threads(threads)
        self.model = model.eval().to(self.device)
        weights = Path(path) / "model.safetensors"
        self.sha256 = sha256_file(weights) if weights.exists() else ""

    def encode_batch(self, waves: list[np.ndarray], num_codebooks: int) -> list[np.ndarray]:
        """(num_codebooks, ceil(samples / hop)) int32 codes of each waveform at the codec's rate."""
        frames = [max(1, -(-len(w) // self.hop)) for w in waves]
        if self.reflects and len(waves) > 1 and min(frames) < SHORT_FRAMES:
            # reflect padding mirrors what follows a very short input, so padding would change it
            short = {i for i, n in enumerate(frames) if n < SHORT_FRAMES}
            long = [i for i in range(len(waves)) if i not in short]
            done = dict(zip(long, self.encode_batch([waves[i] for i in long], num_codebooks) if long else []))
            done.update({i: self.encode_batch([waves[i]], num_codebooks)[0] for i in short})
            return [done[i] for i in range(len(waves))]
        torch = self.torch
        x = np.zeros((len(waves), 1, max(frames) * self.hop), dtype=np.float32)
        for i, w in enumerate(waves):
            x[i, 0, : len(w)] = w
        batch = torch.from_numpy(x).to(self.device)
        with torch.no_grad():
            if self.kind == "mimi":
                codes = self.model.encode(batch, num_quantizers=num_codebooks).audio_codes  # (B, K, T)
            else:
                residual = self.model.encoder(batch)
                layers = []
                for layer in self.model.quantizer.layers[:num_codebooks]:
                    idx = layer.encode(residual)
                    residual = residual - layer.decode(idx)
                    layers.append(idx)
                codes = torch.stack(layers, dim=1)  # (B, K, T)
        codes = codes.cpu().numpy().astype(np.int32)
        return [codes[i, :, :n] for i, n in enumerate(frames)]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Float32 audio at the codec's rate of a (codebooks, frames) array."""
        torch = self.torch
        c = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64))[None].to(self.device)  # (1, K, T)
        with torch.no_grad():
            if self.kind == "mimi":
                audio = self.model.decode(c).audio_values
            else:
                audio = self.model.decoder(self.model.quantizer.decode(c.transpose(0, 1)))
        return audio[0, 0].float().cpu().numpy()


class CodecUnitsConfig(Section):
    """``units.encodec`` / ``units.mimi``: a neural codec's residual-VQ codes."""

    model: str | None = None  # local checkpoint (transformers directory, or for encodec a .th file) or Hub id
    num_codebooks: int | None = Field(None, ge=1, le=32)  # None: encodec 8, mimi 8


class CodecTokenizer(UnitTokenizer):
    """Shared by the codec tokenizers: encode, batch and decode through a :class:`TransformersCodec`."""

    uses_gpu = True
    default_codebooks = 8

    def __init__(self, model: str | None = None, num_codebooks: int | None = None, device: str = "cpu",
                 threads: int = 1, codebook: str | None = None, pad_batches: bool | None = None):
        if codebook is not None:
            raise ConfigError(f"the {self.name} tokenizer has its own codebooks: leave units.codebook unset")
        self.model_path = model
        self.asked_codebooks = num_codebooks
        self.num_codebooks = int(num_codebooks or self.default_codebooks)
        self.device, self.threads, self.pad_batches = device, threads, pad_batches
        self.codec: TransformersCodec | None = None

    @classmethod
    def from_config(cls, units: UnitsConfig, **overrides) -> CodecTokenizer:
        section = units.section(cls.name)
        if units.codebook is not None:
            raise ConfigError(f"the {cls.name} tokenizer has its own codebooks: leave units.codebook unset")
        options = {"model": section.model or units.model, "num_codebooks": section.num_codebooks,
                   "device": units.device, **overrides}
        return cls(**options)

    def setup(self) -> None:
        if not self.model_path:
            raise ConfigError(f"the {self.name} tokenizer needs units.{self.name}.model: a save_pretrained "
                              "directory of the codec (or a Hub id when online)")
        self.codec = TransformersCodec(self.name, self.model_path, self.device, self.threads)
        self._check_codebooks(self.codec.max_codebooks, getattr(self.codec, "min_codebooks", 1))
        self.sample_rate, self.frame_rate = self.codec.sample_rate, self.codec.frame_rate
        self.codebook_size = self.codec.codebook_size
        self._sha = self.codec.sha256
        if self.pad_batches is None:
            self.pad_batches = self.codec.device == "cuda"

    def _check_codebooks(self, most: int, least: int = 1) -> None:
        if self.asked_codebooks is None:
            self.num_codebooks = min(self.default_codebooks, most)
        if not least <= self.num_codebooks <= most:
            raise ConfigError(f"units.{self.name}.num_codebooks is {self.num_codebooks}; this model has "
                              f"{most} codebooks" + (f" and needs at least {least}" if least > 1 else ""))

    def encode_batch(self, audios: list[tuple[np.ndarray, int]]) -> list[Units]:
        """One padded batch on a GPU (or with ``pad_batches``), one at a time otherwise (a padded
        batch is slower on CPU: docs/units.md)."""
        if len(audios) > 1 and not self.pad_batches:
            return [self.encode_batch([a])[0] for a in audios]
        waves = [resample(np.asarray(a, dtype=np.float32), sr, self.sample_rate) for a, sr in audios]
        return [Units(c, self.frame_rate, self.codebook_size, self.tag)
                for c in self.codec.encode_batch(waves, self.num_codebooks)]

    def encode(self, audio: np.ndarray, sample_rate: int) -> Units:
        return self.encode_batch([(audio, sample_rate)])[0]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.codec.decode(codes)

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.num_codebooks}x{self.codebook_size}:{self._sha[:12]}"

    def identity(self) -> dict[str, str]:
        return {"tokenizer": self.tag,
                "tokenizer_model": f"{Path(self.model_path).name} sha256:{self._sha}",
                "tokenizer_vocoder": f"{self.name} decoder (echoforge decode-units)"}


@unit_tokenizers.register("mimi", config=CodecUnitsConfig)
class MimiTokenizer(CodecTokenizer):
    """Kyutai's Mimi: 12.5 Hz, the first codebook semantic (distilled from WavLM), up to 32 in all."""

    name = "mimi"
