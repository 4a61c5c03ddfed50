"""eval-gate on a small real build: the same ASR reproduces every decision; a second one is compared."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from echoforge.commands.eval_gate import evaluate_gate
from echoforge.config import parse_config
from echoforge.pipeline.build import build
from echoforge.pipeline.output import iter_shards

pytestmark = pytest.mark.slow

ROWS = [
    {"question": "What colour is the sky?", "answer": "The sky is blue on a clear day."},
    {"question": "Who wrote Pride and Prejudice?", "answer": "Jane Austen wrote it in 1813."},
    {"question": "What do bees make?", "answer": "Bees make honey and wax inside their hives."},
    {"question": "Name a philosopher.", "answer": "Confucius."},
    {"question": "What is the capital of Canada?", "answer": "Ottawa is the capital of Canada."},
]


@pytest.fixture(scope="module")
def strict_build(tmp_path_factory, cache_env):
    """A build whose gate refuses any misheard word, so that some turns are gate rejects."""
    tmp = tmp_path_factory.mktemp("evalgate")
    data = tmp / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    config = parse_config({"run": {"work_unit_rows": 2, "workers": 1}, "output": {"validation_fraction": 0.0},
                           "gate": {"max_answer_wer": 0.0, "max_question_wer": 0.0, "min_word_errors": 1,
                                    "short_words": 0, "audit_rate": 1.0}})
    manifest = build([str(data)], tmp / "out", config)
    return tmp / "out", manifest


def test_the_same_asr_reproduces_every_gate_decision(strict_build):
    out, manifest = strict_build
    gate_rejects = sum(v for k, v in manifest["rejects_by_reason"].items() if k.startswith("gate."))
    assert manifest["rows"] >= 1 and gate_rejects >= 1, manifest["rejects_by_reason"]
    r = evaluate_gate(out, model="tiny.en")
    rows = [x for _, t in iter_shards(out) for x in t.to_pylist()]
    overturned = {x["id"] for x in rows if x["second_judge_overturned"]}
    assert len(overturned) == manifest["gate_audit"]["overturned"]
    # tiny.en again rejects exactly the rows that the second judge heard right and so kept
    assert r["kept_judged"] == manifest["rows"] and r["kept_second_rejects"] == len(overturned)
    assert {e["id"] for e in r["kept_examples"]} == overturned
    assert r["gate_rejects"] == gate_rejects
    assert r["rejects_judged"] == gate_rejects == r["rejects_reproduced"]
    assert r["rejects_second_keeps"] == 0
    # the others were heard word for word by the strict gate
    assert all(x["question_wer"] == x["answer_wer"] == 0.0 for x in rows if x["id"] not in overturned)


def test_the_build_audits_its_gate_and_rejects_show_what_was_judged(strict_build):
    """With ``gate.audit_rate: 1`` the second judge hears every decision; the manifest, the
    build summary and inspect count its verdicts, and each gate reject names expected and heard."""
    from echoforge.pipeline.output import iter_rejects
    from echoforge.commands.inspect import inspect_lines, inspect_output, summary_lines

    out, manifest = strict_build
    gate_rejects = sum(v for k, v in manifest["rejects_by_reason"].items() if k.startswith("gate."))
    audit = manifest["gate_audit"]
    assert audit["audited_kept"] == manifest["rows"] and audit["audited_rejects"] == gate_rejects
    # a reject is one the second judge's fast path heard wrong as well; its windowed pass may not
    assert 0 <= audit["audited_rejects_second_keeps"] <= gate_rejects
    assert audit["overturned"] == sum(1 for _, t in iter_shards(out) for x in t.to_pylist() if x["second_judge_overturned"])
    rejects = [r for t in iter_rejects(out) for r in t.to_pylist() if r["stage"] == "gate"]
    spoken = {r["question"] for r in ROWS} | {r["answer"] for r in ROWS}
    for r in rejects:
        assert r["expected"] in spoken and r["heard"] and r["second_judge_audit"]
    assert sum(r["second_judge_audit"] == "keep" for r in rejects) == audit["audited_rejects_second_keeps"]
    line = (f"gate audit: second judge would keep {audit['audited_rejects_second_keeps']} of {gate_rejects} "
            f"rejects; would reject {audit['audited_kept_second_rejects']} of {manifest['rows']} kept")
    assert any(x.startswith(line) for x in inspect_lines(inspect_output(out)))
    assert any(x.startswith(line) for x in summary_lines(manifest, out))


def test_whisper_base_as_the_second_asr_from_the_cli(strict_build):
    out, _ = strict_build
    proc = subprocess.run([sys.executable, "-m", "echoforge", "eval-gate", str(out), "--json", "--sample", "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["second_asr"].startswith("whisper-base") and r["kept_judged"] <= 2 and r["rejects_judged"] <= 2
    assert 0 <= r["kept_second_rejects"] <= r["kept_judged"] and 0 <= r["rejects_second_keeps"] <= r["rejects_judged"]
    assert 0.0 <= r["kept_answer_wer_mean"] <= 1.0
    proc = subprocess.run([sys.executable, "-m", "echoforge", "eval-gate", str(out), "--no-rebuild", "--sample", "1",
                           "--model", "tiny.en"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "kept corpus WER by the second ASR" in proc.stdout and "not rebuilt" in proc.stdout
