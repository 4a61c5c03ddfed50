"""Every export format read back by its own trainer's reader, row for row against the build:
Lhotse Shar (`CutSet.from_shar`), WebDataset, NeMo manifests (plain and tarred), the
EchoX-Dialogues layout, and the build's Parquet shards through `datasets` streaming and DuckDB
(local and on a real S3 server) and `pyarrow.dataset`. The loaders are the snippets of the docs, run as written."""

from __future__ import annotations

import io
import json
import math
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from echoforge.commands.export import export_build

DOCS = Path(__file__).resolve().parents[1] / "docs"


def doc_loader(page: str) -> dict:
    """Run the Python block that follows the `<!-- loader ... -->` line of a docs page."""
    text = (DOCS / page).read_text()
    code = re.search(r"<!-- loader[^>]*-->\s*```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, f"docs/{page}", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def corpus(export_corpus):
    return export_corpus


def _by_split(rows, split):
    return [r for r in rows if r["split"] == split]


def _samples(cell) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(cell["bytes"]), dtype="float32")
    return audio, rate


def test_lhotse_shar_every_cut_with_audio_alignment_and_units(corpus, tmp_path):
    root, rows = corpus
    out = tmp_path / "shar"
    report = export_build(str(root), "lhotse-shar", str(out), shard_size=2)
    assert report["rows"] == {"question": len(rows), "answer": len(rows)}
    load = doc_loader("training-lhotse.md")["load"]
    for split in ("train", "validation"):
        want = _by_split(rows, split)
        assert len(list((out / "answer" / split).glob("cuts.*.jsonl.gz"))) == math.ceil(len(want) / 2)
        answers = list(load(str(out), "answer", split))
        assert [c.id for c, *_ in answers] == [r["id"] for r in want]
        for (cut, audio, words, units), r in zip(answers, want):
            source, rate = _samples(r["answer_audio"])
            assert cut.sampling_rate == rate == r["answer_sample_rate"] and audio.shape == (1, len(source))
            assert abs(cut.duration * rate - r["answer_duration_s"] * rate) <= 1
            np.testing.assert_allclose(audio[0], source, atol=1 / 32768)
            assert cut.supervisions[0].text == r["answer_spoken"] and cut.supervisions[0].speaker == r["answer_speaker"]
            assert [w.symbol for w in words] == [w["word"] for w in r["alignment"]]
            assert [w.start for w in words] == pytest.approx([w["start_s"] for w in r["alignment"]], abs=1e-3)
            assert [w.end for w in words] == pytest.approx([w["end_s"] for w in r["alignment"]], abs=2e-3)
            assert units.dtype == np.int32 and units.tolist() == r["answer_units"]
            assert cut.units.frame_shift == pytest.approx(1 / r["units_frame_rate"])
            assert cut.custom["units_dedup"] == r["answer_units_dedup"]
            assert cut.custom["units_codebook_size"] == r["units_codebook_size"]
        questions = list(load(str(out), "question", split))
        assert [c.id for c, *_ in questions] == [r["id"] for r in want]
        for (cut, audio, words, units), r in zip(questions, want):
            assert cut.sampling_rate == 16_000 and units is None and words == []
            assert abs(audio.shape[1] - r["question_duration_s"] * 16_000) <= 1
            assert cut.supervisions[0].text == r["question_spoken"]


def test_webdataset_iterates_every_sample(corpus, tmp_path):
    root, rows = corpus
    out = tmp_path / "wds"
    export_build(str(root), "webdataset", str(out), shard_size=2)
    load = doc_loader("training-webdataset.md")["load"]
    for split in ("train", "validation"):
        want = _by_split(rows, split)
        shards = sorted(str(p) for p in (out / split).glob("*.tar"))
        assert len(shards) == math.ceil(len(want) / 2)
        pattern = f"{out}/{split}/{split}-{{000000..{len(shards) - 1:06d}}}.tar"
        samples = list(load(pattern))
        assert [m["id"] for m, *_ in samples] == [r["id"] for r in want]
        for (meta, audio, rate, units), r in zip(samples, want):
            assert rate == 16_000 and abs(len(audio) - r["question_duration_s"] * 16_000) <= 1
            assert meta["question_samples"] == len(audio)
            assert (meta["question_spoken"], meta["answer_spoken"]) == (r["question_spoken"], r["answer_spoken"])
            assert meta["alignment"] == r["alignment"] and meta["answer_units_dedup"] == r["answer_units_dedup"]
            assert units.dtype == np.int32 and units.tolist() == r["answer_units"]
            assert abs(meta["answer_samples"] - r["answer_duration_s"] * meta["answer_sample_rate"]) <= 1


