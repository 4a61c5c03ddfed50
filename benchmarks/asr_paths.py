"""The gate's two ASR paths on the same stored audio: WER, CER and CPU time of each.

    python benchmarks/asr_paths.py BUILD_DIR [BUILD_DIR ...] [--rows N]

- **window**: faster-whisper's own ``transcribe`` (audio padded to Whisper's 30 s window,
  timestamp tokens; ``gate.whisper.timestamps: true``);
- **speech-only**: one encoder pass over the speech alone, the silent window's states after it,
  batched greedy decoding without timestamps (the default).

Both read every kept row's question and answer audio of each build and score the transcripts
against the spoken text with the gate's own WER.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np


def clips(root: str, rows: int | None = None) -> list[tuple[str, np.ndarray, str]]:
    import soundfile as sf

    from echoforge.audio import resample
    from echoforge.pipeline.output import iter_shards

    out = []
    columns = ["question_audio", "question_spoken", "answer_audio", "answer_spoken"]
    read = 0
    for _, table in iter_shards(root, columns=columns):
        for row in table.to_pylist():
            if rows is not None and read >= rows:
                return out
            read += 1
            for side in ("question", "answer"):
                if row[f"{side}_audio"] and row[f"{side}_audio"].get("bytes"):
                    audio, rate = sf.read(io.BytesIO(row[f"{side}_audio"]["bytes"]), dtype="float32")
                    out.append((side, resample(audio, rate, 16_000), row[f"{side}_spoken"]))
    return out


def main() -> None:
    from echoforge.backends.asr import WhisperASR
    from echoforge.transforms.gate import WordErrorRate

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("builds", nargs="+")
    p.add_argument("--rows", type=int, default=None, help="the first N kept rows of each build")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    wer = WordErrorRate()
    results = {}
    for root in args.builds:
        data = clips(root, args.rows)
        for path, timestamps in (("window", True), ("speech-only", False)):
            asr = WhisperASR(timestamps=timestamps)
            asr.setup()
            c0 = time.process_time()
            heard = asr.transcribe_batch([a for _, a, _ in data])
            cpu = time.process_time() - c0
            for side in ("question", "answer"):
                w = [wer(ref, h.text) for (s, _, ref), h in zip(data, heard) if s == side]
                results[(root, path, side)] = {"clips": len(w), "wer_mean": float(np.mean(w)),
                                               "wer_p90": float(np.percentile(w, 90)),
                                               "exact": float(np.mean([x == 0 for x in w]))}
            results[(root, path, "cpu")] = {"cpu_s": cpu, "audio_s": sum(len(a) for _, a, _ in data) / 16_000}
    if args.json:
        print(json.dumps({" | ".join(k): v for k, v in results.items()}, indent=2))
        return
    print("| build | path | question WER mean (p90); exact | answer WER mean (p90); exact | audio s / CPU s |")
    print("| --- | --- | --- | --- | --- |")
    for root in args.builds:
        for path in ("window", "speech-only"):
            q, a, c = (results[(root, path, k)] for k in ("question", "answer", "cpu"))
            print(f"| {root} | {path} | {q['wer_mean']:.3f} ({q['wer_p90']:.3f}); {q['exact']:.0%} "
                  f"| {a['wer_mean']:.3f} ({a['wer_p90']:.3f}); {a['exact']:.0%} | {c['audio_s'] / c['cpu_s']:.1f} |")


if __name__ == "__main__":
    main()
