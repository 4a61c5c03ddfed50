"""The synthesiser's limit: the full pipeline's throughput against Piper alone, on the same texts.

    python benchmarks/limit.py --rows 40
    python benchmarks/limit.py --rows 12 --only asr gate     # the gate's CPU cost alone

One process per measurement, one CPU thread each, the same spoken texts (the input's first
``--rows`` rows through ingest and the speakable stage):

- **Piper alone**: the ``piper-tts`` package's own ``PiperVoice.synthesize`` over every question
  and answer text (its default session, and one intra-op thread; the faster is the reference);
- **ASR alone**: the gate's round trip (``WhisperASR.transcribe_batch``) over that audio;
- **tokenizer alone**: the default tokenizer over the answers;
- **gate alone**: the gate stage over the turns that synthesis, tokenize and align made of the
  texts (models loaded first; the answers' transcripts come from the tokenize stage, as in a build),
  as configured and without its second judge, alternated, best of three;
- **pipeline**: ``build`` with one worker (everything: reading, models, stages, commit).

Figures are seconds of audio per CPU-second (models loaded before timing, except for the
pipeline, which is timed whole). The pipeline's ratio to Piper alone is the figure to move;
each stage's share of stage time says where the rest goes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURES = ("piper", "asr", "tokenizer", "gate", "pipeline")
SAMPLE = Path(__file__).resolve().parents[1] / "echoforge" / "data" / "sharegpt_sample.json"

CHILD = r"""
import json, sys, time
import numpy as np
from echoforge.config import parse_config
what, inp, rows, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = parse_config({"run": {"workers": 1}})

def rows_in():
    from echoforge.pipeline.workunits import plan_work_units
    plan = plan_work_units([inp], config.run.work_unit_rows, rows)
    return [r for unit in plan.units for r in plan.read(unit)]

def spoken():
    from echoforge.pipeline.stages import run_chain
    from echoforge.transforms.ingest import Ingest
    from echoforge.transforms.speakable import Speakable
    return run_chain([Ingest(config), Speakable(config)], rows_in()).kept

def piper_audio(turns, threads):
    from piper import PiperVoice
    from echoforge.backends.tts.piper import resolve_voice
    model, cfg, _ = resolve_voice("joe")
    voice = PiperVoice.load(model, cfg)
    if threads:
        import onnxruntime as ort
        opts = ort.SessionOptions(); opts.intra_op_num_threads = threads; opts.inter_op_num_threads = 1
        voice.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    texts = [t for turn in turns for t in (turn.question_spoken, turn.answer_spoken)]
    c0 = time.process_time()
    clips = [np.concatenate([c.audio_float_array for c in voice.synthesize(t)]) for t in texts]
    cpu = time.process_time() - c0
    return clips, voice.config.sample_rate, cpu

result = {}
if what == "piper":
    turns = spoken()
    for threads in (0, 1):
        clips, sr, cpu = piper_audio(turns, threads)
        result["default session" if threads == 0 else "1 thread"] = {"audio_s": sum(map(len, clips)) / sr, "cpu_s": cpu}
elif what in ("asr", "tokenizer"):
    from echoforge.audio import resample
    turns = spoken()
    clips, sr, _ = piper_audio(turns, 1)
    if what == "asr":
        from echoforge.backends.asr import WhisperASR
        asr = WhisperASR.for_side(config.gate, "answer"); asr.setup()
        c0 = time.process_time()
        asr.transcribe_batch([resample(c, sr, 16000) for c in clips])
        audio = sum(map(len, clips)) / sr
    else:
        from echoforge.backends.units import create_tokenizer
        tok = create_tokenizer(config.units); tok.setup()
        answers = clips[1::2]
        c0 = time.process_time()
        tok.encode_batch([(c, sr) for c in answers])
        audio = sum(map(len, answers)) / sr
    result[what] = {"audio_s": audio, "cpu_s": time.process_time() - c0}
