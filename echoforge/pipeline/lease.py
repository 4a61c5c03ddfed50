"""One build per output at a time: a fenced lease, taken and handed over by conditional writes only.

The lease is a sequence of *generations*, ``_echoforge/lease/0000000007.json``; the highest
one holds the output. A generation is only ever *created*, by a conditional write that fails
when the object exists (``O_EXCL`` link on local disk, ``If-None-Match: *`` on S3), so of
builds racing for the same generation exactly one wins. Taking over a stale (or released)
lease is creating the next generation; nothing is ever deleted or overwritten to take a
lease, so two builds that both judge it stale cannot both get it.

A generation, once created, is never rewritten: the holder renews it by rewriting a beside
object, ``0000000007.beat``, and releases it by creating the next generation, marked released.
Only generations older than the one before the highest are deleted. So every listing finds the
current generation or the one before it unchanged: a directory listed while entries are added
and removed may miss exactly those (POSIX ``readdir``), and a listing that missed both the new
generation and the old one it replaces would look like a fresh output.

Every commit is *fenced*: before a unit's marker is written, the worker checks that the
highest generation is still its build's, with its token (:meth:`LeaseToken.ensure`).
A build whose lease was taken (it was paused past the time-out) stops with one line
before it writes another marker. What is left is the window between that check and the
marker's PUT: no store here offers a write conditional on *another* object, so a build
paused for longer than ``run.lease_ttl_s`` exactly inside that window can still land one
marker; the marker is of a deterministic unit and the takeover recomputes or keeps it.

Staleness is judged by the store's clock: a lease is stale when its object was last
modified ``run.lease_ttl_s`` seconds before a probe object written just now (both times
are the store's), never by comparing the holder's clock with this one. A dead holder is
recognised sooner only when the lease proves it ran on this very machine and pid
namespace (host name, boot id and pid-namespace inode all equal) and its pid is gone or
reused. ``echoforge unlock DIR`` (or ``build --break-lease``) hands the lease over by hand.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from echoforge.errors import BuildStopped, EchoforgeError
from echoforge.pipeline.layout import LEASE
from echoforge.storage import DataFolder

log = logging.getLogger(__name__)


class LeaseHeld(EchoforgeError):
    """Another build holds the output."""


class LeaseLost(BuildStopped):
    """This build's lease was taken over; it must not write another marker."""


def _process_started(pid: int) -> int | None:
    """When process ``pid`` of this pid namespace started, in clock ticks since boot (exact and
    independent of the wall clock, unlike a start time in epoch seconds, which moves with the
    boot time the kernel derives from it); None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return -1  # exists, but not ours to inspect
    fields = stat[stat.rindex(b")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[19]) if fields[0] != b"Z" else None  # field 22 of proc(5); a zombie is gone


def _machine() -> dict[str, Any]:
    """What proves two processes share a pid space: host name, boot id, pid-namespace inode."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = None
    try:
        pid_ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pid_ns = None
    return {"host": socket.gethostname(), "boot_id": boot, "pid_ns": pid_ns}


def _generation_path(gen: int) -> str:
    return f"{LEASE}/{gen:010d}.json"


def _beat_path(gen: int) -> str:
    return f"{LEASE}/{gen:010d}.beat"


def _generations(folder: DataFolder) -> list[int]:
    folder.refresh()
    out = []
    for rel in folder.list(LEASE):
        name = rel.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            out.append(int(name[:-5]))
    return sorted(out)


@dataclass(frozen=True)
class Holder:
    """The current generation of an output's lease."""

    generation: int
    body: dict[str, Any]

    @property
    def released(self) -> bool:
        return bool(self.body.get("released"))

    def renewed(self, folder: DataFolder) -> float:
        """When it was created or last renewed, by the store's clock."""
        created = folder.modified(_generation_path(self.generation))
        try:
            return max(created, folder.modified(_beat_path(self.generation)))
        except FileNotFoundError:
            return created  # not renewed yet


def current(folder: DataFolder) -> Holder | None:
    """The highest lease generation of ``folder``, or None when there is none. A generation that
    cannot be read is never taken for none: that would let a racer create generation 1 beside it."""
    for attempt in range(50):
        gens = _generations(folder)
        if not gens:
            return None
        try:
            return Holder(gens[-1], folder.read_json(_generation_path(gens[-1])))
        except (FileNotFoundError, ValueError):
            time.sleep(0.01 * min(attempt, 10))  # cleaned up or being written meanwhile: list again
    raise LeaseHeld(f"the lease of {folder.url} changed under every read; try again")


def store_now(folder: DataFolder) -> float:
    """The store's clock: the modification time of a probe object written now."""
    probe = f"{LEASE}/clock-{uuid.uuid4().hex}"
    folder.write_bytes(probe, b"")
    try:
        return folder.modified(probe)
    finally:
        folder.delete(probe)


def describe(lease: dict[str, Any], age_s: float | None = None) -> str:
    age = f", renewed {age_s:.0f} s ago" if age_s is not None else ""
    return f"host {lease.get('host')}, pid {lease.get('pid')}{age}"