@pytest.mark.parametrize("tarred", [False, True], ids=["plain", "tarred"])
def test_nemo_manifests_read_the_nemo_way(corpus, tmp_path, tarred):
    root, rows = corpus
    out = tmp_path / "nemo"
    export_build(str(root), "nemo", str(out), shard_size=2, tarred=tarred)
    load = doc_loader("training-nemo.md")["load"]
    for split in ("train", "validation"):
        want = _by_split(rows, split)
        for stage, side, rate_of in (("asr", "question", lambda r: 16_000), ("tts", "answer",
                                                                             lambda r: r["answer_sample_rate"])):
            manifests = sorted((out / stage / split).glob("manifest_*.json"), key=lambda p: int(p.stem[9:]))
            assert len(manifests) == math.ceil(len(want) / 2)
            assert len(list((out / stage / split).glob("audio_*.tar"))) == (len(manifests) if tarred else 0)
            got = [item for m in manifests for item in load(str(m))]
            assert [line["id"] for line, _ in got] == [r["id"] for r in want]
            for (line, cut), r in zip(got, want):
                rate = rate_of(r)
                assert set(line) >= {"audio_filepath", "duration", "offset", "text"}
                assert ("shard_id" in line) == tarred
                assert cut.sampling_rate == rate
                audio = cut.load_audio()
                assert audio.shape[1] == round(line["duration"] * rate)
                assert abs(audio.shape[1] - r[f"{side}_duration_s"] * rate) <= 1
                assert cut.supervisions[0].text == line["text"] == r[f"{side}_spoken"]
                if stage == "tts":
                    assert line["units"] == r["answer_units_dedup"][0]
                    assert line["unit_durations"] == r["answer_unit_durations"]


def test_echox_dialogues_read_as_that_trainer_reads_them(corpus, tmp_path):
    root, rows = corpus
    out = tmp_path / "dialogues"
    export_build(str(root), "echox-dialogues", str(out), shard_size=2)
    load = doc_loader("echox.md")["load"]
    read = 0
    for split in ("train", "validation"):
        want = _by_split(rows, split)
        shards = sorted((out / split).glob("*.tar.gz"))
        assert len(shards) == math.ceil(len(want) / 2)
        got = [item for n, shard in enumerate(shards) for item in load(str(shard), str(tmp_path / f"x-{split}-{n}"))]
        exported = []
        for shard in shards:
            with tarfile.open(shard) as tar:
                exported += json.load(tar.extractfile("data.json"))
        assert [item["id"] for item in exported] == [r["id"] for r in want]  # every kept turn is in the shards
        passing = [item["id"] for item in exported if all(t.get("wer", 0.0) <= 0.25 for t in item["conversations"])]
        assert [item["id"] for item, _ in got] == passing  # the trainer's reader drops the rest
        read += len(passing)
        by_id = {r["id"]: r for r in want}
        for item, audio in got:
            r = by_id[item["id"]]
            turns = item["conversations"]
            assert [t["value"] for t in turns[:-2]] == [h["text"] for h in r["history"]]
            user, assistant = turns[-2:]
            assert (user["value"], assistant["value"]) == (r["question_spoken"], r["answer_spoken"])
            assert user["wer"] == pytest.approx(r["question_wer"], abs=1e-4)
            assert assistant["wer"] == pytest.approx(r["answer_wer"], abs=1e-4)
            question, rate = audio["user"]
            assert rate == 16_000 and abs(len(question) - r["question_duration_s"] * 16_000) <= 1
            answer, rate = audio["assistant"]
            assert rate == r["answer_sample_rate"] and abs(len(answer) - r["answer_duration_s"] * rate) <= 1
    assert read > 0
    with tarfile.open(shards[0]) as tar:
        assert "data.json" in tar.getnames() and all(n.endswith(".wav") for n in tar.getnames() if n != "data.json")
    again = tmp_path / "again"
    export_build(str(root), "echox-dialogues", str(again), shard_size=2)
    assert (again / split / shards[0].name).read_bytes() == shards[0].read_bytes()  # byte-identical archives


