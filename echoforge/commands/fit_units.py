"""Fit a k-means codebook for an encoder + k-means tokenizer on synthesised speech.

``echoforge fit-units`` runs this: text rows → speakable text → Piper speech (the build's
voice policy and seeds) → encoder states → an LDA projection onto the directions that best
separate the phones (frame labels from the synthesiser's phoneme durations) → k-means
(scikit-learn, seeded) in that space → a plain ``.npy`` array with a JSON provenance file
beside it. Raw Whisper states cluster poorly (a few dimensions of large magnitude dominate the
distances); ``docs/units.md`` has the measured effect of each choice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from echoforge.backends.units.base import KMeansCodebook, create_tokenizer
from echoforge.backends.units.phones import frame_phones, phone_segments
from echoforge.config import BuildConfig
from echoforge.errors import EchoforgeError
from echoforge.pipeline.engines.local import LocalEngine
from echoforge.pipeline.job import run_unit
from echoforge.pipeline.workunits import Plan, WorkUnit, plan_work_units
from echoforge.schemas.records import Reject, Turn
from echoforge.transforms.base import Stage
from echoforge.transforms.ingest import Ingest
from echoforge.transforms.speakable import Speakable
from echoforge.transforms.synthesize import Synthesize

log = logging.getLogger(__name__)

DEFAULT_FIT_INPUT = Path(__file__).resolve().parents[1] / "data" / "units_fit.jsonl"

class EncoderStates(Stage):
    """The tokenizer's encoder, set up once per worker; its records pass through unchanged
    (:class:`FeaturesJob` reads the states of their speech)."""

    name = "encoder"

    def setup(self) -> None:
        self.tokenizer = create_tokenizer(self.config.units)
        if not hasattr(self.tokenizer, "setup_encoder"):
            raise EchoforgeError(f"fit-units fits k-means for an encoder tokenizer (whisper-kmeans, hubert-kmeans), "
                                 f"not {self.config.units.tokenizer}")
        self.tokenizer.setup_encoder()

    def process(self, batch: list[Turn]) -> tuple[list[Turn], list[Reject]]:
        return batch, []


@dataclass
class FeaturesJob:
    """What fit-units asks of a worker for one work unit: its speech as encoder states and the
    phone at each frame. The local engine runs it as it runs a build's job (workers set up
    once, units read and staged by :func:`~echoforge.pipeline.job.run_unit`); a unit gives
    its features instead of a commit."""

    config: BuildConfig
    plan: Plan
    _stages: list[Stage] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_stages": None}  # each worker sets up its own models

    def stages(self) -> list[Stage]:
        if self._stages is None:
            c = self.config
            self._stages = [Ingest(c), Speakable(c), Synthesize(c), EncoderStates(c)]
        return self._stages

    def process(self, unit: WorkUnit, stages: list[Stage]) -> dict[str, Any]:
        """Encoder states of a unit's speech, the phone at each frame ("" where none), seconds."""
        state = run_unit(self, unit, stages, commit=False)
        if state.failure is not None:
            return self.quarantine(unit, state.failure, state.attempts)
        tok = stages[-1].tokenizer
        feats, phones, seconds = [], [], 0.0
        for turn in state.records:
            for speech in (turn.question_speech, turn.answer_speech):
                f = tok.features(speech.audio, speech.sample_rate)
                feats.append(f)
                phones.append(frame_phones(phone_segments(speech.phonemes), len(f), tok.frame_rate))
                seconds += speech.duration_s
        if not feats:
            return {"unit": unit.index, "features": np.zeros((0, 0), np.float32), "phones": np.zeros(0, dtype="<U4"),
                    "seconds": seconds}
        return {"unit": unit.index, "features": np.concatenate(feats), "phones": np.concatenate(phones),
                "seconds": seconds}

    def quarantine(self, unit: WorkUnit, error: str, attempts: int) -> dict[str, Any]:
        """A unit that failed gives no features; the fit goes on without it."""
        log.warning("fit-units: work unit %d gave no features after %d attempts: %s", unit.index, attempts, error)
        return {"unit": unit.index, "features": np.zeros((0, 0), np.float32), "phones": np.zeros(0, dtype="<U4"),
                "seconds": 0.0}


