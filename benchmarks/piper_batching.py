"""Piper on CPU: sentences one at a time against padded batches of similar length, and threads.

    python benchmarks/piper_batching.py

The bundled voice's ONNX graph through onnxruntime, the same sentences (the first answers of
the ShareGPT sample, split into sentences), CPU time of this process: one sentence per call
with one intra-op thread (what a build worker does), the same with onnxruntime's default
threads, and batches of ``--batch`` sentences sorted by length and padded to the longest.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "echoforge" / "data" / "sharegpt_sample.json"


def sentences(n: int) -> list[str]:
    import pysbd

    seg = pysbd.Segmenter(language="en", clean=False)
    out: list[str] = []
    for conv in json.loads(SAMPLE.read_text()):
        for turn in conv["conversations"]:
            out += [s.strip() for s in seg.segment(turn["value"]) if s.strip()]
    return out[:n]


def main() -> None:
    import onnxruntime as ort
    from piper import PiperVoice

    from echoforge.backends.tts.piper import resolve_voice

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    model, config, _ = resolve_voice("joe")
    voice = PiperVoice.load(model, config)
    c = voice.config
    scales = np.array([c.noise_scale, c.length_scale, c.noise_w_scale], np.float32)
    ids = [voice.phonemes_to_ids(ph) for s in sentences(args.sentences) for ph in voice.phonemize(s) if ph]

    def session(threads: int | None):
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])

    def run(sess, batch: list[list[int]]) -> int:
        x = np.zeros((len(batch), max(map(len, batch))), np.int64)
        for i, b in enumerate(batch):
            x[i, :len(b)] = b
        audio = sess.run(None, {"input": x, "input_lengths": np.array([len(b) for b in batch], np.int64),
                                "scales": scales})[0]
        return audio.shape[-1] * len(batch)

    def timed(fn) -> float:
        c0 = time.process_time()
        fn()
        return time.process_time() - c0

    one = session(1)
    audio_s = sum(run(one, [i]) for i in ids) / c.sample_rate  # also warms the session up
    single = timed(lambda: [run(one, [i]) for i in ids])
    default = session(None)
    single_default = timed(lambda: [run(default, [i]) for i in ids])
    order = sorted(ids, key=len)
    batched = timed(lambda: [run(one, order[k:k + args.batch]) for k in range(0, len(order), args.batch)])
    print(f"{len(ids)} sentences, {audio_s:.1f} s of audio\n")
    print("| Piper on CPU | CPU s | audio s / CPU s |")
    print("| --- | --- | --- |")
    for name, cpu in (("one sentence per call, 1 thread (a build worker)", single),
                      ("one sentence per call, onnxruntime's default threads", single_default),
                      (f"batches of {args.batch} sorted by length, padded, 1 thread", batched)):
        print(f"| {name} | {cpu:.2f} | {audio_s / cpu:.2f} |")


if __name__ == "__main__":
    main()
