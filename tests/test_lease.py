"""Fenced leases on local disk and on a real S3 server: builds racing for one output, a paused
holder whose lease is taken, skewed clocks, the pid shortcut, and a build that lost its lease."""

from __future__ import annotations

import json
import threading
import time

import pytest

from echoforge.config import parse_config
from echoforge.pipeline import lease as lease_module
from echoforge.pipeline.build import build
from echoforge.pipeline.layout import LEASE
from echoforge.pipeline.lease import Lease, LeaseHeld, LeaseLost, current, unlock
from echoforge.storage import folder as open_folder

from conftest import SHAREGPT


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        request.getfixturevalue("s3_env")
        return server.url("lease")
    return str(tmp_path / "out")


def race(url: str, contenders: int, ttl_s: float = 600.0) -> tuple[list[Lease], list[Exception]]:
    """``contenders`` threads acquire at once; the leases won and the errors of the others."""
    won, lost = [], []
    barrier = threading.Barrier(contenders)

    def contend() -> None:
        lease = Lease(open_folder(url), ttl_s)
        barrier.wait()
        try:
            won.append(lease.acquire())
        except LeaseHeld as exc:
            lost.append(exc)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, lost


def test_builds_racing_for_one_output_get_it_one_at_a_time(where):
    rounds = 12 if where.startswith("s3://") else 25
    tokens = set()
    for _ in range(rounds):
        won, lost = race(where, 4)
        assert len(won) == 1 and len(lost) == 3, (won, lost)
        holder = current(open_folder(where))
        assert holder.body["token"] == won[0].token_value and not holder.released
        won[0].token.ensure()
        tokens.add(won[0].token_value)
        won[0].release()  # released: the next round races for the next generation
    assert len(tokens) == rounds
    # Each winner cleans up all but the generation before its own; each release is a new one.
    names = [p.rsplit("/", 1)[-1] for p in open_folder(where).list(LEASE) if p.endswith(".json")]
    assert names == [f"{g:010d}.json" for g in (2 * rounds - 2, 2 * rounds - 1, 2 * rounds)], names
    assert current(open_folder(where)).released


def test_a_listing_torn_by_a_racer_still_finds_the_lease(where, monkeypatch):
    """A directory listed while one racer adds a generation and deletes another may miss both
    (POSIX ``readdir``): the generation before the current one is kept, so a listing that misses
    the two entries that change still finds the lease, and nobody starts again from generation 1."""
    folder = open_folder(where)
    for _ in range(3):
        Lease(folder).acquire().release()  # generations 1 to 6; 4, 5 and 6 are left
    racer = Lease(open_folder(where)).acquire()  # generation 7 created, 4 deleted
    changed = {f"{LEASE}/{g:010d}.json" for g in (4, 7)}
    listing, calls = type(folder).list, []

    def torn(self, prefix=""):
        calls.append(prefix)
        found = listing(self, prefix)
        return {k: v for k, v in found.items() if k not in changed} if len(calls) == 1 else found

    monkeypatch.setattr(type(folder), "list", torn)
    with pytest.raises(LeaseHeld, match="another build is writing"):
        Lease(folder).acquire()  # sees 6 (released), fails to create 7, then sees 7 held
    monkeypatch.undo()
    assert current(open_folder(where)).generation == 7
    racer.release()


def test_racing_for_a_stale_lease_one_takes_it(where):
    for _ in range(5):
        holder = Lease(open_folder(where), ttl_s=1.0).acquire()
        holder._stop.set()  # paused: no more renewals
        holder._thread.join()
        time.sleep(2.2)  # older than the ttl by the store's clock (S3 times are whole seconds)
        won, lost = race(where, 4, ttl_s=1.0)
        assert len(won) == 1 and len(lost) == 3
        with pytest.raises(LeaseLost, match="lost its lease"):
            holder.token.ensure()  # the paused holder must stop
        won[0].release()


