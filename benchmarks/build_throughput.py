"""Build throughput, stage shares, pipeline overhead and peak memory at N and 10N rows.

    python benchmarks/build_throughput.py --rows 4 --input echoforge/data/sharegpt_sample.json

Each size runs in a fresh process (one worker, so CPU time = the build's own) and reports:
seconds of audio produced per CPU-second, each stage's share of stage time, the ratio of
end-to-end wall time to the sum of the stages' own compute time (pipeline overhead: reading,
planning, model loading, encoding and committing shards), and peak resident memory. Ratios,
not absolute times, are what to compare: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from echoforge.config import parse_config
from echoforge.pipeline.build import build
inp, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter(); c0 = time.process_time()
m = build([inp], out, parse_config({"run": {"workers": 1, "work_unit_rows": 8}}), limit=rows)
wall = time.perf_counter() - t0; cpu = time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu, "rows": m["rows"], "rejected": m["rejected"],
                  "audio_s": m["hours"] * 3600, "stage_seconds": m["stage_seconds"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(inp: str, rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", CHILD, inp, str(Path(tmp) / "out"), str(rows)],
                             capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    stage_total = sum(r["stage_seconds"].values())
    r["audio_s_per_cpu_s"] = r["audio_s"] / r["cpu"]
    r["overhead_ratio"] = r["wall"] / stage_total
    r["stage_share"] = {k: v / stage_total for k, v in r["stage_seconds"].items()}
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=4, help="N (the second run uses 10N)")
    p.add_argument("--input", default=str(Path(__file__).resolve().parents[1] / "echoforge" / "data" / "sharegpt_sample.json"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    results = {n: run(args.input, n) for n in (args.rows, 10 * args.rows)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| input rows | turns kept | audio s | wall s | audio s / CPU s | wall / stage time | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, r in results.items():
        print(f"| {n} | {r['rows']} | {r['audio_s']:.1f} | {r['wall']:.1f} | {r['audio_s_per_cpu_s']:.2f} "
              f"| {r['overhead_ratio']:.2f} | {r['peak_rss_mb']:.0f} |")
    big = results[10 * args.rows]
    print("\nstage share of stage time at 10N: " + ", ".join(f"{k} {v:.1%}" for k, v in big["stage_share"].items()))
    small = results[args.rows]
    print(f"peak memory 10N / N: {big['peak_rss_mb'] / small['peak_rss_mb']:.2f}")


if __name__ == "__main__":
    main()
