"""Unit tokenizer interface, k-means codebooks and the registry of tokenizers.

A tokenizer maps audio to a (num_codebooks, frames) integer array at a fixed frame rate.
Codec tokenizers (EnCodec: 75 Hz × n codebooks; Mimi: 12.5 Hz × 8) and encoder + k-means
tokenizers (HuBERT layer features, Whisper encoder states: one codebook at 50 Hz) fit alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echoforge.config import UnitsConfig
from echoforge.errors import ConfigError
from echoforge.registry import unit_tokenizers
from echoforge.schemas.records import Units


ASSETS = Path(__file__).resolve().parents[2] / "assets" / "units"


class UnitTokenizer:
    """Audio → speech units (and, for codecs, units → audio)."""

    name = "base"
    frame_rate: float = 50.0
    codebook_size: int = 0
    num_codebooks: int = 1
    sample_rate: int = 16_000
    uses_gpu = False  # whether a GPU speeds it up (the stage then asks the engine for one)

    @classmethod
    def from_config(cls, units: UnitsConfig, **overrides) -> UnitTokenizer:
        """A tokenizer from the ``units`` section (``overrides`` replace its fields)."""
        options = {"codebook": units.codebook, "model": units.model, "device": units.device, **overrides}
        return cls(**{k: v for k, v in options.items() if v is not None})

    def setup(self) -> None:
        raise NotImplementedError

    def encode(self, audio: np.ndarray, sample_rate: int) -> Units:
        raise NotImplementedError

    def encode_batch(self, audios: list[tuple[np.ndarray, int]]) -> list[Units]:
        """Units of several utterances; tokenizers with a model run them as one padded batch."""
        return [self.encode(a, sr) for a, sr in audios]

    def encodes_like(self, asr) -> bool:
        """Whether :meth:`features` are ``asr``'s own encoder states, so that one encoder pass gives
        both units (:meth:`units_of`) and a transcript (``asr.decode``)."""
        return False

    def features(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        raise NotImplementedError

    def units_of(self, features: np.ndarray) -> Units:
        raise NotImplementedError

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Audio (float32 at ``sample_rate``) of a (codebooks, frames) array: codecs only."""
        raise ConfigError(f"the {self.name} tokenizer has no decoder: only codec units (encodec, mimi) "
                          "can be turned back into audio")

    def identity(self) -> dict[str, str]:
        return {"tokenizer": self.name}


def create_tokenizer(units: UnitsConfig, **overrides) -> UnitTokenizer:
    """The tokenizer that ``units.tokenizer`` names, configured from its section."""
    return unit_tokenizers.get(units.tokenizer).from_config(units, **overrides)


def torch_device(device: str, field: str = "units.device") -> str:
    """"cuda" or "cpu" for a ``device`` setting ("auto": CUDA when there is one)."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{field} is 'cuda' but torch sees no CUDA device")
    return "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"


@dataclass
class KMeansCodebook:
    """Cluster centres of a k-means tokenizer, stored as a plain .npy array (never a pickle).

    Features may be projected before the nearest centre is taken: ``(x - mean) @ projection``
    (the default codebook uses an LDA projection onto phone-discriminant directions). A codebook
    without a projection is a (k, dim) float32 array; one with a projection is a 0-d structured
    array with fields ``centroids`` (k, d), ``mean`` (dim,) and ``projection`` (dim, d), still
    plain ``.npy`` data. A JSON file beside it (same name, ``.json``) records how it was made.
    """

    centroids: np.ndarray  # (k, d) float32, in the projected space when there is a projection
    provenance: dict
    sha256: str
    mean: np.ndarray | None = None  # (dim,)
    projection: np.ndarray | None = None  # (dim, d)

    @classmethod
    def load(cls, path: str | Path) -> KMeansCodebook:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"codebook not found: {p}")
        data = p.read_bytes()
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise ConfigError(f"codebook {p} is not a plain .npy array ({exc})") from None
        mean = projection = None
        if arr.dtype.names:
            if set(arr.dtype.names) != {"centroids", "mean", "projection"}:
                raise ConfigError(f"codebook {p} has fields {arr.dtype.names}; expected centroids, mean, projection")
            centroids = np.asarray(arr["centroids"], dtype=np.float32)
            mean = np.asarray(arr["mean"], dtype=np.float32)
            projection = np.asarray(arr["projection"], dtype=np.float32)
            if projection.ndim != 2 or mean.shape != (projection.shape[0],) or \
                    centroids.ndim != 2 or centroids.shape[1] != projection.shape[1]:
                raise ConfigError(f"codebook {p}: centroids {centroids.shape}, mean {mean.shape} and "
                                  f"projection {projection.shape} do not fit together")
        else:
            centroids = arr.astype(np.float32)
        if centroids.ndim != 2:
            raise ConfigError(f"codebook {p} must be a (k, dim) array, not shape {centroids.shape}")
        meta_path = p.with_suffix(".json")
        provenance = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return cls(centroids, provenance, hashlib.sha256(data).hexdigest(), mean, projection)

    def save(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if self.projection is None:
            np.save(p, self.centroids.astype(np.float32), allow_pickle=False)
        else:
            c, m, w = (np.asarray(a, dtype=np.float32) for a in (self.centroids, self.mean, self.projection))
            dtype = np.dtype([("centroids", "<f4", c.shape), ("mean", "<f4", m.shape), ("projection", "<f4", w.shape)])
            record = np.zeros((), dtype=dtype)
            record["centroids"], record["mean"], record["projection"] = c, m, w
            np.save(p, record, allow_pickle=False)
        p.with_suffix(".json").write_text(json.dumps(self.provenance, indent=2, sort_keys=True) + "\n")

    @property
    def size(self) -> int:
        return int(self.centroids.shape[0])

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Features in the space of the centres."""
        if self.projection is None:
            return features
        return ((features - self.mean) @ self.projection).astype(np.float32)

    def assign(self, features: np.ndarray) -> np.ndarray:
        """Index of the nearest centre for each feature row."""
        if len(features) == 0:
            return np.zeros(0, dtype=np.int32)
        features = self.transform(features)
        c = self.centroids
        d = (features**2).sum(1, keepdims=True) - 2.0 * features @ c.T + (c**2).sum(1)[None, :]
        return d.argmin(axis=1).astype(np.int32)
