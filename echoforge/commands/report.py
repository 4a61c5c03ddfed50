"""``echoforge report``: one self-contained HTML page to see and hear a build.

Two streaming passes keep memory flat on any corpus size: the first reads only the scalar
columns of every shard (fixed-bin histograms, speaker hours, codebook usage) and keeps the
ids of a seeded sample of rows; the second reads the sampled rows' audio, and nothing else.
Plots are matplotlib SVG inlined in the page; audio is the stored FLAC as ``data:`` URIs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from echoforge.audio import decode_audio
from echoforge.commands.listen_stats import HIST_BINS, SAME_VOICE, ListenStats, collect_listen, pair_similarities, pca_2d
from echoforge.errors import EchoforgeError
from echoforge.pipeline.output import iter_shards, load_manifest
from echoforge.pipeline.output import iter_rejects, open_build_file
from echoforge.storage import folder as open_folder

#: Histogram ranges shared by every build so that ``--compare`` overlays line up.
HISTOGRAMS: dict[str, float] = {
    "question_duration_s": 120.0,
    "answer_duration_s": 120.0,
    "question_wer": 2.0,
    "answer_wer": 2.0,
    "answer_chars_per_second": 60.0,
    "answer_units_per_second": 200.0,
    "answer_dedup_units_per_second": 200.0,
}
STAT_COLUMNS = ["id", "question_text", "question_voice", "answer_voice", "answer_units", "units_codebook_size", *HISTOGRAMS]
ROW_COLUMNS = ["id", "source_position", "question_text", "question_spoken", "question_audio", "question_voice",
               "question_duration_s", "question_wer", "answer_text", "answer_spoken", "answer_audio",
               "answer_sample_rate", "answer_voice", "answer_duration_s", "answer_wer", "alignment"]
REJECT_COLUMNS = ["id", "source_position", "stage", "reason", "detail"]
#: Shown with the rejects where a build's rejects table has them (what the ASR was to hear, and heard).
REJECT_TEXTS = ["expected", "heard"]
PLOTS = ("durations", "wer", "chars-per-second", "units-per-second", "codebook-usage", "speaker-hours", "rejects")
COLORS = ("#1f77b4", "#d62728")
BINS = 2000
PLOT_BARS = 40
MIN_SPAN = 0.2  # a histogram's x range spans at least this share of its values' centre


@dataclass
class Histogram:
    """Fixed bins over ``[0, hi]`` filled batch by batch; values above ``hi`` land in the last bin."""

    hi: float
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    n: int = 0
    total: float = 0.0
    over: int = 0

    def add(self, values: np.ndarray) -> None:
        values = values[~np.isnan(values)]
        if not len(values):
            return
        self.n += len(values)
        self.total += float(values.sum())
        self.over += int((values > self.hi).sum())
        idx = np.clip((values / self.hi * BINS).astype(np.int64), 0, BINS - 1)
        self.counts += np.bincount(idx, minlength=BINS)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass
class BuildStats:
    """What the first pass learns about one build."""

    name: str
    manifest: dict[str, Any]
    hists: dict[str, Histogram]
    speaker_seconds: dict[str, list[float]]  # voice -> [question seconds, answer seconds]
    codebook: np.ndarray  # frames per unit id, over every codebook
    sample: list[tuple[str, dict[str, Any]]]  # (row id, shard entry) of the seeded sample
    fingerprint: str | None  # of the row settings in _echoforge/build.json


def _key(seed: int, name: str) -> int:
    """A seeded, order-free sampling key: the items with the smallest keys are the sample."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{name}".encode()).digest()[:8], "big")


