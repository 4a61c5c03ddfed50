"""Ray and Beam engines write the same rows as the local engine, and resume after a kill.

Every build runs the CLI in a subprocess on the same inputs: a few bad rows (rejected by
ingest and speakable, so two work units hold only rejects) and the first rows of the packaged
ShareGPT sample, with real synthesis and units (no ASR gate, to stay fast).
"""

from __future__ import annotations

import io
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

from echoforge.storage import folder as open_folder

from conftest import end_session, inject_env

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
STAGES = {"ingest", "speakable", "synthesize", "tokenize", "align", "gate", "listen"}

@pytest.fixture(scope="module")
def build_args(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("engine-inputs")
    (d / "bad.jsonl").write_bytes(b"".join(BAD_ROWS))
    (d / "config.yaml").write_text(CONFIG)
    return [str(d / "bad.jsonl"), str(SAMPLE), "--config", str(d / "config.yaml"), "--limit", str(LIMIT)]


def run_build(args: list[str], out: str | Path, engine: str, *extra: str, env: dict | None = None) -> str | Path:
    cmd = [sys.executable, "-m", "echoforge", "build", *args, "-o", str(out), "--engine", engine, *extra]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=400,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def shards(root: str | Path) -> dict[str, list[dict]]:
    """Every data and rejects shard, by name, as rows in file order (any filesystem)."""
    folder = open_folder(str(root))
    names = [p for p in folder.list() if p.startswith(("data/", "rejects/")) and p.endswith(".parquet")]
    return {p: pq.read_table(io.BytesIO(folder.read_bytes(p))).to_pylist() for p in names}


def markers(root: str | Path) -> dict[int, dict]:
    """Unit markers by unit, less what differs between attempts (attempt ids, part names)."""
    out = {}
    for _, m in open_folder(str(root)).iter_json("_echoforge/units"):
        m.pop("attempt")
        for part in m["parts"].values():
            part.pop("path")
        out[m["unit"]] = m
    return out


def marker_paths(root: str | Path) -> list[str]:
    return [p for p in open_folder(str(root)).list("_echoforge/units") if p.endswith(".json")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_build(build_args, tmp_path_factory) -> Path:
    return run_build(build_args, tmp_path_factory.mktemp("local") / "out", "local")


def _ray_cluster_build(build_args: list[str], root: Path, out: str, env: dict) -> str:
    """Start a 2-CPU head node, build on it with --ray-address, stop the node."""
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ef-ray-"))  # short: Ray's socket paths live under it
    log = root / "ray-start.log"
    cmd = ["ray", "start", "--head", f"--port={port}", "--num-cpus=2", "--disable-usage-stats",
           "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={temp}", "--block"]
    head = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **env})  # the workers reach S3 with the same credentials
    try:
        deadline = time.time() + 120
        while "--block" not in log.read_text() or not _listening(port):
            assert head.poll() is None and time.time() < deadline, f"ray start failed: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        # `ray start` clusters use token authentication; a driver given an address must ask for it.
        return run_build(build_args, out, "ray", f"--ray-address=127.0.0.1:{port}",
                         env={"RAY_AUTH_MODE": "token", **env})
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
def engine_build(build_args, tmp_path_factory, s3_server):
    """Each engine's build of the inputs to S3 (no shared disk between driver and workers but
    the object store), made on first use and shared by the module."""
    builds: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in builds:
            root = tmp_path_factory.mktemp(name)
            out = s3_server.url(f"engines-{name}")
            if name == "ray-cluster":
                builds[name] = _ray_cluster_build(build_args, root, out, s3_server.env)
            else:
                builds[name] = run_build(build_args, out, name, env=s3_server.env)
        return builds[name]

    return get


def test_local_build_has_rows_and_rejects_of_several_stages(local_build):
    entries = markers(local_build)
    assert sorted(entries) == list(range(NUM_UNITS))
    reasons = {k for e in entries.values() for k in e["rejects_by_reason"]}
    assert {r.split(".")[0] for r in reasons} >= {"ingest", "speakable"}
    assert sum(e["rows"] for e in entries.values()) > 0
    assert any(e["rows"] == 0 for e in entries.values()), "a unit holding only rejects"
    # Shards are independent of work units: the five units sealed into one shard per kind.
    assert sorted(shards(local_build)) == ["data/train-00000-of-00001.parquet",
                                           "data/validation-00000-of-00001.parquet",
                                           "rejects/rejects-00000-of-00001.parquet"]
    assert not open_folder(str(local_build)).list("_echoforge/parts"), "sealed parts are removed"


@pytest.mark.parametrize("engine", ["local", "ray", "ray-cluster", "beam"])
def test_engine_writes_the_same_rows_to_s3_as_local_to_disk(engine, engine_build, local_build, s3_env):
    out = engine_build(engine)
    expected, got = shards(local_build), shards(out)
    assert sorted(got) == sorted(expected)
    for name, rows in expected.items():
        assert got[name] == rows, f"{name} differs"  # every column: audio bytes, units, alignment, figures
    # Commit entries agree too (part checksums, counts, hours), all but the timings.
    local_entries, engine_entries = markers(local_build), markers(out)
    for unit, entry in local_entries.items():
        timings = engine_entries[unit].pop("stage_seconds")
        entry.pop("stage_seconds")
        assert engine_entries[unit] == entry
        assert set(timings) <= STAGES and all(v >= 0 for v in timings.values())
        if entry["rows"]:
            assert set(timings) == STAGES and timings["synthesize"] > 0
    manifest = open_folder(out).read_json("manifest.json")
    assert manifest["complete"] and manifest["committed_units"] == NUM_UNITS
    check = subprocess.run([sys.executable, "-m", "echoforge", "validate", out], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-2000:]
    report = subprocess.run([sys.executable, "-m", "echoforge", "inspect", out, "--json"], capture_output=True,
                            text=True)
    assert json.loads(report.stdout)["rows"] == manifest["rows"] > 0


