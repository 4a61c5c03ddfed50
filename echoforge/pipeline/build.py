"""Build a corpus: plan work units, run the pending ones on an engine, finalise the output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from echoforge.config import BuildConfig
from echoforge.errors import EchoforgeError, FailureRatioExceeded, InputError
from echoforge.pipeline.engines import get_engine
from echoforge.pipeline.job import Job
from echoforge.pipeline.output import Layout, atomic_write_json, finalize
from echoforge.pipeline.workunits import Plan, plan_work_units

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE_INPUTS = (PACKAGE_DATA / "sharegpt_sample.json", PACKAGE_DATA / "alpaca_messy.jsonl")
DEFAULT_SAMPLE_LIMIT = 48  # the 40 ShareGPT conversations and 8 messy Alpaca rows


def plan_info(plan: Plan, config: BuildConfig, limit: int | None) -> dict[str, Any]:
    """What an output directory is a build of; a resumed run must match it."""
    return {
        "inputs": [{"uri": s.uri, "kind": s.kind, "source": s.name, "rows": s.rows} for s in plan.inputs],
        "limit": limit,
        "rows_per_unit": plan.rows_per_unit,
        "num_units": len(plan.units),
        "input_rows": plan.total_rows,
        "config_fingerprint": config.fingerprint(),
    }


def _claim_output(root: Path, info: dict[str, Any], overwrite: bool) -> None:
    marker = root / "_build.json"
    if marker.exists():
        old = json.loads(marker.read_text())
        if old == info:
            return
        if not overwrite:
            raise EchoforgeError(
                f"{root} holds a different build (other inputs, limit or config); "
                "choose a new --output or pass --overwrite"
            )
    if overwrite and root.exists():
        for child in ("data", "train", "validation", "rejects", "_work_units", "manifest.json", "README.md",
                      "dataset_dict.json", "_build.json"):
            p = root / child
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif root.exists() and any(root.iterdir()) and not marker.exists():
        raise EchoforgeError(f"{root} exists and is not an echoforge output; choose an empty or new --output")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, info)


def _check_failures(entries: list[dict[str, Any]], config: BuildConfig) -> None:
    rows = sum(e["rows"] for e in entries)
    rejected = sum(e["rejected"] for e in entries)
    total = rows + rejected
    if total < config.run.min_turns_for_ratio or total == 0:
        return
    ratio = rejected / total
    if ratio > config.run.max_failure_ratio:
        reasons: dict[str, int] = {}
        for e in entries:
            for k, v in e["rejects_by_reason"].items():
                reasons[k] = reasons.get(k, 0) + v
        top = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        raise FailureRatioExceeded(
            f"{rejected} of {total} turns rejected ({ratio:.0%}, most: {top}), above "
            f"run.max_failure_ratio={config.run.max_failure_ratio}; fix the input or raise the threshold "
            "(committed work units are kept and a rerun resumes)"
        )


def build(
    inputs: list[str],
    output: str | Path,
    config: BuildConfig,
    *,
    limit: int | None = None,
    engine: str = "local",
    engine_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_progress: Callable[[dict[str, Any], int, int], None] | None = None,
) -> dict[str, Any]:
    """Build (or resume building) a corpus; returns the manifest.

    ``on_progress(entry, done, total)`` is called once before any work (entry None) and after
    each work unit commits.
    """
    if not inputs:
        inputs = [str(p) for p in SAMPLE_INPUTS]
        limit = DEFAULT_SAMPLE_LIMIT if limit is None else limit
    plan = plan_work_units(inputs, config.run.work_unit_rows, limit, config.ingest.split)
    if not plan.units:
        raise InputError("the inputs hold no rows")
    root = Path(output).absolute()  # workers of other engines may run elsewhere
    info = plan_info(plan, config, limit)
    _claim_output(root, info, overwrite)
    layout = Layout(root, len(plan.units), config.output.format)
    pending = [u for u in plan.units if not layout.done(u.index)]
    entries = [e for e in layout.entries()]
    job = Job(config, plan, layout)
    workers = config.run.workers or os.cpu_count() or 1
    runner = get_engine(engine, workers=workers, **(engine_options or {}))
    done = len(plan.units) - len(pending)
    if on_progress:
        on_progress(None, done, len(plan.units))
    try:
        for entry in runner.run(job, pending):
            entries.append(entry)
            done += 1
            if on_progress:
                on_progress(entry, done, len(plan.units))
            _check_failures(entries, config)
    finally:
        runner.close()
    models: dict[str, str] = {}
    for e in sorted(entries, key=lambda e: e["unit"]):
        models.update(e.get("models", {}))
    return finalize(layout, plan_info=info, config=config.model_dump(mode="json"), models=models)
