"""Chaos: builds killed with SIGKILL at random (seeded) moments on every engine, each resumed
to the end, end with the same bytes as a build never interrupted; so does a build that dies
between writing a sealed shard and its seal marker."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from echoforge.storage import folder as open_folder
from echoforge.commands.validate import validate_output

from conftest import SHAREGPT, end_session, inject_env, write_config

pytestmark = pytest.mark.slow

SEED = 20261125
# Kills per engine (at least 20 in all) and the window a kill lands in, in seconds after start;
# a run that commits a unit is killed soon after (within half a second), so that every
# run ends mid-build however fast the machine is.
KILLS = {"local": (6, 3.0, 20.0), "ray": (7, 6.0, 35.0), "beam": (7, 3.0, 20.0)}
LIMIT = "14"
CONFIG = {"run": {"work_unit_rows": 1}, "gate": {"asr": "none"},
          "output": {"shard_size_mb": 0.0005, "validation_fraction": 0.2}}


def data_bytes(root: str) -> dict[str, bytes]:
    folder = open_folder(root)
    return {p: folder.read_bytes(p) for p in folder.list() if p.startswith(("data/", "rejects/"))}


def units_committed(out: Path) -> int:
    return len(list((out / "_echoforge" / "units").rglob("*.json")))


def command(config: Path, out: Path, engine: str) -> list[str]:
    return [sys.executable, "-m", "echoforge", "build", str(SHAREGPT), "--limit", LIMIT, "--config", str(config),
            "-o", str(out), "--engine", engine]


@pytest.fixture(scope="module")
def chaos_inputs(tmp_path_factory, cache_env):
    d = tmp_path_factory.mktemp("chaos")
    config = write_config(d / "config.yaml", CONFIG)
    reference = d / "reference"
    r = subprocess.run(command(config, reference, "local"), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return config, reference


@pytest.mark.parametrize("engine", list(KILLS))
def test_random_kills_then_resume_give_identical_bytes(engine, chaos_inputs, tmp_path):
    config, reference = chaos_inputs
    kills, low, high = KILLS[engine]
    rng = random.Random(f"{SEED}-{engine}")
    out = tmp_path / "out"
    killed = 0
    while killed < kills:
        proc = subprocess.Popen(command(config, out, engine), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        start, deadline = time.time(), time.time() + rng.uniform(low, high)
        committed = units_committed(out)
        try:
            while proc.poll() is None and time.time() < deadline:
                if units_committed(out) > committed:
                    deadline = min(deadline, time.time() + rng.uniform(0.0, 0.5))
                    committed = 1 << 30
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                killed += 1
        finally:
            end_session(proc.pid)
        if proc.returncode == 0:
            break  # finished before the kill landed
        assert proc.returncode == -9, proc.stderr.read()[-2000:]
        assert time.time() - start < high + 60
    final = subprocess.run(command(config, out, engine), capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-2000:]
    print(f"{engine}: {killed} kills survived")
    assert killed == kills, f"the build finished after {killed} kills"
    assert data_bytes(str(out)) == data_bytes(str(reference))  # no row lost, none twice, same bytes
    assert validate_output(out)[0] == []


def test_crash_between_a_sealed_shard_and_its_marker(chaos_inputs, tmp_path):
    config, reference = chaos_inputs
    out = tmp_path / "out"
    crashed = subprocess.run([*command(config, out, "local"), "--workers", "1"], capture_output=True, text=True,
                             timeout=600, env=inject_env(crash_at="seal"))
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    folder = open_folder(str(out))
    sealed = {e["path"] for _, e in folder.iter_json("_echoforge/shards") if e["path"]}
    assert len(folder.list("data")) == len(sealed) + 1, "one shard written whose seal marker is not"
    resumed = subprocess.run(command(config, out, "local"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert data_bytes(str(out)) == data_bytes(str(reference))
    assert validate_output(out)[0] == []
