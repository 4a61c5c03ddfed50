"""Per-build figures of the listen stage's columns, for ``inspect`` and the HTML report.

* DNSMOS: mean, min, p10 and p50 of each side's SIG/BAK/OVRL/P.808, and fixed-bin histograms.
* User voices, from the question speaker embeddings: a seeded sample of at most ``SAMPLE``
  embeddings of questions of at least ``MIN_SECONDS`` (the rows of smallest hash key, so the
  same rows whatever the shard order; any question when fewer than two are that long) is
  clustered (agglomerative, average linkage on cosine distance, merged while the similarity is
  at least ``SAME_VOICE``); every row is then assigned to the closest cluster centre to count
  rows and hours per voice. Similarity between voices is between cluster centres; within one
  voice, between pairs of sampled clips of one cluster.
* Assistant voice consistency: mean, min and p10 of ``answer_speaker_similarity``.

Two streaming passes over a few columns keep memory flat on any corpus size.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echoforge.pipeline.output import iter_shards, load_manifest
from echoforge.schemas.columns import LISTEN_FEATURES

#: Two clips whose embeddings are at least this similar count as one voice (see docs/columns.md).
SAME_VOICE = 0.8
SAMPLE = 2000
#: Clips shorter than this are assigned to a voice but not clustered: under Resemblyzer's 1.6 s
#: window a clip's embedding says more about its words than its speaker (docs/columns.md).
MIN_SECONDS = 2.0
DNSMOS_COLUMNS = [c for c in LISTEN_FEATURES if "_dnsmos_" in c]
HIST_BINS = np.linspace(1.0, 5.0, 81)


@dataclass
class ListenStats:
    """What the passes learn about one build."""

    name: str
    dnsmos: dict[str, np.ndarray] = field(default_factory=dict)  # column -> its values
    embeddings: np.ndarray | None = None  # the sampled question embeddings (n, 256)
    labels: np.ndarray | None = None  # voice of each sampled embedding
    centres: np.ndarray | None = None  # (voices, 256) normalised cluster means
    voice_rows: np.ndarray | None = None
    voice_seconds: np.ndarray | None = None
    declared: list[str] = field(default_factory=list)  # the most common question_speaker per voice
    assistant_similarity: np.ndarray | None = None
    assistant_similarity_long: np.ndarray | None = None  # of answers of MIN_SECONDS or more


def _key(seed: int, row_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{row_id}".encode()).digest()[:8], "big")


def _cluster(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Voice label per embedding, numbered by first appearance."""
    if len(emb) < 2:
        return np.zeros(len(emb), dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering

    raw = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                  distance_threshold=1.0 - threshold).fit_predict(emb)
    order = {c: i for i, c in enumerate(dict.fromkeys(raw.tolist()))}
    return np.array([order[c] for c in raw.tolist()], dtype=np.int64)


def collect_listen(root: str | Path, *, seed: int = 0, sample: int = SAMPLE,
                   threshold: float = SAME_VOICE) -> ListenStats | None:
    """The listen figures of a build; None when it has none (built before them, or with nothing on)."""
    manifest = load_manifest(root)
    features = manifest.get("features", {})
    stats = ListenStats(str(root).rstrip("/").rsplit("/", 1)[-1] or str(root))
    dnsmos_cols = [c for c in DNSMOS_COLUMNS if c in features]
    speaker = "question_speaker_embedding" in features
    if not dnsmos_cols and not speaker:
        return None
    cols = dnsmos_cols + (["id", "question_speaker_embedding", "question_duration_s", "answer_speaker_similarity",
                           "answer_duration_s"] if speaker else [])
    values: dict[str, list] = {c: [] for c in dnsmos_cols + ["answer_speaker_similarity"]}
    long_answers: list[float] = []
    heaps: tuple[list, list] = ([], [])  # (questions of MIN_SECONDS or more, any question)
    for _, table in iter_shards(root, cols):
        for c, seen in values.items():
            if c in table.column_names:
                seen.extend(v for v in table.column(c).to_pylist() if v is not None)
        if not speaker:
            continue
        long_answers += [s for s, d in zip(table.column("answer_speaker_similarity").to_pylist(),
                                           table.column("answer_duration_s").to_pylist())
                         if s is not None and (d or 0.0) >= MIN_SECONDS]
        for row_id, emb, secs in zip(table.column("id").to_pylist(), table.column("question_speaker_embedding").to_pylist(),
                                     table.column("question_duration_s").to_pylist()):
            if not emb or not any(emb):  # no embedding, or a clip with no voice
                continue
            entry = (-_key(seed, row_id), row_id, emb)
            for heap in heaps if (secs or 0.0) >= MIN_SECONDS else heaps[1:]:
                if len(heap) < sample:
                    heapq.heappush(heap, entry)
                elif entry[:2] > heap[0][:2]:
                    heapq.heapreplace(heap, entry)
    stats.dnsmos = {c: np.asarray(values[c], dtype=np.float64) for c in dnsmos_cols if values[c]}
    heap = heaps[0] if len(heaps[0]) >= 2 else heaps[1]
    if not stats.dnsmos and not heap:
        return None  # nothing measured (listen.dnsmos off, listen.speaker off)
    if not heap:
        return stats
    stats.assistant_similarity = np.asarray(values["answer_speaker_similarity"], dtype=np.float64)
    stats.assistant_similarity_long = np.asarray(long_answers, dtype=np.float64)
    stats.embeddings = np.asarray([e for _, _, e in sorted(heap, key=lambda e: (-e[0], e[1]))], dtype=np.float32)
    stats.labels = _cluster(stats.embeddings, threshold)
    centres = np.stack([stats.embeddings[stats.labels == k].mean(axis=0) for k in range(stats.labels.max() + 1)])
    stats.centres = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    _assign(root, stats)
    return stats


