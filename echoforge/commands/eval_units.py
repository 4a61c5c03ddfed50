"""Measure the speech units and word alignment of a built corpus (``echoforge eval-units``).

Frame-level phone labels come from the synthesiser itself. The corpus rows do not store
phonemes, so every row's answer is synthesised again with the build's voice, rate and seed
policy (the config is in ``manifest.json``; the answer's sentences are the texts of its
``segments``). Piper synthesis is deterministic, so the new audio must equal the stored FLAC
within 16-bit quantisation; rows where it does not are counted and left out.

Figures (see docs/units.md):

* ``pnmi``: phone-normalised mutual information I(phone; unit) / H(phone) between the
  first codebook's units and the phone covering each frame's centre (HuBERT, Hsu et al. 2021);
  ``phone_purity`` = E_unit[max_phone p(phone | unit)], ``cluster_purity`` =
  E_phone[max_unit p(unit | phone)].
* ``baseline_mfcc_*``: the same for 39-dim MFCC (13 + deltas + delta-deltas, Kaldi-style, as
  HuBERT's first iteration) pooled from 100 Hz to 50 Hz, standardised per dimension and
  clustered by k-means with the tokenizer's codebook size, both fitted on a separate part of
  the same corpus (``fit_fraction`` of the rows, which are then not scored).
* ``codebook_usage`` (share of codes seen) and ``codebook_perplexity`` (exp of the unit entropy).
* ``units_per_second`` / ``dedup_units_per_second``: unit rates before and after collapsing runs.
* ``alignment_*``: our word starts (the ``alignment`` column, from phoneme durations) against
  Whisper's word timestamps on the same audio, words matched by sequence alignment of their
  normalised text.
* ``ctc_*``: the word starts a CTC forced aligner (``echoforge.backends.aligners``) finds in the
  stored audio for the same words, against the ``alignment`` column.

Phone labels: Piper's phoneme symbols, with stress marks, word-boundary spaces and
punctuation dropped (frames whose centre falls in them, or in a pause, carry no label and are
left out) and length marks merged into the phone before them (``ɑ`` + ``ː`` → ``ɑː``).
"""

from __future__ import annotations

import difflib
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echoforge.audio import resample, to_pcm16
from echoforge.backends.aligners.agreement import alignment_figures, start_differences
from echoforge.commands.fit_units import fit_kmeans
from echoforge.backends.units.phones import frame_labels, phone_segments
from echoforge.config import BuildConfig, parse_config
from echoforge.errors import EchoforgeError, require
from echoforge.pipeline.output import iter_shards, load_manifest
from echoforge.schemas.records import Turn, dedup_frames
from echoforge.seeding import stable_uniform

MFCC_RATE = 16_000
LONG_ANSWER_S = 15.0  # answers at least this long have their own CTC agreement figures (ctc_long_*)
BASELINE_FRAME_RATE = 50.0

Progress = Callable[[str, int, int], None]


# --- cluster figures ----------------------------------------------------------------------

def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def cluster_scores(phones: np.ndarray, units: np.ndarray) -> dict[str, float]:
    """PNMI, phone purity and cluster purity of units against phone labels (frames with a
    negative phone label are left out)."""
    keep = phones >= 0
    phones, units = phones[keep].astype(np.int64), units[keep].astype(np.int64)
    if len(phones) == 0:
        raise EchoforgeError("no labelled frames to score")
    _, ph = np.unique(phones, return_inverse=True)
    _, un = np.unique(units, return_inverse=True)
    joint = np.zeros((ph.max() + 1, un.max() + 1), dtype=np.float64)
    np.add.at(joint, (ph, un), 1.0)
    n = joint.sum()
    p_phone, p_unit = joint.sum(1) / n, joint.sum(0) / n
    pj = joint / n
    nz = pj > 0
    mi = float((pj[nz] * np.log2(pj[nz] / np.outer(p_phone, p_unit)[nz])).sum())
    h_phone = _entropy_bits(joint.sum(1))
    return {
        "pnmi": mi / h_phone if h_phone > 0 else 0.0,
        "phone_purity": float(joint.max(0).sum() / n),
        "cluster_purity": float(joint.max(1).sum() / n),
        "mutual_information_bits": mi,
        "phone_entropy_bits": h_phone,
        "frames": int(n),
    }