def test_datasets_loads_a_build_from_s3(engine_build, local_build, s3_server, tmp_path):
    import datasets

    out = engine_build("local")
    options = {"key": s3_server.env["AWS_ACCESS_KEY_ID"], "secret": s3_server.env["AWS_SECRET_ACCESS_KEY"],
               "client_kwargs": {"endpoint_url": s3_server.endpoint}}
    # The README's way to read a build on object storage: the parquet builder over the shards.
    files = {split: f"{out}/data/{split}-*.parquet" for split in ("train", "validation")}
    ds = datasets.load_dataset("parquet", data_files=files, storage_options=options, cache_dir=str(tmp_path / "hf"))
    local = datasets.load_dataset(str(local_build))
    for split in local:
        assert ds[split]["id"] == local[split]["id"]
        assert ds[split].features == local[split].features


@pytest.mark.parametrize("engine", ["local", "ray", "beam"])
def test_killed_build_on_s3_resumes_without_recomputing(engine, build_args, local_build, s3_server, s3_env):
    out = s3_server.url(f"killed-{engine}")
    # A pause after each commit (in whichever process commits), so that the kill lands
    # between two commits even where an engine commits its units in quick succession.
    cmd = [sys.executable, "-m", "echoforge", "build", *build_args, "-o", out, "--engine", engine]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=inject_env(slow_commit="3"))
    try:
        deadline = time.time() + 300
        while not marker_paths(out):
            assert proc.poll() is None, "the build ended before any unit committed"
            assert time.time() < deadline, "no unit committed in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        end_session(proc.pid)
    folder = open_folder(out)
    committed = {p: folder.read_bytes(p) for p in marker_paths(out)}
    assert 1 <= len(committed) < NUM_UNITS, "the kill should land mid-build"
    assert not folder.exists("manifest.json")
    from echoforge.pipeline.lease import current

    held = current(folder)
    assert held is not None and not held.released, "the killed build's lease is left behind"

    run_build(build_args, out, engine)  # the dead holder's lease is taken over
    assert {p: folder.read_bytes(p) for p in committed} == committed, "committed units were recomputed"
    assert shards(out) == shards(local_build)
    assert folder.read_json("manifest.json")["complete"]
    after = current(folder)
    assert after is None or after.released


def test_stages_of_one_kind_of_worker_run_in_one_step():
    """On CPU workers the whole chain is one Ray operator and one Beam step (no unit crosses
    the object store or a shuffle between stages); with GPUs it splits where a stage wants one."""
    import apache_beam as beam

    from echoforge.config import parse_config
    from echoforge.pipeline.engines.base import segments
    from echoforge.pipeline.engines.beam import build_pipeline
    from echoforge.pipeline.job import Job
    from echoforge.pipeline.stages import build_stages
    from echoforge.pipeline.workunits import plan_work_units

    config = parse_config({"units": {"device": "cuda"}})
    stages = build_stages(config)
    assert [[s.name for s in g] for g in segments(stages, gpus=False)] == [[s.name for s in stages]]
    assert [[s.name for s in g] for g in segments(stages, gpus=True)] == [
        ["ingest", "speakable", "synthesize"], ["tokenize"], ["align", "gate", "listen"]]

    from conftest import SHAREGPT

    plan = plan_work_units([str(SHAREGPT)], 2, 4)
    job = Job(config, plan, layout=None)
    for accelerator, steps in ((None, 1), ("type:nvidia-l4;count:1", 3)):
        p = beam.Pipeline()
        build_pipeline(p, job, list(plan.units), accelerator)
        labels = [t.full_label for t in p.transforms_stack[0].parts]
        shuffles = [label for label in labels if "Reshuffle" in label or label.endswith("Spread")]
        assert len([label for label in labels if label.endswith("/Run")]) == steps, labels
        assert len(shuffles) == steps, labels  # one to spread the units, one per change of worker kind


def test_beam_reports_units_while_the_pipeline_runs(tmp_path, cache_env):
    """Commit entries reach the launcher as workers write their markers, not after the whole
    pipeline: the progress bar and the failure ratio are live on Beam too."""
    from echoforge.config import parse_config
    from echoforge.pipeline.build import build

    from conftest import FAST_CONFIG, SHAREGPT

    seen: list[tuple[float, int]] = []

    def progress(entry, done, total):
        if done:  # (the first call, before any work, reports what a resume keeps)
            seen.append((time.monotonic(), done))

    config = parse_config({**FAST_CONFIG, "run": {"work_unit_rows": 1, "workers": 1}, "gate": {"asr": "none"}})
    build([str(SHAREGPT)], tmp_path / "out", config, limit=4, engine="beam", on_progress=progress)
    finished = time.monotonic()
    assert [d for _, d in seen] == [1, 2, 3, 4]
    assert finished - seen[0][0] > 2.0, "the first unit was reported only when the pipeline ended"
