"""The EnCodec tokenizer backend, with a tiny randomly initialised model saved as a checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from echoforge.backends.units import create_tokenizer
from echoforge.registry import unit_tokenizers
from echoforge.config import parse_config
from echoforge.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("encodec")

TINY = {"n_filters": 4, "dimension": 16, "lstm": 0, "n_q": 4, "bins": 64, "target_bandwidths": [1.8]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny EnCodec (24 kHz, hop 320 → 75 Hz, 4 codebooks of 64) with random codebooks."""
    from encodec.model import EncodecModel
    from encodec.modules.seanet import SEANetDecoder, SEANetEncoder
    from encodec.quantization.vq import ResidualVectorQuantizer

    torch.manual_seed(0)
    layers = {"channels": 1, "dimension": 16, "n_filters": 4, "n_residual_layers": 1, "ratios": [8, 5, 4, 2],
              "norm": "weight_norm", "causal": True, "lstm": 0}
    model = EncodecModel(SEANetEncoder(**layers), SEANetDecoder(**layers),
                         ResidualVectorQuantizer(dimension=16, n_q=4, bins=64), [1.8], 24_000, 1)
    # k-means-initialised codebooks start at zero; fill them as k-means init would, with
    # encoder frames of some audio (and their residuals for the later codebooks).
    with torch.no_grad():
        frames = model.encoder(torch.from_numpy(_speechlike(3.0, 24_000))[None, None])[0].T  # (T, 16)
        residual = frames
        for layer in model.quantizer.vq.layers:
            pick = residual[torch.randperm(len(residual))[:64]]
            layer._codebook.embed.copy_(pick)
            layer._codebook.inited.fill_(1.0)
            residual = residual - layer.decode(layer.encode(residual[None].transpose(1, 2)))[0].T
    path = tmp_path_factory.mktemp("encodec") / "tiny.th"
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps(TINY))
    return path


def _speechlike(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    sig = env * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 900 * t * (1 + 0.2 * t)))
    return (0.3 * sig + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def test_encodec_codes_shape_range_and_determinism(checkpoint):
    tok = unit_tokenizers.create("encodec", model=str(checkpoint), num_codebooks=3)
    tok.setup()
    assert tok.frame_rate == 75.0 and tok.codebook_size == 64 and tok.sample_rate == 24_000
    audio = _speechlike(2.0)
    units = tok.encode(audio, 16_000)
    assert units.codes.shape[0] == 3
    assert abs(units.codes.shape[1] - 75 * 2.0) <= 1
    assert units.codes.dtype == np.int32
    assert units.codes.min() >= 0 and units.codes.max() < 64
    assert len(np.unique(units.codes[0])) > 1  # random codebooks: more than one code is used
    assert units.frame_rate == 75.0 and units.codebook_size == 64
    assert units.tokenizer.startswith("encodec:3x64:")
    again = unit_tokenizers.create("encodec", model=str(checkpoint), num_codebooks=3)
    again.setup()
    np.testing.assert_array_equal(again.encode(audio, 16_000).codes, units.codes)
    assert tok.identity()["tokenizer"] == units.tokenizer


def test_encodec_codebook_count_and_limits(checkpoint):
    tok = create_tokenizer(parse_config({"units": {"tokenizer": "encodec", "encodec": {
        "model": str(checkpoint), "num_codebooks": 2}}}).units)
    tok.setup()
    assert tok.encode(_speechlike(0.5), 24_000).codes.shape[0] == 2
    with pytest.raises(ConfigError, match=r"set units.encodec.num_codebooks: 2$"):
        create_tokenizer(parse_config({"units": {"tokenizer": "encodec", "model": f"{checkpoint}#2"}}).units)
    too_many = unit_tokenizers.create("encodec", model=str(checkpoint), num_codebooks=5)
    with pytest.raises(ConfigError, match="4 codebooks"):
        too_many.setup()
    with pytest.raises(ConfigError, match="units.model"):
        unit_tokenizers.create("encodec").setup()
    with pytest.raises(ConfigError, match="not found"):
        unit_tokenizers.create("encodec", model=str(checkpoint.with_name("missing.th"))).setup()
    with pytest.raises(ConfigError, match="own codebooks"):
        unit_tokenizers.create("encodec", model=str(checkpoint), codebook="x.npy")


def test_plain_state_dict_is_the_24khz_architecture(checkpoint, tmp_path):
    """Without a JSON beside it, a checkpoint must fit the 24 kHz release's architecture."""
    plain = tmp_path / "tiny-plain.th"
    plain.write_bytes(checkpoint.read_bytes())
    with pytest.raises(ConfigError, match="24 kHz"):
        unit_tokenizers.create("encodec", model=str(plain)).setup()


def test_registered_without_importing_torch():
    code = ("import sys; from echoforge.registry import unit_tokenizers; "
            "assert 'encodec' in unit_tokenizers.names(); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_torch_names_the_extra(monkeypatch):
    from echoforge.errors import MissingDependency

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(MissingDependency, match=r"echoforge\[torch\]"):
        unit_tokenizers.create("encodec", model="x.th").setup()


def test_a_24khz_state_dict_loads_into_the_release_architecture(tmp_path):
    """A plain state dict of the 24 kHz architecture (what the release file holds), randomly
    initialised here, loads without a JSON beside it: 75 Hz, 1,024 codes, 8 codebooks by default."""
    import warnings

    from encodec.model import EncodecModel

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = EncodecModel._get_model([1.5, 3.0, 6.0, 12.0, 24.0], 24_000, 1, causal=True,
                                        model_norm="weight_norm", audio_normalize=False)
    path = tmp_path / "encodec-24khz-random.th"
    torch.save(model.state_dict(), path)
    tok = unit_tokenizers.create("encodec", model=str(path))
    tok.setup()
    assert (tok.frame_rate, tok.codebook_size, tok.num_codebooks) == (75.0, 1024, 8)
    units = tok.encode(_speechlike(1.0, 24_000), 24_000)
    assert units.codes.shape == (8, 75)
    assert units.codes.min() >= 0 and units.codes.max() < 1024
    assert tok.identity()["tokenizer_model"].startswith("encodec-24khz-random.th sha256:")


def test_a_directory_needs_the_release_file(tmp_path):
    with pytest.raises(ConfigError, match="encodec_24khz-d7cc33bc.th"):
        unit_tokenizers.create("encodec", model=str(tmp_path)).setup()
