"""`validate` checks the echo_segments column: spans, texts and token counts."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.commands.validate import validate_output

from conftest import FAST_CONFIG, SHAREGPT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory, cache_env):
    out = tmp_path_factory.mktemp("segments") / "out"
    # short clause segments, so that answers have several
    config = parse_config({**FAST_CONFIG, "gate": {"asr": "none"}, "output": {"validation_fraction": 0.0},
                           "segments": {"boundary": "clause", "min_tokens": 2}})
    build([str(SHAREGPT)], out, config, limit=3)
    return out


def _tamper(root, change) -> None:
    """Rewrite the first data shard with ``change`` applied to its rows (a list of dicts)."""
    shard = sorted((root / "data").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)


def test_a_build_validates_clean(built):
    problems, checks = validate_output(built)
    assert problems == []
    assert checks > 0


def test_tampered_segments_are_reported(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    picked: dict[str, str] = {}

    def change(rows):
        several = [r for r in rows if len(r["echo_segments"]) >= 2]
        assert len(several) >= 3
        a, b, c = several[:3]
        a["echo_segments"][1]["unit_start"] += 4  # a span shifted by 4 frames (80 ms)
        a["echo_segments"][1]["unit_end"] += 4
        b["echo_segments"][0]["num_tokens"] += 1  # a count changed: no longer the answer's total
        c["echo_segments"][0]["num_tokens"] += 1  # a token moved between segments: the total holds
        c["echo_segments"][1]["num_tokens"] -= 1
        picked.update(a=a["id"], b=b["id"], c=c["id"])

    _tamper(copy, change)
    problems, _ = validate_output(copy)
    segment_lines = [p for p in problems if "echo" in p]
    assert len(segment_lines) == 3, problems
    shifted, total, moved = (next(p for p in segment_lines if picked[k] in p) for k in "abc")
    assert "echo segment 1 " in shifted and "unit span is not its times" in shifted
    assert "num_tokens add up to" in total and "tokens under" in total
    assert "echo segment 0 has num_tokens" in moved


def test_texts_must_tile_the_answer(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)

    def change(rows):
        a, b = [r for r in rows if len(r["echo_segments"][-1]["text"]) > 6][:2]
        a["echo_segments"][-1]["text"] = a["echo_segments"][-1]["text"][:-3]  # the answer's last word cut
        b["echo_segments"][0]["start_s"] = b["echo_segments"][0]["end_s"] + 1.0

    _tamper(copy, change)
    problems = [p for p in validate_output(copy)[0] if "echo" in p]
    assert len(problems) == 2, problems
    assert "echo segments end at character" in problems[0]
    assert "times out of order" in problems[1]