def test_a_turn_over_the_wer_limit_is_dropped_by_that_reader(tmp_path):
    load = doc_loader("echox.md")["load"]
    shard = tmp_path / "s.tar.gz"
    wav = io.BytesIO()
    sf.write(wav, np.zeros(160, dtype=np.float32), 16_000, format="WAV")
    data = [{"id": "ok", "conversations": [{"from": "user", "value": "a", "audio": "a.wav", "wer": 0.1}]},
            {"id": "bad", "conversations": [{"from": "user", "value": "b", "audio": "a.wav", "wer": 0.5}]}]
    with tarfile.open(shard, "w:gz") as tar:
        for name, blob in (("a.wav", wav.getvalue()), ("data.json", json.dumps(data).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    assert [item["id"] for item, _ in load(str(shard), str(tmp_path / "x"))] == ["ok"]


def _parquet_rows(rows, split):
    return sorted((r["id"], r["answer_spoken"], pytest.approx(r["question_duration_s"]), len(r["answer_units"][0]))
                  for r in _by_split(rows, split))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_parquet_shards_stream_with_datasets_and_duckdb(corpus, where, request):
    root, rows = corpus
    loader = doc_loader("training-parquet.md")
    location, options, filesystem = str(root), None, None
    if where == "s3":
        server = request.getfixturevalue("s3_server")
        request.getfixturevalue("s3_env")
        location = server.url("parquet")
        filesystem = server.filesystem()
        filesystem.put(f"{root}/data", location.removeprefix("s3://") + "/", recursive=True)
        options = {"key": server.env["AWS_ACCESS_KEY_ID"], "secret": server.env["AWS_SECRET_ACCESS_KEY"],
                   "client_kwargs": {"endpoint_url": server.endpoint}}
    for split in ("train", "validation"):
        want = _by_split(rows, split)
        streamed = list(loader["stream"](location, split, storage_options=options))
        assert sorted(s["id"] for s in streamed) == sorted(r["id"] for r in want)
        by_id = {r["id"]: r for r in want}
        for s in streamed:
            r = by_id[s["id"]]
            assert (s["question_spoken"], s["answer_spoken"]) == (r["question_spoken"], r["answer_spoken"])
            assert s["question_duration_s"] == pytest.approx(r["question_duration_s"])
        assert loader["query"](location, split, filesystem=filesystem) == _parquet_rows(rows, split)
    if where == "local":
        import pyarrow.dataset as ds

        table = ds.dataset(f"{root}/data", format="parquet").to_table(columns=["id", "answer_spoken"])
        assert sorted(zip(table["id"].to_pylist(), table["answer_spoken"].to_pylist())) == \
            sorted((r["id"], r["answer_spoken"]) for r in rows)


def test_tar_and_shar_exports_to_s3_match_the_local_ones(corpus, tmp_path, s3_server, s3_env):
    from lhotse import CutSet

    root, rows = corpus
    fs = s3_server.filesystem()
    for fmt, stages in (("webdataset", None), ("lhotse-shar", ["answer"])):
        local, url = tmp_path / fmt, s3_server.url(fmt)
        export_build(str(root), fmt, str(local), stages=stages, shard_size=3)
        report = export_build(str(root), fmt, url, stages=stages, shard_size=3)
        files = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file() and p.name != "export.json")
        remote = url.removeprefix("s3://")
        assert sorted(p.removeprefix(remote + "/") for p in fs.find(remote) if not p.endswith("export.json")) == files
        if fmt == "webdataset":
            for rel in files:
                if rel.endswith(".tar"):
                    assert fs.cat(f"{remote}/{rel}") == (local / rel).read_bytes()
        else:
            fs.get(remote + "/", str(tmp_path / "from-s3") + "/", recursive=True)
            cuts = CutSet.from_shar(in_dir=str(tmp_path / "from-s3" / "answer" / "train"))
            assert [c.id for c in cuts] == [r["id"] for r in _by_split(rows, "train")]
        again = export_build(str(root), fmt, url, stages=stages, shard_size=3)
        assert again["shards_written"] == 0 and again["shards_skipped"] == report["shards_written"]
