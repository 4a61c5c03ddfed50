"""coqui VITS synthesis: padded sentence batches against one sentence at a time.

    python benchmarks/coqui_batching.py [--size tiny|full] [--sentences 16] [--batch-size 8] [--device cpu|cuda] [--json]

A random multi-speaker VITS is built with coqui's own classes and saved and loaded as coqui
saves models (``tests/tiny_coqui.py``): ``tiny`` is the test model, ``full`` has the
architecture of coqui's released VCTK VITS (speed does not depend on the weights; no coqui
weights can be downloaded here). ``--sentences`` English sentences of 3 to 30 words, three
speakers and jittered rates go through ``CoquiBackend.synthesize_batch`` with
``synthesis.coqui.batched`` on (padded batches of ``--batch-size`` sentences of similar length)
and off, after one warm-up call each. Each row gives audio seconds per CPU second (process
CPU time, all threads) and per wall second; the device, torch threads and CPU are recorded.
The machine may be shared and noisy: rerun before trusting a small difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WORDS = ("the quick brown fox jumps over a lazy dog while seven happy children sing songs about "
         "rivers mountains and the long summer evenings they spend near the old stone bridge").split()


def sentences(n: int) -> list[str]:
    out = []
    for i in range(n):
        k = 3 + (27 * i) // max(n - 1, 1)
        out.append(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(k)).capitalize() + ".")
    return out


def run(backend, requests) -> dict[str, float]:
    backend.synthesize_batch(requests[:2])  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    speech = backend.synthesize_batch(requests)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    audio = sum(s.duration_s for s in speech)
    return {"audio_s": round(audio, 2), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            "audio_s_per_cpu_s": round(audio / cpu, 2), "audio_s_per_wall_s": round(audio / wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--sentences", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (a build worker uses 1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from echoforge.backends.tts import VoiceRequest
    from echoforge.backends.tts.coqui import CoquiBackend
    from echoforge.config import CoquiConfig
    from tiny_coqui import SPEAKERS, make_tiny_vits

    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_vits(Path(tmp) / "vits", full_size=args.size == "full")
        requests = [VoiceRequest((text,), f"{model}#{SPEAKERS[i % 3]}", 0.95 + 0.1 * (i % 3) / 2, i)
                    for i, text in enumerate(sentences(args.sentences))]
        rows = {}
        for batched in (False, True):
            backend = CoquiBackend([r.voice for r in requests], CoquiConfig(device=args.device, batched=batched),
                                   batch_size=args.batch_size, threads=args.threads)
            backend.setup()
            rows["batched" if batched else "single"] = run(backend, requests)
    result = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
              "torch_threads": torch.get_num_threads(), "size": args.size, "sentences": args.sentences,
              "batch_size": args.batch_size, **rows,
              "speedup_cpu": round(rows["batched"]["audio_s_per_cpu_s"] / rows["single"]["audio_s_per_cpu_s"], 2),
              "speedup_wall": round(rows["batched"]["audio_s_per_wall_s"] / rows["single"]["audio_s_per_wall_s"], 2)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"device: {result['device']}, torch threads {result['torch_threads']}, {args.size} VITS, "
          f"{args.sentences} sentences, batch size {args.batch_size}")
    for name in ("single", "batched"):
        r = rows[name]
        print(f"{name:<8} {r['audio_s']:7.1f} audio s  {r['cpu_s']:7.2f} CPU s  {r['wall_s']:7.2f} wall s  "
              f"{r['audio_s_per_cpu_s']:6.2f} audio s / CPU s  {r['audio_s_per_wall_s']:6.2f} audio s / wall s")
    print(f"batched / single: {result['speedup_cpu']}x per CPU second, {result['speedup_wall']}x per wall second")


if __name__ == "__main__":
    main()
