"""eval-units: phone labels from re-synthesis, PNMI/purity, the MFCC baseline and the command,
on a tiny real build (six rows)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from echoforge.backends.units.base import ASSETS, KMeansCodebook
from echoforge.commands.fit_units import fit_projection
from echoforge.backends.units.phones import frame_labels, frame_phones, phone_segments
from echoforge.cli import main
from echoforge.config import parse_config
from echoforge.commands.eval_units import (
    CorpusRow,
    Resynthesizer,
    cluster_scores,
    codebook_usage,
    evaluate_units,
    identical_audio,
    mfcc_features,
    read_corpus,
    split_rows,
)

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torchaudio") is None,
                                 reason="the MFCC baseline needs torchaudio (the torch extra)")

ROWS = [
    {"question": "What is a river?", "answer": "A river is a stream of water that flows to the sea."},
    {"question": "Why is the sky blue?", "answer": "Sunlight scatters in the air, and blue light scatters most."},
    {"question": "How do bees help plants?", "answer": "Bees carry pollen from flower to flower, so plants make seeds."},
    {"question": "What do cats eat?", "answer": "Cats eat meat, such as fish, chicken and small birds."},
    {"question": "Where do penguins live?", "answer": "Most penguins live in the cold south, near the ice."},
    {"question": "What is bread made of?", "answer": "Bread is made of flour, water, salt and yeast, then baked."},
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from echoforge.pipeline.build import build

    root = tmp_path_factory.mktemp("eval-units")
    src = root / "qa.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    config = parse_config({"speakable": {"normalizer": "none"}, "gate": {"asr": "none"},
                           "run": {"work_unit_rows": 3, "workers": 1}, "output": {"validation_fraction": 0.3}})
    build([str(src)], root / "out", config)
    return root / "out"


def test_phone_segments_drop_and_merge():
    raw = [("ð", 0.0, 0.1), ("ə", 0.1, 0.2), (" ", 0.2, 0.25), ("f", 0.25, 0.3), ("ˈ", 0.3, 0.35),
           ("ɑ", 0.35, 0.45), ("ː", 0.45, 0.5), ("k", 0.5, 0.55), ("s", 0.55, 0.6), (".", 0.6, 0.7)]
    assert phone_segments(raw) == [("ð", 0.0, 0.1), ("ə", 0.1, 0.2), ("f", 0.25, 0.3), ("ɑː", 0.35, 0.5),
                                   ("k", 0.5, 0.55), ("s", 0.55, 0.6)]
    # A length mark after a dropped symbol has nothing to lengthen.
    assert phone_segments([("ˈ", 0.0, 0.1), ("ː", 0.1, 0.2), ("a", 0.2, 0.3)]) == [("a", 0.2, 0.3)]


def test_frame_labels_take_the_phone_at_the_frame_centre():
    vocab: dict[str, int] = {}
    segs = [("a", 0.0, 0.05), ("b", 0.05, 0.06), ("c", 0.1, 0.2)]
    labels = frame_labels(segs, 12, 50.0, vocab)  # centres 0.01, 0.03, 0.05, 0.07, ...
    assert vocab == {"a": 0, "b": 1, "c": 2}
    assert labels.tolist() == [0, 0, 1, -1, -1, 2, 2, 2, 2, 2, -1, -1]


def test_frame_phones_are_strings():
    phones = frame_phones([("ɑː", 0.0, 0.03), ("k", 0.05, 0.08)], 5, 50.0)
    assert phones.tolist() == ["ɑː", "", "k", "k", ""]  # centres 0.01, 0.03, 0.05, 0.07, 0.09 s


def test_codebook_with_projection_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    cb = KMeansCodebook(rng.standard_normal((6, 3)).astype(np.float32), {"transform": "lda"}, "",
                        rng.standard_normal(8).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32))
    cb.save(tmp_path / "a.npy")
    cb.save(tmp_path / "b.npy")
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    loaded = KMeansCodebook.load(tmp_path / "a.npy")
    assert loaded.size == 6 and loaded.provenance == {"transform": "lda"} and len(loaded.sha256) == 64
    # Frames whose projection lands next to a known centroid are assigned to that centroid.
    expected = rng.integers(0, 6, 50)
    z = cb.centroids[expected] + 1e-3 * rng.standard_normal((50, 3))
    x = (cb.mean + z @ np.linalg.pinv(cb.projection)).astype(np.float32)
    np.testing.assert_array_equal(loaded.assign(x), expected)
    assert np.load(tmp_path / "a.npy", allow_pickle=False).dtype.names == ("centroids", "mean", "projection")


def test_lda_projection_is_sklearns_transform():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    rng = np.random.default_rng(0)
    phones = np.array(["a", "b", "c", ""])[rng.integers(0, 4, 600)]
    centres = {"a": 0.0, "b": 3.0, "c": -3.0, "": 10.0}
    data = rng.standard_normal((600, 5)).astype(np.float32)
    data[:, 0] += np.array([centres[p] for p in phones])
    mean, projection, facts = fit_projection(data, phones, "lda")
    assert projection.shape == (5, 2) and facts == {"lda_components": 2, "phones": 3,
                                                    "labelled_frames": int((phones != "").sum())}
    lda = LinearDiscriminantAnalysis(solver="svd").fit(data[phones != ""], phones[phones != ""])
    np.testing.assert_allclose((data - mean) @ projection, lda.transform(data), rtol=1e-4, atol=1e-4)
    mean, projection, _ = fit_projection(data, phones, "standardize")
    z = (data - mean) @ projection
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-3)
    assert fit_projection(data, phones, "none") == (None, None, {})
    with pytest.raises(ValueError, match="phone labels"):
        fit_projection(data, np.full(600, ""), "lda")


def test_shipped_codebook_is_made_by_fit_units():
    cb = KMeansCodebook.load(ASSETS / "whisper-tiny-en-k500.npy")
    p = cb.provenance
    assert cb.size == 500 and p["k"] == 500 and p["transform"] == "lda"
    assert p["command"].startswith("echoforge fit-units units_fit.jsonl --k 500")
    assert cb.projection.shape == (384, p["lda_components"]) and cb.centroids.shape == (500, p["lda_components"])


def test_cluster_scores_bounds():
    rng = np.random.default_rng(0)
    phones = rng.integers(0, 10, 5000)
    perfect = cluster_scores(phones, phones * 3 + 1)
    assert perfect["pnmi"] == pytest.approx(1.0) and perfect["phone_purity"] == pytest.approx(1.0)
    split = cluster_scores(phones, phones * 2 + rng.integers(0, 2, 5000))  # two units per phone
    assert split["pnmi"] == pytest.approx(1.0) and split["cluster_purity"] < 0.7
    noise = cluster_scores(phones, rng.integers(0, 10, 5000))
    assert 0.0 <= noise["pnmi"] < 0.02
    one = cluster_scores(phones, np.zeros(5000, dtype=int))
    assert one["pnmi"] == pytest.approx(0.0, abs=1e-12)
    masked = cluster_scores(np.array([-1, 0, 1, -1]), np.array([5, 0, 1, 7]))
    assert masked["frames"] == 2 and masked["pnmi"] == pytest.approx(1.0)
    usage = codebook_usage(np.array([0, 0, 1, 1]), 4)
    assert usage == {"codebook_usage": 0.5, "codebook_perplexity": pytest.approx(2.0)}


@needs_torch
def test_mfcc_features_are_50hz():
    audio = np.random.default_rng(0).standard_normal(22_050).astype(np.float32) * 0.1
    feats = mfcc_features(audio, 22_050)
    assert feats.shape[1] == 39 and abs(len(feats) - 50) <= 1


def test_split_rows_is_seeded_and_leaves_rows_to_score():
    ids = [f"r{i}" for i in range(10)]
    fit = split_rows(ids, 0.25)
    assert len(fit) == 2 and fit == split_rows(list(reversed(ids)), 0.25)
    assert len(split_rows(ids[:2], 0.9)) == 1 and split_rows(ids[:1], 0.5) == set()


def test_resynthesis_is_identical_to_the_stored_audio(corpus):
    config, _, rows = read_corpus(corpus)
    assert len(rows) == len(ROWS) and isinstance(rows[0], CorpusRow)
    synth = Resynthesizer(config)
    speech = synth.speech(rows[0])
    assert identical_audio(speech, rows[0])
    assert speech.phonemes and [w.word for w in speech.words] == [w for w, _, _ in rows[0].words]
    altered = rows[0].audio_pcm16.copy()
    altered[len(altered) // 2] += 50
    rows[0].audio_pcm16 = altered
    assert not identical_audio(speech, rows[0])


@needs_torch
def test_evaluate_units_on_a_tiny_corpus(corpus):
    report = evaluate_units(corpus, baseline_k=16, fit_fraction=0.34, alignment=True)
    assert report["rows"] == 6 and report["rows_fit_baseline"] == 2 and report["rows_evaluated"] == 4
    assert report["resynthesis_identical"] == 4 and report["resynthesis_mismatched"] == 0
    assert report["tokenizer"].startswith("whisper-kmeans:k500:")
    assert report["codebook_size"] == 500 and report["frame_rate"] == 50.0
    for key in ("pnmi", "phone_purity", "cluster_purity", "baseline_mfcc_pnmi", "codebook_usage",
                "labelled_frame_share", "alignment_within_100ms"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["phones"] >= 20
    assert report["units_per_second"] == pytest.approx(50, abs=1)
    assert 0 < report["dedup_units_per_second"] < report["units_per_second"]
    assert report["baseline_k"] == 16
    assert report["alignment_words_matched"] > 0.5 * report["alignment_words_total"]
    assert report["alignment_median_start_error_ms"] < 150
    assert report["ctc_aligner"].startswith("hama phoneme CTC")  # on by default
    assert report["ctc_words_total"] == sum(len(r.words) for r in read_corpus(corpus)[2])
    assert report["ctc_words_matched"] >= 0.9 * report["ctc_words_total"]
    assert report["ctc_median_start_error_ms"] <= 50 and 0.5 <= report["ctc_within_100ms"] <= 1.0
    assert report["ctc_rows_by_sentence"] == report["rows"]  # every row's sentences aligned one by one
    rows = read_corpus(corpus)[2]
    long_rows = [r for r in rows if r.duration_s >= 15]
    assert report["ctc_long_rows"] == len(long_rows)
    assert report["ctc_long_words_total"] == sum(len(r.words) for r in long_rows)


def test_real_units_carry_more_phone_information_than_random_labels(corpus):
    """PNMI of the real units beats the same units shuffled across frames (same distribution)."""
    config, _, rows = read_corpus(corpus)
    synth = Resynthesizer(config)
    vocab: dict[str, int] = {}
    labels, units = [], []
    for row in rows:
        speech = synth.speech(row)
        labels.append(frame_labels(phone_segments(speech.phonemes), row.units.shape[1], row.frame_rate, vocab))
        units.append(row.units[0])
    labels, units = np.concatenate(labels), np.concatenate(units)
    real = cluster_scores(labels, units)
    shuffled = cluster_scores(labels, np.random.default_rng(0).permutation(units))
    assert real["pnmi"] > shuffled["pnmi"] + 0.1
    assert real["phone_purity"] > shuffled["phone_purity"]


@needs_torch
def test_eval_units_command(corpus):
    result = CliRunner().invoke(main, ["eval-units", str(corpus), "--json", "--limit", "4", "--baseline-k", "8",
                                       "--fit-fraction", "0.5", "--no-alignment"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 4 and report["rows_fit_baseline"] == 2
    assert {"tokenizer", "pnmi", "phone_purity", "baseline_mfcc_pnmi"} <= set(report)
    assert "alignment_median_start_error_ms" not in report
    assert report["ctc_words_matched"] > 0
    without = CliRunner().invoke(main, ["eval-units", str(corpus), "--json", "--limit", "2", "--no-baseline",
                                        "--no-alignment", "--ctc-aligner", "none"])
    assert without.exit_code == 0 and not any(k.startswith("ctc_") for k in json.loads(without.stdout))
    text = CliRunner().invoke(main, ["eval-units", str(corpus), "--limit", "3", "--no-baseline", "--no-alignment"])
    assert text.exit_code == 0, text.output
    assert "PNMI" in text.stdout and "MFCC" not in text.stdout


def test_eval_units_refuses_a_directory_without_manifest(tmp_path):
    result = CliRunner().invoke(main, ["eval-units", str(tmp_path)])
    assert result.exit_code == 2 and "manifest.json" in result.output
