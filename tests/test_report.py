"""`echoforge report`: the HTML page of a real build, opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from echoforge.commands.report import PLOTS, render_report
from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.pipeline.output import iter_shards

from conftest import FAST_CONFIG, ROOT, SHAREGPT, refused_rows

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def builds(tmp_path_factory, cache_env):
    """The sample built with the test config, a second build with faster-varying voices, and one
    whose rows are mostly refused (three in a layout no reader knows, one good), in the Arrow format."""
    base = tmp_path_factory.mktemp("report")
    sample = base / "sample"
    build([str(SHAREGPT)], sample, parse_config(FAST_CONFIG), limit=4)
    other = base / "jittered"
    build([str(SHAREGPT)], other, parse_config({**FAST_CONFIG, "synthesis": {"rate_jitter": 0.3}}), limit=2)
    mixed_input = base / "mixed.jsonl"
    mixed_input.write_bytes(refused_rows(3, good=1))
    mixed = base / "mixed"  # in the Arrow layout, whose rows the report reads batch by batch
    build([str(mixed_input)], mixed, parse_config({**FAST_CONFIG, "output": {"format": "arrow"}}))
    return sample, other, mixed


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "echoforge", *args], capture_output=True, text=True, timeout=600)


def durations_by_id(root: Path) -> dict[str, tuple[float, float]]:
    out = {}
    for _, table in iter_shards(root, ["id", "question_duration_s", "answer_duration_s"]):
        for r in table.to_pylist():
            out[r["id"]] = (r["question_duration_s"], r["answer_duration_s"])
    return out


def test_report_renders_in_chromium_with_sections_plots_and_playable_audio(builds, tmp_path):
    from playwright.sync_api import sync_playwright

    sample, other, _ = builds
    page_path = tmp_path / "report.html"
    run = cli("report", str(sample), "--output", str(page_path), "--rows", "3", "--seed", "1",
              "--compare", str(other))
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and "report" in run.stderr  # the summary line, and the progress bar
    html = page_path.read_text()
    assert not re.search(r"""(src|href)=["']https?:""", html)  # nothing to fetch: the page stands alone
    durations = durations_by_id(sample)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        for section in ("summary", "distributions", "rows", "rejects"):
            assert page.locator(f"section#{section} h2").count() == 1, section
        for name in PLOTS:
            assert page.locator(f'figure.plot[data-plot="{name}"] svg').count() == 1, name
        # --compare: both builds are in the legends
        legend = page.locator('figure.plot[data-plot="durations"]').inner_text()
        assert "sample" in legend and "jittered" in legend
        rows = page.locator("article.row")
        assert rows.count() == 3
        played = page.evaluate("""() => Promise.all([...document.querySelectorAll('article.row audio')].map(a =>
            new Promise(done => {
                const report = () => done({id: a.closest('article').dataset.id, side: a.dataset.side,
                                           duration: a.duration, error: a.error && a.error.code});
                if (a.readyState >= 1) report();
                else { a.addEventListener('loadedmetadata', report); a.addEventListener('error', report); }
            })))""")
        assert len(played) == 6
        for audio in played:
            assert audio["error"] is None, audio
            stored = durations[audio["id"]][0 if audio["side"] == "question" else 1]
            assert abs(audio["duration"] - stored) < 0.01, audio
        # the answer's words are drawn over its waveform
        first = rows.first
        words = first.locator('figure[data-plot="words"] svg text').all_text_contents()
        spoken = first.locator("table.texts tr").nth(2).locator("td").nth(1).inner_text()
        drawn = [w for w in words if any(c.isalpha() for c in w) and w.lower().strip(".,!?") in spoken.lower()]
        assert len(drawn) >= 3, (words, spoken)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_sample_is_seeded_and_rejects_are_shown_per_reason(builds, tmp_path):
    sample, _, mixed = builds
    ids = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        render_report(sample, tmp_path / f"{name}.html", rows=3, seed=seed, progress=False)
        ids.append(re.findall(r'<article class="row" data-id="([^"]+)"', (tmp_path / f"{name}.html").read_text()))
    assert len(ids[0]) == 3 and ids[0] == ids[1] and ids[0] != ids[2]
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()

    info = render_report(mixed, tmp_path / "mixed.html", rows=5, seed=0, rejects_per_reason=2, progress=False)
    html = (tmp_path / "mixed.html").read_text()
    assert info["rows"] == 1 and info["rejects"] == 2
    assert html.count("<audio") == 2 and html.count('data-plot="words"') == 1
    block = html.split('data-reason="ingest.unknown_format"')[1].split("</div>")[0]
    assert "(3 turns)" in block and block.count("match no known layout") == 2


def test_partial_build_is_reported_as_such(builds, tmp_path):
    """A manifest that says complete: false (work units still running) is reported with what it has."""
    sample = builds[0]
    partial = tmp_path / "partial"
    shutil.copytree(sample, partial)
    manifest = json.loads((partial / "manifest.json").read_text())
    last = max(s["shard"] for s in manifest["shards"])
    kept = [s for s in manifest["shards"] if s["shard"] != last]
    manifest.update(shards=kept, complete=False, committed_units=manifest["num_units"] - 1,
                    rows=sum(s["rows"] for s in kept))
    (partial / "manifest.json").write_text(json.dumps(manifest))
    info = render_report(partial, tmp_path / "partial.html", rows=50, progress=False)
    html = (tmp_path / "partial.html").read_text()
    assert f"partial build: {manifest['num_units'] - 1} of {manifest['num_units']} work units" in html
    assert info["rows"] == manifest["rows"] < 50