def codebook_usage(units: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Share of the codebook's codes that occur, and the perplexity of the unit distribution."""
    counts = np.bincount(units.astype(np.int64), minlength=codebook_size).astype(np.float64)
    return {
        "codebook_usage": float((counts > 0).sum() / max(codebook_size, 1)),
        "codebook_perplexity": float(2.0 ** _entropy_bits(counts)) if counts.sum() else 0.0,
    }


# --- MFCC + k-means baseline --------------------------------------------------------------

def mfcc_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """39-dim Kaldi MFCC (13 + deltas + delta-deltas) at 100 Hz, mean-pooled in pairs to 50 Hz.

    Frames are centred (``snip_edges=False``), so 50 Hz frame j covers [j/50, (j+1)/50) like
    the tokenizers' frames.
    """
    torch = require("torch", "the MFCC baseline of eval-units", "torch")
    kaldi = require("torchaudio.compliance.kaldi", "the MFCC baseline of eval-units", "torch")
    functional = require("torchaudio.functional", "the MFCC baseline of eval-units", "torch")
    wav = torch.from_numpy(np.ascontiguousarray(resample(audio, sample_rate, MFCC_RATE)))[None]
    if wav.shape[1] < 400:
        return np.zeros((0, 39), dtype=np.float32)
    with torch.no_grad():
        mfcc = kaldi.mfcc(wav, sample_frequency=float(MFCC_RATE), use_energy=False, snip_edges=False,
                          dither=0.0).T  # (13, frames)
        deltas = functional.compute_deltas(mfcc[None])[0]
        ddeltas = functional.compute_deltas(deltas[None])[0]
        feats = torch.cat([mfcc, deltas, ddeltas], dim=0).T.numpy()
    n = len(feats) // 2
    return feats[: 2 * n].reshape(n, 2, -1).mean(axis=1).astype(np.float32)


def assign(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    from echoforge.backends.units.base import KMeansCodebook

    return KMeansCodebook(centres, {}, "").assign(features)


# --- word alignment -----------------------------------------------------------------------

def normalize_word(word: str) -> str:
    return re.sub(r"[^0-9a-z]", "", word.lower())


def match_word_starts(ours: list[tuple[str, float]], theirs: list[tuple[str, float]]) -> list[tuple[float, float]]:
    """(our start, their start) of the words that sequence alignment of the normalised texts
    pairs as equal."""
    a = [normalize_word(w) for w, _ in ours]
    b = [normalize_word(w) for w, _ in theirs]
    pairs = []
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for d in range(block.size):
            if a[block.a + d]:
                pairs.append((ours[block.a + d][1], theirs[block.b + d][1]))
    return pairs


# --- reading a corpus and synthesising its answers again ----------------------------------

@dataclass
class CorpusRow:
    """What the evaluation needs of one output row."""

    id: str
    conversation_id: str
    turn_index: int
    sentences: list[str]
    audio_pcm16: np.ndarray
    sample_rate: int
    voice: str
    rate: float
    units: np.ndarray  # (codebooks, frames)
    frame_rate: float
    codebook_size: int
    tokenizer: str
    words: list[tuple[str, float, float]] = field(default_factory=list)
    sentence_spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def audio(self) -> np.ndarray:
        return self.audio_pcm16.astype(np.float32) / 32768.0

    @property
    def duration_s(self) -> float:
        return len(self.audio_pcm16) / float(self.sample_rate)


_COLUMNS = ["id", "conversation_id", "turn_index", "segments", "answer_audio", "answer_voice",
            "answer_speaking_rate", "answer_units", "units_frame_rate", "units_codebook_size",
            "units_tokenizer", "alignment"]


def read_corpus(root: str | Path, limit: int | None = None) -> tuple[BuildConfig, dict[str, Any], list[CorpusRow]]:
    """The build config, the manifest and the rows (in shard order; the first ``limit``)."""
    import soundfile as sf

    manifest = load_manifest(root)
    config = parse_config(manifest["config"])
    rows: list[CorpusRow] = []
    for _, table in iter_shards(root, _COLUMNS):
        if limit is not None and len(rows) >= limit:
            break
        for r in table.to_pylist():
            if limit is not None and len(rows) >= limit:
                break
            if r["answer_units"] is None or r["answer_audio"] is None or not r["answer_audio"].get("bytes"):
                continue  # built without answer audio or units: nothing to measure
            pcm, sr = sf.read(io.BytesIO(r["answer_audio"]["bytes"]), dtype="int16", always_2d=True)
            rows.append(CorpusRow(
                id=r["id"], conversation_id=r["conversation_id"], turn_index=r["turn_index"],
                sentences=[s["text"] for s in r["segments"]], audio_pcm16=pcm[:, 0].copy(), sample_rate=int(sr),
                voice=r["answer_voice"], rate=float(r["answer_speaking_rate"]),
                units=np.asarray(r["answer_units"], dtype=np.int32), frame_rate=float(r["units_frame_rate"]),
                codebook_size=int(r["units_codebook_size"]), tokenizer=r["units_tokenizer"],
                words=[(w["word"], float(w["start_s"]), float(w["end_s"])) for w in r["alignment"]],
                sentence_spans=[(float(s["start_s"]), float(s["end_s"])) for s in r["segments"]],
            ))
    if not rows:
        raise EchoforgeError(f"{root} has no rows with answer audio and units to evaluate")
    return config, manifest, rows


class Resynthesizer:
    """Synthesises a row's answer again, as the Synthesize stage did, to get its phonemes."""

    def __init__(self, config: BuildConfig):
        from echoforge.transforms.synthesize import Synthesize

        self.config = config
        self.stage = Synthesize(config)
        self.stage.ensure_setup()

    def speech(self, row: CorpusRow):
        turn = Turn(id=row.id, source="", source_position="", conversation_id=row.conversation_id,
                    turn_index=row.turn_index, history=[], question_text="", answer_text="",
                    question_spoken="", answer_sentences=list(row.sentences))
        return self.stage.backend.synthesize(self.stage.requests(turn)[1])


def identical_audio(speech, row: CorpusRow) -> bool:
    """The re-synthesis equals the stored audio within 16-bit quantisation (one step)."""
    if speech.sample_rate != row.sample_rate or len(speech.audio) != len(row.audio_pcm16):
        return False
    diff = np.abs(to_pcm16(speech.audio).astype(np.int32) - row.audio_pcm16.astype(np.int32))
    return bool(diff.max(initial=0) <= 1)


def split_rows(ids: list[str], fit_fraction: float, seed: int = 0) -> set[str]:
    """Ids of the rows that fit the baseline: a seeded share of the rows (at least one, and at
    least one row left to evaluate when there are two or more)."""
    if fit_fraction <= 0 or len(ids) < 2:
        return set()
    ranked = sorted(ids, key=lambda i: stable_uniform(seed, "eval-units-fit", i))
    n = min(len(ids) - 1, max(1, round(fit_fraction * len(ids))))
    return set(ranked[:n])


# --- the evaluation -----------------------------------------------------------------------

def _make_tokenizer(config: BuildConfig, codebook: str | None):
    from echoforge.backends.units import create_tokenizer

    tok = create_tokenizer(config.units, **({"codebook": codebook} if codebook else {}), device="cpu")
    tok.setup()
    return tok


def evaluate_units(root: str | Path, *, limit: int | None = None, codebook: str | None = None,
                   baseline: bool = True, baseline_k: int | None = None, fit_fraction: float = 0.25,
                   alignment: bool = True, ctc_aligner: str | None = "hama", ctc_model: str | None = None,
                   seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Measure a built corpus's units (and the MFCC baseline, and word alignment).

    ``codebook``: re-tokenize the re-synthesised answers with the build's tokenizer and this
    codebook instead of reading the stored units (to compare codebooks on one corpus).
    ``ctc_aligner``: also place the words with this CTC aligner (``hama``, or ``wav2vec2`` with
    ``ctc_model``) and report its agreement with the synthesiser's word starts.
    """
    t0 = time.time()
    config, _, rows = read_corpus(root, limit)
    fit_ids = split_rows([r.id for r in rows], fit_fraction if baseline else 0.0, seed)
    synth = Resynthesizer(config)
    tokenizer = _make_tokenizer(config, codebook) if codebook else None
    tokenizer_tag = tokenizer.identity()["tokenizer"] if tokenizer else rows[0].tokenizer
    vocabulary: dict[str, int] = {}
    unit_labels, unit_ids, unit_seconds, raw_frames, dedup_count = [], [], 0.0, 0, 0
    fit_feats: list[np.ndarray] = []
    eval_mfcc: list[tuple[np.ndarray, np.ndarray]] = []
    identical = mismatched = no_phonemes = 0
    frame_rate, codebook_size = rows[0].frame_rate, rows[0].codebook_size
    labelled = total_frames = 0
    for i, row in enumerate(rows):
        if progress:
            progress("synthesise", i, len(rows))
        if row.id in fit_ids:  # fits the baseline: needs audio only, not phone labels
            fit_feats.append(mfcc_features(row.audio, row.sample_rate))
            continue
        speech = synth.speech(row)
        if not identical_audio(speech, row):
            mismatched += 1
            continue
        identical += 1
        segments = phone_segments(speech.phonemes)
        if not segments:
            no_phonemes += 1
            continue
        if baseline:
            feats = mfcc_features(speech.audio, speech.sample_rate)
            eval_mfcc.append((feats, frame_labels(segments, len(feats), BASELINE_FRAME_RATE, vocabulary)))
        if tokenizer is not None:
            u = tokenizer.encode(speech.audio, speech.sample_rate)
            codes, frame_rate, codebook_size = u.codes, u.frame_rate, u.codebook_size
        else:
            codes = row.units
        labels = frame_labels(segments, codes.shape[1], frame_rate, vocabulary)
        unit_labels.append(labels)
        unit_ids.append(codes[0])
        labelled += int((labels >= 0).sum())
        total_frames += len(labels)
        raw_frames += codes.shape[1]
        dedup_count += dedup_frames(codes)[0].shape[1]
        unit_seconds += row.duration_s
    if progress:
        progress("synthesise", len(rows), len(rows))
    if not unit_labels:
        raise EchoforgeError(f"no row of {root} could be synthesised again identically "
                             f"({mismatched} differ from the stored audio, {no_phonemes} without phonemes)")
    units_all = np.concatenate(unit_ids)
    report: dict[str, Any] = {
        "corpus": str(root),
        "tokenizer": tokenizer_tag,
        "codebook_size": int(codebook_size),
        "frame_rate": float(frame_rate),
        "rows": len(rows),
        "rows_evaluated": len(unit_labels),
        "rows_fit_baseline": len([r for r in rows if r.id in fit_ids]),
        "resynthesis_identical": identical,
        "resynthesis_mismatched": mismatched,
        "rows_without_phonemes": no_phonemes,
        "evaluated_seconds": round(unit_seconds, 2),
        "phones": len(vocabulary),
        "labelled_frame_share": round(labelled / max(total_frames, 1), 4),
    }
    scores = cluster_scores(np.concatenate(unit_labels), units_all)
    report.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()})
    report.update({k: round(v, 4) for k, v in codebook_usage(units_all, codebook_size).items()})
    report["units_per_second"] = round(raw_frames / max(unit_seconds, 1e-9), 3)
    report["dedup_units_per_second"] = round(dedup_count / max(unit_seconds, 1e-9), 3)
    if baseline:
        report.update(_baseline(fit_feats, eval_mfcc, baseline_k or codebook_size, seed))
        report["pnmi_margin_over_baseline"] = round(report["pnmi"] - report["baseline_mfcc_pnmi"], 4)
    if alignment:
        report.update(_alignment(config, rows, progress))
    if ctc_aligner:
        report.update(ctc_agreement(rows, ctc_aligner, ctc_model, progress))
    report["seconds"] = round(time.time() - t0, 1)
    return report


def _baseline(fit_feats: list[np.ndarray], eval_mfcc: list[tuple[np.ndarray, np.ndarray]], k: int,
              seed: int) -> dict[str, Any]:
    if not fit_feats or not eval_mfcc:
        raise EchoforgeError("the MFCC baseline needs rows to fit on and rows to evaluate; give more rows")
    data = np.concatenate(fit_feats)
    mean, scale = data.mean(0), data.std(0) + 1e-5  # standardised: c0 would dominate raw distances
    k_used = min(k, len(data))
    centres = fit_kmeans((data - mean) / scale, k_used, seed).cluster_centers_.astype(np.float32)
    labels = np.concatenate([lab for _, lab in eval_mfcc])
    units = np.concatenate([assign((f - mean) / scale, centres) for f, _ in eval_mfcc])
    s = cluster_scores(labels, units)
    return {
        "baseline_mfcc_pnmi": round(s["pnmi"], 4),
        "baseline_mfcc_phone_purity": round(s["phone_purity"], 4),
        "baseline_mfcc_cluster_purity": round(s["cluster_purity"], 4),
        "baseline_k": int(k_used),
        "baseline_fit_frames": len(data),
    }


def _alignment(config: BuildConfig, rows: list[CorpusRow], progress: Progress | None) -> dict[str, Any]:
    from echoforge.backends.asr import WHISPER_RATE, WhisperASR

    asr = WhisperASR(config.gate.asr_model)
    asr.setup()
    errors: list[float] = []
    total = 0
    for i, row in enumerate(rows):
        if progress:
            progress("align", i, len(rows))
        heard = asr.transcribe(resample(row.audio, row.sample_rate, WHISPER_RATE), word_timestamps=True)
        ours = [(w, a) for w, a, _ in row.words]
        total += len(ours)
        errors.extend(t - o for o, t in match_word_starts(ours, [(w, a) for w, a, _ in heard.words]))
    if progress:
        progress("align", len(rows), len(rows))
    return alignment_figures(errors, total)


def sentence_spans(row: CorpusRow) -> list[tuple[float, float, int]] | None:
    """The row's sentences as the CTC aligner takes them (span and word count), or ``None`` when
    their words do not add up to the alignment column's."""
    from echoforge.backends.tts.base import sentence_words

    spans = [(a, b, len(sentence_words(text))) for (a, b), text in zip(row.sentence_spans, row.sentences)]
    return spans if spans and sum(n for _, _, n in spans) == len(row.words) else None


def ctc_agreement(rows: list[CorpusRow], aligner: str, model: str | None = None,
                  progress: Progress | None = None, batch_size: int = 8) -> dict[str, Any]:
    """Word starts of a CTC forced aligner against the synthesiser's (the ``alignment`` column):
    ``ctc_*`` figures as :func:`alignment_figures` gives them (CTC − synthesiser), over all rows and
    (``ctc_long_*``) over the answers of at least ``LONG_ANSWER_S``. Each row's sentences (the
    ``segments`` spans) are aligned one by one."""
    from echoforge.backends.aligners import AlignItem
    from echoforge.registry import word_aligners

    ctc = word_aligners.create(aligner, **({"model": model} if model else {}))
    ctc.setup()
    errors: list[float] = []
    long_errors: list[float] = []
    total = long_total = long_rows = by_sentence = 0
    for i in range(0, len(rows), batch_size):
        if progress:
            progress("ctc-align", i, len(rows))
        chunk = rows[i: i + batch_size]
        items = [AlignItem(r.audio, r.sample_rate, [w for w, _, _ in r.words], sentence_spans(r)) for r in chunk]
        by_sentence += sum(it.sentences is not None for it in items)
        for row, spans in zip(chunk, ctc.align_batch(items)):
            row_errors = start_differences([start for _, start, _ in row.words], spans)
            total += len(row.words)
            errors.extend(row_errors)
            if row.duration_s >= LONG_ANSWER_S:
                long_rows += 1
                long_total += len(row.words)
                long_errors.extend(row_errors)
    if progress:
        progress("ctc-align", len(rows), len(rows))
    return {"ctc_aligner": ctc.identity()["aligner"], "ctc_rows_by_sentence": by_sentence,
            **alignment_figures(errors, total, prefix="ctc"),
            "ctc_long_rows": long_rows, **alignment_figures(long_errors, long_total, prefix="ctc_long")}


def report_lines(report: dict[str, Any]) -> list[str]:
    """A human summary of an eval-units report."""
    r = report
    lines = [
        (f"{r['corpus']}: {r['rows_evaluated']} rows evaluated ({r['evaluated_seconds'] / 60:.1f} min of speech), "
         f"{r['rows_fit_baseline']} fit the baseline; re-synthesis identical for {r['resynthesis_identical']}, "
         f"different for {r['resynthesis_mismatched']}"),
        f"tokenizer {r['tokenizer']}: {r['codebook_size']} codes at {r['frame_rate']:g} Hz",
        (f"PNMI {r['pnmi']:.3f}  phone purity {r['phone_purity']:.3f}  cluster purity {r['cluster_purity']:.3f}  "
         f"({r['phones']} phones, {r['frames']} labelled frames, {r['labelled_frame_share']:.0%} of all)"),
        (f"codebook usage {r['codebook_usage']:.1%}, perplexity {r['codebook_perplexity']:.1f}; "
         f"units/s {r['units_per_second']:.1f} raw, {r['dedup_units_per_second']:.1f} deduplicated"),
    ]
    if "baseline_mfcc_pnmi" in r:
        lines.append(f"MFCC + k-means baseline (k={r['baseline_k']}): PNMI {r['baseline_mfcc_pnmi']:.3f}, "
                     f"phone purity {r['baseline_mfcc_phone_purity']:.3f}; margin {r['pnmi_margin_over_baseline']:+.3f}")
    if "alignment_words_total" in r:
        if r["alignment_words_matched"]:
            lines.append(f"alignment vs Whisper word starts: median error {r['alignment_median_start_error_ms']:.0f} ms, "
                         f"{r['alignment_within_100ms']:.1%} within 100 ms, median signed "
                         f"{r['alignment_median_signed_error_ms']:+.0f} ms "
                         f"({r['alignment_words_matched']} of {r['alignment_words_total']} words matched)")
        else:
            lines.append("alignment vs Whisper word starts: no words matched")
    if r.get("ctc_words_matched"):
        lines.append(f"CTC aligner ({r['ctc_aligner']}) vs synthesiser word starts: median difference "
                     f"{r['ctc_median_start_error_ms']:.0f} ms, 90th percentile {r['ctc_p90_start_error_ms']:.0f} ms, "
                     f"{r['ctc_within_50ms']:.1%} within 50 ms, "
                     f"{r['ctc_within_100ms']:.1%} within 100 ms, median signed {r['ctc_median_signed_error_ms']:+.0f} ms "
                     f"({r['ctc_words_matched']} of {r['ctc_words_total']} words placed)")
    elif "ctc_words_total" in r:
        lines.append(f"CTC aligner ({r['ctc_aligner']}): no words placed")
    if r.get("ctc_long_words_matched"):
        lines.append(f"  on the {r['ctc_long_rows']} answers of {LONG_ANSWER_S:g} s or more: median "
                     f"{r['ctc_long_median_start_error_ms']:.0f} ms, 90th percentile {r['ctc_long_p90_start_error_ms']:.0f} ms, "
                     f"{r['ctc_long_within_100ms']:.1%} within 100 ms ({r['ctc_long_words_matched']} words)")
    return lines
