"""Input cost: time and peak memory of planning and reading large inputs.

    python benchmarks/input_cost.py --parquet-rows 1000000 --json-mb 1000

Writes (once, in ``--dir``) a Parquet file of ``--parquet-rows`` QA rows in row groups of
``--row-group`` rows, and a JSON array of about ``--json-mb`` MB; then, one process per
measurement (so peak RSS is that step's own):

- **plan**: ``plan_work_units`` with 16-row work units (the scan: row count, slice offsets,
  checksum);
- **read**: the plan, then ``--units`` work units read: the first ones, and as many spread over
  the file (a worker's share);
- **whole row group** (Parquet): what reading one unit cost before, a whole row group decoded
  to Python objects, which was paid once per 16-row unit.

Prints one JSON object per measurement: seconds, peak RSS in MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def make_inputs(folder: Path, parquet_rows: int, row_group: int, json_mb: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    parquet = folder / f"qa-{parquet_rows}-{row_group}.parquet"
    if not parquet.exists():
        with pq.ParquetWriter(parquet, pa.schema([("question", pa.string()), ("answer", pa.string())])) as w:
            for start in range(0, parquet_rows, row_group):
                n = min(row_group, parquet_rows - start)
                w.write_table(pa.table({
                    "question": [f"What is {i} plus {i}? Please answer briefly." for i in range(start, start + n)],
                    "answer": [f"{i} plus {i} is {2 * i}, which is the answer to the question." for i in
                               range(start, start + n)]}), row_group_size=row_group)
    js = folder / f"chat-{json_mb}mb.json"
    if not js.exists():
        record = {"conversations": [{"from": "human", "value": "Tell me about rivers and the sea. " * 8},
                                    {"from": "gpt", "value": "Rivers flow to the sea, carrying water. " * 12}]}
        line = json.dumps(record)
        count = json_mb * 1_000_000 // (len(line) + 2)
        with open(js, "w") as f:
            f.write("[\n")
            for i in range(count):
                f.write(line + (",\n" if i < count - 1 else "\n"))
            f.write("]\n")
    return parquet, js


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited over exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def measure(kind: str, path: str, units: int) -> dict:
    t0 = time.perf_counter()
    if kind == "row-group":
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(path).read_row_group(0).to_pylist()
        out = {"rows_decoded": len(rows)}
    else:
        from echoforge.pipeline.workunits import plan_work_units

        plan = plan_work_units([path], 16)
        out = {"units": len(plan.units), "plan_s": round(time.perf_counter() - t0, 2)}
        if kind == "read":
            t1 = time.perf_counter()
            step = max(1, len(plan.units) // units)
            chosen = list(plan.units[:units]) + list(plan.units[::step][:units])
            read = sum(len(list(plan.read(u))) for u in chosen)
            out.update(read_units=len(chosen), rows_read=read, read_s=round(time.perf_counter() - t1, 2),
                       ms_per_unit=round(1000 * (time.perf_counter() - t1) / len(chosen), 2))
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parquet-rows", type=int, default=1_000_000)
    ap.add_argument("--row-group", type=int, default=100_000)
    ap.add_argument("--json-mb", type=int, default=1000)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--dir", default="/tmp/echoforge-input-cost")
    ap.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        kind, path, units = args.measure
        print(json.dumps(measure(kind, path, int(units))))
        return
    parquet, js = make_inputs(Path(args.dir), args.parquet_rows, args.row_group, args.json_mb)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for kind, path in (("plan", parquet), ("read", parquet), ("row-group", parquet), ("plan", js), ("read", js)):
        r = subprocess.run([sys.executable, __file__, "--measure", kind, str(path), str(args.units)],
                           capture_output=True, text=True, env=env, check=True)
        print(json.dumps({"input": path.name, "bytes": path.stat().st_size, "step": kind,
                          **json.loads(r.stdout.strip().splitlines()[-1])}))


if __name__ == "__main__":
    main()
