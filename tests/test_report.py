"""`echoforge report`: the HTML page of a real build, opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from echoforge.commands.report import HISTOGRAMS, PLOT_BARS, PLOTS, BuildStats, Histogram, collect_stats
from echoforge.commands.report import figures, plot_histograms, render_report
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
    assert_bars_count_consistently(run.stderr)
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


def assert_bars_count_consistently(stderr: str) -> None:
    """Every tqdm line shows done/total with done <= total, and each bar ends at its total."""
    assert not re.search(r"\d+file \[", stderr), stderr  # a count without its total: it overran
    last: dict[str, tuple[int, int]] = {}
    for desc, done, total in re.findall(r"(report: [a-z ]+):\s+\d+%\|[^|]*\| (\d+)/(\d+) \[", stderr):
        assert int(done) <= int(total), (desc, done, total)
        last[desc] = (int(done), int(total))
    assert set(last) == {"report: figures", "report: sample rows"}, stderr
    assert all(done == total for done, total in last.values()), last


class NoBar:
    def update(self, n: int) -> None:
        pass


def stats(root: Path, rows: int = 0) -> BuildStats:
    return collect_stats(root, rows=rows, seed=0, bar=NoBar())


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def assert_legends_and_labels_clear(fig) -> None:
    """No legend over any axes (bars, lines), tick labels or axis label, nor over another legend;
    every text drawn in an axes (a gate limit's label) inside that axes."""
    fig.draw_without_rendering()
    axes = fig.axes
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent()
        for ax in axes:
            for other in (ax.bbox, ax.xaxis.get_tightbbox(), ax.yaxis.get_tightbbox(), ax.title.get_window_extent()):
                assert not overlaps(box, other), (legend.texts[0].get_text(), other)
            for bar in ax.patches:
                assert not overlaps(box, bar.get_window_extent())
        for other in legends:
            assert other is legend or not overlaps(box, other.get_window_extent())
    for ax in axes:
        for text in ax.texts:
            box = text.get_window_extent()
            assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1, (text.get_text(), box, ax.bbox)


def test_legends_cover_no_bars_or_axis_and_gate_labels_stay_inside(builds):
    sample, other, mixed = builds
    for group in ([stats(sample)], [stats(sample), stats(other)], [stats(mixed)]):
        for name, fig in figures(group).items():
            assert_legends_and_labels_clear(fig)
            if name == "wer":  # the gate's limits are in view, their labels whole
                for ax in fig.axes:
                    assert [t.get_text().strip() for t in ax.texts] in (["gate max 0.5"], ["gate max 0.4"])
                    value = float(ax.texts[0].get_text().split()[-1])
                    assert ax.get_xlim()[0] < value < ax.get_xlim()[1]


def synthetic(column: str, values: list[float], name: str = "narrow") -> BuildStats:
    hists = {c: Histogram(hi) for c, hi in HISTOGRAMS.items()}
    hists[column].add(np.asarray(values, dtype=np.float64))
    manifest = {"config": {"gate": {"max_question_wer": 0.5, "max_answer_wer": 0.4}}}
    return BuildStats(name, manifest, hists, {}, np.zeros(0, dtype=np.int64), [], None)


def test_values_in_a_narrow_range_are_drawn_on_a_sensible_axis():
    values = list(np.linspace(49.4, 50.8, 30))  # units per second of a 50 Hz tokenizer
    fig = plot_histograms([synthetic("answer_units_per_second", values)], "units-per-second")
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo < 49.4 and 50.8 < hi and hi - lo >= 0.2 * 50  # a spike on a range a fifth of its centre wide
    assert hi - lo < 20  # and not the full 0-200 range
    (bars,) = ax.patches
    assert len(bars.get_data().values) <= PLOT_BARS
    # all zeros with the gate at 0.5: the range reaches the gate and the zero bar is visible
    fig = plot_histograms([synthetic("question_wer", [0.0] * 12)], "wer")
    ax = fig.axes[0]
    edges = ax.patches[0].get_data().edges
    assert ax.get_xlim()[1] > 0.5 and edges[1] - edges[0] >= (0.5 / PLOT_BARS) * 0.9
    assert_legends_and_labels_clear(fig)


def test_compare_of_builds_of_different_sizes_draws_shares(builds):
    sample, other, _ = builds
    pair = [stats(sample), stats(other)]
    assert pair[0].manifest["rows"] > pair[1].manifest["rows"]
    shown = figures(pair)
    for name in ("durations", "wer", "chars-per-second", "units-per-second"):
        for ax in shown[name].axes:
            assert ax.get_ylabel() == "share of rows"
            sums = [float(p.get_data().values.sum()) for p in ax.patches]
            assert len(sums) == 2 and sums == pytest.approx([1.0, 1.0]), (name, sums)
    speakers = shown["speaker-hours"].axes[0]
    widths = {}
    for bar in speakers.patches:  # question and answer bars of one voice and build end at its share
        widths[bar.get_y()] = max(widths.get(bar.get_y(), 0.0), bar.get_x() + bar.get_width())
    assert sorted(widths.values()) == pytest.approx([1.0, 1.0])  # one voice (joe) in each build
    # one build alone: plain counts
    assert figures([pair[0]])["durations"].axes[0].get_ylabel() == "rows"


def summary_table(html: str) -> dict[str, str]:
    table = html.split('<table class="summary">')[1].split("</table>")[0]
    return dict(re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td>", table))


def test_summary_shows_the_fingerprint_of_the_recorded_settings(builds, tmp_path):
    sample, other, _ = builds
    render_report(sample, tmp_path / "a.html", progress=False)
    render_report(other, tmp_path / "b.html", progress=False)
    a, b = (summary_table((tmp_path / f"{n}.html").read_text()) for n in "ab")
    assert a["config fingerprint"] == parse_config(FAST_CONFIG).fingerprint()
    assert b["config fingerprint"] == parse_config({**FAST_CONFIG, "synthesis": {"rate_jitter": 0.3}}).fingerprint()
    assert a["config fingerprint"] != b["config fingerprint"]


def test_page_goes_into_the_build_not_the_current_folder(builds, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(builds[0], copy)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run = subprocess.run([sys.executable, "-m", "echoforge", "report", str(copy), "--rows", "1"], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (copy / "report.html").stat().st_size > 10_000 and not list(cwd.iterdir())
    assert f"wrote {copy / 'report.html'}" in run.stdout


def test_sample_rows_are_distinct_turns(builds, tmp_path):
    sample = builds[0]
    questions = [q for _, t in iter_shards(sample, ["question_text"]) for q in t.column("question_text").to_pylist()]
    assert len(set(questions)) < len(questions)  # the sample asks some questions twice
    info = render_report(sample, tmp_path / "all.html", rows=len(questions), progress=False)
    html = (tmp_path / "all.html").read_text()
    shown = [re.sub(r"<[^>]+>", "", q) for q in re.findall(
        r'<table class="texts">.*?<tr><th>question</th><td>(.*?)</td>', html, re.S)]
    assert info["rows"] == len(shown) == len(set(questions)) and len(set(shown)) == len(shown)


def test_rejects_show_what_was_to_be_heard_and_what_was_heard(builds, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mixed = tmp_path / "mixed"
    shutil.copytree(builds[2], mixed)
    manifest = json.loads((mixed / "manifest.json").read_text())
    for entry in manifest["rejects"]:
        table = pq.read_table(mixed / entry["path"])
        n = table.num_rows
        for name, text in (("expected", "the words to say"), ("heard", "the words heard")):
            column = pa.array([f"{text} {i}" for i in range(n)])
            at = table.schema.get_field_index(name)  # the gate's rejects carry both columns, empty before the ASR
            table = table.set_column(at, name, column) if at >= 0 else table.append_column(name, column)
        pq.write_table(table, mixed / entry["path"])
    render_report(mixed, tmp_path / "heard.html", rejects_per_reason=5, progress=False)
    block = (tmp_path / "heard.html").read_text().split('data-reason="ingest.unknown_format"')[1].split("</div>")[0]
    assert "<th>expected (what was spoken)</th>" in block and "<th>heard (ASR)</th>" in block
    assert len(re.findall(r"the words to say \d", block)) == 3 == len(re.findall(r"the words heard \d", block))
    assert "match no known layout" in block  # the detail is still there
    render_report(builds[2], tmp_path / "plain.html", progress=False)  # rejected before the ASR: the detail alone
    plain = (tmp_path / "plain.html").read_text().split('data-reason="ingest.unknown_format"')[1].split("</div>")[0]
    assert "heard (ASR)" not in plain and "match no known layout" in plain


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
    questions = {q for _, t in iter_shards(partial, ["question_text"]) for q in t.column("question_text").to_pylist()}
    assert info["rows"] == len(questions) <= manifest["rows"] < 50