def _assign(root: str | Path, stats: ListenStats) -> None:
    """Second pass: every row's question to its closest voice (rows, seconds, declared speakers)."""
    k = len(stats.centres)
    stats.voice_rows, stats.voice_seconds = np.zeros(k, dtype=np.int64), np.zeros(k)
    declared: list[dict[str, int]] = [{} for _ in range(k)]
    for _, table in iter_shards(root, ["question_speaker_embedding", "question_duration_s", "question_speaker"]):
        embs = table.column("question_speaker_embedding").to_pylist()
        for emb, secs, who in zip(embs, table.column("question_duration_s").to_pylist(),
                                  table.column("question_speaker").to_pylist()):
            if not emb or not any(emb):  # no embedding, or a clip with no voice
                continue
            v = int(np.argmax(stats.centres @ np.asarray(emb, dtype=np.float32)))
            stats.voice_rows[v] += 1
            stats.voice_seconds[v] += secs or 0.0
            declared[v][who or "?"] = declared[v].get(who or "?", 0) + 1
    stats.declared = [max(d.items(), key=lambda kv: (kv[1], kv[0]))[0] if d else "" for d in declared]


def _summary(values: np.ndarray | None) -> dict[str, float] | None:
    if values is None or not len(values):
        return None
    return {"n": len(values), "mean": round(float(values.mean()), 4), "min": round(float(values.min()), 4),
            "p10": round(float(np.quantile(values, 0.1)), 4), "p50": round(float(np.quantile(values, 0.5)), 4)}


def pair_similarities(stats: ListenStats) -> tuple[np.ndarray, np.ndarray]:
    """(similarities between voice centres, similarities between sampled clips of one voice)."""
    if stats.centres is None:
        return np.zeros(0), np.zeros(0)
    upper = np.triu_indices(len(stats.centres), 1)
    between = (stats.centres @ stats.centres.T)[upper]
    sims = stats.embeddings @ stats.embeddings.T
    i, j = np.triu_indices(len(stats.embeddings), 1)
    same = stats.labels[i] == stats.labels[j]
    return between.astype(np.float64), sims[i[same], j[same]].astype(np.float64)


def listen_summary(stats: ListenStats | None) -> dict[str, Any] | None:
    """The figures ``inspect`` prints (JSON-ready)."""
    if stats is None:
        return None
    out: dict[str, Any] = {"dnsmos": {c: _summary(v) for c, v in stats.dnsmos.items()}}
    if stats.assistant_similarity is not None:
        out["answer_speaker_similarity"] = _summary(stats.assistant_similarity)
        out[f"answer_speaker_similarity_{MIN_SECONDS:g}s"] = _summary(stats.assistant_similarity_long)
    if stats.centres is not None:
        between, within = pair_similarities(stats)
        out["user_voices"] = {
            "distinct": len(stats.centres),
            "same_voice_similarity": SAME_VOICE,
            "sampled_clips": len(stats.embeddings),
            "declared_speakers": len({d for d in stats.declared if d}),
            "voices": [{"voice": f"v{i + 1}", "rows": int(r), "hours": round(float(s) / 3600, 6), "declared": d}
                       for i, (r, s, d) in enumerate(zip(stats.voice_rows, stats.voice_seconds, stats.declared))],
            "similarity_between_voices": _summary(between),
            "similarity_within_voice": _summary(within),
        }
    return out


def listen_lines(summary: dict[str, Any] | None) -> list[str]:
    """Lines of ``inspect`` for the listen figures (none for a build without them)."""
    if not summary:
        return []
    lines = []
    for col, q in summary["dnsmos"].items():
        if q:
            lines.append(f"{col}: mean {q['mean']} p10 {q['p10']} p50 {q['p50']} min {q['min']}")
    a, long = summary.get("answer_speaker_similarity"), summary.get(f"answer_speaker_similarity_{MIN_SECONDS:g}s")
    if a:
        lines.append(f"assistant voice consistency (answer_speaker_similarity): mean {a['mean']} "
                     f"p10 {a['p10']} min {a['min']}" + (f"; answers of {MIN_SECONDS:g} s or more: mean "
                                                         f"{long['mean']} min {long['min']}" if long else ""))
    u = summary.get("user_voices")
    if u:
        lines.append(f"user voices: {u['distinct']} distinct by speaker embedding (similarity >= "
                     f"{u['same_voice_similarity']}; {u['sampled_clips']} questions clustered, "
                     f"{u['declared_speakers']} declared speakers)")
        lines.append("hours by user voice: " + ", ".join(
            f"{v['voice']} ({v['declared']}) {v['hours']:.3f}" for v in u["voices"][:20])
            + (f", ... {len(u['voices']) - 20} more" if len(u["voices"]) > 20 else ""))
        for key in ("similarity_between_voices", "similarity_within_voice"):
            q = u[key]
            if q:
                lines.append(f"{key}: mean {q['mean']} p10 {q['p10']} p50 {q['p50']} min {q['min']} (n={q['n']})")
    return lines


# --- plots (for ``echoforge report``) ------------------------------------------------------


def pca_2d(emb: np.ndarray) -> np.ndarray:
    """(n, 2) projection on the two main axes, each axis signed so that its largest loading is positive."""
    centred = emb - emb.mean(axis=0)
    if len(emb) < 2:
        return np.zeros((len(emb), 2))
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    axes = vt[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    out = centred @ axes.T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
