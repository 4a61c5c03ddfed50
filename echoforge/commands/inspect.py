"""Human and JSON reports: build summary, inspect, dry-run projections."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from echoforge.commands.listen_stats import collect_listen, listen_lines, listen_summary
from echoforge.config import BuildConfig
from echoforge.errors import EchoforgeError
from echoforge.pipeline.output import iter_rejects, iter_shards, load_manifest

#: A build whose largest reject reason takes more than this share of its turns fails.
MOST_REJECTED = 0.5
#: A dry-run sample with fewer kept turns or seconds of speech than these projects poorly: the first
#: calls into each model cost more than the later ones (2 rows of the bundled sample projected 3x
#: the compute of 8 or 20 rows; docs/benchmarks.md).
MIN_PROJECTION_TURNS = 10
MIN_PROJECTION_SECONDS = 60.0


def kept_problems(manifest: dict[str, Any], root: str | Path) -> list[str]:
    """Lines saying why a build is unusable (it kept nothing, or most turns hit one reason); empty when fine.

    Each of the top reasons comes with one example detail, read from the rejects files.
    """
    rows, rejected = manifest["rows"], manifest["rejected"]
    turns = rows + rejected
    top = sorted(manifest["rejects_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    if not turns or (rows and (not top or top[0][1] <= MOST_REJECTED * turns)):
        return []
    examples: dict[str, dict[str, Any]] = {}
    wanted = {k for k, _ in top}
    for table in iter_rejects(root, ["source_position", "stage", "reason", "detail"]):
        for r in table.to_pylist():
            examples.setdefault(f"{r['stage']}.{r['reason']}", r)
        if wanted <= set(examples):
            break
    head = (f"kept no rows: all {turns} turns were rejected" if not rows else
            f"{top[0][1]} of {turns} turns ({top[0][1] / turns:.0%}) were rejected for one reason")
    lines = [head + "; top reasons:"]
    for key, count in top:
        r = examples.get(key)
        example = f"\n      e.g. {r['source_position']}: {r['detail']}" if r else ""
        lines.append(f"  {key}: {count} ({count / turns:.0%}){example}")
    return lines


def fail_on(problems: list[str]) -> None:
    """Raise the problems of a build as one error (the CLI prints it and exits non-zero)."""
    if problems:
        raise EchoforgeError("\n".join(problems))


def in_pipeline_order(seconds: dict[str, float]) -> dict[str, float]:
    """Stage timings ordered as the stages run (unknown names last, by name)."""
    from echoforge.pipeline.stages import STAGE_CLASSES

    order = {cls.name: i for i, cls in enumerate(STAGE_CLASSES)}
    return dict(sorted(seconds.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def summary_lines(manifest: dict[str, Any], output: str | Path, hint: bool = True) -> list[str]:
    """The lines a finished build prints; ``hint`` adds the commands to run next."""
    rows, rej = manifest["rows"], manifest["rejected"]
    lines = [
        f"built {output}: {rows} rows (train {manifest['rows_by_split']['train']}, "
        f"validation {manifest['rows_by_split']['validation']}), {rej} rejected, "
        f"{manifest['hours']:.3f} h of speech",
    ]
    if manifest["rejects_by_reason"]:
        top = sorted(manifest["rejects_by_reason"].items(), key=lambda kv: -kv[1])[:5]
        lines.append("rejects: " + ", ".join(f"{k}={v}" for k, v in top))
    if manifest["stage_seconds"]:
        total = sum(manifest["stage_seconds"].values()) or 1.0
        lines.append("stage time: " + ", ".join(f"{k} {v / total:.0%}"
                                                for k, v in in_pipeline_order(manifest["stage_seconds"]).items()))
    lines += audit_lines(manifest.get("gate_audit"))
    lines += quarantine_lines(manifest.get("quarantined_units", []))
    if hint:
        lines.append(f"next: echoforge validate {output} && echoforge inspect {output}")
    return lines


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 4), "p50": round(float(np.quantile(arr, 0.5)), 4),
            "p90": round(float(np.quantile(arr, 0.9)), 4), "max": round(float(arr.max()), 4),
            "share_zero": round(float(np.mean(arr == 0)), 4)}


def inspect_output(root: Path) -> dict[str, Any]:
    """Rows, hours, voices, quality distributions and rejects by reason of an output."""
    manifest = load_manifest(root)
    cols = ["question_voice", "answer_voice", "question_wer", "answer_wer", "answer_duration_s",
            "question_duration_s", "answer_units_per_second", "answer_dedup_units_per_second"]
    values: dict[str, list] = {c: [] for c in cols}
    # Builds from before the speaker columns name speakers by their voice.
    who = "speaker" if "question_speaker" in manifest.get("features", {}) else "voice"
    speaker_cols = [f"question_{who}", f"answer_{who}"] if who == "speaker" else []
    speaker_hours: dict[str, float] = {}
    for _, table in iter_shards(root, cols + speaker_cols):
        for c in cols:
            values[c].extend(v for v in table.column(c).to_pylist() if v is not None)
        for side in ("question", "answer"):
            names, seconds = table.column(f"{side}_{who}").to_pylist(), table.column(f"{side}_duration_s").to_pylist()
            for name, secs in zip(names, seconds):
                speaker_hours[name] = speaker_hours.get(name, 0.0) + (secs or 0.0) / 3600.0
    voices: dict[str, int] = {}
    for v in values["question_voice"] + values["answer_voice"]:
        voices[v] = voices.get(v, 0) + 1
    return {
        "rows": manifest["rows"],
        "rows_by_split": manifest["rows_by_split"],
        "rejected": manifest["rejected"],
        "hours": manifest["hours"],
        "answer_hours": manifest["answer_hours"],
        "rejects_by_reason": manifest["rejects_by_reason"],
        "voices": voices,
        "hours_by_speaker": {k: round(v, 6) for k, v in sorted(speaker_hours.items(), key=lambda kv: -kv[1])},
        "question_wer": _quantiles(values["question_wer"]),
        "answer_wer": _quantiles(values["answer_wer"]),
        "corpus_question_wer_mean": _quantiles(values["question_wer"])["mean"] if values["question_wer"] else None,
        "answer_duration_s": _quantiles(values["answer_duration_s"]),
        "question_duration_s": _quantiles(values["question_duration_s"]),
        "answer_units_per_second": _quantiles(values["answer_units_per_second"]),
        "answer_dedup_units_per_second": _quantiles(values["answer_dedup_units_per_second"]),
        "tokenizer": manifest["models"].get("tokenizer"),
        "complete": manifest["complete"],
        "quarantined_units": manifest.get("quarantined_units", []),
        "listen": listen_summary(collect_listen(root)),
        "gate_audit": manifest.get("gate_audit"),
    }


def inspect_lines(r: dict[str, Any]) -> list[str]:
    lines = [f"rows: {r['rows']} (train {r['rows_by_split']['train']}, validation {r['rows_by_split']['validation']})",
             f"rejected: {r['rejected']}",
             f"hours: {r['hours']:.3f} (answers {r['answer_hours']:.3f})",
             f"tokenizer: {r['tokenizer']}",
             "voices: " + ", ".join(f"{k}={v}" for k, v in sorted(r["voices"].items())),
             "hours by speaker: " + ", ".join(f"{k} {v:.3f}" for k, v in r["hours_by_speaker"].items())]
    for key in ("question_wer", "answer_wer", "answer_duration_s", "answer_dedup_units_per_second"):
        q = r[key]
        if q:
            lines.append(f"{key}: mean {q['mean']} p50 {q['p50']} p90 {q['p90']} max {q['max']}")
    if r["rejects_by_reason"]:
        lines.append("rejects by reason:")
        lines += [f"  {k}: {v}" for k, v in sorted(r["rejects_by_reason"].items(), key=lambda kv: -kv[1])]
    lines += listen_lines(r.get("listen"))
    lines += audit_lines(r.get("gate_audit"))
    lines += quarantine_lines(r.get("quarantined_units", []))
    if not r["complete"]:
        lines.append("INCOMPLETE: not every work unit is committed; rerun the build to finish it")
    return lines


def audit_lines(a: dict[str, int] | None) -> list[str]:
    """The gate's audit by its second judge (docs/gate.md), when the build ran one."""
    if not a:
        return []
    return [f"gate audit: second judge would keep {a['audited_rejects_second_keeps']} of {a['audited_rejects']} "
            f"rejects; would reject {a['audited_kept_second_rejects']} of {a['audited_kept']} kept; "
            f"it overturned {a['overturned']} rejects"]


