"""Unit tokenizer and aligner throughput: frames per second, a padded batch against one at a time.

    python benchmarks/units_throughput.py --utterances 8 --batch-size 8 [--device auto] [--json]

Each model tokenizer runs on full-size architectures with random weights (speed does not depend
on the weights; no weights of these models can be downloaded here), saved with
``save_pretrained`` and loaded through the tokenizer's own code: HuBERT base (12 layers, 768
dims; layer 11 + k-means 1000), EnCodec 24 kHz (8 codebooks), Mimi (8 of 32 codebooks). The
default Whisper tiny.en + k-means tokenizer and the hama CTC aligner run with their real models.
Model tokenizers are made to pad batches on CPU too (by default they pad only on a GPU).
Input: ``--utterances`` speech-like signals of 2 to 9 s at 16 kHz (the lengths of spoken
answers), the same for every tokenizer. Each row gives frames per second of wall time and
audio seconds per second, for ``encode_batch`` over batches of ``--batch-size`` and for
``encode`` one utterance at a time, after one warm-up call; the device, torch threads and CPU are
recorded. This machine may be shared and noisy: rerun before trusting a small difference.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def signals(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        seconds = 2.0 + 7.0 * i / max(n - 1, 1)
        t = np.arange(int(seconds * 16_000)) / 16_000
        env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
        sig = env * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 900 * t * (1 + 0.2 * t)))
        out.append((0.3 * sig + 0.01 * rng.standard_normal(len(t))).astype(np.float32))
    return out


def save_models(tmp: Path) -> dict[str, dict]:
    """Full-size random models and a k-means 1000 codebook; the units sections that load them."""
    import torch
    from transformers import EncodecConfig, EncodecModel, HubertConfig, HubertModel, MimiConfig, MimiModel

    from echoforge.backends.units.base import KMeansCodebook

    torch.manual_seed(0)
    HubertModel(HubertConfig()).save_pretrained(tmp / "hubert")
    KMeansCodebook(np.random.default_rng(0).standard_normal((1000, 768)).astype(np.float32), {}, "").save(
        tmp / "km1000.npy")
    EncodecModel(EncodecConfig()).save_pretrained(tmp / "encodec")
    MimiModel(MimiConfig()).save_pretrained(tmp / "mimi")
    return {
        "whisper-kmeans": {},
        "hubert-kmeans": {"hubert": {"model": str(tmp / "hubert"), "layer": 11, "codebook": str(tmp / "km1000.npy")}},
        "encodec": {"encodec": {"model": str(tmp / "encodec"), "num_codebooks": 8}},
        "mimi": {"mimi": {"model": str(tmp / "mimi"), "num_codebooks": 8}},
    }


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(encode_one, encode_batch, audio: list[np.ndarray], batch_size: int) -> dict[str, float]:
    encode_one(audio[0])  # warm-up: first-call allocations and kernel choices
    single = timed(lambda: [encode_one(a) for a in audio])
    batched = timed(lambda: [encode_batch(audio[i: i + batch_size]) for i in range(0, len(audio), batch_size)])
    return {"single_s": single, "batched_s": batched}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--utterances", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--tokenizers", default="whisper-kmeans,hubert-kmeans,encodec,mimi")
    p.add_argument("--no-aligner", action="store_true", help="skip the hama CTC aligner")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from echoforge.registry import word_aligners
    from echoforge.backends.units import create_tokenizer
    from echoforge.backends.units.base import torch_device
    from echoforge.config import parse_config

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    audio = signals(args.utterances)
    seconds = sum(len(a) for a in audio) / 16_000
    device = torch_device(args.device)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sections = save_models(Path(tmp))
        for name in args.tokenizers.split(","):
            units = parse_config({"units": {"tokenizer": name, "device": args.device, **sections[name]}}).units
            tok = create_tokenizer(units, **({} if name == "whisper-kmeans" else {"pad_batches": True}))
            tok.setup()
            frames = sum(u.num_frames for u in tok.encode_batch([(a, 16_000) for a in audio]))
            t = measure(lambda a: tok.encode(a, 16_000), lambda b: tok.encode_batch([(a, 16_000) for a in b]),
                        audio, args.batch_size)
            results.append({"name": name, "device": device if tok.uses_gpu else "cpu", "frames": frames,
                            "streams": tok.num_codebooks, **t})
        if not args.no_aligner:
            aligner = word_aligners.create("hama")
            aligner.setup()
            words = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"]
            frames = sum(len(e) for e in aligner.emissions_batch(audio))
            t = measure(lambda a: aligner.align(a, 16_000, words),
                        lambda b: aligner.align_batch([(a, 16_000, words) for a in b]), audio, args.batch_size)
            results.append({"name": "hama CTC aligner", "device": "cpu", "frames": frames, "streams": 1, **t})
    for r in results:
        r["single_frames_per_s"] = r["frames"] / r["single_s"]
        r["batched_frames_per_s"] = r["frames"] / r["batched_s"]
        r["single_x_realtime"] = seconds / r["single_s"]
        r["batched_x_realtime"] = seconds / r["batched_s"]
    facts = {"audio_s": round(seconds, 1), "utterances": args.utterances, "batch_size": args.batch_size,
             "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or
             platform.machine(), "cpus": os.cpu_count(),
             "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    if args.json:
        print(json.dumps({"facts": facts, "results": results}, indent=2))
        return
    print(f"{facts['utterances']} utterances, {facts['audio_s']} s of audio, batch {facts['batch_size']}; torch "
          f"{facts['torch']}, {facts['torch_threads']} threads, {facts['cpus']} CPUs, GPU {facts['gpu']}")
    print("| tokenizer | device | frames × streams | one at a time: frames/s (× real time) | batched: frames/s (× real time) | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['name']} | {r['device']} | {r['frames']} × {r['streams']} | {r['single_frames_per_s']:.0f} "
              f"({r['single_x_realtime']:.1f}×) | {r['batched_frames_per_s']:.0f} ({r['batched_x_realtime']:.1f}×) | "
              f"{r['single_s'] / r['batched_s']:.2f} |")


if __name__ == "__main__":
    main()
