"""Scale of the data plane: plan, commit, resume-scan and finalise a simulated build.

A JSONL input of ``--turns`` question/answer rows (one turn each; EchoX's 6,000 hours are
about 1.5 million turns) is planned with the default work units; every unit is committed
through the real commit protocol (parts, markers, sealing) with tiny synthetic payloads in
place of audio (0.1 s of silence, 5 units), on ``--workers`` processes; then the output is
scanned as a resume would scan it, and finalised. Shard sizes at real payloads are projected
from the default row size (``echoforge.pipeline.layout.ROW_SIZE_KB``).

    python benchmarks/scale.py --turns 150000 --turns 1500000 --output /tmp/scale

prints one table row per size: files, shards, manifest size, seconds and peak memory of
each phase. Linear phases take ten times as long at ten times the size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from echoforge.config import BuildConfig  # noqa: E402
from echoforge.pipeline.build import build_identity  # noqa: E402
from echoforge.pipeline.commit import commit_unit, scan_committed, seal_all  # noqa: E402
from echoforge.pipeline.layout import ROW_SIZE_KB, SHARD_KINDS, Layout, ShardPlan  # noqa: E402
from echoforge.pipeline.output import finalize  # noqa: E402
from echoforge.pipeline.workunits import plan_work_units  # noqa: E402
from echoforge.schemas.records import Speech, Turn, Units, Word  # noqa: E402
from echoforge.storage import folder as open_folder  # noqa: E402

SECONDS_PER_TURN = 6000 * 3600 / 1.5e6  # EchoX: 6,000 h in 1.5 M turns


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_input(path: Path, turns: int) -> None:
    with path.open("w") as f:
        for i in range(turns):
            f.write(json.dumps({"question": f"What is {i} plus one?", "answer": f"It is {i + 1}."}) + "\n")


def synthetic_turn(unit: int, row: int) -> Turn:
    silence = np.zeros(1600, dtype=np.float32)
    speech = Speech(silence, 16000, "joe", 1.0, words=[Word("it", 0.0, 0.1)], sentences=[Word("It.", 0.0, 0.1)],
                    speaker="joe")
    span = {"start_s": 0.0, "end_s": 0.1, "unit_start": 0, "unit_end": 5, "dedup_start": 0, "dedup_end": 5}
    return Turn(id=f"{unit:06d}-{row:02d}", source="scale.jsonl", source_position=f"scale.jsonl:row {row}",
                conversation_id=f"c{unit}-{row}", turn_index=0, history=[], question_text="q", answer_text="a",
                question_spoken="q", answer_spoken="it", answer_sentences=["It."], question_speech=speech,
                answer_speech=speech, answer_units=Units(np.arange(5, dtype=np.int64)[None], 50.0, 500, "synthetic"),
                alignment=[{"word": "it", **span}], segments=[{"text": "It.", **span}], input_row=row,
                work_unit=unit)


def _commit(args) -> None:
    layout, unit = args
    turns = [synthetic_turn(unit.index, r) for r in range(unit.start, unit.stop)]
    commit_unit(layout, unit, turns, [], validation_fraction=0.05, keep_answer_audio=False,
                seconds={"synthesize": 1.0})


def run(turns: int, root: Path, workers: int, plan_only: bool = False) -> dict:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    data = root / "scale.jsonl"
    write_input(data, turns)
    config = BuildConfig()
    out = {"turns": turns, "hours": round(turns * SECONDS_PER_TURN / 3600)}

    t0 = time.perf_counter()
    plan = plan_work_units([str(data)], config.run.work_unit_rows)
    out["plan_s"] = round(time.perf_counter() - t0, 1)
    out["plan_peak_mb"] = round(peak_mb())
    real = ShardPlan.of(len(plan.units), plan.rows_per_unit, config.output, keep_answer_audio=True)
    out["units"] = len(plan.units)
    out["units_per_shard"] = real.units_per_shard
    out["data_files"] = sum(real.count(k) for k in SHARD_KINDS)
    out["train_shard_mb_projected"] = round(
        real.units_per_shard * plan.rows_per_unit * ROW_SIZE_KB[True] / 1000 * (1 - config.output.validation_fraction))

    if plan_only:
        return out
    layout = Layout(open_folder(root / "out"), real, "parquet")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_commit, ((layout, u) for u in plan.units), chunksize=64))
    out["commit_s"] = round(time.perf_counter() - t0, 1)
    out["commit_ms_per_unit"] = round(1000 * out["commit_s"] * workers / len(plan.units), 2)

    t0 = time.perf_counter()
    done, totals = scan_committed(layout)
    out["resume_scan_s"] = round(time.perf_counter() - t0, 1)
    assert len(done) == len(plan.units), (len(done), len(plan.units))

    t0 = time.perf_counter()
    seal_all(layout)
    manifest = finalize(layout, totals, build_info=build_identity(plan, config, None, {}), config=config.saved())
    out["finalize_s"] = round(time.perf_counter() - t0, 1)
    out["peak_mb"] = round(peak_mb())
    out["manifest_kb"] = round(os.path.getsize(root / "out" / "manifest.json") / 1024)
    out["objects"] = len(layout.folder.list())
    out["sealed_files"] = len(manifest["shards"]) + len(manifest["rejects"])
    assert manifest["rows"] == turns and manifest["complete"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, action="append", help="Simulated turns (repeatable).")
    ap.add_argument("--output", type=Path, default=Path("/tmp/echoforge-scale"))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--plan-only", action="store_true", help="Plan and count files; commit nothing.")
    args = ap.parse_args()
    rows = [run(n, args.output / str(n), args.workers, args.plan_only) for n in (args.turns or [150_000])]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