def holder_gone(lease: dict[str, Any]) -> bool:
    """A holder proven to have run in this pid namespace whose process is gone (or reused)."""
    here = _machine()
    if any(lease.get(k) != here[k] or here[k] is None for k in ("host", "boot_id", "pid_ns")):
        return False
    started = _process_started(int(lease.get("pid", -1)))
    return started is None or (started >= 0 and lease.get("pid_start_ticks") not in (None, started))


@dataclass(frozen=True)
class LeaseToken:
    """What a worker needs to fence its commits: the folder, the generation and its token."""

    folder: DataFolder
    generation: int
    token: str

    def ensure(self) -> None:
        """Raise :class:`LeaseLost` unless this generation still holds the lease."""
        holder = current(self.folder)
        if holder is not None and holder.generation == self.generation and holder.body.get("token") == self.token \
                and not holder.released:
            return
        who = describe(holder.body) if holder is not None else "nobody"
        raise LeaseLost(
            f"this build lost its lease on {self.folder.url} (now held by {who}, taken over after "
            "run.lease_ttl_s without renewal, or by `echoforge unlock`): it stops without writing more; "
            "committed work units are kept"
        )


class Lease:
    """Held while a build writes to ``folder``; use as a context manager."""

    def __init__(self, folder: DataFolder, ttl_s: float = 600.0, break_existing: bool = False):
        self.folder = folder
        self.ttl_s = ttl_s
        self.break_existing = break_existing
        self.token_value = uuid.uuid4().hex
        self.generation: int | None = None
        self.lost: str | None = None  # why the heartbeat found the lease gone
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> LeaseToken:
        if self.generation is None:
            raise RuntimeError("the lease is not held")
        return LeaseToken(self.folder, self.generation, self.token_value)

    def _body(self, released: bool = False) -> bytes:
        pid = os.getpid()
        return json.dumps({**_machine(), "pid": pid, "pid_start_ticks": _process_started(pid),
                           "token": self.token_value, "released": released}).encode()

    def acquire(self) -> Lease:
        for _ in range(10):
            holder = current(self.folder)
            if holder is None:
                target = 1
            else:
                try:
                    age = store_now(self.folder) - holder.renewed(self.folder)
                except FileNotFoundError:
                    continue  # superseded meanwhile: judge the new one
                if not (holder.released or self.break_existing or age > self.ttl_s or holder_gone(holder.body)):
                    raise LeaseHeld(
                        f"another build is writing to {self.folder.url} ({describe(holder.body, age)}); wait for "
                        f"it, or if it is gone, run `echoforge unlock {self.folder.url}` (or pass --break-lease)"
                    )
                target = holder.generation + 1
            path = _generation_path(target)
            if self.folder.create(path, self._body()) or self._is_mine(path):
                self.generation = target
                self._clean_up(keep_from=target - 1)
                self._thread = threading.Thread(target=self._heartbeat, name="echoforge-lease", daemon=True)
                self._thread.start()
                return self
            # another build created that generation first: judge it again
        raise LeaseHeld(f"could not take the lease on {self.folder.url}; try again")

    def _clean_up(self, keep_from: int) -> None:
        """Delete the generations (and their beats) before ``keep_from``; the one before the
        current generation stays, so that no listing made meanwhile can miss both."""
        for rel in self.folder.list(LEASE):
            stem = rel.rsplit("/", 1)[-1].split(".", 1)[0]
            if stem.isdigit() and int(stem) < keep_from:
                self.folder.delete(rel)

    def _is_mine(self, path: str) -> bool:
        """A create retried after a lost answer finds its own object there."""
        try:
            return self.folder.read_json(path).get("token") == self.token_value
        except (FileNotFoundError, ValueError):
            return False

    def ensure(self) -> None:
        """Raise :class:`LeaseLost` when the heartbeat found the lease taken (cheap: no I/O)."""
        if self.lost:
            raise LeaseLost(self.lost)

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(0.05, self.ttl_s / 4)):
            try:
                self.token.ensure()
                self.folder.write_bytes(_beat_path(self.generation), self.token_value.encode())
            except LeaseLost as exc:
                self.lost = str(exc)
                return
            except Exception as exc:  # noqa: BLE001 - the store is down: commits will stop on it too
                log.warning("could not renew the lease on %s: %s", self.folder.url, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.generation is None:
            return
        try:
            self.token.ensure()
            self.folder.create(_generation_path(self.generation + 1), self._body(released=True))
        except Exception:  # noqa: BLE001 - lost or unreachable: the next build judges it by age
            pass
        self.generation = None

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def unlock(folder: DataFolder) -> dict[str, Any] | None:
    """Hand the lease over by hand (the next generation, released); the holder that was
    there, or None. A holder still running stops at its next commit."""
    holder = current(folder)
    if holder is None or holder.released:
        return None
    body = json.dumps({"released": True, "token": uuid.uuid4().hex, "by": "echoforge unlock"}).encode()
    if not folder.create(_generation_path(holder.generation + 1), body):
        return unlock(folder)
    return holder.body
