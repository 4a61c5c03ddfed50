"""Export of a real build in EchoX's format, read back stage by stage, and what every export
shares: shards of a set row count, markers and resume, any filesystem, progress, safe names."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from tokenizers import Tokenizer

from echoforge.backends.llm_tokenizer import default_tokenizer_path
from echoforge.cli import main
from echoforge.commands import export as export_module
from echoforge.commands.export import export_build
from echoforge.commands.exporters import safe_name
from echoforge.errors import ConfigError, EchoforgeError


@pytest.fixture(scope="module")
def corpus(export_corpus):
    return export_corpus


@pytest.fixture(scope="module")
def exported(corpus, tmp_path_factory):
    root, _ = corpus
    out = tmp_path_factory.mktemp("export") / "echox"
    report = export_build(str(root), "echox", str(out), shard_size=2)
    return out, report


def _lines(out: Path, stage: str) -> dict[str, dict]:
    lines = {}
    for part in sorted((out / stage).glob("*.jsonl")):
        for line in part.read_text().splitlines():
            row = json.loads(line)
            lines[row["id"]] = {**row, "part": part.stem}
    return lines


def _shards(rows: list[dict], size: int) -> int:
    return sum(math.ceil(sum(r["split"] == s for r in rows) / size) for s in ("train", "validation"))


def test_every_kept_row_is_in_every_stage_in_shards_of_the_set_size(corpus, exported):
    _, rows = corpus
    out, report = exported
    assert len(rows) >= 6 and {r["split"] for r in rows} == {"train", "validation"}
    assert report["rows"] == {"s2t": len(rows), "t2u": len(rows), "echo": len(rows)}
    assert report["shards_written"] == 3 * _shards(rows, 2)
    for stage in ("s2t", "t2u", "echo"):
        lines = _lines(out, stage)
        assert sorted(lines) == sorted(r["id"] for r in rows)
        for split in ("train", "validation"):
            ids = [r["id"] for r in rows if r["split"] == split]
            for n in range(math.ceil(len(ids) / 2)):  # shard n: rows 2n, 2n+1 of the split, in build order
                part = (out / stage / f"{split}-{n:05d}.jsonl").read_text().splitlines()
                assert [json.loads(line)["id"] for line in part] == ids[2 * n:2 * n + 2]


def test_the_file_count_follows_the_shard_size_not_the_work_units(corpus, tmp_path):
    root, rows = corpus
    big = export_build(str(root), "echox", str(tmp_path / "big"), stages=["t2u"], shard_size=1000)
    assert big["shards_written"] == 2  # one per split, though the build has several work units per split
    assert sorted(p.name for p in (tmp_path / "big" / "t2u").iterdir()) == ["train-00000.jsonl",
                                                                           "validation-00000.jsonl"]
    assert sum(len(p.read_text().splitlines()) for p in (tmp_path / "big" / "t2u").iterdir()) == len(rows)


def test_s2t_conversations_and_audio(corpus, exported):
    _, rows = corpus
    out, _ = exported
    lines = _lines(out, "s2t")
    for r in rows:
        turns = lines[r["id"]]["conversations"]
        assert [t["from"] for t in turns] == ["user", "assistant"] * (len(r["history"]) // 2 + 1)
        assert [t["value"] for t in turns[:-2]] == [h["text"] for h in r["history"]]
        user, assistant = turns[-2:]
        assert user["transcript"] == r["question_spoken"] and assistant["value"] == r["answer_spoken"]
        audio, rate = sf.read(out / user["audio"], dtype="float32")
        assert rate == 16_000 and audio.ndim == 1
        assert len(audio) == pytest.approx(r["question_duration_s"] * 16_000, abs=1)


def test_t2u_text_to_deduplicated_units(corpus, exported):
    _, rows = corpus
    out, _ = exported
    lines = _lines(out, "t2u")
    for r in rows:
        line = lines[r["id"]]
        assert line["text"] == r["answer_spoken"]
        assert line["units"] == r["answer_units_dedup"][0]
        assert all(a != b for a, b in zip(line["units"], line["units"][1:]))  # runs collapsed
        assert line["codebook_size"] == r["units_codebook_size"] and line["units_tokenizer"] == r["units_tokenizer"]


def test_echo_sub_lengths_sum_to_the_answer_tokens(corpus, exported):
    _, rows = corpus
    out, _ = exported
    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    lines = _lines(out, "echo")
    for r in rows:
        line = lines[r["id"]]
        tokens = len(tokenizer.encode(r["answer_spoken"], add_special_tokens=False).ids)
        assert sum(line["sub_lengths"]) == tokens
        assert line["sub_lengths"] == [s["num_tokens"] for s in line["segments"]]
        assert all(n <= 24 for n in line["sub_lengths"])
        assert " ".join(s["text"] for s in line["segments"]) == r["answer_spoken"]
        units = line["units"]
        for s in line["segments"]:
            assert s["units"] == units[s["dedup_start"]:s["dedup_end"]] and s["units"]
        assert line["segments"][-1]["dedup_end"] <= len(units)
        assert (out / line["conversations"][-2]["audio"]).exists()


def test_rerun_skips_finished_shards_without_reading_them_and_redoes_missing_ones(corpus, exported, monkeypatch):
    root, rows = corpus
    out, first = exported
    part = out / "echo" / "validation-00001.jsonl"
    before = part.read_bytes()
    part.unlink()
    (out / "_echoforge" / "export" / "t2u" / "train-00000.json").unlink()
    read = []
    original = export_module.iter_batches
    monkeypatch.setattr(export_module, "iter_batches", lambda *a: read.append(a[1]["split"]) or original(*a))
    again = export_build(str(root), "echox", str(out), shard_size=2)
    total = first["shards_written"]
    assert again["shards_written"] == 2 and again["shards_skipped"] == total - 2
    assert part.read_bytes() == before
    assert sorted(set(read)) == ["train", "validation"]
    assert not list(out.rglob(".*.tmp*"))
    read.clear()
    done = export_build(str(root), "echox", str(out), shard_size=2)
    assert done["shards_written"] == 0 and done["shards_skipped"] == total
    assert read == []  # nothing left to write: no build shard is opened


def test_progress_counts_rows(corpus, tmp_path):
    root, rows = corpus
    calls = []
    export_build(str(root), "echox", str(tmp_path / "o"), stages=["t2u"], shard_size=2,
                 progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(rows), len(rows))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and {t for _, t in calls} == {len(rows)}
    calls.clear()
    export_build(str(root), "echox", str(tmp_path / "o"), stages=["t2u"], shard_size=2,
                 progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(rows), len(rows))  # skipped rows count too


def test_any_fsspec_filesystem(corpus, exported):
    import fsspec

    root, _ = corpus
    out, _ = exported
    export_build(str(root), "echox", "memory://echox-test/out", stages=["t2u", "echo"], shard_size=2)
    fs = fsspec.filesystem("memory")
    for stage in ("t2u", "echo"):
        for part in sorted((out / stage).glob("*.jsonl")):
            assert fs.cat(f"/echox-test/out/{stage}/{part.name}") == part.read_bytes()
    assert not fs.exists("/echox-test/out/s2t")
    audio = fs.find("/echox-test/out/audio")
    assert audio and all(p.endswith(".wav") for p in audio)


def test_s3_export_is_the_local_one_and_resumes(corpus, exported, s3_server, s3_env):
    root, _ = corpus
    out, first = exported
    url = s3_server.url("export")
    export_build(str(root), "echox", url, shard_size=2)
    fs = s3_server.filesystem()
    bucket_path = url.removeprefix("s3://")
    for part in sorted(out.rglob("*.jsonl")):
        assert fs.cat(f"{bucket_path}/{part.relative_to(out)}") == part.read_bytes()
    fs.rm(f"{bucket_path}/t2u/train-00000.jsonl")
    again = export_build(str(root), "echox", url, shard_size=2)
    assert again["shards_written"] == 1 and again["shards_skipped"] == first["shards_written"] - 1
    assert fs.cat(f"{bucket_path}/t2u/train-00000.jsonl") == (out / "t2u" / "train-00000.jsonl").read_bytes()


def test_mismatched_output_and_unknown_stage_are_one_line_errors(corpus, exported, tmp_path):
    root, _ = corpus
    out, _ = exported
    record = json.loads((out / "export.json").read_text())
    assert record["format"] == "echox" and "segments_tokenizer" in record["models"]
    assert record["options"]["shard_size"] == 2
    with pytest.raises(EchoforgeError, match="another shard_size"):
        export_build(str(root), "echox", str(out), shard_size=3)
    record["build"] = "another"
    other = tmp_path / "other"
    other.mkdir()
    (other / "export.json").write_text(json.dumps(record))
    with pytest.raises(EchoforgeError, match="another build"):
        export_build(str(root), "echox", str(other))
    with pytest.raises(ConfigError, match="no stage 'tts'"):
        export_build(str(root), "echox", str(tmp_path / "x"), stages=["tts"])
    with pytest.raises(ConfigError, match="shard_size"):
        export_build(str(root), "echox", str(tmp_path / "x"), shard_size=0)
    result = CliRunner().invoke(main, ["export", str(root), "--to", "nope", "--output", str(tmp_path / "y")])
    assert result.exit_code == 2 and "unknown export format 'nope'" in result.output


def test_cli_writes_one_stage_as_flac(corpus, tmp_path):
    root, rows = corpus
    result = CliRunner().invoke(main, ["export", str(root), "--output", str(tmp_path / "o"), "--stage", "s2t",
                                       "--audio-format", "flac", "--absolute-paths", "--shard-size", "3"])
    assert result.exit_code == 0, result.output
    assert f"s2t {len(rows)}" in result.output and f"{_shards(rows, 3)} shards written" in result.output
    lines = _lines(tmp_path / "o", "s2t")
    for line in lines.values():
        path = Path(line["conversations"][-2]["audio"])
        assert path.is_absolute() and path.suffix == ".flac"
        assert sf.info(str(path)).samplerate == 16_000
    assert not (tmp_path / "o" / "echo").exists()


def test_a_build_without_the_columns_is_a_one_line_error(corpus, tmp_path):
    import shutil

    root, _ = corpus
    old = tmp_path / "old-build"
    shutil.copytree(root, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["features"]["echo_segments"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EchoforgeError, match="no column 'echo_segments'"):
        export_build(str(old), "echox", str(tmp_path / "out"), stages=["echo"])
    export_build(str(old), "echox", str(tmp_path / "out"), stages=["t2u"])  # what it has still exports


def test_a_build_without_answer_audio_refuses_the_stages_that_need_it(corpus, tmp_path):
    import shutil

    root, _ = corpus
    old = tmp_path / "no-answers"
    shutil.copytree(root, old)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["config"]["synthesis"]["keep_answer_audio"] = False
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EchoforgeError, match="without answer audio.*'tts'"):
        export_build(str(old), "nemo", str(tmp_path / "out"))


@pytest.mark.parametrize("row_id", ["../../etc/passwd", "a/b\\c", "..", "", "x.y", "é-ü", "abc-001"])
def test_ids_become_safe_file_names(row_id):
    name = safe_name(row_id)
    assert name and "/" not in name and "\\" not in name and "." not in name
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert safe_name(row_id) == name
    if row_id == "abc-001":
        assert name == row_id
    assert safe_name("a/b") != safe_name("a_b")  # a changed id never collides with one that needed no change
