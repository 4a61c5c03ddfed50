"""What a new user meets first: reading rows and audio as the README shows, loading every
build, the grammar compile notice, builds that keep nothing, stage order, config typos."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from echoforge.config import parse_config
from echoforge.errors import ConfigError
from echoforge.pipeline.build import build
from echoforge.commands.inspect import summary_lines

from conftest import FAST_CONFIG, ROOT, SHAREGPT, refused_rows, write_config

README = (ROOT / "README.md").read_text()


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "echoforge", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory, cache_env):
    """A real build of the sample that rejects nothing."""
    out = tmp_path_factory.mktemp("first-hour") / "clean"
    config = parse_config({**FAST_CONFIG, "output": {"validation_fraction": 0.2}, "gate": {"asr": "none"}})
    manifest = build([str(SHAREGPT)], out, config, limit=4)
    assert manifest["rejected"] == 0
    assert manifest["rows_by_split"]["train"] > 0 and manifest["rows_by_split"]["validation"] > 0
    return out, manifest


@pytest.fixture(scope="module")
def refused_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("first-hour") / "refused.jsonl"
    path.write_bytes(refused_rows(3))
    return path


@pytest.fixture(scope="module")
def empty_build(tmp_path_factory, refused_input, cache_env):
    """`echoforge build` of input that no reader knows: it keeps nothing."""
    out = tmp_path_factory.mktemp("first-hour") / "empty"
    return out, cli("build", str(refused_input), "--output", str(out))


# Run before a snippet: torch and its decoders are not found, as in a venv without them
# (`import torch` raises ModuleNotFoundError and importlib.util.find_spec("torch") is None).
WITHOUT_TORCH = """
import sys
from importlib.machinery import PathFinder
class WithoutTorch(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchcodec", "torchaudio"):
            return None
        return super().find_spec(name, path, target)
sys.meta_path[sys.meta_path.index(PathFinder)] = WithoutTorch
"""


def readme_row_snippets() -> list[str]:
    """The README's row-reading snippets, in the order it shows them."""
    return [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "demo-corpus" in b]


@pytest.mark.slow
def test_readme_row_and_audio_snippets_run(clean_build, tmp_path):
    """The README's snippets, taken from README.md itself, on a build named as they name it:
    the soundfile way first, then decoding by `datasets` with torchcodec."""
    blocks = readme_row_snippets()
    assert len(blocks) == 2 and "Audio(decode=False)" in blocks[0] and "get_all_samples" in blocks[1]
    (tmp_path / "demo-corpus").symlink_to(clean_build[0])
    runs = [subprocess.run([sys.executable, "-c", b], capture_output=True, text=True, cwd=tmp_path, timeout=300)
            for b in blocks]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert re.search(r"^22050 \(\d{4,},\)$", runs[0].stdout, re.M), runs[0].stdout
    assert re.search(r"^16000 \(1, \d{4,}\)$", runs[1].stdout, re.M), runs[1].stdout
    assert runs[0].stdout.splitlines()[0] == runs[1].stdout.splitlines()[0]  # the same row's texts


@pytest.mark.slow
def test_readme_first_row_snippet_runs_without_torch(clean_build, tmp_path):
    """The first way the README shows works where torch and torchcodec cannot be imported;
    the second needs them (so the shim does block them)."""
    first, second = readme_row_snippets()
    (tmp_path / "demo-corpus").symlink_to(clean_build[0])
    check = "\nassert not {'torch', 'torchcodec', 'torchaudio'} & set(sys.modules)\n"
    run = subprocess.run([sys.executable, "-c", WITHOUT_TORCH + first + check], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert re.search(r"^22050 \(\d{4,},\)$", run.stdout, re.M), run.stdout
    blocked = subprocess.run([sys.executable, "-c", WITHOUT_TORCH + second], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
    assert blocked.returncode != 0 and "torchcodec" in blocked.stderr, blocked.stderr


def _load_snippets(root: Path) -> tuple[str, str]:
    """Run the README's two `load_dataset` lines with DIR replaced by ``root``."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if '"rejects")' in b)
    code = block.replace('"corpus/"', repr(str(root)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    return scope["ds"], scope["rejects"]


@pytest.mark.slow
def test_a_build_without_rows_loads_with_both_snippets_and_reports(empty_build):
    out, _ = empty_build
    ds, rejects = _load_snippets(out)
    for d in (ds, rejects):  # the rejects are its default config: they say why it is empty
        assert d["train"].num_rows == 3 and set(d["train"]["reason"]) == {"unknown_format"}

    from echoforge.commands.report import render_report

    info = render_report(out, out.parent / "empty.html", progress=False)  # and its report shows the rejects
    assert info["rows"] == 0 and info["rejects"] == 3


@pytest.mark.slow
def test_a_build_without_rejects_loads_and_declares_its_split_sizes(clean_build, caplog):
    import datasets

    out, manifest = clean_build
    with caplog.at_level(logging.WARNING):
        ds = datasets.load_dataset(str(out))
    assert sum(ds[s].num_rows for s in ds) == manifest["rows"]
    assert "malformed" not in caplog.text
    card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    sizes = {s["name"]: s["num_bytes"] for s in card["dataset_info"][0]["splits"]}
    on_disk = {}
    for shard in manifest["shards"]:
        on_disk[shard["split"]] = on_disk.get(shard["split"], 0) + (out / shard["path"]).stat().st_size
    assert sizes == on_disk
    # datasets cannot load a table with no rows: no rejects config, and the card says so
    assert [c["config_name"] for c in card["configs"]] == ["default"]
    assert "no `rejects` config" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="BuilderConfig 'rejects' not found"):
        _load_snippets(out)


@pytest.mark.slow
def test_build_and_dry_run_that_keep_nothing_fail_with_reasons_and_an_example(empty_build, refused_input):
    _, run = empty_build
    dry = cli("dry-run", str(refused_input), "--sample", "3")
    assert "built " not in run.stdout and "next:" not in run.stdout  # the error alone, no summary or hint
    for result in (run, dry):
        assert result.returncode != 0
        assert "kept no rows: all 3 turns were rejected" in result.stderr, result.stderr
        assert "ingest.unknown_format: 3 (100%)" in result.stderr
        assert "e.g. refused.jsonl" in result.stderr
        assert "fields (prompt, response) match no known layout; set ingest.format and ingest.mapping" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_build_that_refuses_most_rows_for_one_reason_fails(tmp_path, cache_env):
    path = tmp_path / "mostly.jsonl"
    path.write_bytes(refused_rows(3, good=1))
    run = cli("build", str(path), "--output", str(tmp_path / "out"))
    assert run.returncode != 0
    assert "3 of 4 turns (75%) were rejected for one reason" in run.stderr, run.stderr
    assert "built " in run.stdout  # the summary still comes first
    assert "next:" not in run.stdout  # but no hint to go on with a build that failed


@pytest.mark.slow
def test_stage_times_are_listed_in_pipeline_order(clean_build):
    out, manifest = clean_build
    line = next(x for x in summary_lines(manifest, out) if x.startswith("stage time:"))
    assert re.findall(r"(\w+) \d+%", line) == ["ingest", "speakable", "synthesize", "tokenize", "align", "gate", "listen"]


def test_cold_grammar_cache_is_announced(tmp_path, cache_env):
    from echoforge.backends.normalizers import NEMO_GRAMMARS, NemoNormalizer

    warm = NemoNormalizer()
    warm.setup()  # compiles the session cache if this is the first use
    assert warm.cold_cache_notice() is None
    cold = tmp_path / "nemo"
    cold.mkdir()
    for name in NEMO_GRAMMARS[:2]:  # the slow two; the post-processing grammar compiles in seconds
        (cold / name).symlink_to(warm.cache_dir / name)
    code = ("from echoforge.backends.normalizers import NemoNormalizer as N; n = N(cache_dir=%r); n.setup(); "
            "print(n.normalize('It costs $5.'))" % str(cold))
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    assert all(r.stdout.strip() == "It costs five dollars." for r in runs), runs
    assert f"compiling NeMo text-normalisation grammars into {cold}" in runs[0].stderr
    assert "about a minute" in runs[0].stderr
    assert "compiling" not in runs[1].stderr  # compiled once, then cached


@pytest.mark.parametrize("data, where, suggestion", [
    ({"synthesis": {"asistant_voice": "joe"}}, "synthesis.asistant_voice", "assistant_voice"),
    ({"gaet": {}}, "gaet", "gate"),
    ({"ingest": {"format": "mapping", "mapping": {"question": "q", "answr": "a"}}}, "ingest.mapping.answr", "answer"),
])
def test_config_typo_suggests_the_closest_key(data, where, suggestion):
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert str(err.value) == f"config error at {where}: unknown field (did you mean '{suggestion}'?)"


def test_config_typo_without_a_close_key_says_only_unknown():
    with pytest.raises(ConfigError, match=r"^config error at gate.colour: unknown field$"):
        parse_config({"gate": {"colour": 1}})


def test_docs_question_answer_mapping_reads_its_example_row(tmp_path):
    from echoforge.pipeline.workunits import plan_work_units
    from echoforge.transforms.ingest import Ingest

    docs = (ROOT / "docs" / "config.md").read_text()
    example = re.search(r"A question/answer layout, for rows such as\n`(\{.*?\})`", docs, re.S).group(1)
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "question: prompt" in b)
    path = tmp_path / "qa.jsonl"
    path.write_text(example.replace("\n", " ") + "\n")
    plan = plan_work_units([str(path)], 4)
    stage = Ingest(parse_config(yaml.safe_load(block)))
    turns, rejects = stage.process(list(plan.read(plan.units[0])))
    row = json.loads(example.replace("\n", " "))
    assert not rejects and len(turns) == 1
    assert turns[0].question_text == f"{row['prompt']}\n\n{row['notes']}"
    assert turns[0].answer_text == row["reply"] and turns[0].conversation_id == row["meta"]["uid"]


def rows_shown_by_bar(stderr: str) -> int:
    """The rows= figure of the build bar's last update."""
    return int(re.findall(r"rows=(\d+)", stderr)[-1])


@pytest.mark.slow
def test_resume_says_what_it_keeps_and_counts_as_the_summary_does(tmp_path, cache_env):
    config = write_config(tmp_path / "build.yaml", {**FAST_CONFIG, "gate": {"asr": "none"}})
    out = tmp_path / "out"
    args = ("build", str(SHAREGPT), "--output", str(out), "--config", str(config))
    first = cli(*args, "--limit", "4")
    assert first.returncode == 0, first.stderr
    assert "resuming" not in first.stderr
    rows = int(re.search(r"built \S+: (\d+) rows", first.stdout).group(1))
    assert rows_shown_by_bar(first.stderr) == rows
    markers = sorted((out / "_echoforge" / "units").rglob("*.json"))
    units = len(markers)
    markers[-1].unlink()  # the last unit is lost: a rerun recomputes it and keeps the others
    again = cli(*args, "--limit", "4")
    assert again.returncode == 0, again.stderr
    assert re.search(rf"^resuming: {units - 1} of {units} work units already committed \(\d+ rows, 0 rejected\)$",
                     again.stderr, re.M), again.stderr
    assert f"built {out}: {rows} rows" in again.stdout
    assert rows_shown_by_bar(again.stderr) == rows  # the bar counts the kept units' rows too
    # another --limit is refused naming the option, not the plan's internals
    other = cli(*args, "--limit", "2")
    assert other.returncode == 2
    assert "(--limit 4 -> 2 changed)" in other.stderr and "plan" not in other.stderr, other.stderr


def test_a_refused_output_folder_is_left_as_it_was(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"not a corpus")
    run = cli("build", str(SHAREGPT), "--output", str(out), "--limit", "1")
    assert run.returncode == 2 and "is not an echoforge output" in run.stderr, run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cat.jpg"]