def quarantine_lines(quarantined: list[dict[str, Any]]) -> list[str]:
    """Work units that failed as a whole: their input ranges and errors."""
    if not quarantined:
        return []
    lines = [f"quarantined work units: {len(quarantined)} (no rows; their input is in the rejects)"]
    lines += [f"  {q['input']}: {q['error']}" for q in quarantined[:5]]
    return lines


def dry_run(inputs: list[str], config: BuildConfig, *, sample: int, target_hours: float,
            cores: int | None = None) -> dict[str, Any]:
    """Build a sample into a temporary directory and project the cost of the target size."""
    from echoforge.pipeline.build import build

    cores = cores or os.cpu_count() or 1
    config = config.with_overrides(run={"workers": 1}, output={"validation_fraction": 0.0})
    with tempfile.TemporaryDirectory(prefix="echoforge-dry-run-") as tmp:
        t0 = time.perf_counter()
        manifest = build(inputs, Path(tmp) / "out", config, limit=sample)
        wall = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in (Path(tmp) / "out").rglob("*") if f.is_file())
        problems = kept_problems(manifest, Path(tmp) / "out")
    audio_s = manifest["hours"] * 3600.0
    if audio_s <= 0:
        fail_on(problems or ["the sample produced no audio; see the rejects and fix the input"])
    stage = in_pipeline_order(manifest["stage_seconds"])
    per_audio = {k: round(v / audio_s, 5) for k, v in stage.items()}
    # Stage seconds include the work spent on rejected turns, and audio_s is the kept audio:
    # the ratio is already the cost of one kept second, so the keep ratio is not applied again.
    compute_per_audio = sum(stage.values()) / audio_s
    target_s = target_hours * 3600.0
    keep_ratio = manifest["rows"] / max(1, manifest["rows"] + manifest["rejected"])
    return {
        "sample_rows": manifest["plan"]["input_rows"],
        "sample_turns": manifest["rows"] + manifest["rejected"],
        "kept_ratio": round(keep_ratio, 4),
        "sample_audio_seconds": round(audio_s, 2),
        "sample_wall_seconds": round(wall, 2),
        "stage_seconds_per_audio_second": per_audio,
        "compute_seconds_per_audio_second": round(compute_per_audio, 5),
        "target_hours": target_hours,
        "projected_cpu_hours": round(compute_per_audio * target_s / 3600.0, 1),
        "projected_disk_bytes": int(disk / audio_s * target_s),
        "projected_wall_hours": round(compute_per_audio * target_s / 3600.0 / cores, 1),
        "cores": cores,
        "rejects_by_reason": manifest["rejects_by_reason"],
        "problems": problems,
        "warnings": _projection_warnings(manifest["rows"], audio_s),
    }


