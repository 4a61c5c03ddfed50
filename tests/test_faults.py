"""Faults of the surroundings: each is one line naming what to fix (no traceback, no hang),
run through the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import SHAREGPT, write_config

ONE_LINE = 3  # lines of stderr at most: a library's import warning, the sample notice, the error


def cli(*args: str, env: dict | None = None, drop: tuple[str, ...] = (), timeout: float = 300):
    base = {k: v for k, v in os.environ.items() if k not in drop}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "echoforge", *args], capture_output=True, text=True,
                       timeout=timeout, env={**base, "AWS_EC2_METADATA_DISABLED": "true", **(env or {})})
    r.seconds = time.monotonic() - t0
    return r


def one_line(r, *words: str) -> str:
    err = r.stderr.strip()
    assert r.returncode == 2, (r.returncode, err[-3000:])
    assert "Traceback" not in err and len(err.splitlines()) <= ONE_LINE, err[-3000:]
    line = next(line for line in err.splitlines() if line.startswith("error: "))
    for w in words:
        assert w in line, line
    return line


AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL")


@pytest.fixture()
def quick(tmp_path):
    """A config that gives storage calls two seconds of retries."""
    return str(write_config(tmp_path / "quick.yaml", {"run": {"storage_retry_s": 2}}))


def test_missing_credentials(s3_server, quick):
    r = cli("build", str(SHAREGPT), "-o", s3_server.url(), "--limit", "1", "--config", quick, drop=AWS,
            env={"AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                 "AWS_CONFIG_FILE": "/nonexistent"})
    one_line(r, "AWS_ACCESS_KEY_ID")


def test_wrong_credentials(s3_server, quick):
    r = cli("build", str(SHAREGPT), "-o", s3_server.url(), "--limit", "1", "--config", quick,
            env={**s3_server.env, "AWS_SECRET_ACCESS_KEY": "wrong"})
    one_line(r, "credentials")


def test_unreachable_endpoint(s3_server, quick):
    r = cli("build", str(SHAREGPT), "-o", s3_server.url(), "--limit", "1", "--config", quick,
            env={**s3_server.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    one_line(r, "endpoint")
    assert r.seconds < 120


def test_missing_bucket(s3_server, quick):
    r = cli("build", str(SHAREGPT), "-o", "s3://no-such-bucket-here/out", "--limit", "1", "--config", quick,
            env=s3_server.env)
    one_line(r, "no-such-bucket-here", "does not exist")


def test_push_without_network_or_token(tmp_path):
    from echoforge.config import parse_config
    from echoforge.pipeline.build import build

    out = str(tmp_path / "out")
    build([str(SHAREGPT)], out, parse_config({"run": {"workers": 1}, "gate": {"asr": "none"}}), limit=1)
    # No network: the Hub's address does not answer.
    r = cli("push", out, "someone/corpus",
            env={"HF_TOKEN": "hf_x", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"})
    one_line(r, "network")
    # No token at all.
    r = cli("push", out, "someone/corpus", drop=("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
            env={"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    one_line(r, "token")


def test_cuda_device_that_cannot_be_used(tmp_path):
    config = write_config(tmp_path / "c.yaml", {"gate": {"whisper": {"device": "cuda"}}})
    r = cli("build", str(SHAREGPT), "-o", str(tmp_path / "out"), "--limit", "1", "--config", str(config),
            env={"CUDA_VISIBLE_DEVICES": ""})
    one_line(r, "gate.whisper.device", "cpu")


def test_dataflow_without_project_and_region(tmp_path):
    r = cli("build", str(SHAREGPT), "-o", str(tmp_path / "out"), "--limit", "1", "--engine", "beam",
            "--beam-option=--runner=DataflowRunner")
    one_line(r, "--project", "--region")


def test_ray_address_that_does_not_answer(tmp_path):
    r = cli("build", str(SHAREGPT), "-o", str(tmp_path / "out"), "--limit", "1", "--engine", "ray",
            "--ray-address", "127.0.0.1:9", "--ray-timeout", "3", drop=("RAY_ADDRESS",))
    one_line(r, "127.0.0.1:9", "does not answer")
    assert r.seconds < 60


def test_gs_is_refused_with_one_line_until_it_is_tested(tmp_path):
    for url in ("gs://bucket/corpus", "gcs://bucket/corpus"):
        r = cli("build", str(SHAREGPT), "-o", url, "--limit", "1")
        one_line(r, url, "not supported yet")
