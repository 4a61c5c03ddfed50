"""Engine overhead: the same N rows built with the local, Ray and Beam engines, wall time vs local.

    python benchmarks/engine_overhead.py --rows 12

Each engine builds in a fresh process (the default config, one local worker, a local Ray
instance, Beam's in-process direct runner), so each wall time includes starting the engine
and loading models. The table gives each engine's wall time, its ratio to the local
engine's, whether its rows equal the local build's, the bytes of commit entries the driver
received from the engine against the bytes of data the workers wrote, and the driver
process's peak memory. This machine may be
shared and noisy: compare ratios, and rerun before trusting a small difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


DRIVER = """
import json, pickle, resource, sys
from echoforge.config import load_config
from echoforge.pipeline.build import build
received = [0]
def progress(entry, done, total):
    if entry is not None:
        received[0] += len(pickle.dumps(entry))
config, inp, out, rows, engine = sys.argv[1:]
build([inp], out, load_config(config), limit=int(rows), engine=engine, on_progress=progress)
print(json.dumps({"received": received[0], "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def build(engine: str, inp: str, rows: int, unit_rows: int, out: Path) -> tuple[float, dict]:
    """Wall seconds of a build in a fresh process, and what its driver received and held."""
    config = out.parent / "config.yaml"
    config.write_text(f"run: {{work_unit_rows: {unit_rows}, workers: 1}}\n")
    cmd = [sys.executable, "-c", DRIVER, str(config), inp, str(out), str(rows), engine]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t0, json.loads(proc.stdout.strip().splitlines()[-1])


def rows_of(out: Path) -> dict[str, list[dict]]:
    files = sorted((out / "data").glob("*.parquet")) + sorted((out / "rejects").glob("*.parquet"))
    return {p.name: pq.read_table(p).to_pylist() for p in files}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=12, help="input rows (N)")
    p.add_argument("--work-unit-rows", type=int, default=4)
    p.add_argument("--input", default=str(ROOT / "echoforge" / "data" / "sharegpt_sample.json"))
    p.add_argument("--engines", default="local,ray,beam", help="comma-separated; local is always run first")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    engines = ["local"] + [e for e in args.engines.split(",") if e and e != "local"]
    results, shards = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            out = Path(tmp) / engine / "out"
            out.parent.mkdir(parents=True)
            wall, driver = build(engine, args.input, args.rows, args.work_unit_rows, out)
            manifest = json.loads((out / "manifest.json").read_text())
            shards[engine] = rows_of(out)
            results[engine] = {"wall_s": wall, "ratio_to_local": wall / results["local"]["wall_s"] if results else 1.0,
                               "rows": manifest["rows"], "rejected": manifest["rejected"],
                               "stage_s": sum(manifest["stage_seconds"].values()),
                               "same_rows_as_local": shards[engine] == shards["local"],
                               "driver_received_kb": driver["received"] / 1024,
                               "data_written_kb": manifest["bytes"] / 1024, "driver_peak_mb": driver["peak_mb"]}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.rows} input rows, work units of {args.work_unit_rows}, {os.cpu_count()} CPUs\n")
    print("| engine | wall s | wall / local | stage s | rows | rejected | same rows as local "
          "| driver received KB | data written KB | driver peak MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for engine, r in results.items():
        print(f"| {engine} | {r['wall_s']:.1f} | {r['ratio_to_local']:.2f} | {r['stage_s']:.1f} | {r['rows']} "
              f"| {r['rejected']} | {'yes' if r['same_rows_as_local'] else 'NO'} | {r['driver_received_kb']:.1f} "
              f"| {r['data_written_kb']:.0f} | {r['driver_peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
