"""One build per output at a time: a lease object with host, pid and time.

The lease is created only when none exists (``O_EXCL`` on local disk, a conditional put on
S3) and renewed by a heartbeat thread while the build runs. Another build on the same output
is refused with the holder's host, pid and age. A lease is stale, and taken over, when its
holder is a dead process on this host, or when it has not been renewed for
``run.lease_ttl_s`` seconds; ``echoforge unlock DIR`` (or ``build --break-lease``) removes a
lease by hand, for a holder known to be gone.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from echoforge.errors import EchoforgeError
from echoforge.pipeline.layout import LEASE
from echoforge.storage import DataFolder


class LeaseHeld(EchoforgeError):
    """Another build holds the output."""


def _process_started(pid: int) -> float | None:
    """When process ``pid`` of this host started, or None when there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:
        return -1.0  # exists, but not ours to inspect


def describe(lease: dict[str, Any]) -> str:
    age = time.time() - lease.get("renewed", lease.get("started", 0))
    return f"host {lease.get('host')}, pid {lease.get('pid')}, renewed {age:.0f} s ago"


def is_stale(lease: dict[str, Any], ttl_s: float) -> bool:
    """A lease whose holder is gone from this host (its pid dead or reused), or not renewed
    for ``ttl_s`` seconds."""
    if lease.get("host") == socket.gethostname():
        started = _process_started(int(lease.get("pid", -1)))
        if started is None or (started > 0 and lease.get("pid_started") not in (None, started)):
            return True
    return time.time() - float(lease.get("renewed", 0)) > ttl_s


class Lease:
    """Held while a build writes to ``folder``; use as a context manager."""

    def __init__(self, folder: DataFolder, ttl_s: float = 600.0, break_existing: bool = False):
        self.folder = folder
        self.ttl_s = ttl_s
        self.break_existing = break_existing
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        now = time.time()
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "pid_started": _process_started(os.getpid()),
                           "started": getattr(self, "_started", now), "renewed": now}).encode()

    def acquire(self) -> Lease:
        self._started = time.time()
        for _ in range(3):
            if self.folder.create(LEASE, self._body()):
                break
            try:
                current = self.folder.read_json(LEASE)
            except (FileNotFoundError, ValueError):
                continue  # released or being written meanwhile: try again
            if self.break_existing or is_stale(current, self.ttl_s):
                self.folder.delete(LEASE)
                continue
            raise LeaseHeld(
                f"another build is writing to {self.folder.url} ({describe(current)}); wait for it, or if it is "
                f"gone, run `echoforge unlock {self.folder.url}` (or pass --break-lease)"
            )
        else:
            raise LeaseHeld(f"could not take the lease on {self.folder.url}; try again")
        self._thread = threading.Thread(target=self._heartbeat, name="echoforge-lease", daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(1.0, self.ttl_s / 4)):
            try:
                if self.folder.read_json(LEASE).get("token") == self.token:
                    self.folder.write_bytes(LEASE, self._body())
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the ttl allows several
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self.folder.read_json(LEASE).get("token") == self.token:
                self.folder.delete(LEASE)
        except (FileNotFoundError, ValueError):
            pass

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def unlock(folder: DataFolder) -> dict[str, Any] | None:
    """Remove a lease by hand; the lease that was there, or None."""
    try:
        current = folder.read_json(LEASE)
    except (FileNotFoundError, ValueError):
        return None
    folder.delete(LEASE)
    return current