def test_a_paused_holder_whose_lease_is_taken_stops(where):
    holder = Lease(open_folder(where), ttl_s=1.0).acquire()
    holder._stop.set()
    holder._thread.join()
    with pytest.raises(LeaseHeld):  # fresh: not taken
        Lease(open_folder(where), ttl_s=1.0).acquire()
    time.sleep(2.2)
    taker = Lease(open_folder(where), ttl_s=1.0).acquire()
    with pytest.raises(LeaseLost, match="lost its lease"):
        holder.token.ensure()
    # Its heartbeat, were it to wake up, finds the lease gone and says so.
    holder._stop.clear()
    holder._heartbeat_thread = threading.Thread(target=holder._heartbeat, daemon=True)
    holder._heartbeat_thread.start()
    holder._heartbeat_thread.join(timeout=10)
    assert holder.lost and "lost its lease" in holder.lost
    with pytest.raises(LeaseLost):
        holder.ensure()
    # The paused holder's release does not touch the taker's lease.
    holder.release()
    taker.token.ensure()
    taker.release()


def test_skewed_clocks_do_not_make_a_fresh_lease_stale(where, monkeypatch):
    holder = Lease(open_folder(where), ttl_s=60.0).acquire()
    real = time.time
    try:
        # This machine's clock is ten minutes ahead (or behind) of the holder's and the store's:
        # staleness is judged by the store's clock, so the fresh lease is still held.
        for skew in (600.0, -600.0):
            monkeypatch.setattr(time, "time", lambda s=skew: real() + s)
            with pytest.raises(LeaseHeld, match=r"renewed \d s ago"):
                Lease(open_folder(where), ttl_s=60.0).acquire()
    finally:
        monkeypatch.undo()
        holder.release()


def test_the_pid_shortcut_needs_the_same_host_and_pid_namespace(tmp_path):
    folder = open_folder(tmp_path / "out")
    machine = lease_module._machine()
    dead = {"pid": 2**22 + 12345, "pid_start_ticks": 1, "token": "t", "released": False}
    # A dead holder proven to be in this pid namespace: taken over at once.
    folder.create(f"{LEASE}/0000000001.json", json.dumps({**machine, **dead}).encode())
    Lease(folder).acquire().release()
    # Same host name, another container (pid namespace): its pid says nothing here.
    assert current(folder).generation == 3 and current(folder).released  # released: a new generation
    folder.create(f"{LEASE}/0000000004.json", json.dumps({**machine, **dead, "pid_ns": 1}).encode())
    with pytest.raises(LeaseHeld, match=f"host {machine['host']}"):
        Lease(folder).acquire()
    assert unlock(folder)["pid_ns"] == 1
    Lease(folder).acquire().release()


def test_a_live_holder_on_this_machine_is_never_taken_for_gone():
    """Its start is read in clock ticks since boot, which do not move when the kernel's boot
    time (in epoch seconds) is adjusted with the wall clock; a reused pid starts at other ticks."""
    import os

    me = {**lease_module._machine(), "pid": os.getpid()}
    started = lease_module._process_started(os.getpid())
    assert started == lease_module._process_started(os.getpid()) > 0
    assert not any(lease_module.holder_gone({**me, "pid_start_ticks": started}) for _ in range(200))
    assert lease_module.holder_gone({**me, "pid_start_ticks": started + 1})  # the pid was reused


def test_a_build_that_lost_its_lease_writes_no_more_markers(tmp_path, cache_env):
    out = str(tmp_path / "out")
    config = parse_config({"run": {"work_unit_rows": 1, "workers": 1}, "gate": {"asr": "none"}})
    taken = []

    def take_over(entry, done, total):
        if done and not taken:  # a unit committed (the first call, before any work, reports the kept ones)
            taken.append(Lease(open_folder(out), break_existing=True).acquire())

    with pytest.raises(LeaseLost, match="lost its lease"):
        build([str(SHAREGPT)], out, config, limit=4, on_progress=take_over)
    markers = [p for p in open_folder(out).list("_echoforge/units") if p.endswith(".json")]
    assert len(markers) == 1  # the unit committed before the takeover, and none after
    taken[0].release()
    assert build([str(SHAREGPT)], out, config, limit=4)["complete"]
