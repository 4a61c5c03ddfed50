"""Ray and Beam engines write the same rows as the local engine, and resume after a kill.

Every build runs the CLI in a subprocess on the same inputs: a few bad rows (rejected by
ingest and speakable, so two work units hold only rejects) and the first rows of the packaged
ShareGPT sample, with real synthesis and units (no ASR gate, to stay fast).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).parents[1] / "echoforge" / "data" / "sharegpt_sample.json"
BAD_ROWS = [
    b'{"instruction": "broken", "output": \n',  # invalid JSON
    b'{"foo": 1}\n',  # no known layout
    json.dumps({"instruction": "Show me code.", "output": "```python\nprint('hi')\n```"}).encode() + b"\n",
    json.dumps({"instruction": "Say something.", "input": "", "output": ""}).encode() + b"\n",
]
LIMIT = len(BAD_ROWS) + 6
CONFIG = "run: {work_unit_rows: 2}\ngate: {asr: none}\noutput: {validation_fraction: 0.3}\n"
NUM_UNITS = 2 + 3
STAGES = {"ingest", "speakable", "synthesize", "tokenize", "align", "gate"}

# Run the CLI with a pause after each commit, so that a kill lands between two commits even
# where an engine commits its units in quick succession.
SLOW_COMMITS = """
import sys, time
import echoforge.pipeline.job as job
commit = job.commit_unit
def slow_commit(*args, **kwargs):
    entry = commit(*args, **kwargs)
    time.sleep(3)
    return entry
job.commit_unit = slow_commit
from echoforge.cli import main
main()
"""


@pytest.fixture(scope="module")
def build_args(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("engine-inputs")
    (d / "bad.jsonl").write_bytes(b"".join(BAD_ROWS))
    (d / "config.yaml").write_text(CONFIG)
    return [str(d / "bad.jsonl"), str(SAMPLE), "--config", str(d / "config.yaml"), "--limit", str(LIMIT)]


def run_build(args: list[str], out: Path, engine: str, *extra: str, env: dict | None = None) -> Path:
    cmd = [sys.executable, "-m", "echoforge", "build", *args, "-o", str(out), "--engine", engine, *extra]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=400,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def shards(root: Path) -> dict[str, list[dict]]:
    """Every data and rejects shard, by file name, as rows in file order."""
    files = sorted((root / "data").glob("*.parquet")) + sorted((root / "rejects").glob("*.parquet"))
    return {p.name: pq.read_table(p).to_pylist() for p in files}


def markers(root: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "_work_units").glob("*.json"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def end_session(pid: int) -> None:
    """Kill what is left of a process session this test started (Ray's helpers outlive a
    killed driver)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == pid:
                    os.kill(int(entry), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(scope="module")
def local_build(build_args, tmp_path_factory) -> Path:
    return run_build(build_args, tmp_path_factory.mktemp("local") / "out", "local")


def _ray_cluster_build(build_args: list[str], root: Path) -> Path:
    """Start a 2-CPU head node, build on it with --ray-address, stop the node."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ef-ray-"))  # short: Ray's socket paths live under it
    log = root / "ray-start.log"
    cmd = ["ray", "start", "--head", f"--port={port}", "--num-cpus=2", "--disable-usage-stats",
           "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={temp}", "--block"]
    head = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "--block" not in log.read_text() or not _listening(port):
            assert head.poll() is None and time.time() < deadline, f"ray start failed: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        # `ray start` clusters use token authentication; a driver given an address must ask for it.
        return run_build(build_args, root / "out", "ray", f"--ray-address=127.0.0.1:{port}",
                         env={"RAY_AUTH_MODE": "token"})
    finally:
        # Not `ray stop`: that stops every Ray instance on the machine.
        head.send_signal(signal.SIGTERM)
        time.sleep(2)
        end_session(head.pid)
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def engine_build(build_args, tmp_path_factory):
    """Each engine's build of the inputs, made on first use and shared by the module."""
    builds: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in builds:
            root = tmp_path_factory.mktemp(name)
            if name == "ray-cluster":
                builds[name] = _ray_cluster_build(build_args, root)
            else:
                builds[name] = run_build(build_args, root / "out", name)
        return builds[name]

    return get


def test_local_build_has_rows_and_rejects_of_several_stages(local_build):
    entries = markers(local_build)
    assert len(entries) == NUM_UNITS
    reasons = {k for e in entries.values() for k in e["rejects_by_reason"]}
    assert {r.split(".")[0] for r in reasons} >= {"ingest", "speakable"}
    assert sum(e["rows"] for e in entries.values()) > 0
    assert any(e["rows"] == 0 for e in entries.values()), "a unit holding only rejects"


@pytest.mark.parametrize("engine", ["ray", "ray-cluster", "beam"])
def test_engine_writes_the_same_rows_as_local(engine, engine_build, local_build):
    out = engine_build(engine)
    expected, got = shards(local_build), shards(out)
    assert sorted(got) == sorted(expected)
    for name, rows in expected.items():
        assert got[name] == rows, f"{name} differs"  # every column: audio bytes, units, alignment, figures
    # Commit entries agree too (shard checksums, counts, hours, models), all but the timings.
    local_entries, engine_entries = markers(local_build), markers(out)
    for name, entry in local_entries.items():
        timings = engine_entries[name].pop("stage_seconds")
        entry.pop("stage_seconds")
        assert engine_entries[name] == entry
        assert set(timings) == STAGES and all(v >= 0 for v in timings.values())
        if entry["rows"]:
            assert timings["synthesize"] > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["committed_units"] == NUM_UNITS


@pytest.mark.parametrize("engine", ["local", "ray", "beam"])
def test_killed_build_resumes_without_recomputing(engine, build_args, local_build, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", SLOW_COMMITS, "build", *build_args, "-o", str(out), "--engine", engine]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not list((out / "_work_units").glob("*.json")):
            assert proc.poll() is None, "the build ended before any unit committed"
            assert time.time() < deadline, "no unit committed in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        end_session(proc.pid)
    committed = {p.name: p.stat().st_mtime_ns for p in (out / "_work_units").glob("*.json")}
    files = {}
    for entry in markers(out).values():
        for shard in [*entry["shards"].values(), entry["rejects"]]:
            if shard["path"]:
                files[out / shard["path"]] = (out / shard["path"]).stat().st_mtime_ns
    assert 1 <= len(committed) < NUM_UNITS, "the kill should land mid-build"
    assert not (out / "manifest.json").exists()

    run_build(build_args, out, engine)
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in (out / "_work_units").glob("*.json"))
            if n in committed} == committed, "committed units were recomputed"
    assert all(p.stat().st_mtime_ns == t for p, t in files.items()), "committed shards were rewritten"
    assert shards(out) == shards(local_build)
    assert json.loads((out / "manifest.json").read_text())["complete"]