def fit_projection(data: np.ndarray, phones: np.ndarray, transform: str) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
    """(mean, projection, facts) of a feature transform: "lda" (phone-discriminant directions,
    from labelled frames), "standardize" (zero mean, unit variance per dimension) or "none"."""
    if transform == "none":
        return None, None, {}
    if transform == "standardize":
        return data.mean(0), np.diag(1.0 / (data.std(0) + 1e-5)).astype(np.float32), {}
    if transform != "lda":
        raise ValueError(f"unknown transform {transform!r}")
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    labelled = phones != ""
    classes = np.unique(phones[labelled])
    if len(classes) < 2:
        raise ValueError("the LDA projection needs phone labels: the TTS backend gave no phoneme durations")
    lda = LinearDiscriminantAnalysis(solver="svd").fit(data[labelled], phones[labelled])
    m = min(len(classes) - 1, lda.scalings_.shape[1])
    return (lda.xbar_.astype(np.float32), lda.scalings_[:, :m].astype(np.float32),
            {"lda_components": int(m), "phones": len(classes), "labelled_frames": int(labelled.sum())})


def fit_kmeans(features: np.ndarray, k: int, seed: int = 0):
    """Seeded mini-batch k-means: the settings of every codebook and baseline echoforge fits."""
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=8192, n_init=3, max_iter=200,
                         reassignment_ratio=0.01)
    return km.fit(features)


def fit_codebook(inputs: list[str], config: BuildConfig, *, k: int = 500, seed: int = 0,
                 limit: int | None = None, workers: int = 1, max_frames: int = 400_000,
                 transform: str = "lda", progress=None) -> KMeansCodebook:
    """Synthesise the inputs, extract encoder states, project them (``transform``) and fit
    k-means to them."""
    t0 = time.time()
    plan = plan_work_units(inputs, config.run.work_unit_rows, limit)
    chunks: list[np.ndarray] = []
    phone_chunks: list[np.ndarray] = []
    seconds = 0.0
    engine = LocalEngine(workers)
    results: dict[int, dict[str, Any]] = {}
    try:
        for result in engine.run(FeaturesJob(config, plan), list(plan.units)):
            results[result["unit"]] = result
            if progress:
                progress(len(results), len(plan.units))
    finally:
        engine.close()
    for _, result in sorted(results.items()):  # in input order, whichever worker finished first
        if len(result["features"]):
            chunks.append(result["features"])
            phone_chunks.append(result["phones"])
        seconds += result["seconds"]
    if not chunks:
        raise EchoforgeError("no speech to fit on: every input row was rejected before synthesis")
    data, phones = np.concatenate(chunks), np.concatenate(phone_chunks)
    if len(data) > max_frames:  # a seeded subsample keeps memory and time bounded
        keep = np.sort(np.random.default_rng(seed).choice(len(data), max_frames, replace=False))
        data, phones = data[keep], phones[keep]
    if len(data) < k:
        raise EchoforgeError(f"only {len(data)} frames for {k} clusters; give more text or a smaller k")
    mean, projection, facts = fit_projection(data, phones, transform)
    codebook = KMeansCodebook(np.zeros((0, 0), np.float32), {}, "", mean, projection)
    km = fit_kmeans(codebook.transform(data), k, seed)
    provenance = {
        "tokenizer": config.units.tokenizer,
        "k": k,
        "seed": seed,
        "frames": len(data),
        "speech_seconds": round(seconds, 2),
        "inputs": [s.name for s in plan.inputs],
        "input_rows": plan.total_rows,
        "voices": {"assistant": config.synthesis.assistant_voice, "users": list(config.synthesis.user_voices)},
        "transform": transform,
        **facts,
        "inertia_per_frame": float(km.inertia_ / len(data)),
        "scikit-learn": version("scikit-learn"),
        "fit_seconds": round(time.time() - t0, 1),
        "command": f"echoforge fit-units {' '.join(s.name for s in plan.inputs)} --k {k} --seed {seed}"
                   + (f" --limit {limit}" if limit else ""),
    }
    return KMeansCodebook(km.cluster_centers_.astype(np.float32), provenance, "", mean, projection)
