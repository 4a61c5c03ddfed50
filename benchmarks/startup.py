"""Where a build's start-up goes, and the whole build against its synthesisers alone.

    python benchmarks/startup.py                # both parts
    python benchmarks/startup.py --part startup # only the start-up of one worker
    python benchmarks/startup.py --part small   # a 2-row build on 2 workers, where start-up dominates

1. **Start-up of one worker**: a fresh process (run with ``-X importtime``) does what a local
   engine worker does before its first unit: imports echoforge's command line and engine,
   unpickles the job, and sets up every stage of the default config. For each phase: wall and
   CPU seconds, the wall seconds spent importing (each module's own time from ``-X importtime``,
   summed by package) and the packages that cost most; the rest of a stage's set-up is loading its models.
2. **Whole process**: ``echoforge build`` of the bundled sample with the default workers, timed by
   the CPU seconds of its whole process tree (driver and workers), after a one-row build that
   warms the caches; against the default voices' backends alone (the synthesize stage's voice
   pool, Piper for the assistant and Kokoro mixtures for the users, models loaded before timing,
   one CPU thread) on the same spoken texts, voices and rates (the sample through ingest and the
   speakable stage). Both as seconds of audio per CPU-second; their ratio is the figure to move.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import sys, time, json
def phase(name):
    print(f"@@phase {name}", file=sys.stderr, flush=True)
    return time.perf_counter(), time.process_time()
def done(start):
    return [round(time.perf_counter() - start[0], 3), round(time.process_time() - start[1], 3)]
out = {}
start = phase("echoforge")
import echoforge.cli, echoforge.pipeline.engines.local, echoforge.pipeline.job  # what a spawned worker imports
from echoforge.config import parse_config
from echoforge.pipeline.stages import build_stages
config = parse_config({})
stages = build_stages(config)
out["echoforge"] = done(start)
for stage in stages:
    start = phase(stage.name)
    stage.ensure_setup()
    out[stage.name] = done(start)
print(json.dumps(out))
"""

SYNTH = r"""
import json, time
from echoforge.config import parse_config
from echoforge.pipeline.build import DEFAULT_SAMPLE_LIMIT, SAMPLE_INPUTS
from echoforge.pipeline.stages import run_chain
from echoforge.pipeline.workunits import plan_work_units
from echoforge.transforms.ingest import Ingest
from echoforge.transforms.speakable import Speakable
from echoforge.transforms.synthesize import Synthesize
config = parse_config({})
plan = plan_work_units([str(p) for p in SAMPLE_INPUTS], config.run.work_unit_rows, DEFAULT_SAMPLE_LIMIT)
rows = [r for unit in plan.units for r in plan.read(unit)]
turns = run_chain([Ingest(config), Speakable(config)], rows).kept
stage = Synthesize(config)  # its voice pool: each voice's backend, loaded before timing
stage.setup()
requests = [r for turn in turns for r in stage.requests(turn)]  # the voices and rates the build gives each turn
c0 = time.process_time()
audio_s = sum(len(s.audio) / s.sample_rate for s in stage.backend.synthesize_batch(requests))
cpu = time.process_time() - c0
print(json.dumps({"audio_s": audio_s, "cpu_s": cpu, "texts": len(requests), "voices": len({r.voice for r in requests})}))
"""


def worker_startup() -> dict:
    """Phases of one worker's start-up: wall, CPU, import seconds and the costliest imports."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", WORKER], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])
    imports: dict[str, dict[str, float]] = {}
    phase = None
    for line in proc.stderr.splitlines():
        if line.startswith("@@phase "):
            phase = line.split(" ", 1)[1]
            imports[phase] = {}
            continue
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| +(\S+)$", line)  # each module's own time
        if m and phase:
            package = m.group(2).split(".")[0]
            imports[phase][package] = imports[phase].get(package, 0.0) + int(m.group(1)) / 1e6
    return {name: {"wall_s": wall, "cpu_s": cpu, "import_s": sum(imports.get(name, {}).values()),
                   "top": sorted(imports.get(name, {}).items(), key=lambda kv: -kv[1])[:4]}
            for name, (wall, cpu) in seconds.items()}


def whole_build(out: Path, limit: int | None = None, config: Path | None = None) -> dict:
    """``echoforge build`` of the bundled sample (default workers, or ``config``'s): CPU of the process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "echoforge", "build", "--output", str(out)] + (["--limit", str(limit)] if limit else [])
    cmd += ["--config", str(config)] if config else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    manifest = json.loads((out / "manifest.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"audio_s": manifest["hours"] * 3600, "cpu_s": cpu, "rows": manifest["rows"],
            "stage_s": sum(manifest["stage_seconds"].values()),
            "stages": {k: round(v, 1) for k, v in manifest["stage_seconds"].items()}}


def synthesiser_alone() -> dict:
    proc = subprocess.run([sys.executable, "-c", SYNTH], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["startup", "ratio", "both", "small"], default="both",
                   help="small: two builds of 2 rows in 2 work units on 2 workers, where start-up dominates")
    p.add_argument("--config", type=Path, help="a config file for the whole build of the ratio (e.g. listen: {dnsmos: false})")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result: dict = {"cpus": os.cpu_count()}
    if args.part in ("startup", "both"):
        result["startup"] = worker_startup()
    if args.part in ("ratio", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            whole_build(Path(tmp) / "warm", limit=1, config=args.config)  # caches (NeMo grammars, files) warm
            build = whole_build(Path(tmp) / "out", config=args.config)
        synth = synthesiser_alone()
        for r in (build, synth):
            r["audio_s_per_cpu_s"] = r["audio_s"] / r["cpu_s"]
        result.update(build=build, synthesiser=synth, ratio=build["audio_s_per_cpu_s"] / synth["audio_s_per_cpu_s"])
    if args.part == "small":
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "small.yaml"
            config.write_text("run: {work_unit_rows: 1, workers: 2}\n")
            result["small"] = [whole_build(Path(tmp) / f"small{i}", limit=2, config=config) for i in range(2)]
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if "startup" in result:
        print("| phase of a worker's start-up | wall s | CPU s | imports s | costliest imports |")
        print("| --- | --- | --- | --- | --- |")
        for name, r in result["startup"].items():
            top = ", ".join(f"{k} {v:.2f}" for k, v in r["top"] if v >= 0.05)
            print(f"| {name} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['import_s']:.2f} | {top} |")
        total = [sum(r[k] for r in result["startup"].values()) for k in ("wall_s", "cpu_s", "import_s")]
        print(f"| total | {total[0]:.2f} | {total[1]:.2f} | {total[2]:.2f} | |")
    for r in result.get("small", []):
        print(f"2 rows, 2 units, 2 workers: {r['cpu_s']:.1f} CPU s, {r['audio_s']:.1f} s of audio")
    if "ratio" in result:
        b, s = result["build"], result["synthesiser"]
        print(f"\nwhole build ({result['cpus']} CPUs, default workers, {b['rows']} rows): {b['audio_s']:.1f} s of audio "
              f"in {b['cpu_s']:.1f} CPU s ({b['audio_s_per_cpu_s']:.2f}/s; stages {b['stage_s']:.1f} s: "
              + ", ".join(f"{k} {v}" for k, v in b["stages"].items()) + ")")
        print(f"synthesisers alone ({s['texts']} texts, {s['voices']} voices): {s['audio_s']:.1f} s of audio in {s['cpu_s']:.1f} CPU s "
              f"({s['audio_s_per_cpu_s']:.2f}/s)")
        print(f"whole build / synthesiser alone: {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
