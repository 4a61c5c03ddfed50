"""Retries that tell transient errors from permanent ones, the same on every engine; units
quarantined and recomputed on request; a store that goes down in the middle of a build."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from echoforge.config import parse_config
from echoforge.errors import StoreUnavailable, is_transient
from echoforge.pipeline.build import build
from echoforge.pipeline.workunits import Plan
from echoforge.storage import folder as open_folder, retrying
from echoforge.transforms.synthesize import Synthesize

from test_commit import rows
from conftest import SHAREGPT, end_session, inject_env, write_config

SMALL = {"run": {"work_unit_rows": 1, "workers": 1, "unit_attempts": 2}, "gate": {"asr": "none"},
         "output": {"shard_size_mb": 0.001, "validation_fraction": 0.1}}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_env) -> str:
    out = str(tmp_path_factory.mktemp("ref") / "out")
    build([str(SHAREGPT)], out, parse_config(SMALL), limit=4)
    return out


def test_transient_and_permanent_errors_are_told_apart():
    import botocore.exceptions as boto

    for exc in (ConnectionResetError(), TimeoutError(), boto.EndpointConnectionError(endpoint_url="http://x"),
                boto.ReadTimeoutError(endpoint_url="http://x"), OSError("503 Service Unavailable"),
                OSError("SlowDown: please reduce your request rate")):
        assert is_transient(exc), exc
    for exc in (FileNotFoundError("k"), PermissionError("Access Denied"), ValueError("bad data"),
                boto.NoCredentialsError(), OSError("The specified bucket does not exist"), RuntimeError("bug")):
        assert not is_transient(exc), exc
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert retrying(flaky, "x", 30) == "ok" and len(calls) == 3
    with pytest.raises(FileNotFoundError):
        retrying(lambda: (_ for _ in ()).throw(FileNotFoundError("gone")), "x", 30)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="still failing after 1 s"):
        retrying(lambda: (_ for _ in ()).throw(ConnectionRefusedError("refused")), "reading s3://b/k", 1)
    assert time.monotonic() - t0 < 5


def test_reads_are_retried_on_transient_errors_and_quarantined_on_permanent_ones(reference, tmp_path, monkeypatch):
    real = Plan.read
    failures = {"transient": 0}

    def read(self, unit):
        if unit.start == 1 and failures["transient"] < 2:
            failures["transient"] += 1
            raise ConnectionResetError("connection reset by peer")
        if unit.start == 2:
            raise PermissionError("Access Denied")
        return real(self, unit)

    monkeypatch.setattr(Plan, "read", read)
    out = str(tmp_path / "out")
    manifest = build([str(SHAREGPT)], out, parse_config(SMALL), limit=4)
    assert failures["transient"] == 2  # ridden out: unit 1 is whole
    assert [(q["unit"], q["attempts"]) for q in manifest["quarantined_units"]] == [(2, 1)]  # at once
    assert "PermissionError: Access Denied" in manifest["quarantined_units"][0]["error"]
    # Recomputed on request, once the input can be read: the rows of an undisturbed build.
    monkeypatch.setattr(Plan, "read", real)
    assert build([str(SHAREGPT)], out, parse_config(SMALL), limit=4)["quarantined_units"]  # kept without the flag
    manifest = build([str(SHAREGPT)], out, parse_config(SMALL), limit=4, retry_quarantined=True)
    assert manifest["complete"] and manifest["quarantined_units"] == []
    assert rows(out) == rows(reference)


def test_a_stage_failure_is_quarantined_then_recomputed_with_retry_quarantined(reference, tmp_path, monkeypatch):
    real = Synthesize.process

    def failing(self, batch):
        if any(r.input_row == 1 for r in batch):
            raise RuntimeError("synthesiser exploded")
        return real(self, batch)

    monkeypatch.setattr(Synthesize, "process", failing)
    out = str(tmp_path / "out")
    manifest = build([str(SHAREGPT)], out, parse_config(SMALL), limit=4)
    assert [(q["unit"], q["attempts"]) for q in manifest["quarantined_units"]] == [(1, 2)]
    monkeypatch.setattr(Synthesize, "process", real)
    manifest = build([str(SHAREGPT)], out, parse_config(SMALL), limit=4, retry_quarantined=True)
    assert manifest["complete"] and not manifest["quarantined_units"] and manifest["rejects_by_reason"] == \
        open_folder(reference).read_json("manifest.json")["rejects_by_reason"]
    assert rows(out) == rows(reference)


def test_an_input_that_stays_unreachable_stops_the_build_and_a_rerun_resumes(reference, tmp_path, monkeypatch):
    real = Plan.read

    def read(self, unit):
        if unit.start == 2:
            raise ConnectionRefusedError("connection refused")
        return real(self, unit)

    monkeypatch.setattr(Plan, "read", read)
    out = str(tmp_path / "out")
    config = parse_config({**SMALL, "run": {**SMALL["run"], "storage_retry_s": 1}})
    with pytest.raises(StoreUnavailable, match="reading sharegpt_sample.json rows 2-2: still failing"):
        build([str(SHAREGPT)], out, config, limit=4)
    assert len(open_folder(out).list("_echoforge/units")) == 2  # units 0 and 1 are kept; 2 is not quarantined
    monkeypatch.setattr(Plan, "read", real)
    assert build([str(SHAREGPT)], out, config, limit=4)["quarantined_units"] == []
    assert rows(out) == rows(reference)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["local", "ray"])
def test_the_s3_server_killed_mid_build_and_restarted(engine, reference, tmp_path):
    from s3_server import SeaweedS3

    server = SeaweedS3(tmp_path / "seaweedfs")
    server.start()
    proc = None
    try:
        out = server.url("outage")
        config = write_config(tmp_path / "c.yaml", {**SMALL, "run": {**SMALL["run"], "storage_retry_s": 90}})
        env = {**inject_env(slow_commit="1"), **server.env, "AWS_EC2_METADATA_DISABLED": "true"}
        cmd = [sys.executable, "-m", "echoforge", "build", str(SHAREGPT), "-o", out, "--limit", "4",
               "--config", str(config), "--engine", engine]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        fs = server.filesystem()
        deadline = time.time() + 300
        while not fs.find(f"{out.removeprefix('s3://')}/_echoforge/units", refresh=True):
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.2)
        server.stop()  # the store goes down after the first commit...
        time.sleep(8)
        server.start()  # ...and comes back
        _, err = proc.communicate(timeout=600)
        assert "Traceback" not in err, err[-3000:]
        if proc.returncode != 0:  # stopped: one line, and a rerun resumes
            assert proc.returncode == 2 and len([x for x in err.splitlines() if x.startswith("error:")]) == 1, err
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
            assert r.returncode == 0, r.stderr[-3000:]
        got = []
        for p in fs.find(f"{out.removeprefix('s3://')}/data", refresh=True):
            got += pq.read_table(io.BytesIO(fs.cat_file(p))).to_pylist()
        assert sorted(got, key=lambda r: r["id"]) == rows(reference)
    finally:
        server.stop()
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            end_session(proc.pid)  # what Ray leaves behind


@pytest.mark.slow
def test_no_build_ends_by_a_signal_of_its_own_making(tmp_path):
    """Failing and succeeding builds, with the speech models loaded in this process and in
    workers, exit with their status, never by a signal (an abort from native model threads)."""
    data = tmp_path / "mixed.jsonl"
    data.write_text('{"question": "What is two plus two?", "answer": "Two plus two is four."}\n'
                    + "not json\n" * 6)
    truncated = tmp_path / "cut.json"
    truncated.write_text('[{"question": "Is the sky blue?", "answer": "Yes, on a clear day."}, {"question": "Wh')
    strict = write_config(tmp_path / "strict.yaml", {"run": {"work_unit_rows": 1, "workers": 1,
                                                             "max_failure_ratio": 0.1, "min_turns_for_ratio": 1}})
    runs = []
    for round_ in range(1):
        for workers in ("1", "2"):
            ok = subprocess.run([sys.executable, "-m", "echoforge", "build", str(SHAREGPT), "-o",
                                 str(tmp_path / f"ok{round_}{workers}"), "--limit", "2", "--workers", workers],
                                capture_output=True, text=True, timeout=600)
            bad = subprocess.run([sys.executable, "-m", "echoforge", "build", str(data), str(truncated), "-o",
                                  str(tmp_path / f"bad{round_}{workers}"), "--config", str(strict), "--workers",
                                  workers], capture_output=True, text=True, timeout=600)
            runs += [(ok, 0), (bad, 2)]
    for r, expected in runs:
        assert r.returncode == expected, (r.returncode, r.stderr[-2000:])
        assert "terminate called" not in r.stderr and "Traceback" not in r.stderr
