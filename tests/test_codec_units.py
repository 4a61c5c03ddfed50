"""EnCodec and Mimi through transformers, on tiny random models saved with save_pretrained."""

from __future__ import annotations

import numpy as np
import pytest

from echoforge.backends.units import create_tokenizer
from echoforge.registry import unit_tokenizers
from echoforge.config import parse_config
from echoforge.errors import ConfigError
from tiny_models import save_encodec, save_mimi, speechlike

# name → (saver, frame rate, codebooks asked for, codebooks in the model, hop at 24 kHz)
CODECS = {"encodec": (save_encodec, 75.0, 5, 6, 320), "mimi": (save_mimi, 12.5, 3, 4, 1920)}


@pytest.fixture(scope="module", params=sorted(CODECS))
def codec(request, tmp_path_factory):
    name = request.param
    path = CODECS[name][0](tmp_path_factory.mktemp(name) / f"tiny-{name}")
    return name, path


def _tokenizer(name, path, pad_batches=None, **section):
    units = parse_config({"units": {"tokenizer": name, name: {"model": str(path), **section}}}).units
    tok = create_tokenizer(units, pad_batches=pad_batches)
    tok.setup()
    return tok


def test_shapes_rates_and_determinism(codec):
    name, path = codec
    _, rate, k, _, hop = CODECS[name]
    tok = _tokenizer(name, path, num_codebooks=k)
    assert (tok.frame_rate, tok.sample_rate, tok.codebook_size) == (rate, 24_000, 64)
    audio = speechlike(2.0, 16_000)
    units = tok.encode(audio, 16_000)
    assert units.codes.shape == (k, int(np.ceil(48_000 / hop))) and units.codes.dtype == np.int32
    assert units.frame_rate == rate and units.codebook_size == 64 and 0 <= units.codes.min() <= units.codes.max() < 64
    assert all(len(np.unique(row)) > 1 for row in units.codes)  # every codebook is in use
    assert units.tokenizer.startswith(f"{name}:{k}x64:")
    np.testing.assert_array_equal(_tokenizer(name, path, num_codebooks=k).encode(audio, 16_000).codes, units.codes)
    assert tok.identity()["tokenizer"] == units.tokenizer


def test_a_padded_batch_equals_one_at_a_time(codec):
    name, path = codec
    assert _tokenizer(name, path).pad_batches is False  # on CPU, one at a time unless asked
    tok = _tokenizer(name, path, pad_batches=True, num_codebooks=CODECS[name][2])
    audios = [(speechlike(s, 24_000, seed=i), 24_000) for i, s in enumerate((1.9, 0.3, 1.234, 0.01))]
    batch = tok.encode_batch(audios)
    for (audio, rate), batched in zip(audios, batch):
        np.testing.assert_array_equal(batched.codes, tok.encode(audio, rate).codes)
    assert [u.num_frames for u in batch] == [int(np.ceil(len(a) / CODECS[name][4])) for a, _ in audios]


def test_decode_restores_the_length(codec):
    name, path = codec
    tok = _tokenizer(name, path)
    hop = CODECS[name][4]
    for seconds in (1.0, 0.77):
        audio = speechlike(seconds, 24_000)
        units = tok.encode(audio, 24_000)
        decoded = tok.decode(units.codes)
        assert decoded.dtype == np.float32 and len(decoded) == units.num_frames * hop
        assert 0 <= len(decoded) - len(audio) < hop and np.isfinite(decoded).all() and decoded.std() > 0


def test_codebook_limits_and_errors_name_the_field(codec, tmp_path):
    name, path = codec
    most = CODECS[name][3]
    assert _tokenizer(name, path, num_codebooks=most).encode(speechlike(0.5), 16_000).codes.shape[0] == most
    with pytest.raises(ConfigError, match=f"units.{name}.num_codebooks is {most + 1}; this model has {most}"):
        _tokenizer(name, path, num_codebooks=most + 1)
    with pytest.raises(ConfigError, match=f"units.{name}.num_codebooks"):
        parse_config({"units": {name: {"num_codebooks": 0}}})
    with pytest.raises(ConfigError, match="own codebooks"):
        create_tokenizer(parse_config({"units": {"tokenizer": name, "codebook": "x.npy"}}).units)
    with pytest.raises(ConfigError, match=f"units.{name}.model"):
        unit_tokenizers.create(name).setup()
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="cannot load"):
        unit_tokenizers.create(name, model=str(tmp_path)).setup()


def test_the_older_units_model_field_and_the_default_codebook_count(codec):
    name, path = codec
    tok = create_tokenizer(parse_config({"units": {"tokenizer": name, "model": str(path)}}).units)
    tok.setup()  # 8 codebooks by default, or all the model has when it has fewer
    assert tok.encode(speechlike(0.5), 16_000).codes.shape[0] == min(8, CODECS[name][3])
