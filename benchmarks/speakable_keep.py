"""What the speakable stage keeps of real-looking data, and why it refuses the rest.

    python benchmarks/speakable_keep.py [INPUT ...] [--json]

Runs each input (default: the two sets in ``benchmarks/data``) through ingest and speakable
with the default config, in one process, and prints per input (and per ``kind`` field of JSONL
rows): turns, kept, reject reasons; kept answers or questions that still say a symbol's name
("equal sign", "slash", ...); the answer cap in characters and the deduplicated units the kept
answers are estimated to need (``speakable.units_per_char``), against ``gate.max_answer_dedup_units``;
and the cost of language identification per turn (its calls timed again once lingua has
loaded the models it loads on first use).

- ``benchmarks/data/instructions_mixed.jsonl``: 158 human-written instruction turns (prose,
  maths, mappings, lists, some code, some non-English), short answers.
- ``benchmarks/data/sharegpt_long.json``: 32 ShareGPT-style conversations, 112 turns, long
  markdown answers (lists, tables, code, maths; median 1,509 characters).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_INPUTS = [DATA / "instructions_mixed.jsonl", DATA / "sharegpt_long.json"]


def measure(inputs: list[Path]) -> dict:
    from echoforge.text.spoken_forms import SPOKEN_SYMBOL_NAMES
    from echoforge.config import BuildConfig
    from echoforge.pipeline.stages import run_chain
    from echoforge.pipeline.workunits import plan_work_units
    from echoforge.transforms.ingest import Ingest
    from echoforge.transforms.speakable import Speakable

    config = BuildConfig()
    speakable = Speakable(config)
    speakable.ensure_setup()
    foreign, calls = speakable.language.foreign, []
    speakable.language.foreign = lambda *args: calls.append(args) or foreign(*args)
    names = re.compile(r"\b(?:" + "|".join(SPOKEN_SYMBOL_NAMES) + r")\b", re.I)
    cap_units = config.gate.max_answer_dedup_units
    out: dict = {"answer_chars_cap": config.speakable.answer_chars(config),
                 "question_chars_cap": config.speakable.question_chars(config)}
    for path in inputs:
        kinds = None
        if path.suffix == ".jsonl":
            kinds = [json.loads(line).get("kind", "?") for line in path.read_text().splitlines() if line.strip()]
        plan = plan_work_units([str(path)], config.run.work_unit_rows, None)
        rows = [r for unit in plan.units for r in plan.read(unit)]
        calls.clear()
        t0 = time.perf_counter()
        result = run_chain([Ingest(config), speakable], rows)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()  # again, with every model lingua loads on first use loaded
        for args in calls:
            foreign(*args)
        lid_seconds = time.perf_counter() - t0

        def kind(position: str) -> str:
            row = position.rpartition(":row ")[2]
            return kinds[int(row)] if kinds and row.isdigit() else "all"

        kept, rejected, reasons = Counter(), Counter(), defaultdict(Counter)
        said_symbols, est_units = [], []
        for t in result.kept:
            kept[kind(t.source_position)] += 1
            said_symbols += [f"{t.id}: {m}" for m in names.findall(t.question_spoken + " " + t.answer_spoken)]
            est_units.append(len(t.answer_spoken) * config.speakable.units_per_char)
        for r in result.rejected:
            rejected[kind(r.source_position)] += 1
            reasons[kind(r.source_position)][f"{r.stage}.{r.reason}"] += 1
        turns = len(result.kept) + len(result.rejected)
        out[path.name] = {
            "turns": turns, "kept": len(result.kept),
            "by_kind": {k: {"turns": kept[k] + rejected[k], "kept": kept[k], "rejects": dict(reasons[k])}
                        for k in sorted(set(kept) | set(rejected))},
            "truncated_answers": sum(any("truncated" in n for n in t.speakable_notes) for t in result.kept),
            "sentences_dropped_for_language": sum(any("sentence in" in n for n in t.speakable_notes)
                                                  for t in result.kept),
            "spoken_symbol_names": said_symbols,
            "estimated_answer_units_max": round(max(est_units, default=0)),
            "estimated_over_unit_cap": sum(u > cap_units for u in est_units) if cap_units else 0,
            "seconds_per_turn": round(seconds / max(turns, 1), 4),
            "language_id_ms_per_turn": round(1000 * lid_seconds / max(turns, 1), 2),
            "language_id_calls_per_turn": round(len(calls) / max(turns, 1), 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", type=Path, default=DEFAULT_INPUTS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report = measure(args.inputs)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"caps: question {report['question_chars_cap']} characters, answer {report['answer_chars_cap']} characters")
    for name, r in report.items():
        if not isinstance(r, dict):
            continue
        print(f"\n{name}: {r['kept']}/{r['turns']} kept; {r['truncated_answers']} answers cut at a sentence end; "
              f"{r['sentences_dropped_for_language']} with a sentence dropped for its language")
        for k, v in r["by_kind"].items():
            print(f"  {k:<8} {v['kept']:>3}/{v['turns']:<3} kept ({v['kept'] / v['turns']:.0%})  {v['rejects'] or ''}")
        print(f"  spoken symbol names in kept text: {len(r['spoken_symbol_names'])} {r['spoken_symbol_names'][:5]}")
        print(f"  estimated answer units: max {r['estimated_answer_units_max']}, over the cap: "
              f"{r['estimated_over_unit_cap']}")
        print(f"  {r['seconds_per_turn'] * 1000:.1f} ms per turn; language ID {r['language_id_ms_per_turn']} ms "
              f"per turn ({r['language_id_calls_per_turn']} calls)")


if __name__ == "__main__":
    main()
