"""`echoforge report` time and peak memory as a build grows: is memory flat in the row count?

    python benchmarks/report_memory.py --rows 6 --copies 1 10 100

Builds ``--rows`` input rows of the ShareGPT sample once (real synthesis), then makes builds
of 1, 10, 100 ... times its size by listing hard links of its shards that many times in a
manifest (same rows repeated: the report reads every shard, so its work grows with the copies).
Each report renders in a fresh process; the table gives its wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "echoforge" / "data" / "sharegpt_sample.json"

MEASURE = """
import resource, sys, time
from echoforge.commands.report import render_report
t0 = time.perf_counter()
info = render_report(sys.argv[1], sys.argv[2], rows=8, progress=False)
print(round(time.perf_counter() - t0, 2), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, info["bytes"])
"""


def replicate(src: Path, dst: Path, copies: int) -> int:
    """A build listing every shard of ``src`` ``copies`` times (hard links); returns its rows."""
    manifest = json.loads((src / "manifest.json").read_text())
    (dst / "data").mkdir(parents=True)
    shards = []
    for c in range(copies):
        for s in manifest["shards"]:
            path = f"data/{s['split']}-{c:05d}-{s['unit']:05d}.parquet"
            os.link(src / s["path"], dst / path)
            shards.append({**s, "path": path, "unit": c * manifest["num_units"] + s["unit"]})
    rows = sum(s["rows"] for s in shards)
    manifest.update(shards=shards, rejects=[], rows=rows, num_units=copies * manifest["num_units"],
                    committed_units=copies * manifest["committed_units"])
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 10, 100])
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="echoforge-report-bench-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run([sys.executable, "-m", "echoforge", "build", str(SAMPLE), "-o", str(base), "--limit",
                        str(args.rows)], check=True, capture_output=True, env=env)
        print("| copies | rows | shards | wall s | peak RSS MB | page MB |")
        print("| --- | --- | --- | --- | --- | --- |")
        for copies in args.copies:
            big = Path(tmp) / f"x{copies}"
            rows = replicate(base, big, copies)
            shards = len(json.loads((big / "manifest.json").read_text())["shards"])
            out = subprocess.run([sys.executable, "-c", MEASURE, str(big), str(Path(tmp) / "r.html")],
                                 check=True, capture_output=True, text=True, env=env).stdout.split()
            print(f"| {copies} | {rows} | {shards} | {out[0]} | {out[1]} | {int(out[2]) / 1e6:.1f} |")


if __name__ == "__main__":
    main()