class Sample:
    """The ``size`` items of smallest seeded key, at most one per group (rows asking the same
    question are one group), whatever order they come in."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed = size, seed
        self.held: dict[Any, tuple[int, Any]] = {}  # group -> (key, item)
        self._worst: tuple[int, Any] | None = None  # (key, group) of the largest key held

    def offer(self, name: str, item: Any, group: Any = None) -> None:
        if not self.size:
            return
        key, group = _key(self.seed, name), name if group is None else group
        if group in self.held:
            if key < self.held[group][0]:
                self.held[group] = (key, item)
                self._worst = None
            return
        if len(self.held) >= self.size:
            if self._worst is None:
                self._worst = max((k, g) for g, (k, _) in self.held.items())
            if key >= self._worst[0]:
                return
            del self.held[self._worst[1]]
        self.held[group] = (key, item)
        self._worst = None

    def items(self) -> list[Any]:
        return [item for _, item in sorted(self.held.values(), key=lambda e: e[0])]


def _floats(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)


def collect_stats(root: str | Path, *, rows: int, seed: int, bar) -> BuildStats:
    """First pass: distributions, speaker hours, codebook usage and the row sample of one build."""
    manifest = load_manifest(root)
    hists = {c: Histogram(hi) for c, hi in HISTOGRAMS.items()}
    speakers: dict[str, list[float]] = {}
    codebook = np.zeros(0, dtype=np.int64)
    sample = Sample(rows, seed)
    files, last = 0, None
    for shard, table in iter_shards(root, STAT_COLUMNS):
        if shard["path"] != last:  # Parquet shards come a row group at a time: count files
            files, last = files + 1, shard["path"]
            bar.update(1)
        for column, hist in hists.items():
            hist.add(_floats(table, column))
        q_dur, a_dur = _floats(table, "question_duration_s"), _floats(table, "answer_duration_s")
        for side, voices, durations in ((0, table.column("question_voice").to_pylist(), q_dur),
                                        (1, table.column("answer_voice").to_pylist(), a_dur)):
            for voice, seconds in zip(voices, durations):
                if voice is not None and not np.isnan(seconds):
                    speakers.setdefault(voice, [0.0, 0.0])[side] += float(seconds)
        units = pc.list_flatten(pc.list_flatten(table.column("answer_units"))).to_numpy(zero_copy_only=False)
        if len(units):
            size = max(int(pc.max(table.column("units_codebook_size")).as_py() or 0), int(units.max()) + 1)
            counts = np.bincount(units, minlength=max(size, len(codebook)))
            counts[: len(codebook)] += codebook
            codebook = counts
        for row_id, question in zip(table.column("id").to_pylist(), table.column("question_text").to_pylist()):
            sample.offer(row_id, (row_id, shard), group=question)
    bar.update(len(manifest["shards"]) - files)
    return BuildStats(_build_name(root), manifest, hists, speakers, codebook, sample.items(), _fingerprint(root))


def _fingerprint(root: str | Path) -> str | None:
    """The config fingerprint of the row settings the build recorded (None for a build without them)."""
    from echoforge.config import settings_fingerprint
    from echoforge.pipeline.layout import BUILD

    try:
        return settings_fingerprint(json.loads(open_build_file(root, BUILD).read())["config"])
    except (FileNotFoundError, KeyError, ValueError):
        return None


def _build_name(root: str | Path) -> str:
    return str(root).rstrip("/").rsplit("/", 1)[-1] or str(root)


def fetch_rows(root: str | Path, fmt: str, shard: dict[str, Any], ids: set[str]) -> list[dict[str, Any]]:
    """The rows of one shard whose id is in ``ids``; Parquet reads only their row groups."""
    out = []
    with open_build_file(root, shard["path"]) as f:
        if fmt == "arrow":
            for batch in pa.ipc.open_stream(f):
                mask = pc.is_in(batch.column("id"), pa.array(sorted(ids)))
                out += pa.Table.from_batches([batch]).filter(mask).select(ROW_COLUMNS).to_pylist()
            return out
        pf = pq.ParquetFile(f, pre_buffer=False)
        positions = [i for i, rid in enumerate(pf.read(columns=["id"]).column("id").to_pylist()) if rid in ids]
        starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
        for group in sorted({int(np.searchsorted(starts, p, side="right")) - 1 for p in positions}):
            table = pf.read_row_group(group, columns=ROW_COLUMNS)
            out += [r for r in table.to_pylist() if r["id"] in ids]
    return out


def sample_rejects(root: str | Path, *, per_reason: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """A seeded sample of ``per_reason`` rejects for every stage.reason, read from the rejects files
    (with what the ASR was to hear and heard, where the rejects table has those columns)."""
    samples: dict[str, Sample] = {}
    manifest = load_manifest(root)
    columns = REJECT_COLUMNS
    if manifest["rejects"]:
        with open_build_file(root, manifest["rejects"][0]["path"]) as f:
            columns = REJECT_COLUMNS + [c for c in REJECT_TEXTS if c in pq.read_schema(f).names]
    for table in iter_rejects(root, columns):
        for r in table.to_pylist():
            reason = f"{r['stage']}.{r['reason']}"
            samples.setdefault(reason, Sample(per_reason, seed)).offer(f"{r['id']}\0{r['source_position']}", r)
    return {reason: sample.items() for reason, sample in sorted(samples.items())}


# --- plots -------------------------------------------------------------------------------


def _svg(fig, name: str) -> str:
    """A matplotlib figure as inline SVG markup (text as text, ids unique per figure, no date)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float, cols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, cols, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    return fig, axes


