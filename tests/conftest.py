"""Shared fixtures: sample inputs, a messy/bad input file, and small real builds.

With ``CI`` set, a skipped test fails the run: a test that did not run proves nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "echoforge" / "data"
SHAREGPT = DATA / "sharegpt_sample.json"
MESSY = DATA / "alpaca_messy.jsonl"

# Fast but real: every stage runs, with small work units.
FAST_CONFIG = {
    "run": {"work_unit_rows": 3, "workers": 1},
    "output": {"validation_fraction": 0.3},
}


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
