"""CI honesty: a skipped test fails the run when ``CI`` is set."""

from __future__ import annotations

from conftest import ROOT

SKIPPING = """
import pytest

def test_runs():
    assert True

def test_skips():
    pytest.skip("dependency missing")
"""


def test_a_skip_fails_the_run_in_ci(pytester, monkeypatch):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_sample=SKIPPING)
    monkeypatch.delenv("CI", raising=False)
    assert pytester.runpytest_subprocess().ret == 0
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess()
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*skipped tests fail in CI*", "SKIPPED test_sample.py::test_skips*"])


def test_a_module_skipped_at_import_fails_the_run_in_ci(pytester, monkeypatch):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_sample="import pytest\npytest.importorskip(\"no_such_module_anywhere\")\n",
                        test_other="def test_runs():\n    assert True\n")
    monkeypatch.setenv("CI", "true")
    assert pytester.runpytest_subprocess().ret == 1


def test_ci_entry_point_sets_ci():
    assert 'export CI="${CI:-true}"' in (ROOT / ".ci" / "run").read_text()
