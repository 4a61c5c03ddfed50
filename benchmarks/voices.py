"""The voices presets side by side: throughput and quality of a build of the bundled sample.

    python benchmarks/voices.py --rows 40      # the ShareGPT sample's 40 conversations

Each preset (``synthesis.voices: fast``: Piper's joe on both sides; ``default``: the user side
drawn from 64 Kokoro mixtures, the assistant Piper's joe) builds the same rows in a fresh
process, one worker, so CPU time is the build's own. Reported per preset: audio seconds per
CPU second, the synthesize stage's share of stage time, distinct user voices, the kept rows'
question WER by the build's gate ASR, and the DNSMOS OVRL (P.835, ``speechmos``) of the first
``--dnsmos`` kept questions. The presets build side by side (CPU time is per process).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHILD = r"""
import json, sys, time
from echoforge.config import parse_config
from echoforge.pipeline.build import build
inp, out, rows, preset = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
config = parse_config({"run": {"workers": 1, "work_unit_rows": 8}, "synthesis": {"voices": preset}})
t0 = time.perf_counter(); c0 = time.process_time()
m = build([inp], out, config, limit=rows)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "rows": m["rows"],
                  "rejected": m["rejected"], "audio_s": m["hours"] * 3600, "stage_seconds": m["stage_seconds"]}))
"""


def quality(out: Path, dnsmos_clips: int) -> dict:
    """Distinct user voices and mean question WER of the kept rows; mean DNSMOS OVRL of the first
    ``dnsmos_clips`` kept questions."""
    import numpy as np
    import pyarrow.parquet as pq
    import soundfile as sf
    from speechmos import dnsmos

    manifest = json.loads((out / "manifest.json").read_text())
    rows = [r for s in manifest["shards"] for r in pq.read_table(
        out / s["path"], columns=["id", "question_voice", "question_wer", "question_audio"]).to_pylist()]
    ovrl = []
    for r in sorted(rows, key=lambda r: r["id"])[:dnsmos_clips]:
        audio, rate = sf.read(io.BytesIO(r["question_audio"]["bytes"]), dtype="float32")
        ovrl.append(dnsmos.run(audio, rate)["ovrl_mos"])
    return {"user_voices": len({r["question_voice"] for r in rows}),
            "question_wer": float(np.mean([r["question_wer"] for r in rows])),
            "question_dnsmos_ovrl": float(np.mean(ovrl))}


def run(inp: str, rows: int, preset: str, dnsmos_clips: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        proc = subprocess.run([sys.executable, "-c", CHILD, inp, str(out), str(rows), preset],
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(preset, json.dumps(r), file=sys.stderr, flush=True)
        r.update(quality(out, dnsmos_clips))
    r["audio_s_per_cpu_s"] = r["audio_s"] / r["cpu"]
    r["synthesize_share"] = r["stage_seconds"]["synthesize"] / sum(r["stage_seconds"].values())
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=40)
    p.add_argument("--input", default=str(Path(__file__).resolve().parents[1] / "echoforge" / "data"
                                          / "sharegpt_sample.json"))
    p.add_argument("--dnsmos", type=int, default=24, help="kept questions scored by DNSMOS per preset")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    presets = ("fast", "default")
    with ThreadPoolExecutor(len(presets)) as pool:
        done = pool.map(lambda preset: run(args.input, args.rows, preset, args.dnsmos), presets)
    results = dict(zip(presets, done))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| preset | turns kept | audio s | CPU s | audio s / CPU s | synthesize share | user voices "
          "| question WER | question DNSMOS OVRL |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for preset, r in results.items():
        print(f"| {preset} | {r['rows']} | {r['audio_s']:.1f} | {r['cpu']:.1f} | {r['audio_s_per_cpu_s']:.2f} "
              f"| {100 * r['synthesize_share']:.1f} % | {r['user_voices']} | {r['question_wer']:.3f} "
              f"| {r['question_dnsmos_ovrl']:.2f} |")


if __name__ == "__main__":
    main()
