"""`echoforge export` on a large build: is memory flat in the row count, and does the number of
files follow the shard size rather than the build's work units?

    python benchmarks/export_scale.py --rows 1000 10000 --shard-size 1000 --formats echox webdataset

Writes a synthetic build of ``--rows`` rows straight through the schema module (small payloads:
0.2 s of question and answer audio, 10 unit frames, two aligned words per row), with one
Parquet row group per work unit of 16 rows and 143 work units per Parquet file (the layout a
real build's default shard plan makes), 90 % train and 10 % validation. Each export runs in a fresh process; the table gives its wall time, peak RSS and
the files it wrote (markers and export.json not counted) in two kinds: shard files (JSONL
parts, tars, manifests) and the one audio file per row of the formats that point at loose files
(``echox``), next to the build's work units. ``nemo`` runs with ``tarred``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from echoforge.audio import encode_flac  # noqa: E402
from echoforge.schemas.columns import QUESTION_SAMPLE_RATE, ROW_FEATURES, row_schema  # noqa: E402

UNIT_ROWS = 16
UNITS_PER_SHARD = 143  # the default shard plan's units per Parquet file (500 MB shards at real payloads)
MEASURE = """
import resource, sys, time
from echoforge.commands.export import export_build
t0 = time.perf_counter()
report = export_build(sys.argv[1], sys.argv[2], sys.argv[3], shard_size=int(sys.argv[4]),
                      tarred=sys.argv[2] == "nemo")
print(round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
      report["shards_written"])
"""


def synthetic_row(i: int, split: str, rng: np.random.Generator) -> dict:
    question = encode_flac(0.1 * rng.standard_normal(QUESTION_SAMPLE_RATE // 5).astype(np.float32),
                           QUESTION_SAMPLE_RATE)
    answer = encode_flac(0.1 * rng.standard_normal(22050 // 5).astype(np.float32), 22050)
    units = rng.integers(0, 500, size=(1, 10)).tolist()
    row = dict.fromkeys(ROW_FEATURES, None)
    row.update(
        id=f"synthetic-{split}-{i:07d}", source="synthetic", source_position=f"synthetic:row {i}",
        conversation_id=f"c{i}", turn_index=0, history=[], question_text="What is this?",
        question_spoken="What is this?", question_audio={"bytes": question, "path": None}, question_voice="v",
        question_speaker="s", question_speaking_rate=1.0, question_duration_s=0.2, answer_text="It is a test.",
        answer_spoken="It is a test.", answer_audio={"bytes": answer, "path": None}, answer_sample_rate=22050,
        answer_voice="v", answer_speaker="s", answer_speaking_rate=1.0, answer_duration_s=0.2,
        answer_units=units, answer_units_dedup=units, answer_unit_durations=[1] * 10,
        units_tokenizer="whisper-kmeans:k500", units_frame_rate=50.0, units_codebook_size=500,
        alignment=[{"word": "It", "start_s": 0.0, "end_s": 0.1, "unit_start": 0, "unit_end": 5, "dedup_start": 0,
                    "dedup_end": 5},
                   {"word": "test", "start_s": 0.1, "end_s": 0.2, "unit_start": 5, "unit_end": 10,
                    "dedup_start": 5, "dedup_end": 10}],
        segments=[], echo_segments=[{"text": "It is a test.", "num_tokens": 5, "start_s": 0.0, "end_s": 0.2,
                                     "unit_start": 0, "unit_end": 10, "dedup_start": 0, "dedup_end": 10}],
        speakable_notes=[], question_wer=0.0, answer_wer=0.0)
    return row


def synthetic_build(root: Path, rows: int) -> int:
    """Write a build of ``rows`` rows (one row group per work unit, ``UNITS_PER_SHARD`` work units
    per Parquet file, as a real build's shard plan makes them); returns its work units."""
    rng = np.random.default_rng(0)
    (root / "data").mkdir(parents=True)
    counts = {"train": rows - rows // 10, "validation": rows // 10}
    shards, units = [], 0
    for split, count in counts.items():
        per_file = UNIT_ROWS * UNITS_PER_SHARD
        for n, first in enumerate(range(0, count, per_file)):
            last = min(count, first + per_file)
            path = f"data/{split}-{n:05d}.parquet"
            with pq.ParquetWriter(root / path, row_schema()) as writer:
                for start in range(first, last, UNIT_ROWS):
                    batch = [synthetic_row(i, split, rng) for i in range(start, min(last, start + UNIT_ROWS))]
                    writer.write_table(pa.Table.from_pylist(batch, schema=row_schema()))
                    units += 1
            shards.append({"split": split, "shard": n, "path": path, "rows": last - first, "sha256": path})
    manifest = {"format": "parquet", "shards": shards, "rows": rows, "features": ROW_FEATURES.to_dict(),
                "config": {"synthesis": {"keep_answer_audio": True}}, "models": {}, "num_units": units}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return units


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--formats", nargs="+", default=["echox", "webdataset", "lhotse-shar", "nemo", "echox-dialogues"])
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="echoforge-export-bench-") as tmp:
        print("| format | rows | work units | shard size | shards written | shard files | audio files | wall s "
              "| peak RSS MB |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for rows in args.rows:
            build = Path(tmp) / f"build-{rows}"
            units = synthetic_build(build, rows)
            for fmt in args.formats:
                out = Path(tmp) / f"{fmt}-{rows}"
                wall, rss, shards = subprocess.run(
                    [sys.executable, "-c", MEASURE, str(build), fmt, str(out), str(args.shard_size)],
                    check=True, capture_output=True, text=True, env=env).stdout.split()
                files = [p for p in out.rglob("*") if p.is_file() and "_echoforge" not in p.parts
                         and p.name != "export.json"]
                audio = sum(p.suffix in (".wav", ".flac") for p in files)
                print(f"| {fmt} | {rows} | {units} | {args.shard_size} | {shards} | {len(files) - audio} | {audio} "
                      f"| {wall} | {rss} |")


if __name__ == "__main__":
    main()
