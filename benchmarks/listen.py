"""What the listen stage costs and what it measures on the bundled samples.

    python benchmarks/listen.py --rows 20

The input's first ``--rows`` rows through ingest, speakable and synthesize (the default voice),
then, per side and in CPU seconds on one thread (models loaded before timing):

- DNSMOS with the default windows (the fewest 9.01 s windows that cover each clip) and, on the
  first ``--reference-clips`` clips of each side, with the reference's windows every second
  (``listen.dnsmos_hop_s: 1``);
- Resemblyzer speaker embeddings (``listen.speaker: true``).

Prints CPU seconds per second of audio for each, the gap between the two window choices, and
the distribution (mean, p10, p50, min) of every figure: the numbers in docs/benchmarks.md and
docs/columns.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "echoforge" / "data"


def turns_of(path: str, rows: int):
    from echoforge.config import parse_config
    from echoforge.pipeline.stages import run_chain
    from echoforge.pipeline.workunits import plan_work_units
    from echoforge.transforms.ingest import Ingest
    from echoforge.transforms.speakable import Speakable
    from echoforge.transforms.synthesize import Synthesize

    config = parse_config({"run": {"workers": 1}})
    plan = plan_work_units([path], config.run.work_unit_rows, rows)
    rows_in = [r for unit in plan.units for r in plan.read(unit)]
    return run_chain([Ingest(config), Speakable(config), Synthesize(config)], rows_in).kept


def summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"mean": round(float(a.mean()), 3), "p10": round(float(np.quantile(a, 0.1)), 3),
            "p50": round(float(np.quantile(a, 0.5)), 3), "min": round(float(a.min()), 3)}


def measure(path: str, rows: int, reference_clips: int) -> dict:
    from echoforge.backends.quality.dnsmos import DNSMOS
    from echoforge.backends.quality.speaker import SpeakerEncoder
    from echoforge.config import parse_config
    from echoforge.transforms.listen import Listen

    turns = turns_of(path, rows)
    cover, reference, encoder = DNSMOS(), DNSMOS(hop_s=1.0), SpeakerEncoder()
    for model in (cover, reference, encoder):
        model.setup()
    listen = Listen(parse_config({"listen": {"speaker": True}}))
    listen.ensure_setup()  # the assistant voice's reference embedding
    out: dict = {"input": Path(path).name, "turns": len(turns)}
    figures: dict[str, list[float]] = {}
    for side in ("question", "answer"):
        clips = [getattr(t, f"{side}_speech") for t in turns]
        audio_s = sum(c.duration_s for c in clips)
        cost = {}
        for name, model, some in (("dnsmos", cover, clips), ("dnsmos_hop_1s", reference, clips[:reference_clips])):
            c0 = time.process_time()
            scores = [model.score(c.audio, c.sample_rate) for c in some]
            cost[name] = round((time.process_time() - c0) / sum(c.duration_s for c in some), 4)
            for k in scores[0]:
                figures.setdefault(f"{side}_{name}_{k}", []).extend(s[k] for s in scores)
        c0 = time.process_time()
        embeddings = [encoder.embed(c.audio, c.sample_rate) for c in clips]
        cost["speaker"] = round((time.process_time() - c0) / audio_s, 4)
        out[side] = {"clips": len(clips), "audio_s": round(audio_s, 1), "cpu_s_per_audio_s": cost}
        if side == "answer":
            figures["answer_speaker_similarity"] = [float(e @ listen.reference) for e in embeddings]
        else:
            emb = np.stack(embeddings)
            sims = emb @ emb.T
            figures["question_pair_similarity"] = sims[np.triu_indices(len(emb), 1)].tolist()
    out["gap_cover_vs_hop_1s_ovrl"] = {side: round(float(np.mean(np.abs(np.subtract(
        figures[f"{side}_dnsmos_ovrl"][:reference_clips], figures[f"{side}_dnsmos_hop_1s_ovrl"])))), 4)
        for side in ("question", "answer")}
    out["figures"] = {k: summary(v) for k, v in figures.items() if "hop_1s" not in k}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--reference-clips", type=int, default=8)
    parser.add_argument("inputs", nargs="*", default=[str(DATA / "sharegpt_sample.json"),
                                                      str(DATA / "alpaca_messy.jsonl")])
    args = parser.parse_args()
    for path in args.inputs:
        print(json.dumps(measure(path, args.rows, args.reference_clips), indent=1))


if __name__ == "__main__":
    main()
