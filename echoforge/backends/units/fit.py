"""Fit a k-means codebook for an encoder + k-means tokenizer on synthesised speech.

``echoforge fit-units`` runs this: text rows → speakable text → Piper speech (the build's
voice policy and seeds) → encoder states → k-means (scikit-learn, seeded) → a plain ``.npy``
array with a JSON provenance file beside it.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version

import numpy as np

from echoforge.backends.units.base import KMeansCodebook, unit_tokenizers
from echoforge.config import BuildConfig
from echoforge.pipeline.stages import run_chain
from echoforge.pipeline.workunits import Plan, WorkUnit, plan_work_units
from echoforge.transforms.ingest import Ingest
from echoforge.transforms.speakable import Speakable
from echoforge.transforms.synthesize import Synthesize

from pathlib import Path

DEFAULT_FIT_INPUT = Path(__file__).resolve().parents[2] / "data" / "units_fit.jsonl"

_state: dict = {}


def _init(config: BuildConfig, plan: Plan) -> None:
    stages = [Ingest(config), Speakable(config), Synthesize(config)]
    tok = unit_tokenizers.create(config.units.tokenizer, **({"model": config.units.model} if config.units.model else {}))
    tok.setup_encoder()
    _state.update(stages=stages, tokenizer=tok, plan=plan)


def _features(unit: WorkUnit) -> tuple[np.ndarray, float]:
    result = run_chain(_state["stages"], list(_state["plan"].read(unit)))
    feats, seconds = [], 0.0
    for turn in result.kept:
        for speech in (turn.question_speech, turn.answer_speech):
            feats.append(_state["tokenizer"].features(speech.audio, speech.sample_rate))
            seconds += speech.duration_s
    return (np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)), seconds


def fit_codebook(inputs: list[str], config: BuildConfig, *, k: int = 500, seed: int = 0,
                 limit: int | None = None, workers: int = 1, max_frames: int = 400_000,
                 progress=None) -> KMeansCodebook:
    """Synthesise the inputs, extract encoder states and fit k-means to them."""
    from sklearn.cluster import MiniBatchKMeans

    t0 = time.time()
    plan = plan_work_units(inputs, config.run.work_unit_rows, limit)
    chunks: list[np.ndarray] = []
    seconds = 0.0
    if workers <= 1:
        _init(config, plan)
        results = map(_features, plan.units)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init,
                                   initargs=(config, plan))
        results = pool.map(_features, plan.units)
    for i, (feats, secs) in enumerate(results):
        if len(feats):
            chunks.append(feats)
        seconds += secs
        if progress:
            progress(i + 1, len(plan.units))
    if workers > 1:
        pool.shutdown()
    data = np.concatenate(chunks)
    if len(data) > max_frames:  # a seeded subsample keeps memory and time bounded
        data = data[np.sort(np.random.default_rng(seed).choice(len(data), max_frames, replace=False))]
    if len(data) < k:
        raise ValueError(f"only {len(data)} frames for {k} clusters; give more text or a smaller k")
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=8192, n_init=3, max_iter=200,
                         reassignment_ratio=0.01)
    km.fit(data)
    provenance = {
        "tokenizer": config.units.tokenizer,
        "k": k,
        "seed": seed,
        "frames": int(len(data)),
        "speech_seconds": round(seconds, 2),
        "inputs": [s.name for s in plan.inputs],
        "input_rows": plan.total_rows,
        "voices": {"assistant": config.synthesis.assistant_voice, "users": list(config.synthesis.user_voices)},
        "inertia_per_frame": float(km.inertia_ / len(data)),
        "scikit-learn": version("scikit-learn"),
        "fit_seconds": round(time.time() - t0, 1),
        "command": f"echoforge fit-units {' '.join(s.name for s in plan.inputs)} --k {k} --seed {seed}"
                   + (f" --limit {limit}" if limit else ""),
    }
    return KMeansCodebook(km.cluster_centers_.astype(np.float32), provenance, sha256="")
