"""The unit language: sentencepiece pieces over deduplicated units, its command and the shipped model."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from echoforge.backends.units.base import ASSETS, KMeansCodebook
from echoforge.backends.units.unit_lm import (
    UnitLanguageModel,
    char_unit,
    fit_unit_lm,
    unit_char,
    units_to_text,
)
from echoforge.cli import main
from echoforge.errors import ConfigError, EchoforgeError

SHIPPED = ASSETS / "unit-lm-whisper-tiny-en-k500-v2000.spm"


def _sequences(n: int = 300, k: int = 50, seed: int = 0) -> list[np.ndarray]:
    """Unit strings with recurring 'words' (fixed unit runs), as real speech units have."""
    rng = np.random.default_rng(seed)
    words = [rng.integers(0, k, rng.integers(2, 6)) for _ in range(40)]
    out = []
    for _ in range(n):
        seq = np.concatenate([words[i] for i in rng.integers(0, len(words), rng.integers(3, 12))])
        keep = np.ones(len(seq), dtype=bool)
        keep[1:] = seq[1:] != seq[:-1]  # deduplicated: no unit repeats its neighbour
        out.append(seq[keep].astype(np.int32))
    return out


def test_unit_characters_round_trip():
    for u in (0, 1, 499, 6399, 6400, 20_000):
        assert char_unit(unit_char(u)) == u
    assert unit_char(0) == "\ue000" and len(units_to_text([3, 4, 5])) == 3
    with pytest.raises(ValueError):
        unit_char(-1)


def test_fit_encode_decode(tmp_path):
    seqs = _sequences()
    out = tmp_path / "lm.spm"
    lm = fit_unit_lm(seqs, out, vocab_size=120, codebook_size=50, provenance={"tokenizer": "test:k50"})
    assert out.exists() and out.with_suffix(".json").exists()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["codebook_size"] == 50 and meta["tokenizer"] == "test:k50" and meta["vocab_size"] == lm.vocab_size
    assert meta["units_per_piece"] > 1.2  # recurring runs were merged into pieces
    loaded = UnitLanguageModel.load(out)
    assert loaded.vocab_size == lm.vocab_size <= 120
    for seq in seqs[:20]:
        ids = loaded.encode(seq)
        assert all(isinstance(i, int) and 0 < i < loaded.vocab_size for i in ids)
        assert len(ids) < len(seq) or len(seq) <= 2
        np.testing.assert_array_equal(loaded.decode(ids), seq)
        assert sum(map(len, loaded.pieces(seq))) == len(seq)
    # Every unit of the codebook is a piece, even one the corpus never used.
    unseen = np.array([49, 48, 47], dtype=np.int32)
    np.testing.assert_array_equal(loaded.decode(loaded.encode(unseen)), unseen)
    with pytest.raises(EchoforgeError, match="outside the 50-unit codebook"):
        loaded.encode([50])
    assert "vocab" in loaded.identity() and "test:k50" in loaded.identity()


def test_fit_is_deterministic(tmp_path):
    seqs = _sequences(seed=1)
    a = fit_unit_lm(seqs, tmp_path / "a.spm", vocab_size=100, codebook_size=50)
    b = fit_unit_lm(seqs, tmp_path / "b.spm", vocab_size=100, codebook_size=50)
    assert (tmp_path / "a.spm").read_bytes() == (tmp_path / "b.spm").read_bytes()
    assert a.encode(seqs[0]) == b.encode(seqs[0])


def test_vocab_must_exceed_codebook(tmp_path):
    with pytest.raises(EchoforgeError, match="vocab-size"):
        fit_unit_lm(_sequences(), tmp_path / "x.spm", vocab_size=50, codebook_size=50)
    with pytest.raises(ConfigError, match="not found"):
        UnitLanguageModel.load(tmp_path / "missing.spm")


def _fake_corpus(root, seqs, tokenizer="test:k50", size=50):
    """The parts of a built corpus that fit-unit-lm reads: manifest shards and unit columns."""
    (root / "data").mkdir(parents=True)
    half = len(seqs) // 2
    shards = []
    for split, part in (("train", seqs[:half]), ("validation", seqs[half:])):
        table = pa.table({"answer_units_dedup": [[s.tolist()] for s in part],
                          "units_tokenizer": [tokenizer] * len(part),
                          "units_codebook_size": [size] * len(part)})
        path = f"data/{split}.parquet"
        pq.write_table(table, root / path)
        shards.append({"split": split, "path": path, "rows": len(part)})
    (root / "manifest.json").write_text(json.dumps({"format": "parquet", "shards": shards}))


def test_fit_unit_lm_command(tmp_path):
    seqs = _sequences()
    _fake_corpus(tmp_path / "corpus", seqs)
    out = tmp_path / "lm.spm"
    result = CliRunner().invoke(main, ["fit-unit-lm", str(tmp_path / "corpus"), "--output", str(out),
                                       "--vocab-size", "100"])
    assert result.exit_code == 0, result.output
    assert "over test:k50 from 150 rows" in result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["split"] == "train" and meta["sequences"] == 150
    assert meta["command"] == "echoforge fit-unit-lm corpus --output lm.spm --vocab-size 100"
    result = CliRunner().invoke(main, ["fit-unit-lm", str(tmp_path / "corpus"), "-o", str(out),
                                       "--vocab-size", "20"])
    assert result.exit_code == 2 and "vocab-size" in result.output


def test_shipped_model_matches_the_default_codebook():
    lm = UnitLanguageModel.load(SHIPPED)
    codebook = KMeansCodebook.load(ASSETS / "whisper-tiny-en-k500.npy")
    assert lm.codebook_size == codebook.size
    assert lm.provenance["tokenizer"].startswith(f"whisper-kmeans:k{codebook.size}:{codebook.sha256[:12]}")
    assert lm.provenance["command"].startswith("echoforge fit-unit-lm ")
    units = np.arange(codebook.size, dtype=np.int32)
    np.testing.assert_array_equal(lm.decode(lm.encode(units)), units)
    assert lm.provenance["units_per_piece"] > 1.0


def test_tokenize_stage_fills_unit_lm_ids():
    """A build with units.unit_lm set: the Tokenize stage gives each answer its piece ids."""
    from echoforge.backends.tts.base import VoiceRequest
    from echoforge.backends.tts.piper import PiperBackend
    from echoforge.config import BuildConfig
    from echoforge.schemas.columns import turn_to_row
    from echoforge.schemas.records import Turn
    from echoforge.transforms.tokenize import Tokenize

    backend = PiperBackend(["joe"])
    backend.setup()
    speech = backend.synthesize(VoiceRequest(("Units become pieces.",), "joe", 1.0, 3))
    turn = Turn(id="t", source="s", source_position="s:0", conversation_id="c", turn_index=0, history=[],
                question_text="q", answer_text="Units become pieces.", answer_spoken="Units become pieces.",
                answer_speech=speech)
    stage = Tokenize(BuildConfig().with_overrides(units={"unit_lm": str(SHIPPED)}))
    stage.ensure_setup()
    assert "unit_lm" in stage.identity()
    out = stage.process_one(turn)
    ids = out.extra["answer_unit_lm_ids"]
    lm = UnitLanguageModel.load(SHIPPED)
    units = out.answer_units.dedup()[0][0]
    assert 0 < len(ids) < len(units) and all(0 < i < lm.vocab_size for i in ids)
    np.testing.assert_array_equal(lm.decode(ids), units)  # the ids spell exactly the answer's units
    assert turn_to_row(out)["answer_unit_lm_ids"] == ids
