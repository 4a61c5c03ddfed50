"""Export of a real build of the ShareGPT sample in EchoX's format, read back stage by stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from tokenizers import Tokenizer

from echoforge.backends.llm_tokenizer import default_tokenizer_path
from echoforge.cli import main
from echoforge.commands.export import export_build
from echoforge.config import parse_config
from echoforge.errors import ConfigError, EchoforgeError
from echoforge.pipeline.build import build
from echoforge.pipeline.output import iter_shards

from conftest import SHAREGPT

CONFIG = {"run": {"work_unit_rows": 2, "workers": 1}, "output": {"validation_fraction": 0.3},
          "gate": {"asr": "none"}, "segments": {"boundary": "clause", "min_tokens": 6, "max_tokens": 24}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cache_env):
    out = tmp_path_factory.mktemp("echox") / "build"
    build([str(SHAREGPT)], out, parse_config(CONFIG), limit=4)
    rows = []
    for shard, table in iter_shards(out):
        rows += [{**r, "split": shard["split"]} for r in table.to_pylist()]
    return out, rows


@pytest.fixture(scope="module")
def exported(corpus, tmp_path_factory):
    root, _ = corpus
    out = tmp_path_factory.mktemp("export") / "echox"
    report = export_build(str(root), "echox", str(out))
    return out, report


def _lines(out: Path, stage: str) -> dict[str, dict]:
    lines = {}
    for part in sorted((out / stage).glob("*.jsonl")):
        for line in part.read_text().splitlines():
            row = json.loads(line)
            lines[row["id"]] = {**row, "part": part.stem}
    return lines


def test_every_kept_row_is_in_every_stage(corpus, exported):
    _, rows = corpus
    out, report = exported
    assert len(rows) >= 6 and {r["split"] for r in rows} == {"train", "validation"}
    assert report["rows"] == {"s2t": len(rows), "t2u": len(rows), "echo": len(rows)}
    for stage in ("s2t", "t2u", "echo"):
        lines = _lines(out, stage)
        assert sorted(lines) == sorted(r["id"] for r in rows)
        for r in rows:
            assert lines[r["id"]]["part"].startswith(r["split"])


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
        assert len(audio) == pytest.approx(r["question_duration_s"] * 16_000, abs=2)


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


def test_rerun_skips_finished_parts_and_redoes_missing_ones(corpus, exported):
    root, _ = corpus
    out, first = exported
    part = sorted((out / "echo").glob("*.jsonl"))[0]
    before = part.read_bytes()
    part.unlink()
    again = export_build(str(root), "echox", str(out))
    total = first["parts_written"]
    assert again["parts_written"] == 1 and again["parts_skipped"] == total - 1
    assert part.read_bytes() == before
    assert not list(out.rglob(".*.tmp"))


def test_any_fsspec_filesystem(corpus, exported):
    import fsspec

    root, _ = corpus
    out, _ = exported
    export_build(str(root), "echox", "memory://echox-test/out", stages=["t2u", "echo"])
    fs = fsspec.filesystem("memory")
    for stage in ("t2u", "echo"):
        for part in sorted((out / stage).glob("*.jsonl")):
            assert fs.cat(f"/echox-test/out/{stage}/{part.name}") == part.read_bytes()
    assert not fs.exists("/echox-test/out/s2t")
    audio = fs.find("/echox-test/out/audio")
    assert audio and all(p.endswith(".wav") for p in audio)


def test_mismatched_output_and_unknown_stage_are_one_line_errors(corpus, exported, tmp_path):
    root, _ = corpus
    out, _ = exported
    record = json.loads((out / "export.json").read_text())
    assert record["format"] == "echox" and "segments_tokenizer" in record["models"]
    record["build"] = "another"
    other = tmp_path / "other"
    other.mkdir()
    (other / "export.json").write_text(json.dumps(record))
    with pytest.raises(EchoforgeError, match="another build"):
        export_build(str(root), "echox", str(other))
    with pytest.raises(ConfigError, match="no stage 'tts'"):
        export_build(str(root), "echox", str(tmp_path / "x"), stages=["tts"])
    result = CliRunner().invoke(main, ["export", str(root), "--to", "nope", "--output", str(tmp_path / "y")])
    assert result.exit_code == 2 and "unknown export format 'nope'" in result.output


def test_cli_writes_one_stage_as_flac(corpus, tmp_path):
    root, rows = corpus
    result = CliRunner().invoke(main, ["export", str(root), "--output", str(tmp_path / "o"), "--stage", "s2t",
                                       "--audio-format", "flac", "--absolute-paths"])
    assert result.exit_code == 0, result.output
    assert f"s2t {len(rows)}" in result.output
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
