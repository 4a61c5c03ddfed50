"""What a whole default build keeps of unseen data, and whether the second judge agrees.

    python benchmarks/gate_keep.py [INPUT ...] [--voices default|fast] [--audit-rate 1] [--json]

Builds each input (default: the two sets in ``benchmarks/data``) with the default config but
``gate.audit_rate`` (default 1: every turn that reached the ASR is heard again by the second
judge, ``gate.second_judge``) and ``synthesis.voices``, each in a fresh output folder, and
prints per input and per ``kind`` of JSONL rows: turns, kept, reject reasons; kept answers
that still say a symbol's name ("equal sign", "open paren", ...); the share of turns that end
as length rejects; and the audit: how many kept turns the second judge would reject, how many
gate rejects it would keep, and how many rejects it overturned. These are the
figures of ``docs/gate.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_INPUTS = [DATA / "instructions_mixed.jsonl", DATA / "sharegpt_long.json"]
LENGTH = re.compile(r"too_long|duration_s_high")


def kinds_of(path: Path) -> dict[int, str]:
    """Input row number → its ``kind`` field (JSONL inputs that have one)."""
    if path.suffix != ".jsonl":
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {i: r["kind"] for i, r in enumerate(rows) if "kind" in r}


def row_number(position: str) -> int | None:
    found = re.search(r"(?:row|line) (\d+)", position or "")
    return int(found[1]) if found else None


def measure(path: Path, voices: str, audit_rate: float, workers: int, output: Path | None = None) -> dict:
    from echoforge.config import parse_config
    from echoforge.pipeline.build import build
    from echoforge.pipeline.output import iter_rejects, iter_shards
    from echoforge.text.spoken_forms import SPOKEN_SYMBOL_NAMES

    config = parse_config({"run": {"workers": workers}, "synthesis": {"voices": voices},
                           "gate": {"audit_rate": audit_rate}})
    with tempfile.TemporaryDirectory() as tmp:
        out = output / path.stem if output else Path(tmp) / "out"  # an output kept is resumed
        t0 = time.perf_counter()
        manifest = build([str(path)], out, config)
        wall = time.perf_counter() - t0
        kept = [r for _, t in iter_shards(out, columns=["source_position", "answer_spoken",
                                                        "second_judge_audit"]) for r in t.to_pylist()]
        disagreements = second_hearings(out)
        rejects = [r for t in iter_rejects(out, columns=["source_position", "stage", "reason",
                                                         "second_judge_audit"]) for r in t.to_pylist()]
    kinds = kinds_of(path)
    per_kind: dict[str, Counter] = defaultdict(Counter)

    def kind(r: dict) -> str:
        return kinds.get(row_number(r["source_position"]), "all")  # rows count from 0

    for r in kept:
        per_kind[kind(r)]["kept"] += 1
    for r in rejects:
        per_kind[kind(r)][f"{r['stage']}.{r['reason']}"] += 1
    names = re.compile(r"\b(?:" + "|".join(SPOKEN_SYMBOL_NAMES) + r")\b", re.I)
    saying = [r["answer_spoken"] for r in kept if names.search(r["answer_spoken"] or "")]
    audited_kept = [r for r in kept if r["second_judge_audit"]]
    audited_rejects = [r for r in rejects if r["second_judge_audit"]]
    turns = len(kept) + len(rejects)
    length = sum(1 for r in rejects if LENGTH.search(r["reason"] or ""))
    return {
        "input": path.name, "voices": voices, "turns": turns, "kept": len(kept), "wall_s": round(wall, 1),
        "rejects_by_reason": dict(Counter(f"{r['stage']}.{r['reason']}" for r in rejects).most_common()),
        "by_kind": {k: dict(v) for k, v in sorted(per_kind.items())},
        "length_rejects": length, "length_reject_share": round(length / max(turns, 1), 4),
        "kept_saying_symbol_names": saying,
        "audit": {"kept_audited": len(audited_kept),
                  "kept_second_rejects": [r["second_judge_audit"] for r in audited_kept
                                          if r["second_judge_audit"] != "keep"],
                  "rejects_audited": len(audited_rejects),
                  "rejects_second_keeps": sum(r["second_judge_audit"] == "keep" for r in audited_rejects),
                  "manifest": manifest.get("gate_audit"), "kept_second_rejects_heard": disagreements},
    }


def second_hearings(out: Path) -> list[dict]:
    """For each kept row the second judge would reject: the side's spoken text, what the gate's
    ASR heard and what the second judge (Whisper base, with the gate's beam for it) hears in the
    stored audio, to tell whose mistake it is."""
    import io

    import soundfile as sf

    from echoforge.audio import resample
    from echoforge.backends.asr import WhisperASR, whisper_base_path
    from echoforge.pipeline.output import iter_shards
    from echoforge.transforms.gate import SECOND_JUDGE_BEAM_SIZE

    found = []
    base = None
    for _, table in iter_shards(out):
        for r in table.to_pylist():
            verdict = r.get("second_judge_audit")
            if not verdict or verdict == "keep":
                continue
            side = "question" if verdict.startswith("question") else "answer"
            if base is None:
                base = WhisperASR(str(whisper_base_path()), beam_size=SECOND_JUDGE_BEAM_SIZE)
                base.setup()
            audio, rate = sf.read(io.BytesIO(r[f"{side}_audio"]["bytes"]), dtype="float32")
            heard = base.transcribe_batch([resample(audio, rate, 16000)])[0]
            found.append({"verdict": verdict, "spoken": r[f"{side}_spoken"], "gate_heard": r[f"{side}_asr_text"],
                          "second_heard": heard.text, "second_path": heard.path, "voice": r[f"{side}_voice"]})
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("inputs", nargs="*", type=Path, default=DEFAULT_INPUTS)
    p.add_argument("--voices", default="default", choices=["default", "fast"])
    p.add_argument("--audit-rate", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--output", type=Path, help="build into OUTPUT/<input name> and keep it (a rerun resumes)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    os.environ.pop("ECHOFORGE_VOICES", None)
    results = [measure(path, args.voices, args.audit_rate, args.workers, args.output) for path in args.inputs]
    for r in results:
        if args.json:
            print(json.dumps(r, indent=2))
            continue
        a = r["audit"]
        print(f"{r['input']} ({r['voices']} voices): kept {r['kept']} of {r['turns']} turns; length rejects "
              f"{r['length_rejects']} ({100 * r['length_reject_share']:.1f} %); {r['wall_s']} s")
        for k, counts in r["by_kind"].items():
            total = sum(counts.values())
            reasons = ", ".join(f"{n} {c}" for n, c in counts.items() if n != "kept")
            print(f"  {k}: {counts.get('kept', 0)} / {total}" + (f" ({reasons})" if reasons else ""))
        print(f"  second judge: would reject {len(a['kept_second_rejects'])} of {a['kept_audited']} kept "
              f"({', '.join(a['kept_second_rejects'])}); would keep {a['rejects_second_keeps']} of "
              f"{a['rejects_audited']} rejects; manifest {a['manifest']}")
        for d in a["kept_second_rejects_heard"]:
            print(f"    {d['verdict']} ({d['voice']}): said {d['spoken']!r}\n      gate heard {d['gate_heard']!r}"
                  f"\n      second heard {d['second_heard']!r} ({d['second_path']} path)")
        print(f"  kept answers saying a symbol's name: {len(r['kept_saying_symbol_names'])}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
