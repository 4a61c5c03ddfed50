"""Content hashes of local files, storage objects and inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO


def sha256_of(f: BinaryIO) -> str:
    """Hex sha256 of what an open binary file holds from its position on, read in 1 MiB blocks."""
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a local file."""
    with open(path, "rb") as f:
        return sha256_of(f)
