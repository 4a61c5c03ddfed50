"""Builds of the bundled sample with each model tokenizer (saved tiny models), validated, and
decode-units on them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from echoforge.backends.units.base import KMeansCodebook
from echoforge.commands.decode_units import decode_units
from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.pipeline.output import iter_shards
from echoforge.commands.validate import validate_output
from tiny_models import save_encodec, save_hubert, save_mimi


def _units_section(name: str, models) -> dict:
    if name == "hubert-kmeans":
        codebook = models / "hubert-k16.npy"
        KMeansCodebook(np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32), {}, "").save(codebook)
        return {"hubert": {"model": str(save_hubert(models / "hubert")), "layer": 3, "codebook": str(codebook),
                           "vocoder": "unit_hifigan_test"}}
    saver = {"encodec": save_encodec, "mimi": save_mimi}[name]
    return {name: {"model": str(saver(models / name)), "num_codebooks": 2}}


@pytest.fixture(scope="module", params=["hubert-kmeans", "encodec", "mimi"])
def built(request, tmp_path_factory, cache_env):
    name = request.param
    root = tmp_path_factory.mktemp(name)
    config = parse_config({"units": {"tokenizer": name, **_units_section(name, root)},
                           "gate": {"asr": "none"}, "run": {"work_unit_rows": 2, "workers": 1},
                           "output": {"validation_fraction": 0.0}})
    manifest = build([], root / "out", config, limit=2)
    return name, root / "out", manifest


def test_the_build_validates_and_records_its_units(built):
    name, out, manifest = built
    assert validate_output(out)[0] == []
    assert manifest["rows"] >= 2 and manifest["rejected"] == 0
    rate, size, streams = {"hubert-kmeans": (50.0, 16, 1), "encodec": (75.0, 64, 2), "mimi": (12.5, 64, 2)}[name]
    columns = ["answer_units", "units_frame_rate", "units_codebook_size", "units_tokenizer", "answer_audio"]
    for _, table in iter_shards(out, columns):
        for row in table.to_pylist():
            codes = np.asarray(row["answer_units"])
            assert row["units_frame_rate"] == rate and row["units_codebook_size"] == size
            assert codes.shape[0] == streams and codes.max() < size and row["units_tokenizer"].startswith(name)
    assert manifest["models"]["tokenizer"].startswith(name)
    if name == "hubert-kmeans":
        assert manifest["models"]["tokenizer_vocoder"] == "unit_hifigan_test"


def test_decode_units_writes_audio_of_the_expected_length(built, tmp_path):
    name, out, _ = built
    args = [sys.executable, "-m", "echoforge", "decode-units", str(out), "--rows", "2", "--output", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if name == "hubert-kmeans":
        assert proc.returncode == 2 and "has no decoder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        return
    assert proc.returncode == 0, proc.stderr
    report = decode_units(out, tmp_path / "again", rows=2)
    assert report["rows"] == 2
    for entry in report["files"]:
        audio, rate = sf.read(entry["path"])
        assert rate == 24_000 and len(audio) == entry["frames"] * {"encodec": 320, "mimi": 1920}[name]
        assert np.abs(audio).max() > 0
    durations = {}
    for _, table in iter_shards(out, ["id", "answer_audio"]):
        for row in table.to_pylist():
            import io

            info = sf.info(io.BytesIO(row["answer_audio"]["bytes"]))
            durations[row["id"]] = info.frames / info.samplerate
    for entry in report["files"]:  # the units cover the answer: within one frame of its length
        assert 0 <= entry["seconds"] - durations[entry["id"]] < 1 / {"encodec": 75, "mimi": 12.5}[name]
