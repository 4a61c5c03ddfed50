"""Ingest: readers, layouts, turns, stable ids, and bad rows becoming rejects."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from echoforge.config import BuildConfig, parse_config
from echoforge.errors import InputError
from echoforge.io.readers import read_slice, resolve_input, scan_input
from echoforge.pipeline.workunits import MAX_UNIT_ROWS, MIN_UNITS, plan_work_units
from echoforge.transforms.ingest import Ingest, detect_format

from conftest import SHAREGPT


def ingest(path, config: BuildConfig | None = None, rows_per_unit: int = 4):
    config = config or BuildConfig()
    plan = plan_work_units([str(path)], rows_per_unit, split=config.ingest.split)
    stage = Ingest(config)
    kept, rejected = [], []
    for unit in plan.units:
        k, r = stage.process(list(plan.read(unit)))
        kept += k
        rejected += r
    return kept, rejected


def test_sharegpt_multi_turn_rows_carry_history_and_index():
    turns, rejects = ingest(SHAREGPT)
    data = json.loads(SHAREGPT.read_text())
    expected = sum(len(c["conversations"]) // 2 for c in data)
    assert not rejects and len(turns) == expected
    third = [t for t in turns if t.conversation_id == "identity_2"]
    assert [t.turn_index for t in third] == [0, 1, 2]
    assert third[2].history[0] == {"role": "user", "text": "What is up?"}
    assert len(third[2].history) == 4 and third[2].question_text == "Goodbye"


def test_ids_are_stable_and_unique():
    a, _ = ingest(SHAREGPT, rows_per_unit=3)
    b, _ = ingest(SHAREGPT, rows_per_unit=7)
    assert [t.id for t in a] == [t.id for t in b]
    assert len({t.id for t in a}) == len(a)


def test_small_inputs_are_cut_finer_so_every_worker_has_units(tmp_path):
    lines = tmp_path / "rows.jsonl"
    lines.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"a{i}"}) + "\n" for i in range(1000)))
    big = plan_work_units([str(lines)])
    assert big.rows_per_unit == MAX_UNIT_ROWS and len(big.units) == 63
    small = plan_work_units([str(lines)], limit=40)
    assert small.rows_per_unit == 2 and len(small.units) == 20 >= MIN_UNITS
    assert plan_work_units([str(lines)], 16, limit=40).rows_per_unit == 16  # an explicit size is kept
    # the finer plan reads the same rows, in the same order, through its own slice offsets
    explicit = plan_work_units([str(lines)], 16, limit=40)
    rows = lambda plan: [(r.position, r.data) for u in plan.units for r in plan.read(u)]
    assert rows(small) == rows(explicit) and len(rows(small)) == 40
    # the sample (a JSON file) too: 40 conversations in 20 units; a tiny input in units of one row
    assert len(plan_work_units([str(SHAREGPT)]).units) == 20
    assert plan_work_units([str(lines)], limit=5).rows_per_unit == 1


@pytest.mark.parametrize("record, fmt, question, answer", [
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                   {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]}]}, "openai", "Hi?", "Hello."),
    ({"instruction": "Add.", "input": "2 and 3", "output": "5"}, "alpaca", "Add.\n\n2 and 3", "5"),
    ({"question": "Why?", "answer": "Because."}, "qa", "Why?", "Because."),
])
def test_builtin_layouts(tmp_path, record, fmt, question, answer):
    assert detect_format(record) == fmt
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (turn,), rejects = ingest(path)
    assert (turn.question_text, turn.answer_text) == (question, answer) and not rejects


def test_field_mapping_with_nested_instances(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([{"task": {"id": "t1", "text": "Translate to French."},
                                 "examples": [{"in": "cat", "out": "chat"}, {"in": "dog", "out": "chien"}]}]))
    config = parse_config({"ingest": {"format": "mapping", "mapping": {
        "id": "task.id", "instruction": "task.text", "instances": "examples",
        "instance_input": "in", "instance_output": "out"}}})
    turns, rejects = ingest(path, config)
    assert not rejects
    assert [(t.question_text, t.answer_text, t.turn_index) for t in turns] == [
        ("Translate to French.\n\ncat", "chat", 0), ("Translate to French.\n\ndog", "chien", 1)]
    assert turns[0].conversation_id == "t1/0"


def test_mapping_must_name_a_layout():
    from echoforge.errors import ConfigError

    with pytest.raises(ConfigError, match="ingest.mapping"):
        parse_config({"ingest": {"format": "mapping", "mapping": {"id": "x"}}})


def test_csv_and_parquet_readers_agree(tmp_path):
    rows = [{"question": f"Question {i}, with a comma?", "answer": f"Answer\nline {i}."} for i in range(7)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "qa.parquet", row_group_size=3)
    import csv

    with open(tmp_path / "qa.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["question", "answer"])
        w.writeheader()
        w.writerows(rows)
    for name in ("qa.parquet", "qa.csv"):
        turns, rejects = ingest(tmp_path / name, rows_per_unit=2)
        assert [(t.question_text, t.answer_text) for t in turns] == [(r["question"], r["answer"]) for r in rows]
        assert [t.input_row for t in turns] == list(range(7))


def test_datasets_directory_input(tmp_path):
    import datasets

    datasets.Dataset.from_list([{"instruction": "Name a colour.", "output": "Blue."}]).save_to_disk(tmp_path / "ds")
    (turn,), _ = ingest(tmp_path / "ds")
    assert turn.answer_text == "Blue." and turn.source == "ds"


def test_bad_rows_become_rejects_with_positions(bad_input):
    turns, rejects = ingest(bad_input)
    by_row = {r.input_row: r for r in rejects}
    assert by_row[4].reason == "unreadable_row" and "invalid JSON" in by_row[4].detail
    assert by_row[5].reason == "unknown_format" and "ingest.format" in by_row[5].detail
    assert by_row[6].reason == "missing_field"
    assert by_row[7].reason == "unreadable_row" and "UTF-8" in by_row[7].detail
    assert all(r.stage == "ingest" and r.source_position.startswith("bad.jsonl:row ") for r in rejects)
    assert sorted({t.input_row for t in turns} | set(by_row)) == list(range(12))


def test_slices_read_the_same_rows_as_one_pass(bad_input):
    spec = scan_input(resolve_input(str(bad_input)), 5)
    whole = [r.position for r in read_slice(spec, 0, spec.rows, 5)]
    pieces = [r.position for s in range(0, spec.rows, 5) for r in read_slice(spec, s, s + 5, 5)]
    assert whole == pieces == list(range(12))


def test_unknown_file_type_and_missing_input(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="unknown file type"):
        resolve_input(str(tmp_path / "x.txt"))
    with pytest.raises(InputError, match="not found"):
        resolve_input(str(tmp_path / "nope.jsonl"))


def test_json_array_cut_off_mid_record_keeps_the_whole_records(tmp_path):
    path = tmp_path / "broken.json"
    text = '[{"question": "What is up?", "answer": "The sky."},\n {"question": "How'
    path.write_text(text)
    turns, (reject,) = ingest(path)
    assert [t.answer_text for t in turns] == ["The sky."]
    at = text.index('{"question": "How')
    assert f"broken.json ends at byte {len(text)}, inside the item that starts at byte {at}" in \
        reject.detail and reject.source_position.endswith(f"item 1 at byte {at}")
    # Cut between two records (after a comma): the records are all read, the missing end is one reject.
    path.write_text(text[:at])
    turns, (reject,) = ingest(path)
    assert len(turns) == 1 and f"ends at byte {at}" in reject.detail


def _ingest_records(tmp_path, records, config: BuildConfig | None = None):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return ingest(path, config)


def test_openai_content_part_with_a_number_is_read_as_text(tmp_path):
    record = {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]},
                           {"role": "assistant", "content": [{"type": "text", "text": "Five."}]}]}
    (turn,), rejects = _ingest_records(tmp_path, [record])
    assert (turn.question_text, turn.answer_text) == ("5", "Five.") and not rejects


@pytest.mark.parametrize("value, answer", [
    ({"nested": {"deep": [1, 2]}}, "bad_field"),
    ([{"type": "text", "text": {"a": 1}}], "bad_field"),
    ([[["deep"]]], "bad_field"),
    ([{"type": "image_url", "image_url": {"url": "x"}}], ""),
    (True, "true"),
    (1e308, "1e+308"),
    ([{"type": "text", "text": None}, "tail", {"text": 7}], "tail\n7"),
])
def test_any_json_value_as_content_is_text_or_a_reject(tmp_path, value, answer):
    records = [{"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": value}]},
               {"conversations": [{"from": value, "value": "Q?"}, {"from": "gpt", "value": value}]},
               {"instruction": value, "input": value, "output": value},
               {"question": value, "answer": value}]
    turns, rejects = _ingest_records(tmp_path, records)
    assert sorted([t.input_row for t in turns] + [r.input_row for r in rejects]) == [0, 1, 2, 3]
    assert all(r.stage == "ingest" and r.reason in ("bad_field", "no_turns") for r in rejects)
    by_row = {t.input_row: t.answer_text for t in turns} | {r.input_row: r.reason for r in rejects}
    assert by_row[0] == by_row[2] == by_row[3] == answer


def test_lone_surrogates_are_replaced_so_the_row_can_be_written(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a\\udc80", "question": "Why\\ud800?", "answer": "Because."}\n')
    (turn,), _ = ingest(path)
    assert turn.question_text == "Why\ufffd?" and turn.conversation_id == "a\ufffd"
    pa.array([turn.question_text, turn.conversation_id])  # encodes as UTF-8


def test_a_row_with_huge_numbers_and_keys_of_any_type_is_not_fatal():
    from echoforge.io.readers import RawRow

    rows = [RawRow("mem", 0, {"id": 10 ** 5000, "question": 10 ** 5000, "answer": "ok"}),
            RawRow("mem", 1, {"question": "q", "answer": "a", 3: "x"}),
            RawRow("mem", 2, {1: "x", None: "y"})]
    turns, rejects = Ingest(BuildConfig()).process(rows)
    assert [r.input_row for r in rejects] == [0, 2]
    assert rejects[0].reason == "bad_field" and "question" in rejects[0].detail
    assert rejects[1].reason == "unknown_format"
    assert [t.input_row for t in turns] == [1]


@pytest.fixture(scope="module")
def dataset_dict(tmp_path_factory):
    import datasets

    path = tmp_path_factory.mktemp("dsdict") / "dd"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"question": "Train?", "answer": "Yes."}]),
        "test": datasets.Dataset.from_list([{"question": f"Test {i}?", "answer": "Yes."} for i in range(2)]),
    }).save_to_disk(path)
    return path


def test_saved_dataset_dict_reads_the_configured_split(dataset_dict):
    turns, _ = ingest(dataset_dict, parse_config({"ingest": {"split": "test"}}))
    assert [t.question_text for t in turns] == ["Test 0?", "Test 1?"] and turns[0].source == "dd:test"
    (turn,), _ = ingest(dataset_dict)
    assert turn.question_text == "Train?" and turn.source == "dd:train"


def test_unknown_split_is_one_line_naming_the_splits(dataset_dict):
    with pytest.raises(InputError) as err:
        ingest(dataset_dict, parse_config({"ingest": {"split": "validation"}}))
    assert "no split 'validation'" in str(err.value) and "train, test" in str(err.value)
    assert "\n" not in str(err.value)


def test_hub_style_dataset_split_is_honoured(tmp_path):
    from echoforge.io.readers import InputSpec

    repo = tmp_path / "repo"  # a dataset repository laid out like one on the Hub: a file per split
    repo.mkdir()
    for split, n in (("train", 1), ("test", 3)):
        (repo / f"{split}.jsonl").write_text("".join(json.dumps({"question": f"{split} {i}?", "answer": "a"}) + "\n"
                                                     for i in range(n)))
    assert scan_input(InputSpec(str(repo), "datasets-hub", f"{repo}:test"), 4).rows == 3
    with pytest.raises(InputError, match="no split 'dev'; set ingest.split to one of: train, test"):
        scan_input(InputSpec(str(repo), "datasets-hub", f"{repo}:dev"), 4)


def _rows_of(path, slice_rows: int, **kwargs):
    from echoforge.pipeline.workunits import plan_work_units

    plan = plan_work_units([str(path)], slice_rows, **kwargs)
    return [r for u in plan.units for r in plan.read(u)]


@pytest.mark.parametrize("chunk", [1 << 20, 1, 7, 64])
def test_json_arrays_are_read_by_slices_and_cut_anywhere(tmp_path, monkeypatch, chunk):
    import random

    from echoforge.io import readers

    monkeypatch.setattr(readers, "CHUNK", chunk)  # blocks that end inside strings, escapes and items

    records = [{"question": f'Q{i} "quoted\\" [x] {{y}}, z \\\\', "answer": "A" * (i % 7), "n": [i, {"k": "]"}]}
               for i in range(40)]
    pieces = [json.dumps(r) for r in records]
    text = "[\n" + ",\n".join(pieces) + "\n]\n"
    commas = [2 + sum(len(p) + 2 for p in pieces[:i + 1]) - 2 for i in range(len(pieces))]  # after each record
    path = tmp_path / "a.json"
    path.write_text(text)
    for slice_rows in (1, 3, 16):
        assert [r.data for r in _rows_of(path, slice_rows)] == records
    rng = random.Random(7)
    for cut in sorted(rng.sample(range(2, len(text) - 3), 25)):
        path.write_text(text[:cut])
        got = _rows_of(path, 4)
        complete = sum(1 for c in commas[:-1] if c < cut)  # records whose separating comma is in
        assert [r.data for r in got[:-1]] == records[:complete]
        assert len(got) == complete + 1 and f"ends at byte {cut}" in got[-1].error
    # An array that ends properly after blank space and a trailing comma reads every record.
    path.write_text("[ " + ", ".join(json.dumps(r) for r in records[:3]) + " , ]")
    assert [r.data for r in _rows_of(path, 2)] == records[:3]


def test_rows_longer_than_the_cap_are_rejects_and_limit_reads_only_what_it_uses(tmp_path):
    path = tmp_path / "big.jsonl"
    good = json.dumps({"question": "q?", "answer": "a."})
    path.write_text(good + "\n" + json.dumps({"question": "x" * 5000, "answer": "a"}) + "\n" + good + "\n")
    rows = _rows_of(path, 2, max_row_bytes=1000)
    assert [r.data is not None for r in rows] == [True, False, True]
    assert "longer than ingest.max_row_bytes=1000" in rows[1].error
    arr = tmp_path / "big.json"
    arr.write_text("[" + good + "," + json.dumps({"question": "x" * 5000, "answer": "a"}) + "," + good + "]")
    rows = _rows_of(arr, 2, max_row_bytes=1000)
    assert [r.data is not None for r in rows] == [True, False, True] and "max_row_bytes" in rows[1].error
    # --limit: the plan scans only the rows it uses (what follows may be anything).
    path.write_bytes(((good + "\n") * 3).encode() + b"\xff" * 10)
    from echoforge.pipeline.workunits import plan_work_units

    plan = plan_work_units([str(path)], 2, limit=3)
    assert plan.inputs[0].rows == 3 and plan.total_rows == 3
    other = tmp_path / "other.jsonl"
    other.write_bytes(((good + "\n") * 3).encode() + b"different tail\n")
    assert plan_work_units([str(other)], 2, limit=3).inputs[0].checksum == plan.inputs[0].checksum
