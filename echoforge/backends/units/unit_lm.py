"""A unit language: sentencepiece pieces over deduplicated speech units.

Each unit id becomes one private-use Unicode character (unit 0 → U+E000, …; ids past the
6,400 code points of the Basic Multilingual Plane's private-use area continue in plane 15),
so an utterance's deduplicated units are a string without spaces that sentencepiece can learn
pieces (merged unit runs) over. ``echoforge fit-unit-lm`` fits one on a built corpus; a build
with ``units.unit_lm`` set fills the ``answer_unit_lm_ids`` column with the piece ids of each
answer's deduplicated first-codebook units.

The model is a sentencepiece ``.model`` file (any name, e.g. ``model.spm``); a JSON file beside
it (same stem, ``.json``) records how it was made: the tokenizer and codebook size it belongs
to, the corpus and the command.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from echoforge.errors import ConfigError, EchoforgeError

_BMP_PUA, _BMP_PUA_SIZE, _PLANE15_PUA = 0xE000, 6400, 0xF0000
MAX_UNITS = _BMP_PUA_SIZE + 65534


def unit_char(unit: int) -> str:
    """The private-use character standing for a unit id."""
    u = int(unit)
    if u < 0 or u >= MAX_UNITS:
        raise ValueError(f"unit id {u} out of range")
    return chr(_BMP_PUA + u) if u < _BMP_PUA_SIZE else chr(_PLANE15_PUA + u - _BMP_PUA_SIZE)


def char_unit(ch: str) -> int:
    c = ord(ch)
    if _BMP_PUA <= c < _BMP_PUA + _BMP_PUA_SIZE:
        return c - _BMP_PUA
    if _PLANE15_PUA <= c < _PLANE15_PUA + 65534:
        return c - _PLANE15_PUA + _BMP_PUA_SIZE
    raise ValueError(f"{ch!r} is not a unit character")


def units_to_text(units: Iterable[int]) -> str:
    return "".join(unit_char(u) for u in units)


@dataclass
class UnitLanguageModel:
    """A fitted sentencepiece model over unit strings."""

    processor: Any  # sentencepiece.SentencePieceProcessor
    path: Path
    sha256: str
    provenance: dict

    @classmethod
    def load(cls, path: str | Path) -> UnitLanguageModel:
        import sentencepiece as spm

        p = Path(path)
        if not p.exists():
            raise ConfigError(f"unit language model not found: {p}")
        data = p.read_bytes()
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(data)
        except Exception as exc:  # noqa: BLE001 - sentencepiece raises RuntimeError/OSError
            raise ConfigError(f"{p} is not a sentencepiece model ({exc})") from None
        meta = p.with_suffix(".json")
        provenance = json.loads(meta.read_text()) if meta.exists() else {}
        return cls(processor, p, hashlib.sha256(data).hexdigest(), provenance)

    @property
    def vocab_size(self) -> int:
        return int(self.processor.GetPieceSize())

    @property
    def codebook_size(self) -> int | None:
        return self.provenance.get("codebook_size")

    def encode(self, units: np.ndarray | Iterable[int]) -> list[int]:
        """Piece ids of a 1-D sequence of (deduplicated) unit ids."""
        units = np.asarray(units, dtype=np.int64).reshape(-1)
        if self.codebook_size is not None and len(units) and int(units.max()) >= self.codebook_size:
            raise EchoforgeError(f"unit {int(units.max())} is outside the {self.codebook_size}-unit codebook "
                                 f"that {self.path.name} was fitted for")
        return [int(i) for i in self.processor.EncodeAsIds(units_to_text(units))]

    def decode(self, ids: Iterable[int]) -> np.ndarray:
        """The unit ids that piece ids stand for (unknown pieces are dropped)."""
        text = self.processor.DecodeIds([int(i) for i in ids])
        return np.array([char_unit(c) for c in text if ord(c) >= _BMP_PUA], dtype=np.int32)

    def pieces(self, units: Iterable[int]) -> list[list[int]]:
        """The units of each piece an utterance is cut into."""
        return [[char_unit(c) for c in piece if ord(c) >= _BMP_PUA]
                for piece in self.processor.EncodeAsPieces(units_to_text(units))]

    def identity(self) -> str:
        tok = self.provenance.get("tokenizer", "unknown tokenizer")
        return f"{self.path.name} sha256:{self.sha256[:16]} vocab {self.vocab_size} over {tok}"


def fit_unit_lm(sequences: list[np.ndarray], output: str | Path, *, vocab_size: int, codebook_size: int,
                model_type: str = "bpe", provenance: dict | None = None) -> UnitLanguageModel:
    """Fit a sentencepiece model over deduplicated unit sequences and write it to ``output``.

    A line holding every unit once is added to the training text, so each unit of the codebook
    is a base piece and no unit of a later utterance is unknown.
    """
    import sentencepiece as spm

    if not sequences:
        raise EchoforgeError("no unit sequences to fit a unit language model on")
    if vocab_size <= codebook_size + 3:
        raise EchoforgeError(f"--vocab-size must exceed the codebook size plus 3 special pieces "
                             f"({codebook_size + 3}); got {vocab_size}")
    lines = [units_to_text(range(codebook_size))] + [units_to_text(s) for s in sequences if len(s)]
    longest = max(len(line.encode("utf-8")) for line in lines)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type=model_type, vocab_size=vocab_size,
        character_coverage=1.0, normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_by_whitespace=False, split_by_unicode_script=False,
        max_sentence_length=longest + 1, input_sentence_size=0, hard_vocab_limit=False, byte_fallback=False,
        num_threads=1, minloglevel=2, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
    )
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.getvalue())
    lm = UnitLanguageModel.load(out)
    units = sum(len(s) for s in sequences)
    pieces = sum(len(lm.encode(s)) for s in sequences)
    meta = {
        **(provenance or {}),
        "codebook_size": int(codebook_size),
        "vocab_size": lm.vocab_size,
        "model_type": model_type,
        "sequences": len(sequences),
        "dedup_units": int(units),
        "pieces": int(pieces),
        "units_per_piece": round(units / max(pieces, 1), 4),
        "sentencepiece": spm.__version__,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    lm.provenance = meta
    return lm
