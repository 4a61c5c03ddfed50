"""The hubert-kmeans tokenizer on a tiny random HubertModel saved with save_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import HubertModel

from echoforge.backends.units import create_tokenizer
from echoforge.registry import unit_tokenizers
from echoforge.backends.units.base import KMeansCodebook
from echoforge.config import parse_config
from echoforge.errors import ConfigError
from tiny_models import save_hubert, speechlike


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_hubert(tmp_path_factory.mktemp("hubert") / "tiny-hubert")


@pytest.fixture(scope="module")
def codebook(tmp_path_factory):
    path = tmp_path_factory.mktemp("codebook") / "k24.npy"
    centres = np.random.default_rng(0).standard_normal((24, 32)).astype(np.float32)
    KMeansCodebook(centres, {"vocoder": "from-the-codebook"}, "").save(path)
    return path


def _tokenizer(model_dir, codebook, pad_batches=None, **options):
    units = parse_config({"units": {"tokenizer": "hubert-kmeans",
                                    "hubert": {"model": str(model_dir), "layer": 2, "codebook": str(codebook),
                                               **options}}}).units
    tok = create_tokenizer(units, pad_batches=pad_batches)
    tok.setup()
    return tok


def test_features_are_the_layer_of_a_direct_transformers_call(model_dir, codebook):
    tok = _tokenizer(model_dir, codebook)
    audio = speechlike(1.3)
    ours = tok.features(audio, 16_000)
    with torch.no_grad():
        direct = HubertModel.from_pretrained(model_dir).eval()(torch.from_numpy(audio)[None], output_hidden_states=True)
    np.testing.assert_allclose(ours, direct.hidden_states[2][0].numpy(), atol=1e-5)
    assert not np.allclose(ours, direct.hidden_states[3][0].numpy(), atol=1e-3)  # the layer matters
    assert ours.shape == (64, 32)  # 50 Hz: (20800 - 400) // 320 + 1 frames


def test_units_rate_size_and_determinism(model_dir, codebook):
    tok = _tokenizer(model_dir, codebook)
    audio = speechlike(2.0, 22_050)
    units = tok.encode(audio, 22_050)
    assert units.codes.shape == (1, 99) and units.codes.dtype == np.int32
    assert units.frame_rate == 50.0 and units.codebook_size == 24
    assert 0 <= units.codes.min() and units.codes.max() < 24 and len(np.unique(units.codes)) > 3
    assert units.tokenizer.startswith("hubert-kmeans:L2:k24:")
    again = _tokenizer(model_dir, codebook).encode(audio, 22_050)
    np.testing.assert_array_equal(again.codes, units.codes)
    ident = tok.identity()
    assert ident["tokenizer"] == units.tokenizer and ident["tokenizer_vocoder"] == "from-the-codebook"
    assert "layer 2 sha256:" in ident["tokenizer_encoder"]
    assert _tokenizer(model_dir, codebook, vocoder="unit-hifigan").identity()["tokenizer_vocoder"] == "unit-hifigan"


def test_a_padded_batch_equals_one_at_a_time(model_dir, codebook):
    assert _tokenizer(model_dir, codebook).pad_batches is False  # on CPU, one at a time unless asked
    tok = _tokenizer(model_dir, codebook, pad_batches=True)
    audios = [(speechlike(s, 16_000, seed=i), 16_000) for i, s in enumerate((1.7, 0.4, 1.05, 0.02))]
    batch = tok.features_batch(audios)
    for (audio, rate), feats in zip(audios, batch):
        np.testing.assert_allclose(feats, tok.features(audio, rate), atol=1e-4)
    singles = [tok.encode(a, r).codes for a, r in audios]
    for one, batched in zip(singles, tok.encode_batch(audios)):
        np.testing.assert_array_equal(batched.codes, one)
    assert [s.shape[1] for s in singles] == [84, 19, 52, 1]


def test_normalize_follows_the_setting(model_dir, codebook):
    audio = speechlike(1.0)
    plain = _tokenizer(model_dir, codebook).features(audio, 16_000)
    scaled = _tokenizer(model_dir, codebook, normalize=True).features(audio, 16_000)
    assert not np.allclose(plain, scaled, atol=1e-3)
    louder = _tokenizer(model_dir, codebook, normalize=True).features(audio * 3.0, 16_000)
    np.testing.assert_allclose(louder, scaled, atol=1e-4)  # normalised input: the level does not matter


def test_configuration_errors_name_the_field(model_dir, codebook, tmp_path):
    with pytest.raises(ConfigError, match="units.hubert.layer"):
        parse_config({"units": {"hubert": {"layer": 0}}})
    with pytest.raises(ConfigError, match="units.hubert.layer is 7"):
        _tokenizer(model_dir, codebook, layer=7)
    with pytest.raises(ConfigError, match="units.hubert.codebook"):
        unit_tokenizers.create("hubert-kmeans", model=str(model_dir)).setup()
    with pytest.raises(ConfigError, match="units.hubert.model"):
        unit_tokenizers.create("hubert-kmeans", codebook=str(codebook)).setup()
    with pytest.raises(ConfigError, match="cannot load a HubertModel"):
        unit_tokenizers.create("hubert-kmeans", model=str(tmp_path), codebook=str(codebook)).setup()
    wrong = tmp_path / "k4-dim8.npy"
    KMeansCodebook(np.zeros((4, 8), np.float32), {}, "").save(wrong)
    with pytest.raises(ConfigError, match="is for 8-dim features; this HuBERT gives 32"):
        _tokenizer(model_dir, wrong)


def test_fit_units_fits_a_codebook_for_hubert(model_dir, cache_env, tmp_path):
    from echoforge.commands.fit_units import DEFAULT_FIT_INPUT, fit_codebook

    config = parse_config({"units": {"tokenizer": "hubert-kmeans", "hubert": {"model": str(model_dir), "layer": 2}}})
    fitted = fit_codebook([str(DEFAULT_FIT_INPUT)], config, k=8, limit=1)
    assert fitted.size == 8 and fitted.mean.shape == (32,) and fitted.provenance["tokenizer"] == "hubert-kmeans"
    path = tmp_path / "fitted.npy"
    fitted.save(path)
    tok = _tokenizer(model_dir, path)
    units = tok.encode(speechlike(1.0), 16_000)
    assert units.codebook_size == 8 and len(np.unique(units.codes)) > 1


def test_fit_units_runs_on_the_local_engine_and_its_workers_change_nothing(model_dir, cache_env):
    """fit-units runs its work units through the local engine (workers set up once, units read
    and staged as in a build); two workers fit the very codebook one fits."""
    from echoforge.commands.fit_units import DEFAULT_FIT_INPUT, fit_codebook

    config = parse_config({"run": {"work_unit_rows": 1},
                           "units": {"tokenizer": "hubert-kmeans", "hubert": {"model": str(model_dir), "layer": 2}}})
    seen: list[tuple[int, int]] = []
    one = fit_codebook([str(DEFAULT_FIT_INPUT)], config, k=8, limit=3, workers=1)
    two = fit_codebook([str(DEFAULT_FIT_INPUT)], config, k=8, limit=3, workers=2,
                       progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert one.provenance["frames"] == two.provenance["frames"] > 8
    np.testing.assert_array_equal(one.centroids, two.centroids)


def test_the_tokenize_stage_batches_and_rejects_only_the_bad_turn(model_dir, codebook):
    from echoforge.schemas.records import Speech, Turn
    from echoforge.transforms.tokenize import Tokenize

    config = parse_config({"units": {"tokenizer": "hubert-kmeans", "device": "auto",
                                     "hubert": {"model": str(model_dir), "layer": 2, "codebook": str(codebook)}}})
    stage = Tokenize(config)
    assert stage.resources.num_gpus == 1.0  # device auto: the engine places it on a GPU where there is one
    stage.ensure_setup()

    def turn(i, audio):
        return Turn(id=f"t{i}", source="s", source_position=f"s:{i}", conversation_id=f"c{i}", turn_index=0,
                    history=[], question_text="q", answer_text="a",
                    answer_speech=Speech(audio, 16_000, "joe", 1.0))

    good = [turn(i, speechlike(0.5 + i / 4, seed=i)) for i in range(3)]
    kept, rejected = stage.process(good)
    assert [t.id for t in kept] == ["t0", "t1", "t2"] and rejected == []
    for t in kept:
        one = stage.tokenizer.encode(t.answer_speech.audio, 16_000)
        np.testing.assert_array_equal(t.answer_units.codes, one.codes)
    kept, rejected = stage.process(good[:1] + [turn(9, np.full(8000, np.nan, np.float32))] + good[1:])
    assert [t.id for t in kept] == ["t0", "t1", "t2"]
    assert [(r.id, r.stage, r.reason) for r in rejected] == [("t9", "tokenize", "bad_audio")]
    cpu = Tokenize(config.with_overrides(units={"device": "cpu"}))
    assert cpu.resources.num_gpus == 0.0