def _legends_below(fig, axes) -> None:
    """Put each axes' legend under its tick labels and axis label, so that it never covers bars,
    lines or an axis (the page's SVG is cropped to whatever the figure holds)."""
    fig.draw_without_rendering()  # lays out tick labels, whose extent decides where "under" is
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            bottom = ax.get_tightbbox().transformed(ax.transAxes.inverted()).y0
            ax.legend(loc="upper left", bbox_to_anchor=(0, bottom - 0.03), borderaxespad=0, fontsize=7,
                      frameon=False)


def _hist_axes(ax, builds: list[BuildStats], column: str, title: str, xlabel: str,
               limits: list[tuple[float, str]]) -> None:
    """Overlay one column's histogram of every build with the gate's ``limits`` (value, label) drawn in.

    The x range covers the values and the limits, and at least MIN_SPAN of the values' centre, so
    that values bunched in a narrow range (units per second of a 50 Hz tokenizer: 49.4 to 50.8)
    look like the spike they are; it is cut into about PLOT_BARS bars. With more than one build,
    each build's bars are its share of rows, so builds of any size compare.
    """
    hists = [b.hists[column] for b in builds]
    used = np.flatnonzero(sum(h.counts for h in hists))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    if not len(used):
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center", color="grey")
        return
    width = hists[0].hi / BINS
    lo, hi = int(used[0]), int(used[-1]) + 1
    span = int(MIN_SPAN * (lo + hi) / 2)
    if hi - lo < span:
        lo = max(0, (lo + hi - span) // 2)
        hi = lo + span
    for value, _ in limits:
        lo, hi = min(lo, int(value / width)), max(hi, int(np.ceil(value / width)) + 1)
    step = max(1, -(-(hi - lo) // PLOT_BARS))
    lo = lo // step * step
    hi = lo + -(-(hi - lo) // step) * step
    edges = np.arange(lo, hi + 1, step) * width
    share = len(builds) > 1
    for i, (b, h) in enumerate(zip(builds, hists)):
        counts = np.pad(h.counts, (0, max(0, hi - BINS)))[lo:hi].reshape(-1, step).sum(axis=1)
        mean = f", mean {h.mean:.2f}" if h.mean is not None else ""
        over = f", {h.over} above {h.hi:g}" if h.over else ""
        ax.stairs(counts / max(h.n, 1) if share else counts, edges, fill=not share, alpha=1.0 if share else 0.55,
                  color=COLORS[i % len(COLORS)] if share else None, linewidth=1.6,
                  label=f"{b.name} (n={h.n}{mean}{over})")
    pad = 0.03 * (edges[-1] - edges[0])
    ax.set_xlim(max(0.0, edges[0] - pad), edges[-1] + pad)
    ax.set_ylabel("share of rows" if share else "rows")
    for value, label in limits:
        ax.axvline(value, color="black", linestyle="--", linewidth=1)
        x0, x1 = ax.get_xlim()
        right = (value - x0) / (x1 - x0) > 0.5  # the label goes on the side with room
        ax.text(value, 0.98, f"{label} {value:g} " if right else f" {label} {value:g}",
                ha="right" if right else "left", transform=ax.get_xaxis_transform(), va="top", fontsize=7)


#: Histogram plots: name -> panels of (column, title, x label, gate limits drawn as (config key, label)).
HISTOGRAM_PLOTS: dict[str, list[tuple[str, str, str, tuple[tuple[str, str], ...]]]] = {
    "durations": [("question_duration_s", "Question duration", "seconds", ()),
                  ("answer_duration_s", "Answer duration", "seconds", ())],
    "wer": [("question_wer", "Question WER (ASR round trip)", "word error rate", (("max_question_wer", "gate max"),)),
            ("answer_wer", "Answer WER (ASR round trip)", "word error rate", (("max_answer_wer", "gate max"),))],
    "chars-per-second": [("answer_chars_per_second", "Answer characters per second", "characters / second",
                          (("min_chars_per_second", "gate min"), ("max_chars_per_second", "gate max")))],
    "units-per-second": [("answer_units_per_second", "Answer units per second", "units / second", ()),
                         ("answer_dedup_units_per_second", "After deduplication", "units / second", ())],
}


def plot_histograms(builds: list[BuildStats], name: str):
    panels = HISTOGRAM_PLOTS[name]
    gate = builds[0].manifest["config"].get("gate", {})
    fig, axes = _figure(10, 3.2, len(panels))
    for ax, (column, title, xlabel, limits) in zip(axes, panels):
        _hist_axes(ax, builds, column, title, xlabel,
                   [(gate[key], label) for key, label in limits if gate.get(key) is not None])
    _legends_below(fig, axes)
    return fig


def plot_codebook(builds: list[BuildStats]):
    fig, (ax,) = _figure(10, 3.0)
    ax.set_title("Codebook usage (units ranked by frequency)", fontsize=10)
    for i, b in enumerate(builds):
        counts = np.sort(b.codebook)[::-1]
        total = counts.sum()
        if not total:
            continue
        share = counts / total
        used = int((counts > 0).sum())
        p = share[share > 0]
        perplexity = float(np.exp(-(p * np.log(p)).sum()))
        ax.plot(np.arange(1, len(share) + 1), share, color=COLORS[i % len(COLORS)],
                label=f"{b.name}: {used} of {len(counts)} units used, perplexity {perplexity:.0f}")
    if not ax.lines:
        ax.text(0.5, 0.5, "no units", transform=ax.transAxes, ha="center", va="center", color="grey")
    else:
        ax.set_yscale("log")
    ax.set_xlabel("unit rank")
    ax.set_ylabel("share of frames")
    _legends_below(fig, [ax])
    return fig


def plot_speakers(builds: list[BuildStats]):
    """Hours per voice; with more than one build, each build's share of its own hours."""
    voices = sorted({v for b in builds for v in b.speaker_seconds})
    fig, (ax,) = _figure(10, max(1.6, 0.45 * max(1, len(voices)) * len(builds) + 0.8))
    share = len(builds) > 1
    ax.set_title("Share of speech per speaker" if share else "Hours per speaker (question + answer)", fontsize=10)
    height = 0.8 / len(builds)
    for i, b in enumerate(builds):
        y = np.arange(len(voices)) + i * height
        scale = 1 / max(sum(map(sum, b.speaker_seconds.values())), 1e-9) if share else 1 / 3600
        q = np.array([b.speaker_seconds.get(v, [0.0, 0.0])[0] * scale for v in voices])
        a = np.array([b.speaker_seconds.get(v, [0.0, 0.0])[1] * scale for v in voices])
        color = COLORS[i % len(COLORS)]
        ax.barh(y, q, height, color=color, alpha=0.45, label=f"{b.name}: questions")
        ax.barh(y, a, height, left=q, color=color, alpha=0.9, label=f"{b.name}: answers")
    ax.set_yticks(np.arange(len(voices)) + height * (len(builds) - 1) / 2, voices)
    ax.invert_yaxis()  # the first voice and build on top, as the legend lists them
    ax.set_xlabel("share of the build's speech (question + answer)" if share else "hours")
    _legends_below(fig, [ax])
    return fig


def plot_rejects(builds: list[BuildStats]):
    """Rejected turns by stage and reason; with more than one build, as a share of each build's turns."""
    reasons = sorted({r for b in builds for r in b.manifest["rejects_by_reason"]})
    fig, (ax,) = _figure(10, max(1.6, 0.4 * max(1, len(reasons)) * len(builds) + 0.8))
    ax.set_title("Rejects by stage and reason", fontsize=10)
    if not reasons:
        ax.text(0.5, 0.5, "no rejects", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.set_yticks([])
        return fig
    share = len(builds) > 1
    height = 0.8 / len(builds)
    for i, b in enumerate(builds):
        turns = max(b.manifest["rows"] + b.manifest["rejected"], 1) if share else 1
        counts = [b.manifest["rejects_by_reason"].get(r, 0) / turns for r in reasons]
        ax.barh(np.arange(len(reasons)) + i * height, counts, height, color=COLORS[i % len(COLORS)], label=b.name)
    ax.set_yticks(np.arange(len(reasons)) + height * (len(builds) - 1) / 2, reasons)
    ax.invert_yaxis()
    ax.set_xlabel("share of the build's turns" if share else "turns")
    if share:
        _legends_below(fig, [ax])
    return fig


def figures(builds: list[BuildStats]) -> dict:
    """Every plot of the distributions section as a matplotlib figure, by name."""
    makers = {"codebook-usage": plot_codebook, "speaker-hours": plot_speakers, "rejects": plot_rejects}
    return {name: makers[name](builds) if name in makers else plot_histograms(builds, name) for name in PLOTS}


def plot_words(audio: np.ndarray, rate: int, words: list[dict[str, Any]], duration: float) -> str:
    """The answer waveform (min/max envelope) with each aligned word drawn over its time span."""
    width = float(np.clip(duration * 1.6, 8.0, 60.0))
    fig, (ax,) = _figure(width, 2.2)
    if len(audio):
        columns = int(width * 100)
        hop = max(1, len(audio) // columns)
        frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
        t = np.arange(len(frames)) * hop / rate
        ax.fill_between(t, frames.min(axis=1), frames.max(axis=1), color="#555555", linewidth=0)
    for i, w in enumerate(words or []):
        if w.get("start_s") is None or w.get("end_s") is None:
            continue
        ax.axvspan(w["start_s"], w["end_s"], color=COLORS[i % 2], alpha=0.18, linewidth=0)
        ax.text((w["start_s"] + w["end_s"]) / 2, 1.02 + 0.16 * (i % 3), w["word"], ha="center", va="bottom",
                fontsize=8, transform=ax.get_xaxis_transform())
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.set_xlabel("seconds")
    return _svg(fig, "words")


# --- page --------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;
color:#222;line-height:1.4}
h1{margin-bottom:.1em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
nav a{margin-right:1em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;font-size:.92em}
td:last-child{overflow-wrap:anywhere}
th{background:#f5f5f5}figure{margin:1em 0}figure svg{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}.warn{background:#fff3cd;border:1px solid #e0c060;padding:.5em 1em}
article.row{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.players{display:flex;gap:2em;flex-wrap:wrap}.players figure{margin:.3em 0}
.packages{font-size:.85em;color:#555}.waveform{overflow-x:auto}.waveform svg{max-width:none}.texts td{width:45%}.muted{color:#777}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...] | None = None, cls: str = "") -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + f"<th>{_e(r[0])}</th>" + "".join(f"<td>{_e(c)}</td>" for c in r[1:]) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}">{head}{body}</table>'


def _summary(builds: list[BuildStats]) -> str:
    def fig(b: BuildStats) -> dict[str, str]:
        m = b.manifest
        voices = sorted(b.speaker_seconds)
        return {
            "rows": f"{m['rows']} (train {m['rows_by_split']['train']}, validation {m['rows_by_split']['validation']})",
            "rejected turns": str(m["rejected"]),
            "hours (question / answer)": f"{m['hours'] - m['answer_hours']:.3f} / {m['answer_hours']:.3f}",
            "speakers": f"{len(voices)}: {', '.join(voices)}" if voices else "0",
            "unit tokenizer": str(m["models"].get("tokenizer", "?")),
            "config fingerprint": b.fingerprint or "not recorded",
            "work units committed": f"{m['committed_units']} of {m['num_units']}",
            "format": m["format"],
        }
    figures = [fig(b) for b in builds]
    rows = [(k, *(f[k] for f in figures)) for k in figures[0]]
    header = ("", *(b.name for b in builds)) if len(builds) > 1 else None
    out = [_table(rows, header, "summary")]
    for b in builds:
        if not b.manifest["complete"]:
            out.append(f'<p class="warn">{_e(b.name)} is a partial build: {b.manifest["committed_units"]} of '
                       f'{b.manifest["num_units"]} work units are committed; the figures cover those.</p>')
    m = builds[0].manifest
    out.append("<h3>Models</h3>" + _table(sorted(m["models"].items())))
    packages = " · ".join(f"{name} {v}" for name, v in sorted(m.get("packages", {}).items()))
    out.append(f'<h3>Packages</h3><p class="packages">{_e(packages)}</p>')
    return "".join(out)


def _plots(builds: list[BuildStats]) -> str:
    captions = {
        "durations": "Durations of the spoken question and answer.",
        "wer": "Word error rate of the ASR round trip; dashed: gate.max_question_wer and gate.max_answer_wer "
               "(a limit fires only with at least gate.min_word_errors wrong words).",
        "chars-per-second": "Speaking rate of the answers; dashed: the gate's limits.",
        "units-per-second": "Speech units per second of answer audio, before and after collapsing repeated units.",
        "codebook-usage": "How evenly the answers use the unit codebook (all codebooks).",
        "speaker-hours": "Speech per voice: hours (with --compare, each build's share of its own speech).",
        "rejects": "Refused turns by stage and reason (with --compare, each build's share of its turns).",
    }
    return "".join(f'<figure class="plot" data-plot="{name}">{svg}<figcaption>{_e(captions[name])}</figcaption>'
                   "</figure>" for name, svg in ((n, _svg(f, n)) for n, f in figures(builds).items()))


def _audio(cell: dict[str, Any] | None, label: str, voice: str | None, duration: float | None) -> str:
    if not cell or not cell.get("bytes"):
        return f'<figure><figcaption>{_e(label)}: audio not stored</figcaption></figure>'
    data = cell["bytes"]
    info = f"{label}: {voice}, {duration:.2f} s" if duration is not None else label
    uri = "data:audio/flac;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure><figcaption>{_e(info)}</figcaption><audio controls preload="metadata" '
            f'data-side="{_e(label.lower())}" data-duration="{duration or 0:.4f}" src="{uri}"></audio></figure>')


def _row(row: dict[str, Any]) -> str:
    q_wer = "" if row["question_wer"] is None else f", question WER {row['question_wer']:.2f}"
    a_wer = "" if row["answer_wer"] is None else f", answer WER {row['answer_wer']:.2f}"
    texts = _table([("question", row["question_text"], row["question_spoken"]),
                    ("answer", row["answer_text"], row["answer_spoken"])], ("", "original", "spoken"), "texts")
    cell = row["answer_audio"]
    if cell and cell.get("bytes"):
        audio, rate = decode_audio(cell["bytes"])
    else:
        audio, rate = np.zeros(0, dtype=np.float32), int(row["answer_sample_rate"] or 1)
    wave = plot_words(audio, rate, row["alignment"] or [], float(row["answer_duration_s"] or 0.0))
    return (f'<article class="row" data-id="{_e(row["id"])}"><h3>{_e(row["id"])}</h3>'
            f'<p class="muted">{_e(row["source_position"])}{_e(q_wer)}{_e(a_wer)}</p>'
            f'<div class="players">{_audio(row["question_audio"], "Question", row["question_voice"], row["question_duration_s"])}'
            f'{_audio(cell, "Answer", row["answer_voice"], row["answer_duration_s"])}</div>{texts}'
            f'<figure class="waveform" data-plot="words">{wave}<figcaption>Answer waveform with each word at its '
            f'aligned time (the alignment column).</figcaption></figure></article>')


def _turns(n: int) -> str:
    return f"{n} turn" if n == 1 else f"{n} turns"


def _clip(text: str | None, limit: int = 400) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + " …"


def _rejects(samples: dict[str, list[dict[str, Any]]], counts: dict[str, int]) -> str:
    """Sample rejects per reason: what the ASR was to hear and what it heard where the rejects hold
    them (columns ``expected`` and ``heard``), the detail otherwise."""
    if not samples:
        return "<p>No rejects.</p>"
    out = []
    for reason, rows in samples.items():
        out.append(f'<div class="reject-reason" data-reason="{_e(reason)}"><h3>{_e(reason)} '
                   f'<span class="muted">({_turns(counts.get(reason, len(rows)))})</span></h3>')
        if any(r.get("expected") or r.get("heard") for r in rows):
            table = _table([(r["id"], r["source_position"], _clip(r.get("expected")), _clip(r.get("heard")),
                             _clip(r["detail"])) for r in rows],
                           ("id", "input position", "expected (what was spoken)", "heard (ASR)", "detail"), "heard")
        else:
            table = _table([(r["id"], r["source_position"], _clip(r["detail"])) for r in rows],
                           ("id", "input position", "detail"))
        out.append(table + "</div>")
    return "".join(out)


def render_report(root: str | Path, output: str | Path | None = None, *, rows: int = 8, seed: int = 0,
                  compare: str | Path | None = None, rejects_per_reason: int = 3,
                  progress: bool = True) -> dict[str, Any]:
    """Write the HTML report of a build (and, with ``compare``, a second build overlaid); return what it holds.

    The page goes to ``output``, or to ``report.html`` inside the build (on any filesystem).
    """
    from tqdm import tqdm

    from echoforge import __version__

    t0 = time.perf_counter()
    manifests = [load_manifest(r) for r in ([root, compare] if compare else [root])]
    files = sum(len(m["shards"]) for m in manifests) + len(manifests[0]["rejects"])
    bar_options = {"unit": "file", "file": sys.stderr, "dynamic_ncols": True, "disable": not progress}
    with tqdm(total=files, desc="report: figures", **bar_options) as bar:
        builds = [collect_stats(root, rows=rows, seed=seed, bar=bar)]
        if compare:
            builds.append(collect_stats(compare, rows=0, seed=seed, bar=bar))
        rejects = sample_rejects(root, per_reason=rejects_per_reason, seed=seed)
        bar.update(len(manifests[0]["rejects"]))
    if len(builds) > 1 and builds[1].name == builds[0].name:
        builds[1].name += " (compare)"
    main = builds[0]
    by_shard: dict[str, tuple[dict, set[str]]] = {}
    for rid, shard in main.sample:
        by_shard.setdefault(shard["path"], (shard, set()))[1].add(rid)
    fetched: dict[str, dict[str, Any]] = {}
    with tqdm(total=len(by_shard), desc="report: sample rows", **bar_options) as bar:
        for shard, ids in by_shard.values():
            fetched.update({r["id"]: r for r in fetch_rows(root, main.manifest["format"], shard, ids)})
            bar.update(1)
    sample_rows = [fetched[rid] for rid, _ in main.sample if rid in fetched]
    listen_page, listen_plots = listen_html([root, compare] if compare else [root])
    title = f"echoforge report: {main.name}" + (f" vs {builds[1].name}" if compare else "")
    row_html = "".join(_row(r) for r in sample_rows) or "<p>No rows.</p>"
    compare_note = (f"<p>{_e(builds[1].name)} is overlaid in the plots, each build as its share of rows, speech "
                    f"or turns so that builds of any size compare; the sample rows and rejects are "
                    f"{_e(main.name)}'s.</p>" if compare else "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body><header><h1>{_e(title)}</h1><p class="muted">echoforge {_e(__version__)} · {_e(root)}</p>
<nav><a href="#summary">Summary</a><a href="#distributions">Distributions</a><a href="#rows">Sample rows</a>
<a href="#rejects">Rejects</a></nav></header>
<section id="summary"><h2>Summary</h2>{_summary(builds)}</section>
<section id="distributions"><h2>Distributions</h2>{compare_note}{_plots(builds)}{listen_page}</section>
<section id="rows"><h2>Sample rows</h2><p class="muted">{len(sample_rows)} rows drawn with seed {seed}
from {main.manifest['rows']}, each asking a different question.</p>{row_html}</section>
<section id="rejects"><h2>Rejects</h2><p class="muted">Up to {rejects_per_reason} turns per reason, drawn with
seed {seed}.</p>{_rejects(rejects, main.manifest['rejects_by_reason'])}</section>
</body></html>
"""
    data = page.encode()
    try:
        if output is None:
            folder = open_folder(root)
            folder.write_bytes("report.html", data)
            output = folder.url_of("report.html")
        else:
            Path(output).write_bytes(data)
    except OSError as exc:
        raise EchoforgeError(f"cannot write the report to {output or root}: {exc.strerror or exc}") from None
    return {"output": str(output), "bytes": len(data), "rows": len(sample_rows),
            "rejects": sum(len(v) for v in rejects.values()), "plots": [*PLOTS, *listen_plots],
            "seconds": round(time.perf_counter() - t0, 2)}


# --- the listen stage's figures ---------------------------------------------------------

def listen_plots(builds: list[ListenStats]) -> dict[str, str]:
    """Inline SVG plots: DNSMOS distributions, assistant similarity, user voices (PCA), hours per voice."""
    plots: dict[str, str] = {}
    if any(b.dnsmos for b in builds):
        fig, axes = _figure(10, 3.2, 2)
        for ax, side in zip(axes, ("question", "answer")):
            ax.set_title(f"{side.capitalize()} DNSMOS", fontsize=10)
            for i, b in enumerate(builds):
                for j, k in enumerate(("sig", "bak", "ovrl", "p808")):
                    v = b.dnsmos.get(f"{side}_dnsmos_{k}")
                    if v is not None and len(v):
                        ax.hist(v, HIST_BINS, histtype="step", linewidth=1.4, linestyle=("-", "--")[i % 2],
                                color=f"C{j}", label=f"{b.name} {k.upper()} (mean {v.mean():.2f})")
            ax.set_xlabel("MOS (1..5)")
            ax.set_ylabel("rows")
            ax.legend(fontsize=7, frameon=False)
        plots["dnsmos"] = _svg(fig, "dnsmos")
    with_sim = [b for b in builds if b.assistant_similarity is not None and len(b.assistant_similarity)]
    if with_sim:
        fig, axes = _figure(10, 3.2, 2)
        ax = axes[0]
        ax.set_title("Answers against the assistant voice's reference", fontsize=10)
        for i, b in enumerate(with_sim):
            s = b.assistant_similarity
            ax.hist(s, np.linspace(min(0.5, s.min()), 1.0, 51), histtype="step", linewidth=1.6,
                    color=COLORS[i % len(COLORS)], label=f"{b.name} (mean {s.mean():.3f}, min {s.min():.3f})")
        ax.set_xlabel("cosine similarity")
        ax.set_ylabel("rows")
        ax.legend(fontsize=7, frameon=False)
        ax = axes[1]
        ax.set_title("User voices: pairs of clips", fontsize=10)
        for i, b in enumerate(with_sim):
            between, within = pair_similarities(b)
            for values, what, style in ((within, "within one voice", "-"), (between, "between voices", "--")):
                if len(values):
                    ax.hist(values, np.linspace(-0.2, 1.0, 61), histtype="step", density=True, linestyle=style,
                            color=COLORS[i % len(COLORS)], label=f"{b.name}: {what} (n={len(values)})")
        ax.axvline(SAME_VOICE, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel("cosine similarity")
        ax.legend(fontsize=7, frameon=False)
        plots["speaker-similarity"] = _svg(fig, "speaker-similarity")
    main = builds[0]
    if main.embeddings is not None:
        fig, axes = _figure(10, 4.0, 2)
        xy = pca_2d(main.embeddings)
        ax = axes[0]
        ax.set_title(f"User voices, PCA of {len(xy)} question embeddings", fontsize=10)
        ax.scatter(xy[:, 0], xy[:, 1], c=main.labels % 20, cmap="tab20", s=9, linewidths=0)
        ax.set_xlabel("first component")
        ax.set_ylabel("second component")
        ax = axes[1]
        order = np.argsort(-main.voice_seconds, kind="stable")[:30]
        names = [f"v{k + 1} {main.declared[k]}" for k in order]
        ax.barh(np.arange(len(order)), main.voice_seconds[order] / 3600, color=COLORS[0])
        ax.set_yticks(np.arange(len(order)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"Hours per user voice ({len(main.centres)} voices)", fontsize=10)
        ax.set_xlabel("hours of questions")
        plots["user-voices"] = _svg(fig, "user-voices")
    return plots


CAPTIONS = {
    "dnsmos": "DNSMOS of each side (P.835 SIG, BAK, OVRL; P.808), the listen stage's figures.",
    "speaker-similarity": "Left: each answer's speaker embedding against the assistant voice's reference. "
                          f"Right: user clips of one voice and user voices against each other; dotted: {SAME_VOICE}, "
                          "the similarity at which clips count as one voice.",
    "user-voices": "User voices found by clustering the question speaker embeddings: a 2-D projection "
                   "(one colour per voice) and the hours of questions each voice speaks, with the declared "
                   "speaker most of its rows name.",
}


def listen_html(roots: list[str | Path]) -> tuple[str, list[str]]:
    """The report's listen figures of one or two builds, as HTML, and the names of its plots."""
    import html

    builds = [s for s in (collect_listen(r) for r in roots) if s is not None]
    if not builds:
        return "", []
    plots = listen_plots(builds)
    page = "".join(f'<figure class="plot" data-plot="{name}">{svg}<figcaption>{html.escape(CAPTIONS[name])}'
                   "</figcaption></figure>" for name, svg in plots.items())
    return page, list(plots)
