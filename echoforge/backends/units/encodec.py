"""EnCodec tokenizer: the residual vector quantiser codes of Meta's EnCodec codec.

The 24 kHz model gives 75 frames per second and up to 32 codebooks of 1,024 codes; the first
``num_codebooks`` are kept (8 = 6 kbps, the usual choice for speech LMs; 2 = 1.5 kbps).
Weights come from a local checkpoint named by ``units.encodec.model`` (nothing is downloaded):

* a ``transformers`` ``EncodecModel`` directory (``save_pretrained``; decoded and batched
  through :mod:`echoforge.backends.units.codec`),
* a directory holding ``encodec_24khz-d7cc33bc.th`` (the official release file; its checksum
  is verified by ``encodec``), or
* a ``.th``/``.pt`` state-dict file of the 24 kHz architecture, or of another architecture
  described by a JSON file beside it (same stem, ``.json``; keys as in :data:`ARCH_24KHZ`).

``units.encodec.num_codebooks`` keeps N codebooks; a path ending in ``#N`` (an older way to say
it) is refused with a line naming that field. torch, ``transformers`` and ``encodec`` are
imported only when the tokenizer is set up (``pip install 'echoforge[torch]'``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from echoforge.audio import resample
from echoforge.backends.units.base import torch_device
from echoforge.registry import unit_tokenizers
from echoforge.backends.units.codec import CodecTokenizer, CodecUnitsConfig, is_transformers_checkpoint
from echoforge.hashing import sha256_file
from echoforge.errors import ConfigError, require
from echoforge.schemas.records import Units

OFFICIAL_24KHZ = "encodec_24khz-d7cc33bc.th"

#: The architecture of the 24 kHz release (what a plain state-dict checkpoint is loaded into).
ARCH_24KHZ: dict[str, Any] = {
    "sample_rate": 24_000,
    "channels": 1,
    "causal": True,
    "norm": "weight_norm",
    "normalize": False,
    "segment": None,
    "n_filters": 32,
    "dimension": 128,
    "ratios": [8, 5, 4, 2],
    "n_residual_layers": 1,
    "lstm": 2,
    "n_q": 32,
    "bins": 1024,
    "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0],
}


def build_model(arch: dict[str, Any]):
    """An (untrained) EncodecModel of an architecture."""
    require("torch", "the EnCodec tokenizer", "torch")
    encodec_model = require("encodec.model", "the EnCodec tokenizer", "torch")
    seanet = require("encodec.modules.seanet", "the EnCodec tokenizer", "torch")
    vq = require("encodec.quantization.vq", "the EnCodec tokenizer", "torch")
    a = {**ARCH_24KHZ, **arch}
    unknown = set(arch) - set(ARCH_24KHZ)
    if unknown:
        raise ConfigError(f"unknown EnCodec architecture keys: {', '.join(sorted(unknown))}")
    layers = {"channels": a["channels"], "dimension": a["dimension"], "n_filters": a["n_filters"],
              "n_residual_layers": a["n_residual_layers"], "ratios": list(a["ratios"]), "norm": a["norm"],
              "causal": a["causal"], "lstm": a["lstm"]}
    with warnings.catch_warnings():  # encodec uses torch's older weight_norm, which warns
        warnings.simplefilter("ignore", FutureWarning)
        return encodec_model.EncodecModel(
            seanet.SEANetEncoder(**layers), seanet.SEANetDecoder(**layers),
            vq.ResidualVectorQuantizer(dimension=a["dimension"], n_q=a["n_q"], bins=a["bins"]),
            list(a["target_bandwidths"]), a["sample_rate"], a["channels"], normalize=a["normalize"],
            segment=a["segment"],
        )


def load_model(path: str | Path):
    """(EncodecModel in eval mode, checkpoint file) from a local checkpoint path."""
    torch = require("torch", "the EnCodec tokenizer", "torch")
    encodec_model = require("encodec.model", "the EnCodec tokenizer", "torch")
    p = Path(path)
    if p.is_dir():
        if not (p / OFFICIAL_24KHZ).exists():
            raise ConfigError(f"no EnCodec checkpoint in {p}: expected {OFFICIAL_24KHZ}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = encodec_model.EncodecModel.encodec_model_24khz(pretrained=True, repository=p)
        return model.eval(), p / OFFICIAL_24KHZ
    if not p.exists():
        raise ConfigError(f"EnCodec checkpoint not found: {p}")
    meta = p.with_suffix(".json")
    arch = json.loads(meta.read_text()) if meta.exists() else {}
    model = build_model(arch)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several kinds for a bad file
        raise ConfigError(f"{p} is not a torch state-dict checkpoint ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(f"{p} does not fit the EnCodec architecture"
                          f"{' in ' + meta.name if meta.exists() else ' of the 24 kHz model'}: "
                          f"{str(exc).splitlines()[0]}") from None
    return model.eval(), p


@unit_tokenizers.register("encodec", config=CodecUnitsConfig)
class EncodecTokenizer(CodecTokenizer):
    """Audio → the first ``num_codebooks`` residual codebooks of EnCodec, at its frame rate."""

    name = "encodec"

    def __init__(self, model: str | None = None, num_codebooks: int | None = None, device: str = "cpu",
                 threads: int = 1, codebook: str | None = None, pad_batches: bool | None = None):
        base, sep, n = (model or "").rpartition("#")
        if sep and n.isdigit():
            raise ConfigError(f"units.encodec.model '{model}': a number of codebooks after '#' is not read; "
                              f"give the path alone and set units.encodec.num_codebooks: {n}")
        super().__init__(model, num_codebooks, device, threads, codebook, pad_batches)
        self._model = None
        self._sha = ""

    def setup(self) -> None:
        if is_transformers_checkpoint(self.model_path):
            super().setup()
            return
        torch = require("torch", "the EnCodec tokenizer", "torch")
        if not self.model_path:
            raise ConfigError("the encodec tokenizer needs units.encodec.model (or units.model): a save_pretrained EncodecModel "
                              f"directory, a directory holding {OFFICIAL_24KHZ}, or a state-dict file")
        model, file = load_model(self.model_path)
        self._check_codebooks(model.quantizer.n_q)
        self._torch_device = torch_device(self.device)
        if self._torch_device == "cpu" and self.threads:
            torch.set_num_threads(self.threads)
        self._model = model.to(self._torch_device)
        self._sha = sha256_file(file)
        self.sample_rate = int(model.sample_rate)
        self.frame_rate = float(model.frame_rate)
        self.codebook_size = int(model.quantizer.bins)

    def encode_batch(self, audios: list[tuple[np.ndarray, int]]) -> list[Units]:
        if self.codec is not None:
            return super().encode_batch(audios)
        return [self._encode_package(a, sr) for a, sr in audios]

    def _encode_package(self, audio: np.ndarray, sample_rate: int) -> Units:
        torch = require("torch", "the EnCodec tokenizer", "torch")
        m = self._model
        wav = torch.from_numpy(np.ascontiguousarray(resample(audio, sample_rate, self.sample_rate)))
        x = wav.to(self._torch_device)[None, None, :].expand(1, m.channels, -1)
        with torch.no_grad():
            if m.normalize:
                x = x / (1e-8 + x.mean(dim=1, keepdim=True).pow(2).mean(dim=2, keepdim=True).sqrt())
            emb = m.encoder(x)
            codes = m.quantizer.vq.encode(emb, n_q=self.num_codebooks)  # (K, 1, T)
        codes = codes[:, 0, :].cpu().numpy().astype(np.int32)
        return Units(codes, self.frame_rate, self.codebook_size, self.tag)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if self.codec is not None:
            return super().decode(codes)
        torch = require("torch", "the EnCodec tokenizer", "torch")
        c = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.int64))[:, None].to(self._torch_device)
        with torch.no_grad():
            audio = self._model.decoder(self._model.quantizer.vq.decode(c))
        return audio[0, 0].float().cpu().numpy()
