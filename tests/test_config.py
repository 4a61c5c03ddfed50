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


def test_fingerprint_ignores_workers_only():
    base = BuildConfig()
    assert base.with_overrides(run={"workers": 4}).fingerprint() == base.fingerprint()
    assert base.with_overrides(synthesis={"seed": 1}).fingerprint() != base.fingerprint()
