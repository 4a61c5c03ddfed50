"""Keep rate and reject reasons of a build, per the ``kind`` field of its JSONL input rows.

    python scripts/keep_by_kind.py BUILD_DIR INPUT.jsonl [--json]

Rows are matched by ``source_position`` (``file:row N``); used for the measurements in
``docs/gate.md`` on ``echoforge/data/varied_qa.jsonl``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from echoforge.pipeline.output import iter_rejects, iter_shards


def keep_by_kind(root: str, data: str) -> dict:
    kinds = [json.loads(line).get("kind", "?") for line in Path(data).read_text().splitlines() if line.strip()]
    name = Path(data).name

    def kind_of(position: str) -> str | None:
        src, _, row = position.rpartition(":row ")
        return kinds[int(row)] if src == name and row.isdigit() else None

    kept, rejected, reasons = Counter(), Counter(), defaultdict(Counter)
    for _, table in iter_shards(root, ["source_position"]):
        for pos in table.column("source_position").to_pylist():
            kept[kind_of(pos)] += 1
    for table in iter_rejects(root):
        for r in table.to_pylist():
            k = kind_of(r["source_position"])
            rejected[k] += 1
            reasons[k][f"{r['stage']}.{r['reason']}"] += 1
    out = {}
    for k in sorted(set(kept) | set(rejected), key=str):
        total = kept[k] + rejected[k]
        out[str(k)] = {"turns": total, "kept": kept[k], "keep_rate": round(kept[k] / total, 4),
                       "rejects": dict(reasons[k])}
    return out


if __name__ == "__main__":
    report = keep_by_kind(sys.argv[1], sys.argv[2])
    if "--json" in sys.argv:
        print(json.dumps(report, indent=2))
    else:
        for k, r in report.items():
            print(f"{k:<8} {r['kept']:>3}/{r['turns']:<3} kept ({r['keep_rate']:.0%})  {r['rejects'] or ''}")
