"""The commit protocol on local disk and S3: leases, the resume guard, damaged objects,
quarantined work units, ids across inputs, and what validate catches."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from echoforge.config import parse_config
from echoforge.errors import EchoforgeError, InputError
from echoforge.pipeline import build as build_module
from echoforge.pipeline import commit as commit_module
from echoforge.pipeline.build import build
from echoforge.pipeline.lease import Lease, LeaseHeld
from echoforge.pipeline.workunits import plan_work_units
from echoforge.storage import folder as open_folder
from echoforge.transforms.ingest import Ingest
from echoforge.commands.validate import validate_output

from conftest import SHAREGPT, inject_env

pytestmark = pytest.mark.slow

# Real stages, small: one input row per work unit, each unit its own train shard.
SMALL = {"run": {"work_unit_rows": 1, "workers": 1}, "gate": {"asr": "none"},
         "output": {"shard_size_mb": 0.001, "validation_fraction": 0.1}}


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "echoforge", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def rows(root: str) -> list[dict]:
    folder = open_folder(root)
    out = []
    for p in folder.list("data"):
        out += pq.read_table(io.BytesIO(folder.read_bytes(p))).to_pylist()
    return sorted(out, key=lambda r: r["id"])


def marker_bytes(root: str) -> dict[str, bytes]:
    folder = open_folder(root)
    return {p: folder.read_bytes(p) for p in folder.list("_echoforge/units")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_env) -> str:
    out = str(tmp_path_factory.mktemp("ref") / "out")
    build([str(SHAREGPT)], out, parse_config(SMALL), limit=4)
    return out


@pytest.mark.parametrize("where", ["local", "s3"])
def test_second_build_is_refused_while_one_holds_the_output(where, tmp_path, s3_server, s3_env):
    out = s3_server.url() if where == "s3" else str(tmp_path / "out")
    with Lease(open_folder(out)):  # a running build: this live process holds the lease
        for extra in ([], ["--overwrite"]):
            r = cli("build", str(SHAREGPT), "-o", out, "--limit", "1", *extra)
            assert r.returncode == 2 and "another build is writing to" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr and f"echoforge unlock {out}" in r.stderr
        with pytest.raises(LeaseHeld):
            Lease(open_folder(out)).acquire()
    # Released: a lease left by a build on another host can be removed by hand.
    folder = open_folder(out)
    folder.write_json("_echoforge/lease/0000000009.json", {"host": "elsewhere", "pid": 1, "token": "x"})
    with pytest.raises(LeaseHeld, match="host elsewhere"):
        Lease(folder).acquire()
    assert "removed the lease of host elsewhere" in cli("unlock", out).stdout
    Lease(folder).acquire().release()


def test_resume_guard_names_what_changed(tmp_path, cache_env):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "What is two plus two?", "answer": "Two plus two is four."}\n'
                    '{"question": "Name a primary colour.", "answer": "Red is a primary colour."}\n')
    codebook = tmp_path / "cb.npy"
    from echoforge.backends.units.base import KMeansCodebook
    from echoforge.backends.units.whisper_kmeans import DEFAULT_CODEBOOK

    KMeansCodebook.load(DEFAULT_CODEBOOK).save(codebook)
    config = {**SMALL, "units": {"codebook": str(codebook)}}
    out = str(tmp_path / "out")
    build([str(data)], out, parse_config(config))
    # Execution-only settings may change between runs: the resume goes on.
    fast = {**config, "synthesis": {"batch_size": 2}, "gate": {"asr": "none", "batch_size": 3},
            "run": {**SMALL["run"], "max_failure_ratio": 0.9}}
    assert build([str(data)], out, parse_config(fast))["complete"]
    # Same row count, other content.
    data.write_text(data.read_text().replace("four", "4"))
    with pytest.raises(EchoforgeError, match=r"input .*qa\.jsonl \(content\) changed"):
        build([str(data)], out, parse_config(config))
    data.write_text(data.read_text().replace("4", "four"))
    # A replaced codebook file.
    cb = KMeansCodebook.load(codebook)
    KMeansCodebook(cb.centroids[::-1].copy(), cb.provenance, "", cb.mean, cb.projection).save(codebook)
    with pytest.raises(EchoforgeError, match=r"model tokenizer\b.* changed"):
        build([str(data)], out, parse_config(config))
    KMeansCodebook.load(DEFAULT_CODEBOOK).save(codebook)
    # An upgraded package that makes rows.
    real = build_module.package_versions
    build_module.package_versions = lambda: {**real(), "piper-tts": "99.0"}
    try:
        with pytest.raises(EchoforgeError, match=r"package piper-tts 1\.[0-9.]+ -> 99\.0 changed"):
            build([str(data)], out, parse_config(config))
    finally:
        build_module.package_versions = real
    assert build([str(data)], out, parse_config(config))["complete"]


def test_damaged_objects_are_recomputed_on_resume(reference, tmp_path, cache_env):
    out = str(tmp_path / "out")
    config = parse_config(SMALL)
    manifest = build([str(SHAREGPT)], out, config, limit=4)
    folder = open_folder(out)
    train = [s for s in manifest["shards"] if s["split"] == "train"]
    assert len(train) >= 2 and all(s["units"][1] - s["units"][0] == 1 for s in train)

    def marker_of(shard: dict) -> str:
        unit = shard["units"][0]
        return next(p for p in folder.list("_echoforge/units") if p.endswith(f"/{unit:06d}.json"))

    def damage_and_resume(shard: dict, damage, **kwargs) -> None:
        before = marker_bytes(out)
        damage(shard["path"])
        build([str(SHAREGPT)], out, config, limit=4, **kwargs)
        after = marker_bytes(out)
        # Only the damaged shard's unit was recomputed (a new attempt); the rows are as before.
        assert [p for p in before if before[p] != after[p]] == [marker_of(shard)]
        assert rows(out) == rows(reference) and validate_output(out)[0] == []

    damage_and_resume(train[0], folder.delete)  # a deleted shard
    damage_and_resume(train[1], lambda p: folder.write_bytes(p, folder.read_bytes(p)[:-100]))  # truncated

    def flip(p: str) -> None:
        data = bytearray(folder.read_bytes(p))
        data[len(data) // 2] ^= 0xFF
        folder.write_bytes(p, bytes(data))

    # A flipped byte keeps the size: found by --verify (sha256 of sealed shards).
    damage_and_resume(train[-1], flip, verify=True)


def test_damaged_part_of_an_unsealed_shard_is_recomputed(reference, tmp_path, cache_env, monkeypatch):
    out = str(tmp_path / "out")
    config = parse_config(SMALL)
    # Commit every unit but seal nothing, as a build killed before its shards were sealed.
    monkeypatch.setattr(commit_module, "seal", lambda *a, **k: False)
    monkeypatch.setattr(build_module, "seal_all", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        build([str(SHAREGPT)], out, config, limit=4)
    monkeypatch.undo()
    folder = open_folder(out)
    assert not folder.list("data") and len(folder.list("_echoforge/units")) == 4
    parts = sorted(p for p in folder.list("_echoforge/parts") if p.endswith("/train.parquet"))
    data = bytearray(folder.read_bytes(parts[1]))
    data[len(data) // 2] ^= 0xFF  # same size, other content
    folder.write_bytes(parts[1], bytes(data))
    before = marker_bytes(out)
    build([str(SHAREGPT)], out, config, limit=4)
    after = marker_bytes(out)
    assert [p for p in before if before[p] != after[p]] == ["_echoforge/units/00000/000001.json"]
    assert rows(out) == rows(reference)
    assert not folder.list("_echoforge/parts"), "parts of other attempts are cleaned up"


def test_validate_catches_damaged_missing_and_stray_shards(reference, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    assert validate_output(copy)[0] == []
    train = sorted((copy / "data").glob("train-*.parquet"))
    train[0].write_bytes(train[0].read_bytes()[:-50])  # truncated
    flipped = bytearray(train[1].read_bytes())
    flipped[len(flipped) // 3] ^= 0x01
    train[1].write_bytes(bytes(flipped))  # one flipped byte
    missing = train[2].name
    train[2].unlink()  # missing
    (copy / "data" / "train-00009-of-00009.parquet").write_bytes(pq_bytes())  # stray
    problems = "\n".join(validate_output(copy)[0])
    assert f"{train[0].name}: " in problems and "(truncated?)" in problems
    assert f"{train[1].name}: sha256 mismatch" in problems
    assert f"data/{missing}: missing" in problems
    assert "train-00009-of-00009.parquet: stray data file" in problems
    # A unit marker that no longer matches the shard it was sealed into.
    marker = copy / "_echoforge" / "units" / "00000" / "000000.json"
    entry = json.loads(marker.read_text())
    entry["parts"]["train"]["rows"] += 1
    entry["rows"] += 1
    marker.write_text(json.dumps(entry))
    assert "do not match their markers" in "\n".join(validate_output(copy)[0])


def pq_bytes() -> bytes:
    import pyarrow as pa

    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [1]}), buf)
    return buf.getvalue()


@pytest.mark.parametrize("failure", ["raise", "crash"])
def test_a_unit_that_always_fails_is_quarantined_and_the_build_finishes(failure, reference, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**SMALL, "run": {"work_unit_rows": 1, "workers": 2, "unit_attempts": 2}}))
    out = str(tmp_path / "out")
    r = subprocess.run([sys.executable, "-m", "echoforge", "build", str(SHAREGPT), "-o", out, "--limit", "4",
                        "--config", str(config)], capture_output=True, text=True, timeout=600,
                       env=inject_env(fail=failure))
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = open_folder(out).read_json("manifest.json")
    assert manifest["complete"] and [q["unit"] for q in manifest["quarantined_units"]] == [1]
    assert manifest["quarantined_units"][0]["input"].endswith("sharegpt_sample.json:rows 1-1")
    assert manifest["rejects_by_reason"] == {"engine.unit_failed": 1}
    rejects = pq.read_table(io.BytesIO(open_folder(out).read_bytes(manifest["rejects"][0]["path"]))).to_pylist()
    assert rejects[0]["source_position"].endswith("rows 1-1") and "after 2 attempts" in rejects[0]["detail"]
    assert ("synthesiser exploded" if failure == "raise" else "worker process died") in rejects[0]["detail"]
    # Every other unit is intact: the rows of input rows 0 and 2 are those of a clean build.
    expected = [row for row in rows(reference) if ":item 1 at byte" not in row["source_position"]]
    assert rows(out) == expected
    assert "quarantined" in cli("inspect", out).stdout


def test_ids_are_unique_across_inputs_with_the_same_name(tmp_path):
    line = '{"question": "Is the sky blue?", "answer": "Yes, on a clear day."}\n'
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "train.jsonl").write_text(line)
    a, b = str(tmp_path / "a" / "train.jsonl"), str(tmp_path / "b" / "train.jsonl")
    plan = plan_work_units([a, b], 4)
    stage = Ingest(parse_config({}))
    ids = [t.id for u in plan.units for t in stage.process(list(plan.read(u)))[0]]
    assert len(ids) == 2 and len(set(ids)) == 2
    again = plan_work_units([a, b], 4)
    assert [t.id for u in again.units for t in stage.process(list(again.read(u)))[0]] == ids
    with pytest.raises(InputError, match="given twice"):
        plan_work_units([a, str(Path(a))], 4)


def test_unsupported_locations_are_one_clear_error(tmp_path, s3_server, s3_env):
    r = cli("build", str(SHAREGPT), "-o", "ftp://host/corpus", "--limit", "1")
    assert r.returncode == 2 and "unsupported location 'ftp://host/corpus'" in r.stderr
    assert not (Path.cwd() / "ftp:").exists()
    r = cli("build", f"{s3_server.url()}/missing.jsonl", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "input not found: s3://" in r.stderr, r.stderr
    r = cli("build", str(SHAREGPT), "-o", "hf://datasets/someone/corpus", "--limit", "1")
    assert r.returncode == 2 and "read-only" in r.stderr


@pytest.mark.parametrize("where", ["local", "s3"])
def test_push_uploads_data_card_and_manifest_only(where, reference, tmp_path, s3_server, s3_env, monkeypatch):
    import fnmatch

    import huggingface_hub
    import yaml
    from huggingface_hub.utils import filter_repo_objects

    from echoforge.commands.push import push

    source = reference
    if where == "s3":
        source = s3_server.url("push-source")
        s3_server.filesystem().put(reference + "/", source.removeprefix("s3://") + "/", recursive=True)
    calls = []

    def upload_folder(self, *, repo_id, folder_path, allow_patterns, ignore_patterns, **kwargs):
        # What huggingface_hub itself would upload from that folder with those patterns.
        everything = [str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()]
        chosen = sorted(filter_repo_objects(everything, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        calls.append({"repo_id": repo_id, "folder": folder_path, "files": chosen, **kwargs})
        return "commit-url"

    monkeypatch.setenv("HF_TOKEN", "hf_placeholder")  # a token is given; the Hub's calls are recorded below
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: calls.append({"create": k}))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    staging = tmp_path / "staging"
    result = push(source, "someone/corpus", staging=str(staging))
    create, upload = calls
    assert create["create"] == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["repo_id"] == "someone/corpus" and upload["repo_type"] == "dataset"
    files = upload["files"]
    assert files == result["files"]
    assert "README.md" in files and "manifest.json" in files
    assert not [f for f in files if f.startswith("_echoforge")]
    manifest = json.loads(Path(upload["folder"], "manifest.json").read_text())
    assert sorted(s["path"] for s in manifest["shards"] + manifest["rejects"]) == sorted(
        f for f in files if f.endswith(".parquet"))
    # The card's configs point `datasets` at exactly the uploaded shards.
    card = yaml.safe_load(Path(upload["folder"], "README.md").read_text().split("---")[1])
    for config in card["configs"]:
        for entry in config["data_files"]:
            assert fnmatch.filter(files, entry["path"]), entry
    if where == "s3":  # a second push (after an interruption) copies nothing again
        mtimes = {p: p.stat().st_mtime_ns for p in staging.rglob("*") if p.is_file()}
        push(source, "someone/corpus", staging=str(staging))
        assert {p: p.stat().st_mtime_ns for p in staging.rglob("*") if p.is_file()} == mtimes
