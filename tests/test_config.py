"""Config validation: errors name the field; the fingerprint ignores how work is spread."""

from __future__ import annotations

import pytest

from echoforge.config import BuildConfig, load_config, parse_config
from echoforge.errors import ConfigError


@pytest.mark.parametrize("data, message", [
    ({"synthesis": {"rate_jitter": 2}}, "synthesis.rate_jitter"),
    ({"synthesis": {"voicez": []}}, "synthesis.voicez: unknown field"),
    ({"gate": {"asr": "maybe"}}, "gate.asr"),
    ({"speakable": {"code": "burn"}}, "speakable.code"),
    ({"output": {"validation_fraction": 1.5}}, "output.validation_fraction"),
    ({"synthesis": {"coqui": {"top_p": 2}}}, "synthesis.coqui.top_p"),
    ({"synthesis": {"coqui": {"device": "tpu"}}}, "synthesis.coqui.device"),
    ({"synthesis": {"piper": {"noise_w": -1}}}, "synthesis.piper.noise_w"),
    ({"synthesis": {"piper": {"noise_scal": 0.5}}}, "synthesis.piper.noise_scal: unknown field"),
])
def test_errors_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(data)


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_row_settings_ignore_workers_only():
    base = BuildConfig()
    assert base.with_overrides(run={"workers": 4}).row_settings() == base.row_settings()
    assert base.with_overrides(synthesis={"seed": 1}).row_settings() != base.row_settings()


@pytest.mark.parametrize("key, value, where", [
    ("noise_scale", 0.5, "synthesis.piper.noise_scale (coqui: synthesis.coqui.noise_scale)"),
    ("noise_w", 0.5, "synthesis.piper.noise_w (coqui: synthesis.coqui.noise_scale_dp)"),
    ("device", "cuda", "synthesis.piper.device and synthesis.coqui.device"),
])
def test_a_moved_synthesis_key_says_where_it_went(key, value, where):
    with pytest.raises(ConfigError) as caught:
        parse_config({"synthesis": {key: value, "seed": 3}})
    assert str(caught.value) == f"config error at synthesis.{key}: unknown field: moved to {where}"


def test_tts_backend_sections_make_rows():
    base = BuildConfig()
    rows = base.row_settings()
    assert base.with_overrides(synthesis={"piper": {"noise_scale": 0.3}}).row_settings() != rows
    assert base.with_overrides(synthesis={"coqui": {"temperature": 0.5}}).row_settings() != rows
    assert base.with_overrides(synthesis={"batch_size": 2}).row_settings() == rows
    assert rows["synthesis"]["coqui"]["language"] == "en"


def test_devices_count_at_every_depth_and_batch_sizes_at_none():
    base = BuildConfig()
    for sections in ({"synthesis": {"piper": {"device": "cuda"}}}, {"gate": {"whisper": {"device": "cuda"}}},
                     {"units": {"device": "cuda"}}, {"align": {"device": "cuda"}}):
        assert base.with_overrides(**sections).row_settings() != base.row_settings(), sections
    for sections in ({"synthesis": {"batch_size": 2}}, {"gate": {"batch_size": 2}}, {"units": {"batch_size": 2}},
                     {"align": {"batch_size": 2}}):
        assert base.with_overrides(**sections).row_settings() == base.row_settings(), sections
