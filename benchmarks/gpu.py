"""Model stages one by one and the whole pipeline on one device: audio-seconds per device-second.

    python benchmarks/gpu.py --device cuda [--answers 24] [--pipeline-rows 24] [--gpus 8] [--json out.json]
    python benchmarks/gpu.py --device cpu --small          # a quick run (the test suite runs this)

Input: answers of the bundled messy Alpaca sample (``--answers``; their sentences as the text),
the same for every stage. Stages, each timed alone after one warm-up call:

* ``kokoro``: Kokoro-82M (``synthesis.kokoro``, onnxruntime) synthesising the answers in batches
  of ``--batch-size``; only when the ``kokoro`` TTS backend is registered in this echoforge.
* ``piper``: the bundled Piper voice (``synthesis.piper.device``; onnxruntime).
* ``whisper_gate``: the gate's Whisper round trip (``gate.whisper.device``; CTranslate2) on the
  answers Piper made.
* ``units``: the default units tokenizer (``units.device``) on the same audio.
* ``ctc_aligner``: the hama CTC aligner (CPU only: its native engine has no GPU path) placing the
  answers' words, sentence by sentence.
* ``pipeline``: ``echoforge build`` of ``--pipeline-rows`` rows with every model on the device
  (one worker), from start to finish: setup, text normalisation, both sides' speech, gate,
  units and alignment; its rate counts question and answer audio.

Each stage's rate is audio-seconds per wall-second of that stage on this device; the projection
is the wall-clock hours to make ``--target-hours`` of speech on ``--gpus`` devices (or CPU
workers) at that rate (stages alone: if that stage were the only work). The device is recorded:
``torch.cuda.get_device_name`` or the CPU model. The JSON has ``facts`` and one entry per stage
with ``audio_s``, ``seconds``, ``rate`` and ``projected_hours`` (or ``error``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "echoforge" / "data" / "alpaca_messy.jsonl"


def answers(n: int) -> list[tuple[str, ...]]:
    """The first n answers of the sample, split into sentences."""
    out = []
    for line in SAMPLE.read_text().splitlines()[:n]:
        text = json.loads(line)["output"]
        out.append(tuple(s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s))
    return out


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def synthesis_stage(name: str, device: str, texts, batch_size: int, voice: str):
    """Speech of the texts by one TTS backend on the device, in batches."""
    from echoforge.backends.tts.base import VoiceRequest
    from echoforge.registry import tts_backends
    from echoforge.config import parse_config

    config = parse_config({"synthesis": {"backend": name, "assistant_voice": voice, "user_voices": [voice],
                                         name: {"device": device}}}).synthesis
    backend = tts_backends.get(name).from_config([voice], config)
    backend.setup()
    requests = [VoiceRequest(t, voice, 1.0, i) for i, t in enumerate(texts)]
    backend.synthesize_batch(requests[:1])  # warm-up
    speech, seconds = timed(lambda: [s for i in range(0, len(requests), batch_size)
                                     for s in backend.synthesize_batch(requests[i:i + batch_size])])
    return speech, seconds


def measured(audio_s: float, seconds: float, **extra) -> dict:
    return {"audio_s": round(audio_s, 2), "seconds": round(seconds, 3), "rate": round(audio_s / seconds, 2), **extra}


def attempt(stages: list[dict], name: str, fn) -> None:
    """Run one stage; a stage that fails is recorded with its error and the others still run."""
    try:
        stages.append({"stage": name, **fn()})
    except Exception as exc:  # noqa: BLE001 - report what failed and measure the rest
        stages.append({"stage": name, "error": f"{type(exc).__name__}: {exc}"})


def run_stages(args) -> list[dict]:
    from echoforge.audio import resample
    from echoforge.backends.aligners import AlignItem
    from echoforge.registry import word_aligners
    from echoforge.backends.asr import WHISPER_RATE, WhisperASR
    from echoforge.registry import tts_backends
    from echoforge.text.words import sentence_words
    from echoforge.backends.units import create_tokenizer
    from echoforge.config import parse_config

    texts = answers(args.answers)
    stages: list[dict] = []
    made: dict[str, list] = {}

    def kokoro() -> dict:
        speech, seconds = synthesis_stage("kokoro", args.device, texts, args.batch_size, "jf_alpha")
        return measured(sum(s.duration_s for s in speech), seconds, batch_size=args.batch_size)

    def piper() -> dict:
        speech, seconds = synthesis_stage("piper", args.device, texts, args.batch_size, "joe")
        made["speech"] = speech
        made["16k"] = [resample(s.audio, s.sample_rate, WHISPER_RATE) for s in speech]
        return measured(sum(s.duration_s for s in speech), seconds, batch_size=args.batch_size)

    def audio_s() -> float:
        return sum(s.duration_s for s in made["speech"])

    def whisper_gate() -> dict:
        asr = WhisperASR(device=args.device, batch_size=args.batch_size)
        asr.setup()
        asr.transcribe_batch(made["16k"][:1])
        _, seconds = timed(lambda: asr.transcribe_batch(made["16k"]))
        return measured(audio_s(), seconds, model=asr.identity()["asr"])

    def units() -> dict:
        section = parse_config({"units": {"device": args.device, "batch_size": args.batch_size}}).units
        tok = create_tokenizer(section)
        tok.setup()
        items = [(a, WHISPER_RATE) for a in made["16k"]]
        tok.encode_batch(items[:1])
        _, seconds = timed(lambda: [tok.encode_batch(items[i:i + args.batch_size])
                                    for i in range(0, len(items), args.batch_size)])
        return measured(audio_s(), seconds, tokenizer=tok.identity().get("tokenizer", section.tokenizer))

    def ctc_aligner() -> dict:
        aligner = word_aligners.create("hama")
        aligner.setup()
        items = [AlignItem(s.audio, s.sample_rate, [w.word for w in s.words],
                           [(x.start_s, x.end_s, len(sentence_words(t))) for x, t in zip(s.sentences, text)])
                 for s, text in zip(made["speech"], texts)]
        aligner.align_batch(items[:1])
        _, seconds = timed(lambda: aligner.align_batch(items))
        return measured(audio_s(), seconds, device="cpu", aligner=aligner.identity()["aligner"])

    if "kokoro" in tts_backends.names():
        attempt(stages, "kokoro", kokoro)
    else:
        stages.append({"stage": "kokoro", "skipped": "no kokoro TTS backend in this echoforge"})
    for name, fn in (("piper", piper), ("whisper_gate", whisper_gate), ("units", units), ("ctc_aligner", ctc_aligner)):
        attempt(stages, name, fn)
    return stages


def run_pipeline(args) -> dict:
    """A whole build of the first rows of the sample with every model on the device."""
    from echoforge.config import parse_config
    from echoforge.pipeline.build import build
    from echoforge.pipeline.output import iter_shards

    d = args.device
    config = parse_config({
        "synthesis": {"piper": {"device": d}},
        "gate": {"whisper": {"device": d}},
        "units": {"device": d},
        "align": {"device": d},
        "run": {"workers": 1},
    })
    with tempfile.TemporaryDirectory() as tmp:
        _, seconds = timed(lambda: build([str(SAMPLE)], Path(tmp) / "out", config, limit=args.pipeline_rows))
        audio_s, rows = 0.0, 0
        for _, table in iter_shards(Path(tmp) / "out", ["question_duration_s", "answer_duration_s"]):
            for r in table.to_pylist():
                rows += 1
                audio_s += (r["question_duration_s"] or 0.0) + (r["answer_duration_s"] or 0.0)
    return measured(audio_s, seconds, rows=rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--small", action="store_true", help="2 answers and a 2-row build (a quick check)")
    p.add_argument("--answers", type=int, default=24)
    p.add_argument("--pipeline-rows", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--gpus", type=int, default=8, help="devices (or CPU workers) of the projection")
    p.add_argument("--target-hours", type=float, default=6000.0)
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    if args.small:
        args.answers, args.pipeline_rows = 2, 2
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA device")
    t0 = time.perf_counter()
    stages = run_stages(args)
    attempt(stages, "pipeline", lambda: run_pipeline(args))
    for s in stages:
        if s.get("rate"):
            s["projected_hours"] = round(args.target_hours * 3600 / (s["rate"] * args.gpus) / 3600, 1)
    facts = {"device": args.device, "device_name": device_name(args.device), "cpus": os.cpu_count(),
             "gpus_projected": args.gpus, "target_hours": args.target_hours, "answers": args.answers,
             "pipeline_rows": args.pipeline_rows, "batch_size": args.batch_size,
             "seconds": round(time.perf_counter() - t0, 1)}
    report = {"facts": facts, "stages": stages}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"{facts['device_name']} ({args.device}); {args.answers} answers, a {args.pipeline_rows}-row build; "
          f"{facts['seconds']} s in all")
    print(f"| stage | audio s | seconds | audio-s per device-s | hours for {args.target_hours:g} h on {args.gpus} |")
    print("| --- | --- | --- | --- | --- |")
    for s in stages:
        if "rate" in s:
            print(f"| {s['stage']} | {s['audio_s']:.1f} | {s['seconds']:.2f} | {s['rate']:.1f} | {s['projected_hours']:.1f} |")
        else:
            print(f"| {s['stage']} | {s.get('skipped') or s.get('error')} | | | |")


if __name__ == "__main__":
    main()