def _projection_warnings(turns: int, audio_s: float) -> list[str]:
    if turns >= MIN_PROJECTION_TURNS and audio_s >= MIN_PROJECTION_SECONDS:
        return []
    return [f"the sample is too small to project from ({turns} turns kept, {audio_s:.0f} s of speech; want at "
            f"least {MIN_PROJECTION_TURNS} turns and {MIN_PROJECTION_SECONDS:.0f} s): the first calls into each "
            "model weigh on it and the projection overstates the cost; run a larger --sample"]


def dry_run_lines(r: dict[str, Any]) -> list[str]:
    lines = [f"sample: {r['sample_rows']} input rows → {r['sample_turns']} turns, kept {r['kept_ratio']:.0%}, "
             f"{r['sample_audio_seconds']:.1f} s of speech in {r['sample_wall_seconds']:.1f} s wall",
             *_reason_lines(r["rejects_by_reason"], r["sample_turns"]),
             "seconds of compute per second of audio:"]
    lines += [f"  {k:<11} {v:.4f}" for k, v in r["stage_seconds_per_audio_second"].items()]
    lines += [f"  {'total':<11} {r['compute_seconds_per_audio_second']:.4f}",
              f"projection for {r['target_hours']:g} h of speech:",
              f"  CPU-hours   {r['projected_cpu_hours']:,.1f}",
              f"  disk        {r['projected_disk_bytes'] / 1e9:,.1f} GB",
              f"  wall time   {r['projected_wall_hours']:,.1f} h on {r['cores']} cores"]
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    return lines


def _reason_lines(by_reason: dict[str, int], turns: int) -> list[str]:
    """Why the sample's turns were rejected, most frequent reason first."""
    if not by_reason:
        return []
    top = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    return ["rejected turns by reason:"] + [f"  {k}: {v} ({v / max(turns, 1):.0%})" for k, v in top]
