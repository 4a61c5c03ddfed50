"""Dry-run projections checked against a measured build of the same rows."""

from __future__ import annotations

import json

import pytest

from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.commands.inspect import dry_run

pytestmark = pytest.mark.slow


def test_dry_run_projection_matches_a_measured_build(tmp_path, cache_env):
    good = [{"question": f"What is {n} plus one?", "answer": f"It is {n + 1}."} for n in (2, 7)]
    rows = good + [{"unknown": i} for i in range(8)]  # rejected at ingest: kept ratio 0.2
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = parse_config({"run": {"work_unit_rows": 5, "workers": 1}, "gate": {"asr": "none"},
                           "output": {"validation_fraction": 0.0}})

    report = dry_run([str(path)], config, sample=len(rows), target_hours=1000.0, cores=4)
    measured = build([str(path)], tmp_path / "out", config, limit=len(rows))

    audio_s = measured["hours"] * 3600.0
    assert report["kept_ratio"] == pytest.approx(measured["rows"] / len(rows)) == pytest.approx(0.2)
    assert report["sample_audio_seconds"] == pytest.approx(audio_s, abs=0.01)
    # Projected compute per kept second of audio, against what the measured build spent per kept second.
    projected = report["projected_cpu_hours"] / report["target_hours"]
    assert projected == pytest.approx(report["compute_seconds_per_audio_second"], rel=0.01)
    assert 0.4 < projected / (sum(measured["stage_seconds"].values()) / audio_s) < 2.5
