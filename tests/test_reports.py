"""Dry-run projections checked against a measured build of the same rows."""

from __future__ import annotations

import json

import pytest

from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.commands.inspect import dry_run, dry_run_lines


@pytest.mark.slow
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
    assert 0.4 < projected / (sum(measured["stage_seconds"].values()) / audio_s) < 2.5
    # in text too: why turns were dropped, and that two kept turns are too few to project from
    lines = dry_run_lines(report)
    at = lines.index("rejected turns by reason:")
    assert lines[at + 1] == "  ingest.unknown_format: 8 (80%)"
    assert lines[-1].startswith("warning: the sample is too small to project from (2 turns kept")


def report_of(turns: int, audio_s: float) -> dict:
    return {"sample_rows": turns, "sample_turns": turns, "kept_ratio": 1.0, "sample_audio_seconds": audio_s,
            "sample_wall_seconds": 1.0, "stage_seconds_per_audio_second": {"synthesize": 0.5},
            "compute_seconds_per_audio_second": 0.5, "target_hours": 10.0, "projected_cpu_hours": 5.0,
            "projected_disk_bytes": 10**9, "projected_wall_hours": 2.5, "cores": 2, "rejects_by_reason": {}}


def test_dry_run_warns_only_below_the_sample_it_can_project_from():
    from echoforge.commands.inspect import MIN_PROJECTION_SECONDS, MIN_PROJECTION_TURNS, _projection_warnings

    assert _projection_warnings(MIN_PROJECTION_TURNS, MIN_PROJECTION_SECONDS) == []
    assert len(_projection_warnings(MIN_PROJECTION_TURNS - 1, 1000.0)) == 1
    assert len(_projection_warnings(100, MIN_PROJECTION_SECONDS - 1)) == 1
    report = report_of(40, 216.0)
    report["warnings"] = _projection_warnings(40, 216.0)
    assert not any(line.startswith(("warning", "rejected")) for line in dry_run_lines(report))