elif what == "gate":
    from echoforge.pipeline.stages import build_stages, run_chain
    from echoforge.transforms.gate import Gate
    stages = build_stages(config)
    at = [s.name for s in stages].index("gate")
    turns = run_chain(stages[:at], rows_in()).kept
    variants = {"gate": config, "gate without the second judge": config.with_overrides(
        gate={"second_judge": "none", "audit_rate": 0.0})}
    gates = {name: Gate(c) for name, c in variants.items()}
    for gate in gates.values():
        gate.ensure_setup()
    best = {}
    for _ in range(3):  # alternated, best of three: the machine is shared
        for name, gate in gates.items():
            c0 = time.process_time()
            kept, rejected = gate.process(turns)
            cpu = time.process_time() - c0
            paths = {}
            for t in kept:
                for side in ("question", "answer"):
                    p = t.quality.get(f"{side}_asr_path"); paths[p] = paths.get(p, 0) + 1
            if name not in best or cpu < best[name]["cpu_s"]:
                best[name] = {"audio_s": sum(t.question_speech.duration_s + t.answer_speech.duration_s for t in turns),
                              "cpu_s": cpu, "turns": len(turns), "kept": len(kept), "asr_paths": paths,
                              "overturned": sum(1 for t in kept if t.quality.get("second_judge_overturned")),
                              "audited": sum(1 for t in kept if t.quality.get("second_judge_audit"))
                              + sum(1 for r in rejected if r.second_judge_audit),
                              "rejects": sorted(r.reason for r in rejected)}
    result.update(best)
else:
    from echoforge.pipeline.build import build
    c0 = time.process_time()
    m = build([inp], out, config, limit=rows)
    result["pipeline"] = {"audio_s": m["hours"] * 3600, "cpu_s": time.process_time() - c0,
                          "stage_seconds": m["stage_seconds"], "rows": m["rows"], "rejected": m["rejected"]}
print(json.dumps(result))
"""


def measure(what: str, inp: str, rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", CHILD, what, inp, str(rows), str(Path(tmp) / "out")],
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode:
        sys.exit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=40, help="input rows (conversations) of the sample")
    p.add_argument("--input", default=str(SAMPLE))
    p.add_argument("--json", action="store_true")
    p.add_argument("--only", nargs="+", choices=MEASURES, help="measure these alone (printed as JSON)")
    args = p.parse_args()
    results: dict = {}
    for what in args.only or ("piper", "asr", "tokenizer", "pipeline"):
        results.update(measure(what, args.input, args.rows))
    for r in results.values():
        r["audio_s_per_cpu_s"] = r["audio_s"] / r["cpu_s"]
    if args.only:
        print(json.dumps(results, indent=2))
        return
    piper = max(results["default session"]["audio_s_per_cpu_s"], results["1 thread"]["audio_s_per_cpu_s"])
    pipe = results["pipeline"]
    stages = pipe["stage_seconds"]
    total = sum(stages.values())
    summary = {"pipeline_to_piper": pipe["audio_s_per_cpu_s"] / piper,
               "stage_share": {k: v / total for k, v in stages.items()}}
    if args.json:
        print(json.dumps({"results": results, **summary}, indent=2))
        return
    print("| measured | audio s | CPU s | audio s / CPU s |")
    print("| --- | --- | --- | --- |")
    names = {"default session": "Piper alone (package default session)", "1 thread": "Piper alone (1 thread)",
             "asr": "ASR alone (gate round trip, all clips)", "tokenizer": "tokenizer alone (answers)",
             "pipeline": f"full pipeline ({pipe['rows']} turns kept, {pipe['rejected']} rejected)"}
    for key, r in results.items():
        print(f"| {names[key]} | {r['audio_s']:.1f} | {r['cpu_s']:.1f} | {r['audio_s_per_cpu_s']:.2f} |")
    print(f"\npipeline / Piper alone: {summary['pipeline_to_piper']:.2f}")
    print("stage share of stage time: " + ", ".join(f"{k} {v:.1%}" for k, v in summary["stage_share"].items()))


if __name__ == "__main__":
    main()
