"""`echoforge push`: publish a finished build to the Hugging Face Hub.

What is published: the data shards, the rejects, the dataset card (README.md, whose YAML
points `datasets` at ``data/{split}-*.parquet`` and ``rejects/rejects-*.parquet``) and
``manifest.json``; for Arrow builds, the split folders and ``dataset_dict.json``. Never the
commit machinery under ``_echoforge/`` (markers, parts, lease, build identity).

``huggingface_hub``'s ``upload_folder`` commits large folders in batches and, rerun after an
interruption, skips files already committed and deduplicates data already uploaded. A build
on object storage is first copied to a local staging folder (files already there with the
right size are kept, so that copy resumes too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from echoforge.errors import EchoforgeError, explain, root_cause
from echoforge.pipeline.output import load_manifest
from echoforge.storage import DataFolder, folder as open_folder

PUBLISHED = ["README.md", "manifest.json", "data/*", "rejects/*", "train/*", "validation/*", "dataset_dict.json"]
NEVER = ["_echoforge/*", "**/.*", ".*"]


def published_files(folder: DataFolder) -> list[str]:
    """The relative paths a push uploads, in a stable order."""
    from huggingface_hub.utils import filter_repo_objects

    return sorted(filter_repo_objects(folder.list(), allow_patterns=PUBLISHED, ignore_patterns=NEVER))


def stage_locally(folder: DataFolder, staging: Path, files: list[str],
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Copy ``files`` of a remote build into ``staging``; files already there whole are kept."""
    sizes = folder.list()
    for i, rel in enumerate(files, start=1):
        target = staging / rel
        if not (target.exists() and target.stat().st_size == sizes[rel]):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            folder.fs.get_file(folder.path(rel), str(tmp))
            os.replace(tmp, target)
        if progress:
            progress(i, len(files))
    return staging


def push(directory: str, repo_id: str, *, private: bool = True, revision: str | None = None,
         staging: str | None = None, token: str | None = None, allow_incomplete: bool = False,
         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Upload a finished build to the dataset repo ``repo_id``; returns what was pushed."""
    from huggingface_hub import HfApi

    folder = open_folder(directory)
    manifest = load_manifest(folder)
    if not manifest["complete"] and not allow_incomplete:
        raise EchoforgeError(
            f"{directory} is not finished ({manifest['committed_units']} of {manifest['num_units']} work units): "
            "rerun the build to finish it, or pass --allow-incomplete"
        )
    files = published_files(folder)
    if folder.is_local:
        local = Path(folder.root)
    else:
        if not staging:
            raise EchoforgeError(f"{directory} is on {folder.protocol}://: give --staging DIR, a local folder "
                                 "to copy the build into before uploading")
        local = stage_locally(folder, Path(staging), files, progress)
    from huggingface_hub import get_token

    if token is None and get_token() is None:
        raise EchoforgeError("no Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(local), repo_type="dataset", revision=revision,
                                   allow_patterns=PUBLISHED, ignore_patterns=NEVER,
                                   commit_message=f"echoforge build: {manifest['rows']} rows, {manifest['hours']:.2f} h")
    except Exception as exc:  # noqa: BLE001 - network, token: one line; a rerun resumes the upload
        line = explain(root_cause(exc)) or explain(exc)
        if line is None:
            raise
        raise EchoforgeError(f"push to {repo_id} failed: {line}") from None
    return {"repo_id": repo_id, "files": files, "bytes": sum(folder.list()[f] for f in files),
            "private": private, "commit": getattr(commit, "commit_url", str(commit))}
