"""End to end: real synthesis, units and ASR; the output read back by `datasets`; resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.commands.validate import validate_output

from conftest import FAST_CONFIG, MESSY, SHAREGPT, write_config

pytestmark = pytest.mark.slow

ISSUE_COLUMNS = ["id", "source", "conversation_id", "turn_index", "history", "question_text", "question_spoken",
                 "question_audio", "question_voice", "question_duration_s", "answer_text", "answer_spoken",
                 "answer_audio", "answer_voice", "answer_duration_s", "answer_units", "answer_units_dedup",
                 "answer_unit_durations", "alignment"]


def rows_of(root: Path) -> list[dict]:
    manifest = json.loads((root / "manifest.json").read_text())
    rows = []
    for shard in manifest["shards"]:
        rows += pq.read_table(root / shard["path"]).to_pylist()
    return sorted(rows, key=lambda r: r["id"])


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "echoforge", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mixed_build(tmp_path_factory, bad_input, cache_env):
    """Bad rows of every kind plus messy Alpaca rows, built with all stages."""
    out = tmp_path_factory.mktemp("mixed") / "out"
    manifest = build([str(bad_input), str(MESSY)], out, parse_config(FAST_CONFIG), limit=15)
    return out, manifest


def test_every_input_turn_is_a_row_or_a_reject(mixed_build):
    out, manifest = mixed_build
    report = json.loads(cli("inspect", str(out), "--json").stdout)
    assert {"rows", "rejected", "hours", "rejects_by_reason"} <= set(report)
    # bad.jsonl: 12 rows, each one turn or one row-level reject; 3 messy rows: one turn each
    assert report["rows"] + report["rejected"] == 15
    assert report["rows"] >= 4 and report["hours"] > 0
    reasons = report["rejects_by_reason"]
    for key in ("ingest.unreadable_row", "ingest.unknown_format", "ingest.missing_field", "speakable.empty_text",
                "speakable.nothing_speakable"):
        assert key in reasons, reasons
    rejects = pq.read_table(sorted((out / "rejects").glob("*.parquet"))[0]).to_pylist()
    assert all(r["stage"] and r["reason"] and r["source_position"] for r in rejects)


def test_datasets_loads_typed_columns_and_16k_audio(mixed_build):
    import datasets

    out, manifest = mixed_build
    ds = datasets.load_dataset(str(out))
    splits = set(ds)
    assert splits <= {"train", "validation"} and sum(len(ds[s]) for s in splits) == manifest["rows"]
    train = ds["train"]
    assert set(ISSUE_COLUMNS) <= set(train.column_names)
    assert isinstance(train.features["question_audio"], datasets.Audio)
    row = train[0]
    samples = row["question_audio"].get_all_samples()
    assert samples.sample_rate == 16000 and samples.data.shape[0] == 1
    assert abs(samples.data.shape[1] / 16000 - row["question_duration_s"]) < 0.02
    assert len(row["answer_units"]) == 1 and len(row["answer_units"][0]) > 10
    assert row["alignment"][0].keys() >= {"word", "start_s", "end_s", "unit_start", "unit_end"}
    rejects = datasets.load_dataset(str(out), "rejects")["train"]
    assert len(rejects) == manifest["rejected"]


def test_validate_passes_then_catches_corruption(mixed_build, tmp_path):
    import shutil

    out, _ = mixed_build
    ok = cli("validate", str(out))
    assert ok.returncode == 0, ok.stdout
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = sorted((copy / "data").glob("train-*.parquet"))[0]
    table = pq.read_table(shard)
    pq.write_table(table.slice(0, table.num_rows - 1), shard)
    bad = cli("validate", str(copy))
    assert bad.returncode == 1 and "manifest says" in bad.stdout and "rows, manifest says" in bad.stdout


def test_quality_figures_and_question_intelligibility(mixed_build):
    rows = rows_of(mixed_build[0])
    for r in rows:
        assert r["question_wer"] is not None and r["answer_wer"] is not None
        assert r["question_voice"] == "joe" and 0.9 <= r["question_speaking_rate"] <= 1.1
        assert r["answer_units_per_second"] == pytest.approx(50, abs=1.5)
    assert sum(r["question_wer"] for r in rows) / len(rows) < 0.25


def test_arrow_format_loads_from_disk(tmp_path, cache_env):
    import datasets

    config = parse_config({**FAST_CONFIG, "output": {"format": "arrow", "validation_fraction": 0.5},
                           "gate": {"asr": "none"}})
    manifest = build([str(SHAREGPT)], tmp_path / "arrow", config, limit=3)
    ds = datasets.load_from_disk(str(tmp_path / "arrow"))
    assert sum(len(ds[s]) for s in ds) == manifest["rows"] > 0
    assert validate_output(tmp_path / "arrow")[0] == []


def test_killed_build_resumes_to_identical_rows(tmp_path, cache_env):
    config = write_config(tmp_path / "c.yaml", {"run": {"work_unit_rows": 1, "workers": 1}, "gate": {"asr": "none"}})
    args = [str(SHAREGPT), "--config", str(config), "--limit", "6"]
    reference = tmp_path / "reference"
    assert cli("build", *args, "-o", str(reference)).returncode == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "echoforge", "build", *args, "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "_echoforge" / "units").rglob("*.json"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "_echoforge" / "units").rglob("*.json")}
    assert 2 <= len(before) < 6, "the kill should land mid-build"
    assert not (out / "manifest.json").exists()

    rerun = cli("build", *args, "-o", str(out))
    assert rerun.returncode == 0, rerun.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (out / "_echoforge" / "units").rglob("*.json")}
    assert all(after[name] == mtime for name, mtime in before.items()), "committed units were recomputed"
    assert rows_of(out) == rows_of(reference)
    assert validate_output(out)[0] == []


def test_cli_errors_are_one_line(tmp_path):
    r = cli("build", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "input not found" in r.stderr
    bad = write_config(tmp_path / "bad.yaml", {"synthesis": {"rate_jitter": 5}})
    r = cli("build", str(SHAREGPT), "-o", str(tmp_path / "o"), "--config", str(bad))
    assert r.returncode == 2 and "synthesis.rate_jitter" in r.stderr and "Traceback" not in r.stderr
    r = cli("inspect", str(tmp_path))
    assert r.returncode == 2 and "no manifest.json" in r.stderr


def test_failure_ratio_aborts_with_one_line(tmp_path):
    bad = tmp_path / "mostly_bad.jsonl"
    bad.write_text("".join('{"nothing": "useful"}\n' for _ in range(12)))
    config = write_config(tmp_path / "c.yaml", {"run": {"work_unit_rows": 4, "workers": 1, "min_turns_for_ratio": 4,
                                                        "max_failure_ratio": 0.5}})
    r = cli("build", str(bad), "-o", str(tmp_path / "o"), "--config", str(config))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "4 of 4 turns rejected" in last and "ingest.unknown_format=4" in last
    assert len(list((tmp_path / "o" / "_echoforge" / "units").rglob("*.json"))) == 1  # the committed unit is kept


def test_dry_run_projects_cost(tmp_path, cache_env):
    config = write_config(tmp_path / "c.yaml", {"gate": {"asr": "question"}})
    r = cli("dry-run", str(SHAREGPT), "--sample", "2", "--target-hours", "6000", "--config", str(config), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    per_stage = report["stage_seconds_per_audio_second"]
    assert set(per_stage) == {"ingest", "speakable", "synthesize", "tokenize", "align", "gate", "listen"}
    assert 0 < report["compute_seconds_per_audio_second"] < 5
    assert report["projected_cpu_hours"] > 0 and report["projected_disk_bytes"] > 0
    assert report["cores"] == os.cpu_count() and 0 < report["projected_wall_hours"] <= report["projected_cpu_hours"]
    text = cli("dry-run", str(SHAREGPT), "--sample", "2", "--config", str(config)).stdout
    assert "CPU-hours" in text and "seconds of compute per second of audio" in text
